"""Defaults shared by both clients."""

from __future__ import annotations

#: Seconds for one ordinary request (connect, read, write); long polls add their wait.
DEFAULT_TIMEOUT_S = 30.0


def auth_headers(token: str | None) -> dict[str, str]:
    """The key as a bearer token (the WebSocket takes the same header)."""
    return {"Authorization": f"Bearer {token}"} if token else {}
