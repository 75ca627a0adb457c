"""Who is calling the WebSocket: API keys to callers (docs/api.md), and from where.

The API relays ``/ws/*`` here unchanged and leaves authentication to the notifier, so both must
accept the same keys: both verify with ``nodedrop.platform.apikeys.KeyVerifier`` against the
same tables (the admin token, or a user's key looked up in PostgreSQL and cached for 2 s).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any

from nodedrop.platform.apikeys import ADMIN, ADMIN_ID, KeyVerifier, Principal
from nodedrop.platform.db.apikeys import pool_lookup

__all__ = [
    "ADMIN_ID",
    "KEY_SUBPROTOCOL_PREFIX",
    "SUBPROTOCOL",
    "Authenticate",
    "Caller",
    "admin_token_auth",
    "key_auth",
    "key_recheck",
    "origin_allowed",
    "presented_key",
]

#: The subprotocol a browser offers (and the server accepts) next to the one carrying its key.
SUBPROTOCOL = "nodedrop"
#: ``nodedrop.key.<the key in base64url, no padding>``: the key in ``Sec-WebSocket-Protocol``, the
#: one header a browser lets a page set on a WebSocket, so that it stays out of URLs and logs.
KEY_SUBPROTOCOL_PREFIX = "nodedrop.key."

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


def key_recheck(pool: Any, admin_token: str | None) -> Authenticate:
    """As :func:`key_auth`, but asking the database every time (no cache): how open sockets
    find out that their key was revoked."""
    return KeyVerifier(pool_lookup(pool), admin_token=admin_token, ttl_s=0).verify


def presented_key(
    headers: Mapping[str, str], query: Mapping[str, str], subprotocols: Sequence[str] = ()
) -> str | None:
    """``Authorization: Bearer <key>``, else the ``nodedrop.key.<base64url key>`` subprotocol
    (browsers), else ``?token=<key>`` (older clients; redacted from the access logs)."""
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    for offered in subprotocols:
        if offered.startswith(KEY_SUBPROTOCOL_PREFIX):
            return _unbase64url(offered.removeprefix(KEY_SUBPROTOCOL_PREFIX))
    return query.get("token") or None


def _unbase64url(text: str) -> str | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode() or None
    except (binascii.Error, ValueError):  # not base64, or not UTF-8: no key
        return None


def origin_allowed(origin: str | None, allowed: Collection[str]) -> bool:
    """Browsers send ``Origin`` with every WebSocket handshake and, unlike for ``fetch``, apply
    no same-origin rule to WebSockets: only pages of the allowed origins may open one (defence in
    depth; every connection still needs a key). Clients that are not browsers send no
    ``Origin`` and are let through."""
    if origin is None:
        return True
    return "*" in allowed or origin.rstrip("/") in allowed
