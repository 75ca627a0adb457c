"""Who is calling the WebSocket: API keys to callers (docs/api.md), and from where.

The API relays ``/ws/*`` here unchanged and leaves authentication to the notifier, so both must
accept the same keys: both verify with ``nodedrop.contracts.apikeys.KeyVerifier`` against the
same tables (the admin token, or a user's key looked up in PostgreSQL and cached for 2 s).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

from nodedrop.contracts.apikeys import ADMIN, ADMIN_ID, KeyVerifier, Principal
from nodedrop.contracts.db.apikeys import pool_lookup

__all__ = [
    "ADMIN_ID",
    "Authenticate",
    "Caller",
    "admin_token_auth",
    "key_auth",
    "origin_allowed",
    "presented_key",
]

#: The caller of a WebSocket: a user, or the admin.
Caller = Principal

#: A presented key to its caller, or None when the key is not valid.
Authenticate = Callable[[str], Awaitable[Caller | None]]


def admin_token_auth(admin_token: str | None) -> Authenticate:
    """Only ``admin_token`` is valid; without one, no key is. (No database: for tests and
    tools that run the WebSocket alone.)"""

    async def authenticate(key: str) -> Caller | None:
        # Constant time: the comparison must not tell how much of a guess was right.
        if admin_token and hmac.compare_digest(key.encode(), admin_token.encode()):
            return ADMIN
        return None

    return authenticate


def key_auth(pool: Any, admin_token: str | None) -> Authenticate:
    """The admin token and every active user key, from the database on ``pool`` (asyncpg)."""
    return KeyVerifier(pool_lookup(pool), admin_token=admin_token).verify


def presented_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """``Authorization: Bearer <key>``, else ``?token=<key>`` (browsers cannot set headers)."""
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return query.get("token") or None


def origin_allowed(origin: str | None, allowed: Collection[str]) -> bool:
    """Browsers send ``Origin`` with every WebSocket handshake and, unlike for ``fetch``, apply
    no same-origin rule to WebSockets: only pages of the allowed origins may open one (defence in
    depth; every connection still needs a key). Clients that are not browsers send no
    ``Origin`` and are let through."""
    if origin is None:
        return True
    return "*" in allowed or origin.rstrip("/") in allowed
