"""Slow readers never get the shared NATS connection dropped, and a read that cannot finish says
so: against a real nats-server that drops a client as a slow consumer once 8 MB wait for it
(``max_pending``; 64 MiB by default, the same thing at a smaller scale), with events of 400 KB
(and 1 MB at most, where the notifier's server takes 8 MB).

A busy event loop is what makes a client slow: here the loop is blocked for a moment right after
each read request is sent, so whatever a request asks for waits on the server meanwhile."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import nats
import pytest
import uvicorn
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from starlette.applications import Starlette
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from nodedrop.contracts import codec
from nodedrop.contracts.events import AnyEvent
from nodedrop.contracts.routing import Layout, event_subject
from nodedrop.embedded import EmbeddedNats
from nodedrop.embedded.nats import DEFAULT_CONFIG
from nodedrop.notifier import websocket
from nodedrop.notifier.consumer import Projector
from nodedrop.notifier.rebuild import IncompleteReplayError, rebuild_and_compare, replay
from nodedrop.notifier.store import ProjectionStore, checkpoint_name, create_pool
from nodedrop.notifier.testing import History
from nodedrop.notifier.websocket import create_app
from nodedrop.platform.event_log import JetStreamEventLog
from nodedrop.platform.jetstream import StreamSettings, ensure_jetstream

pytestmark = pytest.mark.integration

MAX_PENDING = 8 * 1024 * 1024
MAX_PAYLOAD = 1024 * 1024
BLOB = 400_000
#: How long the loop is blocked after each read request (a busy notifier).
STALL_S = 0.4
TOKEN = "test-admin-token"


@pytest.fixture(scope="module")
def tight_nats_url() -> Iterator[str]:
    directory = Path(tempfile.mkdtemp(prefix="nodedrop-test-nats-tight-"))
    config = directory / "tight.conf"
    # Messages of 1 MB at most: a bulk read then has 5 MB at most in flight (4 MiB asked for,
    # and the message that crosses the line), against 12 MB with the usual 8 MB.
    settings = f"max_pending: {MAX_PENDING}\nmax_payload: {MAX_PAYLOAD}\n"
    config.write_text(f"{DEFAULT_CONFIG.read_text()}\n{settings}")
    server = EmbeddedNats(directory / "data", port=0, config=config)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
async def tight(tight_nats_url: str) -> AsyncIterator[JetStreamContext]:
    """The layout's streams on the tight server, deleted afterwards."""
    nc = await nats.connect(tight_nats_url)
    js = nc.jetstream()
    await ensure_jetstream(js, StreamSettings.from_env())
    try:
        yield js
    finally:
        for info in await js.streams_info():
            if info.config.name:
                await js.delete_stream(info.config.name)
        await nc.close()


class Stalling:
    """A connection whose event loop is blocked for :data:`STALL_S` after each bulk read
    request it sends; ``dropped`` counts the server dropping it."""

    def __init__(self) -> None:
        self.dropped = 0
        self.requests = 0

    async def disconnected(self) -> None:
        self.dropped += 1

    def stall(self, nc: NatsClient) -> None:
        self.nc = nc
        publish = nc.publish

        async def stalled(subject: str, *args: Any, **options: Any) -> None:
            await publish(subject, *args, **options)
            if subject.startswith(("$JS.API.CONSUMER.MSG.NEXT.", "$JS.API.DIRECT.GET.")):
                self.requests += 1
                await nc.flush()
                time.sleep(STALL_S)  # noqa: ASYNC251 - the loop busy elsewhere: nothing is read

        nc.publish = stalled  # type: ignore[method-assign]


@contextlib.asynccontextmanager
async def stalling(url: str, **options: Any) -> AsyncIterator[Stalling]:
    client = Stalling()
    client.stall(await nats.connect(url, disconnected_cb=client.disconnected, **options))
    try:
        yield client
    finally:
        await client.nc.close()


def large(executions: int, nodes: int) -> list[AnyEvent]:
    events: list[AnyEvent] = []
    for e in range(executions):
        history = History(f"ex-big-{e}", requested_by="user-1")
        names = [f"n{i}" for i in range(nodes)]
        history.requested()
        history.started(names)
        for name in names:
            history.ready(name)
            history.node_started(name)
            history.succeeded(name, output={"main": [{"blob": name * (BLOB // len(name))}]})
        history.finished("succeeded")
        events += history.events
    return events


async def record(js: JetStreamContext, events: list[AnyEvent]) -> dict[str, int]:
    """Publishes ``events``; returns the last sequence of each stream written to."""
    layout = Layout.from_env()
    lasts: dict[str, int] = {}
    for event in events:
        stream = layout.stream_of(event.execution_id)
        ack = await js.publish(
            event_subject(event),
            codec.encode(event),
            stream=stream,
            headers={"Nats-Msg-Id": event.event_id},
        )
        lasts[stream] = ack.seq
    return lasts


async def project(js: JetStreamContext, database_url: str, lasts: dict[str, int]) -> None:
    """The live projection of everything in ``lasts``, folded as the projector folds it."""
    layout = Layout.from_env()
    pool = await create_pool(database_url)
    try:
        for stream, last in lasts.items():
            partition = layout.streams.index(stream)
            store = ProjectionStore(pool, checkpoint_name(partition))
            log = JetStreamEventLog.of_context(js, StreamSettings(layout=layout))
            await replay(log, store, partition=partition, through_seq=last)
    finally:
        await pool.close()


async def test_a_rebuild_of_large_events_by_a_busy_reader_is_read_whole_and_identical(
    tight: JetStreamContext, tight_nats_url: str, migrated_database_url: str
) -> None:
    # 75 events of 400 KB, 30 MB: far more than the server holds for a client not reading.
    events = large(3, 25)
    lasts = await record(tight, events)
    await project(tight, migrated_database_url, lasts)

    async with stalling(tight_nats_url, max_reconnect_attempts=2) as reader:
        report = await rebuild_and_compare(
            JetStreamEventLog.of_context(
                reader.nc.jetstream(), StreamSettings(layout=Layout.from_env())
            ),
            migrated_database_url,
        )
        dropped = reader.dropped

    assert dropped == 0
    assert report.events == len(events)
    assert report.comparison.identical, [d.describe() for d in report.comparison.differences]


async def test_a_rebuild_that_cannot_read_everything_says_how_far_it_got(
    tight: JetStreamContext, tight_nats_url: str, migrated_database_url: str
) -> None:
    lasts = await record(tight, large(1, 30))
    await project(tight, migrated_database_url, lasts)
    (stream,) = lasts  # one execution: one partition

    async with stalling(tight_nats_url, max_reconnect_attempts=0) as reader:
        publish = reader.nc.publish

        async def lost_after_the_first(subject: str, *args: Any, **options: Any) -> None:
            if reader.requests == 1 and subject.startswith("$JS.API.CONSUMER.MSG.NEXT."):
                await reader.nc.close()  # the connection lost for good after the first batch
            await publish(subject, *args, **options)

        reader.nc.publish = lost_after_the_first  # type: ignore[method-assign]
        with pytest.raises(IncompleteReplayError) as raised:
            await rebuild_and_compare(
                JetStreamEventLog.of_context(
                    reader.nc.jetstream(), StreamSettings(layout=Layout.from_env())
                ),
                migrated_database_url,
            )

    error = raised.value
    assert error.stream == stream
    assert error.through_seq == lasts[stream]
    assert 0 < error.last_seq < lasts[stream]
    assert error.events > 0
    assert f"got to sequence {error.last_seq} of {lasts[stream]}" in str(error)
    assert "nothing was compared" in str(error)


def test_the_cli_exits_2_and_prints_how_far_the_rebuild_got(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from nodedrop.cli import admin, projections

    async def incomplete(*_: Any) -> int:
        raise IncompleteReplayError("EVENTS", 8550, 9310, 8550, "connection closed")

    monkeypatch.setattr(projections, "_rebuild", incomplete)
    monkeypatch.setattr(admin, "servers", lambda: None)

    assert projections.rebuild(projections.RebuildRequest()) == 2
    out = capsys.readouterr()
    assert "different" not in out.out + out.err
    assert "got to sequence 8550 of 9310" in out.err


@contextlib.asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[str]:
    """``app`` on uvicorn on a free port; yields ``host:port``."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="off", ws="websockets-sansio", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(500):  # uvicorn signals readiness by a flag only
        if server.started:
            break
        await asyncio.sleep(0.01)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        server.force_exit = True
        await asyncio.wait_for(task, 20)
        sock.close()


class StuckClient:
    """A WebSocket client that reads nothing after the handshake (a small receive buffer: little
    is in flight), until :meth:`frames` reads everything the server sent and closed."""

    async def open(self, base: str, execution_id: str) -> None:
        host, port = base.split(":")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.connect((host, int(port)))
        sock.setblocking(False)
        self.reader, self.writer = await asyncio.open_connection(sock=sock)
        key = base64.b64encode(b"0123456789abcdef").decode()
        self.writer.write(
            f"GET /ws/executions/{execution_id}?token={TOKEN} HTTP/1.1\r\nHost: {base}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        await self.writer.drain()
        assert b" 101 " in await self.reader.readuntil(b"\r\n\r\n")
        self.transport = cast(asyncio.Transport, self.writer.transport)
        self.transport.pause_reading()

    async def frames(self) -> tuple[list[int], int, str]:
        """The ``seq`` of every event sent, the close code and reason."""
        self.transport.resume_reading()
        seqs: list[int] = []
        while True:
            head = await asyncio.wait_for(self.reader.readexactly(2), 60)
            opcode, length = head[0] & 0x0F, head[1] & 0x7F
            if length >= 126:
                size = 2 if length == 126 else 8
                length = int.from_bytes(await self.reader.readexactly(size), "big")
            payload = await self.reader.readexactly(length)
            if opcode == 1:
                seqs.append(json.loads(payload)["seq"])
            elif opcode == 8:
                return seqs, int.from_bytes(payload[:2], "big"), payload[2:].decode()

    def close(self) -> None:
        self.writer.close()


def ws_url(base: str, execution_id: str) -> str:
    return f"ws://{base}/ws/executions/{execution_id}?token={TOKEN}"


async def read_slowly(base: str, execution_id: str, pause_s: float) -> tuple[list[int], int]:
    """The ``seq`` of every event, read with a pause after each, and the close code."""
    seqs: list[int] = []
    async with ws_connect(ws_url(base, execution_id), max_size=None) as ws:
        with contextlib.suppress(ConnectionClosed):
            while True:
                seqs.append(json.loads(await asyncio.wait_for(ws.recv(), 60))["seq"])
                await asyncio.sleep(pause_s)
        assert ws.close_code is not None
        return seqs, ws.close_code


async def test_many_slow_viewers_of_a_large_execution_never_get_the_connection_dropped(
    tight: JetStreamContext, tight_nats_url: str
) -> None:
    # One execution of 40 events of 400 KB (16 MB), watched by 10 viewers at once, four of
    # which take their time; the notifier's loop is busy after each read request it sends.
    events = large(1, 13)
    (execution_id,) = {event.execution_id for event in events}
    lasts = await record(tight, events)
    (last,) = lasts.values()
    async with (
        stalling(tight_nats_url, max_reconnect_attempts=-1) as notifier,
        serving(create_app(notifier.nc.jetstream(), TOKEN)) as base,
    ):
        results = await asyncio.gather(
            *(read_slowly(base, execution_id, 0.05 if i < 4 else 0) for i in range(10))
        )
        dropped = notifier.dropped

    assert dropped == 0
    for seqs, code in results:
        assert (seqs, code) == (list(range(1, last + 1)), 1000)


async def test_a_viewer_that_takes_nothing_is_closed_with_1013_and_the_others_are_served(
    tight: JetStreamContext, tight_nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(websocket, "SEND_TIMEOUT_S", 1.0)
    events = large(1, 13)
    (execution_id,) = {event.execution_id for event in events}
    (last,) = (await record(tight, events)).values()
    async with (
        stalling(tight_nats_url, max_reconnect_attempts=-1) as notifier,
        serving(create_app(notifier.nc.jetstream(), TOKEN)) as base,
    ):
        # A client that reads nothing (after the first message): the socket's buffers fill,
        # and the next event cannot be handed over.
        stream = Layout.from_env().stream_of(execution_id)
        durable = (await tight.stream_info(stream)).state.consumer_count  # the services'
        stuck = StuckClient()
        await stuck.open(base, execution_id)
        try:
            seqs, code = await read_slowly(base, execution_id, 0)
            assert (seqs, code) == (list(range(1, last + 1)), 1000)
            for _ in range(300):  # the stuck client's consumer is deleted once it is given up
                if (await tight.stream_info(stream)).state.consumer_count == durable:
                    break
                await asyncio.sleep(0.1)
            stuck_seqs, stuck_code, reason = await stuck.frames()
        finally:
            stuck.close()
        dropped = notifier.dropped

    assert dropped == 0
    assert (stuck_code, reason) == (1013, "too slow, reconnect with after_seq")
    assert stuck_seqs == list(range(1, len(stuck_seqs) + 1))
    assert len(stuck_seqs) < last


async def test_the_projector_catches_up_on_large_events_on_a_busy_loop_without_being_dropped(
    tight: JetStreamContext, tight_nats_url: str, migrated_database_url: str
) -> None:
    # 75 events of 400 KB waiting (30 MB) when the projector starts.
    lasts = await record(tight, large(3, 25))
    settings = StreamSettings.from_env()
    layout = settings.layout
    pool = await create_pool(migrated_database_url)
    stop = asyncio.Event()
    try:
        async with stalling(tight_nats_url, max_reconnect_attempts=-1) as notifier:
            projectors = [
                Projector(
                    JetStreamEventLog(notifier.nc, notifier.nc.jetstream(), settings),
                    ProjectionStore(pool, checkpoint_name(partition)),
                    partition=partition,
                )
                for partition in (layout.streams.index(stream) for stream in lasts)
            ]
            tasks = [asyncio.create_task(projector.run(stop)) for projector in projectors]
            try:
                await asyncio.wait_for(
                    asyncio.gather(
                        *(p.wait_for(lasts[p.stream]) for p in projectors),
                    ),
                    120,
                )
            finally:
                stop.set()
                await asyncio.wait_for(asyncio.gather(*tasks), 20)
            dropped = notifier.dropped
        rows = await pool.fetchval("SELECT count(*) FROM node_executions")
    finally:
        await pool.close()

    assert dropped == 0
    assert rows == 75
