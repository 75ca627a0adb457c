"""Slow readers never get the shared NATS connection dropped, and a read that cannot finish says
so: against a real nats-server that drops a client as a slow consumer once 8 MB wait for it
(``max_pending``; 64 MiB by default, the same thing at a smaller scale), with events of 400 KB.

A busy event loop is what makes a client slow: here the loop is blocked for a moment right after
each read request is sent, so whatever a request asks for waits on the server meanwhile."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from nodedrop.contracts import codec
from nodedrop.contracts.events import AnyEvent
from nodedrop.contracts.jetstream import ensure_jetstream
from nodedrop.contracts.routing import Layout, event_subject
from nodedrop.embedded import EmbeddedNats
from nodedrop.embedded.nats import DEFAULT_CONFIG
from nodedrop.notifier.rebuild import IncompleteReplayError, rebuild_and_compare, replay
from nodedrop.notifier.store import ProjectionStore, checkpoint_name, create_pool
from nodedrop.notifier.testing import History

pytestmark = pytest.mark.integration

MAX_PENDING = 8 * 1024 * 1024
BLOB = 400_000
#: How long the loop is blocked after each read request (a busy notifier).
STALL_S = 0.4


@pytest.fixture(scope="module")
def tight_nats_url() -> Iterator[str]:
    directory = Path(tempfile.mkdtemp(prefix="nodedrop-test-nats-tight-"))
    config = directory / "tight.conf"
    config.write_text(f"{DEFAULT_CONFIG.read_text()}\nmax_pending: {MAX_PENDING}\n")
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
    await ensure_jetstream(js)
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
            store = ProjectionStore(pool, checkpoint_name(layout.streams.index(stream)))
            await replay(js, store, stream=stream, through_seq=last)
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
        report = await rebuild_and_compare(reader.nc.jetstream(), migrated_database_url)
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
            await rebuild_and_compare(reader.nc.jetstream(), migrated_database_url)

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
