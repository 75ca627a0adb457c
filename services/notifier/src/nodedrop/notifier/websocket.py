"""Live execution events over WebSocket (docs/api.md, "WebSocket").

``GET /ws/executions/{id}?after_seq=N`` sends every event of the execution with ``seq > N``, one
JSON text message each, stored ones first and then live ones, and closes with 1000 after
``ExecutionFinished``. Events come from the stream, not from the projection, which lags: an ordered
consumer on the execution's subjects starts at ``N + 1`` and delivers in stream order with no gap
(the client library recreates it from the last sequence seen if one appears).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection

import msgspec
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy, RawStreamMsg
from nats.js.errors import NotFoundError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from nodedrop.contracts import codec
from nodedrop.contracts.events import ExecutionFinished, ExecutionRequested
from nodedrop.contracts.routing import Layout, execution_subject
from nodedrop.notifier.auth import (
    Authenticate,
    Caller,
    admin_token_auth,
    origin_allowed,
    presented_key,
)

log = logging.getLogger(__name__)

CLOSE_NORMAL = 1000
CLOSE_BAD_REQUEST = 4400  # an addition: ``after_seq`` is not a non-negative integer
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN_ORIGIN = 4403  # an addition: a browser page of an origin not allowed
CLOSE_NOT_FOUND = 4404
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013

_encoder = msgspec.json.Encoder()


def create_app(
    js: JetStreamContext,
    admin_token: str | None,
    *,
    authenticate: Authenticate | None = None,
    allowed_origins: Collection[str] = (),
    layout: Layout | None = None,
) -> Starlette:
    """The notifier's ASGI app. Keys are checked by ``authenticate``, by default against
    ``admin_token`` (None: no key is valid). Browsers (requests with ``Origin``) are served
    only from ``allowed_origins``."""
    stream = _ExecutionStream(js, layout or Layout.from_env())
    authenticate = authenticate or admin_token_auth(admin_token)

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def execution_events(websocket: WebSocket) -> None:
        # Accept first, so that the client sees a close code rather than a failed handshake.
        await websocket.accept()
        if not origin_allowed(websocket.headers.get("origin"), allowed_origins):
            await websocket.close(CLOSE_FORBIDDEN_ORIGIN)
            return
        key = presented_key(websocket.headers, websocket.query_params)
        try:
            caller = await authenticate(key) if key else None
        except Exception:  # the database is away: no answer about the key either way
            log.exception("cannot verify a WebSocket key")
            await websocket.close(CLOSE_TRY_AGAIN_LATER)
            return
        if caller is None:
            await websocket.close(CLOSE_UNAUTHORIZED)
            return
        try:
            after_seq = int(websocket.query_params.get("after_seq", "0"))
        except ValueError:
            after_seq = -1
        if after_seq < 0:
            await websocket.close(CLOSE_BAD_REQUEST)
            return
        await stream.send(websocket, caller, websocket.path_params["execution_id"], after_seq)

    return Starlette(
        routes=[
            Route("/health", health),
            WebSocketRoute("/ws/executions/{execution_id}", execution_events),
        ]
    )


class _ExecutionStream:
    def __init__(self, js: JetStreamContext, layout: Layout) -> None:
        self._js = js
        self._layout = layout

    async def _last(self, execution_id: str, event_type: str) -> RawStreamMsg | None:
        # From the stream, not the projection: a client may connect right after the request,
        # before the notifier has projected it.
        try:
            return await self._js.get_last_msg(
                self._layout.stream_of(execution_id),
                execution_subject(execution_id, event_type),
            )
        except NotFoundError:
            return None

    async def _visible(self, caller: Caller, execution_id: str) -> bool:
        if not _valid_id(execution_id):
            return False
        requested = await self._last(execution_id, "ExecutionRequested")
        if requested is None or requested.data is None:
            return False
        try:
            event = codec.decode(requested.data)
        except codec.EventDecodeError:
            return False
        return isinstance(event, ExecutionRequested) and caller.can_see(event.requested_by)

    async def send(
        self, websocket: WebSocket, caller: Caller, execution_id: str, after_seq: int
    ) -> None:
        if not await self._visible(caller, execution_id):
            await websocket.close(CLOSE_NOT_FOUND)
            return
        finished = await self._last(execution_id, "ExecutionFinished")
        if finished is not None and finished.seq is not None and finished.seq <= after_seq:
            await websocket.close(CLOSE_NORMAL)  # The client has seen the end already.
            return
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE if after_seq else DeliverPolicy.ALL,
            opt_start_seq=after_seq + 1 if after_seq else None,
        )
        try:
            sub = await self._js.subscribe(
                execution_subject(execution_id),
                stream=self._layout.stream_of(execution_id),
                ordered_consumer=True,
                config=config,
            )
        except Exception:
            log.exception("cannot follow execution %s", execution_id)
            await websocket.close(CLOSE_INTERNAL_ERROR)
            return
        pump = asyncio.create_task(_pump(sub, websocket, after_seq))
        watch = asyncio.create_task(_until_disconnect(websocket))
        try:
            await asyncio.wait({pump, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump, watch):
                task.cancel()
            await asyncio.gather(pump, watch, return_exceptions=True)
            await _drop(self._js, self._layout.stream_of(execution_id), sub)
        if pump.done() and not pump.cancelled() and pump.exception() is None and pump.result():
            with contextlib.suppress(Exception):
                await websocket.close(CLOSE_NORMAL)


async def _pump(
    sub: JetStreamContext.PushSubscription, websocket: WebSocket, after_seq: int
) -> bool:
    """Forward events until ``ExecutionFinished``; True when it was sent."""
    last = after_seq
    while True:
        msg = await sub.next_msg(timeout=None)
        seq = msg.metadata.sequence.stream
        if seq <= last:
            continue  # Redelivered after the ordered consumer was recreated.
        last = seq
        try:
            event = codec.decode(msg.data)
        except codec.EventDecodeError:
            log.error("event %d on %s does not decode; not sent", seq, msg.subject)
            continue
        await websocket.send_text(_encoder.encode(codec.to_public(event, seq)).decode())
        if isinstance(event, ExecutionFinished):
            return True


async def _until_disconnect(websocket: WebSocket) -> None:
    # Clients only listen; anything they send is ignored until they go.
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return


async def _drop(js: JetStreamContext, stream: str, sub: JetStreamContext.PushSubscription) -> None:
    # The ordered consumer is ephemeral and would expire on its own; deleting it now frees the
    # server at once.
    with contextlib.suppress(Exception):
        await sub.unsubscribe()
    with contextlib.suppress(Exception):
        await js.delete_consumer(stream, sub._consumer)


def _valid_id(execution_id: str) -> bool:
    # A subject token: wildcards or dots would widen the subscription to other executions.
    return bool(execution_id) and not any(c in execution_id for c in ".*> \t")
