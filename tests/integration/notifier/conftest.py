"""The notifier against a real nats-server and PostgreSQL (server fixtures: tests/fixtures/).

``events`` is the JetStream layout of every service (partition streams and durable consumers, for
``NODEDROP_PARTITIONS``: ``layout``) on the test's clean server, ``publish`` records events as the
services do (``Nats-Msg-Id`` = ``event_id``, each in its execution's partition stream), and
``projector`` runs the projection loop of every partition (or of one) in the background of a test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import nats
import pytest
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from nodedrop.contracts import codec
from nodedrop.contracts.events import AnyEvent
from nodedrop.contracts.routing import Layout, all_events, event_subject
from nodedrop.notifier.consumer import Projector
from nodedrop.notifier.store import CHECKPOINT_NAME, ProjectionStore, checkpoint_name, create_pool
from nodedrop.platform.db import migrate
from nodedrop.platform.event_log import JetStreamEventLog
from nodedrop.platform.jetstream import StreamSettings, ensure_jetstream

Publish = Callable[[Iterable[AnyEvent]], Awaitable[list[int]]]


@pytest.fixture
async def migrated_database_url(database_url: str) -> str:
    # Alembic's env runs its own event loop: keep it off this one.
    await asyncio.to_thread(migrate.upgrade, database_url)
    return database_url


@pytest.fixture
async def pool(migrated_database_url: str) -> AsyncIterator[Any]:
    pool = await create_pool(migrated_database_url)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def layout() -> Layout:
    return Layout.from_env()


@pytest.fixture
async def events(jetstream: JetStreamContext, layout: Layout) -> JetStreamContext:
    await ensure_jetstream(jetstream, StreamSettings.from_env())
    return jetstream


@pytest.fixture
def publish(events: JetStreamContext, layout: Layout) -> Publish:
    """Records events in order; returns their sequences, each in its partition's stream."""

    async def publish(batch: Iterable[AnyEvent]) -> list[int]:
        seqs = []
        for event in batch:
            ack = await events.publish(
                event_subject(event),
                codec.encode(event),
                stream=layout.stream_of(event.execution_id),
                headers={"Nats-Msg-Id": event.event_id},
            )
            seqs.append(ack.seq)
        return seqs

    return publish


class RunningProjector:
    """The projectors of some partitions (by partition), run until :meth:`halt`."""

    def __init__(
        self,
        projectors: dict[int, Projector],
        layout: Layout,
        stop: asyncio.Event,
        tasks: list[asyncio.Task[None]],
    ) -> None:
        self.projectors = projectors
        self.layout = layout
        self.stop = stop
        self.tasks = tasks

    @property
    def projector(self) -> Projector:
        """The projector, when only one partition's runs."""
        (only,) = self.projectors.values()
        return only

    def of(self, execution_id: str) -> Projector:
        """The projector of the execution's partition."""
        return self.projectors[self.layout.partition_of(execution_id)]

    async def caught_up(self, js: JetStreamContext, within: float = 20.0) -> int:
        """Wait until every event now in the streams projected here is projected; returns the
        sequences of their last events added up (in a log nothing was pruned from: how many
        events it holds)."""
        lasts = {
            partition: await _last_event(js, projector.stream)
            for partition, projector in self.projectors.items()
        }
        await asyncio.wait_for(
            asyncio.gather(*(self.projectors[p].wait_for(last) for p, last in lasts.items())),
            within,
        )
        return sum(lasts.values())

    async def halt(self) -> None:
        self.stop.set()
        await asyncio.wait_for(asyncio.gather(*self.tasks), 10)


async def _last_event(js: JetStreamContext, stream: str) -> int:
    """The sequence of the last event stored in ``stream`` (0: none). Not the stream's last
    sequence: a pruned execution's events may have been last, and no projector ever sees those."""
    try:
        return (await js.get_last_msg(stream, all_events())).seq or 0
    except NotFoundError:
        return 0


ProjectorFactory = Callable[..., contextlib.AbstractAsyncContextManager[RunningProjector]]


@pytest.fixture
async def projector_log(
    nats_url: str, events: JetStreamContext
) -> AsyncIterator[JetStreamEventLog]:
    """The log over the projector's own connection, as in the notifier (after the layout is in
    place)."""
    nc = await nats.connect(nats_url)
    try:
        yield JetStreamEventLog(nc, nc.jetstream(), StreamSettings.from_env())
    finally:
        await nc.close()


@pytest.fixture
def projector(projector_log: JetStreamEventLog, pool: Any, layout: Layout) -> ProjectorFactory:
    """``async with projector() as running:`` runs a Projector for every partition until the
    block ends, each on the real store with its partition's checkpoint. With ``partition``,
    only that partition's, on ``store`` if given (whose checkpoint must be that partition's)."""

    @contextlib.asynccontextmanager
    async def run(
        store: ProjectionStore | None = None, *, partition: int | None = None, **options: Any
    ) -> AsyncIterator[RunningProjector]:
        assert store is None or partition is not None, "a store projects one partition"
        partitions = range(layout.partitions) if partition is None else [partition]
        projectors = {
            p: Projector(
                projector_log,
                store or ProjectionStore(pool, checkpoint_name(p)),
                partition=p,
                **options,
            )
            for p in partitions
        }
        stop = asyncio.Event()
        tasks = [asyncio.create_task(p.run(stop)) for p in projectors.values()]
        running = RunningProjector(projectors, layout, stop, tasks)
        try:
            yield running
        finally:
            await running.halt()

    return run


class ProjectionDb:
    """Reads the projection back for assertions."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    async def dump(self) -> dict[str, list[dict[str, Any]]]:
        """Every projected row in a stable order (log ids left out: they are a serial)."""
        async with self.pool.acquire() as conn:
            executions = await conn.fetch("SELECT * FROM executions ORDER BY id")
            nodes = await conn.fetch("SELECT * FROM node_executions ORDER BY execution_id, node")
            logs = await conn.fetch(
                "SELECT execution_id, seq, line, time, level, node, message FROM execution_logs "
                "ORDER BY execution_id, seq, line"
            )
        return {
            "executions": [_decoded(r, "error") for r in executions],
            "nodes": [_decoded(r, "input", "output", "error") for r in nodes],
            "logs": [dict(r) for r in logs],
        }

    async def checkpoint(self, partition: int | None = None) -> int:
        """A partition's checkpoint; without ``partition``, every partition's added up."""
        async with self.pool.acquire() as conn:
            if partition is not None:
                value: int | None = await conn.fetchval(
                    "SELECT last_seq FROM projection_checkpoints WHERE name = $1",
                    checkpoint_name(partition),
                )
            else:
                value = await conn.fetchval(
                    "SELECT sum(last_seq) FROM projection_checkpoints WHERE name LIKE $1",
                    f"{CHECKPOINT_NAME}.%",
                )
        return int(value or 0)

    async def execute(self, sql: str) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(sql)


def _decoded(record: Any, *json_columns: str) -> dict[str, Any]:
    row = dict(record)
    for column in json_columns:
        row[column] = None if row[column] is None else json.loads(row[column])
    return row


@pytest.fixture
def db(pool: Any) -> ProjectionDb:
    return ProjectionDb(pool)
