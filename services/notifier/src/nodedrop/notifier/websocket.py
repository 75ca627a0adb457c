"""Live execution events over WebSocket (docs/api.md, "WebSocket").

``GET /ws/executions/{id}?after_seq=N`` sends every event of the execution with ``seq > N``, one
JSON text message each, stored ones first and then live ones, and closes with 1000 after
``ExecutionFinished``. Events come from the stream, not from the projection, which lags: they are
read in order by direct gets in batches of a few MiB, as fast as the client takes them, first
those stored, then more at each notice of a new one (``nodedrop.notifier.notices``: one consumer
per partition for all the notifier's sockets); a client that takes none for ``SEND_TIMEOUT_S`` is
closed with 1013.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncGenerator, Collection, Mapping

import msgspec
import nats.errors
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from nodedrop.contracts import codec
from nodedrop.contracts.events import ExecutionFinished, ExecutionRequested
from nodedrop.contracts.routing import Layout, execution_subject
from nodedrop.notifier.auth import (
    SUBPROTOCOL,
    Authenticate,
    Caller,
    admin_token_auth,
    origin_allowed,
    presented_key,
)
from nodedrop.notifier.notices import NoticeFeed, Notices
from nodedrop.platform import ops
from nodedrop.platform.history import DirectReadError, direct_read
from nodedrop.platform.metrics import WEBSOCKET_CLIENTS

log = logging.getLogger(__name__)

CLOSE_NORMAL = 1000
CLOSE_BAD_REQUEST = 4400  # an addition: ``after_seq`` is not an integer from 0 to 2**64 - 1
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN_ORIGIN = 4403  # an addition: a browser page of an origin not allowed
CLOSE_NOT_FOUND = 4404
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013

#: Stream sequences are unsigned 64-bit integers.
MAX_SEQ = 2**64 - 1
_DIGITS = re.compile(r"[0-9]{1,20}")
#: How often an open socket's key is checked again (with no cache): a revoked key's sockets close
#: within this plus one database query, inside the 2 s promised for revocation.
RECHECK_S = 1.0
#: What reaching the stream can raise while NATS is away or reconnecting: an expected event,
#: answered with a close and one log line, never a traceback.
_NATS_ERRORS = (nats.errors.Error, TimeoutError, OSError)

_encoder = msgspec.json.Encoder()

#: A client that has not taken one event within this long is closed with 1013 (it reconnects
#: with ``after_seq``): its socket, one batch of events and the notices are all it held.
SEND_TIMEOUT_S = 30.0
#: A noticed event not yet readable (a replica behind its leader) is asked for again this many
#: times, this long apart.
_NOTICE_RETRIES = 40
_NOTICE_RETRY_S = 0.05


def create_app(
    js: JetStreamContext,
    admin_token: str | None,
    *,
    authenticate: Authenticate | None = None,
    allowed_origins: Collection[str] = (),
    layout: Layout | None = None,
    recheck: Authenticate | None = None,
    recheck_s: float = RECHECK_S,
    checks: Mapping[str, ops.Check] | None = None,
) -> Starlette:
    """The notifier's ASGI app. Keys are checked by ``authenticate``, by default against
    ``admin_token`` (None: no key is valid), and the keys of open sockets every ``recheck_s`` by
    ``recheck`` (default: ``authenticate``; it should not cache): a socket whose key is no longer
    valid is closed with 4401. Browsers (requests with ``Origin``) are served only from
    ``allowed_origins``. ``/readyz`` runs ``checks`` (docs/operations.md, "Metrics and
    probes")."""
    authenticate = authenticate or admin_token_auth(admin_token)
    stream = _ExecutionStream(js, layout or Layout(), _KeyWatch(recheck or authenticate, recheck_s))

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def operator(request: Request) -> Response:
        found = ops.answer(request.url.path, checks or {})
        assert found is not None  # (routed only for the three paths)
        return Response(found.body, found.status, media_type=found.content_type)

    async def execution_events(websocket: WebSocket) -> None:
        # Accept first, so that the client sees a close code rather than a failed handshake.
        # A browser that offers its key as a subprotocol offers "nodedrop" too, and fails the
        # handshake unless one of its offers is chosen: "nodedrop" (never the key's).
        offered = list(websocket.scope.get("subprotocols") or [])
        await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
        with WEBSOCKET_CLIENTS.track_inprogress():
            await _serve_socket(websocket, offered)

    async def _serve_socket(websocket: WebSocket, offered: list[str]) -> None:
        if not origin_allowed(websocket.headers.get("origin"), allowed_origins):
            await websocket.close(CLOSE_FORBIDDEN_ORIGIN)
            return
        key = presented_key(websocket.headers, websocket.query_params, offered)
        try:
            caller = await authenticate(key) if key else None
        except Exception:  # the database is away: no answer about the key either way
            log.exception("cannot verify a WebSocket key")
            await websocket.close(CLOSE_TRY_AGAIN_LATER)
            return
        if caller is None or key is None:
            await websocket.close(CLOSE_UNAUTHORIZED)
            return
        after_seq = _after_seq(websocket.query_params.get("after_seq", "0"))
        if after_seq is None:
            reason = f"after_seq must be an integer from 0 to {MAX_SEQ}"
            await websocket.close(CLOSE_BAD_REQUEST, reason)
            return
        execution_id = websocket.path_params["execution_id"]
        try:
            await stream.send(websocket, caller, key, execution_id, after_seq)
        except _NATS_ERRORS as error:  # NATS away or reconnecting: the client tries again
            log.warning("WebSocket of execution %s: NATS: %s", execution_id, _describe(error))
            with contextlib.suppress(Exception):  # the client may be gone too
                await websocket.close(CLOSE_INTERNAL_ERROR, "event stream unavailable")

    return Starlette(
        routes=[
            Route("/health", health),
            *(Route(path, operator) for path in ("/livez", "/readyz", "/metrics")),
            WebSocketRoute("/ws/executions/{execution_id}", execution_events),
        ]
    )


def _describe(error: BaseException) -> str:
    return str(error) or type(error).__name__


def _after_seq(text: str) -> int | None:
    """``after_seq`` as a stream sequence, or None: decimal digits only (no sign, space or ``_``,
    which ``int`` would take), at most :data:`MAX_SEQ` (the server refuses more)."""
    if not _DIGITS.fullmatch(text) or int(text) > MAX_SEQ:
        return None
    return int(text)


class _KeyWatch:
    """The keys of open sockets, each checked again every ``interval_s`` by one task however
    many sockets use it; :meth:`until_revoked` returns once the key is no longer valid."""

    def __init__(self, recheck: Authenticate, interval_s: float) -> None:
        self._recheck = recheck
        self._interval_s = interval_s
        self._watches: dict[str, tuple[asyncio.Task[None], set[asyncio.Future[None]]]] = {}

    async def until_revoked(self, key: str) -> None:
        revoked = asyncio.get_running_loop().create_future()
        if key not in self._watches:
            self._watches[key] = (asyncio.create_task(self._watch(key)), set())
        task, waiters = self._watches[key]
        waiters.add(revoked)
        try:
            await revoked
        finally:
            waiters.discard(revoked)
            if not waiters and self._watches.get(key, (None,))[0] is task:
                del self._watches[key]
                task.cancel()

    async def _watch(self, key: str) -> None:
        unreachable = False
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                valid = await self._recheck(key) is not None
            except Exception as error:  # the database is away: keep serving, ask again later
                if not unreachable:
                    log.warning("cannot check the key of open WebSockets again: %r", error)
                unreachable = True
                continue
            unreachable = False
            if not valid:
                break
        _, waiters = self._watches.pop(key, (None, set()))
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


class _ExecutionStream:
    def __init__(self, js: JetStreamContext, layout: Layout, keys: _KeyWatch) -> None:
        self._js = js
        self._layout = layout
        self._keys = keys
        self._feed = NoticeFeed(js, layout)

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
        self, websocket: WebSocket, caller: Caller, key: str, execution_id: str, after_seq: int
    ) -> None:
        if not await self._visible(caller, execution_id):
            await websocket.close(CLOSE_NOT_FOUND)
            return
        stream_name = self._layout.stream_of(execution_id)
        finished = await self._last(execution_id, "ExecutionFinished")
        if finished is not None and finished.seq is not None and finished.seq <= after_seq:
            await websocket.close(CLOSE_NORMAL)  # The client has seen the end already.
            return
        # Past the stream's end (a client that knows better, or a made-up number), the execution's
        # next events get lower sequences than ``after_seq``: start at the end so that its
        # ``ExecutionFinished`` is seen, and close then as always; events up to ``after_seq``
        # are still not sent.
        start = after_seq and min(
            after_seq, (await self._js.stream_info(stream_name)).state.last_seq
        )
        events = _Events(self._js, stream_name, execution_id, start)
        # Registered before the first read: every event stored after it is noticed.
        async with self._feed.watch(execution_id) as notices:
            await self._follow(
                websocket, key, execution_id, after_seq, notices=notices, events=events
            )

    async def _follow(
        self,
        websocket: WebSocket,
        key: str,
        execution_id: str,
        after_seq: int,
        *,
        notices: Notices,
        events: _Events,
    ) -> None:
        pump = asyncio.create_task(_pump(notices, websocket, after_seq, events, SEND_TIMEOUT_S))
        watch = asyncio.create_task(_until_disconnect(websocket))
        revoked = asyncio.create_task(self._keys.until_revoked(key))
        try:
            await asyncio.wait({pump, watch, revoked}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump, watch, revoked):
                task.cancel()
            await asyncio.gather(pump, watch, revoked, return_exceptions=True)
        if watch.done() and not watch.cancelled():
            return  # the client went away
        close = (CLOSE_NORMAL, "")
        if revoked.done() and not revoked.cancelled():
            close = (CLOSE_UNAUTHORIZED, "API key revoked")
        elif not pump.cancelled() and (error := pump.exception()) is not None:
            if isinstance(error, WebSocketDisconnect | RuntimeError):
                return  # sending failed: the client is gone
            if isinstance(error, _TooSlowError):
                log.info("WebSocket of execution %s: client too slow, closed", execution_id)
                close = (CLOSE_TRY_AGAIN_LATER, "too slow, reconnect with after_seq")
            else:
                log.warning(
                    "WebSocket of execution %s: stream lost: %s", execution_id, _describe(error)
                )
                close = (CLOSE_INTERNAL_ERROR, "event stream lost")
        with contextlib.suppress(Exception):  # the client may have gone meanwhile
            await websocket.close(*close)


class _TooSlowError(Exception):
    """The client did not take an event within :data:`SEND_TIMEOUT_S`."""


class _StreamReadError(Exception):
    """A direct get was refused."""


class _Events:
    """The stored events of one execution after ``last`` (the last sequence read), read in
    batches of a few MiB at most by direct gets (nodedrop.platform.history.direct_read: flow
    control shared by every reader of the connection), the next batch only once this one is
    sent."""

    def __init__(self, js: JetStreamContext, stream: str, execution_id: str, last: int) -> None:
        self._js = js
        self._stream = stream
        self.subject = execution_subject(execution_id)
        self.last = last

    async def through(self, seq: int) -> AsyncGenerator[tuple[int, bytes], None]:
        """Every stored event after :attr:`last`, at least up to ``seq`` (a replica that has not
        stored it yet is asked again)."""
        for attempt in range(_NOTICE_RETRIES):
            if attempt:
                await asyncio.sleep(_NOTICE_RETRY_S)
            reading = direct_read(self._js, self._stream, self.subject, after_seq=self.last)
            try:
                async with contextlib.aclosing(reading):
                    async for item in reading:
                        self.last = item[0]
                        yield item
            except DirectReadError as error:  # a RuntimeError: send() would take it for the
                raise _StreamReadError(str(error)) from error  # client gone, and not close
            if self.last >= seq:
                return
        log.warning("event %d on %s noticed but not readable; skipped", seq, self._stream)
        self.last = seq


async def _pump(
    notices: Notices,
    websocket: WebSocket,
    after_seq: int,
    events: _Events,
    send_timeout_s: float,
) -> None:
    """Forward events after ``after_seq`` until ``ExecutionFinished`` (sent, or at or before
    ``after_seq``: then the client has seen it already).

    First everything stored, then, at each notice of a later event, everything stored after the
    last one read: in batches bounded by bytes, the next read only once the client has taken the
    last batch. A slow client so only slows its own reads (nothing it has not taken waits on the
    NATS connection), and one that takes no event for ``send_timeout_s`` is closed with 1013."""
    noticed = 0  # the first read: whatever is stored
    while True:
        async with contextlib.aclosing(events.through(noticed)) as reading:
            async for seq, data in reading:
                try:
                    event = codec.decode(data)
                except codec.EventDecodeError:
                    log.error("event %d of %s does not decode; not sent", seq, events.subject)
                    continue
                if seq > after_seq:
                    text = _encoder.encode(codec.to_public(event, seq)).decode()
                    try:
                        await asyncio.wait_for(websocket.send_text(text), send_timeout_s)
                    except TimeoutError:
                        raise _TooSlowError from None
                if isinstance(event, ExecutionFinished):
                    return
        noticed = await notices.after(events.last)


async def _until_disconnect(websocket: WebSocket) -> None:
    # Clients only listen; anything they send is ignored until they go.
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return


def _valid_id(execution_id: str) -> bool:
    # A subject token: wildcards or dots would widen the subscription to other executions.
    return bool(execution_id) and not any(c in execution_id for c in ".*> \t")
