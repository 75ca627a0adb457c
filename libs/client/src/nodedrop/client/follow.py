"""Following an execution live over the WebSocket: what both clients share.

``GET /ws/executions/{id}?after_seq=N`` sends every event with ``seq > N``, stored ones first,
then live ones, and closes with 1000 after ``ExecutionFinished`` (docs/api.md, "WebSocket").
A connection can drop (the api restarts, 1011/1013, the network): the client reconnects with
``after_seq`` = the last ``seq`` it got, so nothing is missed and nothing is seen twice. This
module holds that bookkeeping; ``Client.follow`` and ``AsyncClient.follow`` only move bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

from nodedrop.client.errors import (
    ApiError,
    Forbidden,
    NotFound,
    StreamLost,
    Unauthorized,
    ValidationFailed,
)
from nodedrop.client.models import Event

#: Connections in a row that bring no event before following gives up.
MAX_FAILED_CONNECTS = 20
MAX_RECONNECT_DELAY_S = 5.0
#: The largest event the client takes (a node output up to 256 KiB inline, with room).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
OPEN_TIMEOUT_S = 10.0

CLOSE_FINISHED = 1000
#: Close codes (and handshake statuses) after which reconnecting cannot help.
_FINAL: dict[int, type[ApiError]] = {
    4401: Unauthorized,
    401: Unauthorized,
    4403: Forbidden,
    403: Forbidden,
    4404: NotFound,
    404: NotFound,
    4400: ValidationFailed,
}


@dataclass(frozen=True)
class Reconnecting:
    """Told to ``on_reconnect`` before each new connection: why, from where, after how long."""

    code: int | None
    reason: str
    after_seq: int
    delay_s: float


def websocket_url(base_url: str, execution_id: str, after_seq: int) -> str:
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    path = f"{parts.path.rstrip('/')}/ws/executions/{quote(execution_id, safe='')}"
    return urlunsplit((scheme, parts.netloc, path, f"after_seq={after_seq}", ""))


class FollowState:
    """Where following stands: the last ``seq`` seen, whether it ended, failures in a row."""

    def __init__(
        self,
        base_url: str,
        execution_id: str,
        after_seq: int = 0,
        on_reconnect: Callable[[Reconnecting], None] | None = None,
    ) -> None:
        self.base_url = base_url
        self.execution_id = execution_id
        self.last_seq = after_seq
        self.finished = False
        self.on_reconnect = on_reconnect
        self._failures = 0
        self._received = 0

    def url(self) -> str:
        self._received = 0
        return websocket_url(self.base_url, self.execution_id, self.last_seq)

    def accept(self, message: str | bytes) -> Event | None:
        """The event in ``message``, or ``None`` for one already seen before a reconnection."""
        event = Event.model_validate(json.loads(message))
        if event.seq <= self.last_seq:
            return None
        self.last_seq = event.seq
        self._received += 1
        if event.type == "ExecutionFinished":
            self.finished = True
        return event

    def after_close(self, code: int | None, reason: str) -> float | None:
        """Once a connection ended: ``None`` when the execution finished (its end seen, or a
        1000 close, which also ends a stream resumed past its end), else the delay before
        reconnecting; raises when reconnecting cannot help or failed too often."""
        if self.finished or code == CLOSE_FINISHED:
            self.finished = True
            return None
        final = _FINAL.get(code) if code is not None else None
        if final is not None:
            status = {4401: 401, 4403: 403, 4404: 404, 4400: 422}.get(code or 0, code or 0)
            raise final(status, reason or f"the event stream closed with {code}")
        self._failures = 0 if self._received else self._failures + 1
        if self._failures >= MAX_FAILED_CONNECTS:
            raise StreamLost(
                f"lost the event stream of {self.execution_id} after seq {self.last_seq} "
                f"({reason or code})",
                code,
            )
        delay = min(0.25 * 2.0**self._failures, MAX_RECONNECT_DELAY_S)
        if self.on_reconnect is not None:
            self.on_reconnect(Reconnecting(code, reason, self.last_seq, delay))
        return delay
