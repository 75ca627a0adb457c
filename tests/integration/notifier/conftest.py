"""The notifier against a real nats-server and PostgreSQL (server fixtures: tests/fixtures/).

``events`` is the JetStream layout of every service (stream and durable consumers) on the test's
clean server, ``publish`` records events as the services do (``Nats-Msg-Id`` = ``event_id``), and
``projector`` runs the projection loop in the background of a test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from nodedrop.contracts import codec, subjects
from nodedrop.contracts.db import migrate
from nodedrop.contracts.events import AnyEvent
from nodedrop.contracts.jetstream import ensure_jetstream
from nodedrop.notifier.consumer import Projector
from nodedrop.notifier.store import ProjectionStore, create_pool

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
async def events(jetstream: JetStreamContext) -> JetStreamContext:
    await ensure_jetstream(jetstream)
    return jetstream


@pytest.fixture
def publish(events: JetStreamContext) -> Publish:
    async def publish(batch: Iterable[AnyEvent]) -> list[int]:
        seqs = []
        for event in batch:
            ack = await events.publish(
                subjects.event_subject(event),
                codec.encode(event),
                headers={"Nats-Msg-Id": event.event_id},
            )
            seqs.append(ack.seq)
        return seqs

    return publish


class RunningProjector:
    def __init__(self, projector: Projector, stop: asyncio.Event, task: asyncio.Task[None]) -> None:
        self.projector = projector
        self.stop = stop
        self.task = task

    async def caught_up(self, js: JetStreamContext, within: float = 20.0) -> int:
        """Wait until every event now in the stream is projected; returns the last sequence."""
        last: int = (await js.stream_info(subjects.EVENTS_STREAM)).state.last_seq
        await asyncio.wait_for(self.projector.wait_for(last), within)
        return last

    async def halt(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 10)


ProjectorFactory = Callable[..., contextlib.AbstractAsyncContextManager[RunningProjector]]


@pytest.fixture
async def projector_nats(nats_url: str, events: JetStreamContext) -> AsyncIterator[NatsClient]:
    """The projector's own connection, as in the notifier (after the layout is in place)."""
    nc = await nats.connect(nats_url)
    try:
        yield nc
    finally:
        await nc.close()


@pytest.fixture
def projector(projector_nats: NatsClient, pool: Any) -> ProjectorFactory:
    """``async with projector() as running:`` runs a Projector until the block ends (on the
    real store unless ``store`` is given)."""

    @contextlib.asynccontextmanager
    async def run(
        store: ProjectionStore | None = None, **options: Any
    ) -> AsyncIterator[RunningProjector]:
        projector = Projector(projector_nats, store or ProjectionStore(pool), **options)
        stop = asyncio.Event()
        running = RunningProjector(projector, stop, asyncio.create_task(projector.run(stop)))
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
            "executions": [_decoded(r, "error", "node_policies") for r in executions],
            "nodes": [_decoded(r, "input", "output", "error") for r in nodes],
            "logs": [dict(r) for r in logs],
        }

    async def checkpoint(self) -> int:
        async with self.pool.acquire() as conn:
            value: int | None = await conn.fetchval(
                "SELECT last_seq FROM projection_checkpoints WHERE name = 'notifier'"
            )
        return value or 0

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
