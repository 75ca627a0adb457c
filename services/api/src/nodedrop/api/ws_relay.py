"""``/ws/executions/{id}`` on the API's base URL, relayed to the notifier, which serves it.

The relay is transparent: the query string, the ``Authorization`` and ``Origin`` headers and the
offered subprotocols (``Sec-WebSocket-Protocol``: browsers send their key there, in
``nodedrop.key.<base64url key>`` next to ``nodedrop``) go upstream, text and binary messages go
both ways, and the notifier's close code and reason (4401,
4403, 4404, 1000...) reach the client. The notifier does the authentication and the origin check,
so the answer is the same either way.

With several notifiers (``NODEDROP_NOTIFIER_URL``; any serves any execution) each relay starts at
the next one in turn and moves on while one cannot be reached; a refusal (HTTP 4xx to the
handshake, or a close after it) is the notifier's answer and goes to the client as it is.

Either side closing is the normal end of a relay and logs nothing; URLs are logged without their
query, which may hold a key (``?token=``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Sequence
from typing import cast
from urllib.parse import quote, urlsplit, urlunsplit

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from nodedrop.api.settings import ApiSettings

log = logging.getLogger(__name__)

router = APIRouter()

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: Close codes that only report what happened locally and may not be sent in a close frame.
_UNSENDABLE = {1005: 1000, 1006: 1011, 1015: 1011}
_HANDSHAKE_REFUSED = {401: 4401, 403: 4401, 404: 4404}
#: The subprotocol accepted when a client offers it (with its key in another one, never chosen).
SUBPROTOCOL = "nodedrop"
#: How one side of a relay ends when the other side went away: a normal end, not an error.
_GONE = (WebSocketDisconnect, ConnectionClosed, OSError, RuntimeError)
#: Where the next relay starts in the list of notifiers, so that connections spread over them.
_rotation = itertools.count()


def upstream_url(notifier_url: str, path: str, query: str) -> str:
    base = urlsplit(notifier_url)
    scheme = "wss" if base.scheme in {"https", "wss"} else "ws"
    return urlunsplit((scheme, base.netloc, base.path.rstrip("/") + path, query, ""))


def client_close_code(upstream_code: int | None) -> int:
    if upstream_code is None:
        return 1011
    return _UNSENDABLE.get(upstream_code, upstream_code)


@router.websocket("/ws/executions/{execution_id}")
async def relay_execution_events(websocket: WebSocket, execution_id: str) -> None:
    config = cast(ApiSettings, websocket.app.state.config)
    path = f"/ws/executions/{quote(execution_id, safe='')}"
    headers = {}
    if (authorization := websocket.headers.get("authorization")) is not None:
        headers["Authorization"] = authorization
    if (origin := websocket.headers.get("origin")) is not None:
        headers["Origin"] = origin  # the notifier checks it against the allowed origins
    offered = [Subprotocol(p) for p in websocket.scope.get("subprotocols") or []]
    upstream = await _connect_any(config.notifier_urls, path, websocket.url.query, headers, offered)
    try:
        # A browser that offered subprotocols fails the handshake unless one is chosen, even a
        # refusal (which it must see as a close code to stop retrying).
        await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
        if isinstance(upstream, tuple):
            await websocket.close(*upstream)
            return
    except _GONE:  # the client went away during the handshake
        if not isinstance(upstream, tuple):
            await upstream.close()
        return
    async with upstream:
        await _pump(websocket, upstream, execution_id)


async def _connect_any(
    notifiers: Sequence[str],
    path: str,
    query: str,
    headers: dict[str, str],
    subprotocols: Sequence[Subprotocol] = (),
) -> ClientConnection | tuple[int, str]:
    """A connection to the first notifier that answers, starting at the next in turn; or the
    close code and reason for the client: the refusal of one, or 1013 when none answered."""
    start = next(_rotation) % len(notifiers)
    for notifier in [*notifiers[start:], *notifiers[:start]]:
        url = upstream_url(notifier, path, query)
        shown = upstream_url(notifier, path, "")  # the query may hold a key: never logged
        try:
            # No per-message deflate on this hop: the notifier is a neighbour, and compressing
            # each event there only to inflate it here cost both processes CPU on every event
            # (S5).
            return await connect(
                url,
                additional_headers=headers,
                open_timeout=5,
                max_size=MAX_MESSAGE_BYTES,
                compression=None,
                subprotocols=list(subprotocols) or None,
            )
        except InvalidStatus as refused:
            status = refused.response.status_code
            if status < 500:  # the notifier's answer to this request: another would say the same
                return _HANDSHAKE_REFUSED.get(status, 1011), f"notifier refused: HTTP {status}"
            log.warning("notifier WebSocket %s failed: HTTP %d", shown, status)
        except (OSError, TimeoutError, InvalidHandshake) as error:
            log.warning("notifier WebSocket %s unreachable: %r", shown, error)
    return 1013, "event notifier unavailable, try again later"


async def _pump(client: WebSocket, upstream: ClientConnection, execution_id: str) -> None:
    to_client = asyncio.create_task(_upstream_to_client(upstream, client))
    to_upstream = asyncio.create_task(_client_to_upstream(client, upstream))
    try:
        await asyncio.wait({to_client, to_upstream}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (to_client, to_upstream):
            task.cancel()
        # Both tasks' outcomes are taken here, the finished one's too: an exception left in a
        # task is logged with a traceback when the task is collected ("never retrieved").
        outcomes = await asyncio.gather(to_client, to_upstream, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, Exception) and not isinstance(outcome, _GONE):
            log.error("WebSocket relay of execution %s failed", execution_id, exc_info=outcome)


async def _upstream_to_client(upstream: ClientConnection, client: WebSocket) -> None:
    try:
        async for message in upstream:
            if isinstance(message, str):
                await client.send_text(message)
            else:
                await client.send_bytes(message)
    except ConnectionClosed:
        pass
    except (WebSocketDisconnect, RuntimeError, OSError):
        return  # the client went away; the other direction closes upstream
    if client.application_state != WebSocketState.DISCONNECTED:
        with contextlib.suppress(*_GONE):
            await client.close(client_close_code(upstream.close_code), upstream.close_reason or "")


async def _client_to_upstream(client: WebSocket, upstream: ClientConnection) -> None:
    while True:
        message = await client.receive()
        if message["type"] == "websocket.disconnect":
            await upstream.close()
            return
        try:
            if (text := message.get("text")) is not None:
                await upstream.send(text)
            elif (data := message.get("bytes")) is not None:
                await upstream.send(data)
        except ConnectionClosed:
            # Upstream is closing: the other direction relays its code; wait to be cancelled.
            await asyncio.Future()
