"""Who is calling the WebSocket: API keys to callers (CONTRACT.md section 4).

The API relays ``/ws/*`` here unchanged and leaves authentication to the notifier, so both must
accept the same keys. Today that is ``NODEDROP_ADMIN_TOKEN`` alone, acting as the admin, as in
the API; user keys plug in as another :data:`Authenticate` without touching the endpoint.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

ADMIN_ID = "admin"


@dataclass(frozen=True)
class Caller:
    id: str
    is_admin: bool = False

    def can_see(self, requested_by: str) -> bool:
        """Another user's execution is answered as unknown (4404)."""
        return self.is_admin or requested_by == self.id


#: A presented key to its caller, or None when the key is not valid.
Authenticate = Callable[[str], Awaitable[Caller | None]]


def admin_token_auth(admin_token: str | None) -> Authenticate:
    """Only ``admin_token`` is valid; without one, no key is."""

    async def authenticate(key: str) -> Caller | None:
        # Constant time: the comparison must not tell how much of a guess was right.
        if admin_token and hmac.compare_digest(key.encode(), admin_token.encode()):
            return Caller(ADMIN_ID, is_admin=True)
        return None

    return authenticate


def presented_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """``Authorization: Bearer <key>``, else ``?token=<key>`` (browsers cannot set headers)."""
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return query.get("token") or None
