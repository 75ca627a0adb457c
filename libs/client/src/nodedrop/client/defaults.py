"""Defaults shared by both clients."""

from __future__ import annotations

import httpx

#: Seconds for one ordinary request (connect, read, write); long polls add their wait.
DEFAULT_TIMEOUT_S = 30.0


def auth_headers(
    token: str | None, http: httpx.Client | httpx.AsyncClient | None = None
) -> dict[str, str]:
    """The key as a bearer token (the WebSocket takes the same header); without a token, the
    one the given httpx client sends, so that following works over it too."""
    if token:
        return {"Authorization": f"Bearer {token}"}
    given = http.headers.get("Authorization") if http is not None else None
    return {"Authorization": given} if given else {}
