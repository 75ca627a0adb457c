"""The scheduler's set of unfinished executions across restarts, against a real nats-server: an
execution listed in the last snapshot and one requested after it both come back (though nothing
wakes them but their own timers), and a finished one does not. Each partition has a snapshot of
its own: the executions of a test are all in one partition, whose snapshot the test reads."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
from nats.js import JetStreamContext

from nodedrop.contracts.events import Event, ExecutionFinished, ExecutionRequested, NodeWaiting
from nodedrop.contracts.routing import Layout
from nodedrop.platform.history import read_execution
from nodedrop.platform.jetstream import StreamSettings, ensure_jetstream
from nodedrop.scheduler.snapshot import Snapshot
from nodedrop.scheduler.snapshot_store import SnapshotStore, open_bucket

from .test_scheduler_service import (
    chain,
    request,
    running_scheduler,
    scripted_runner,
    succeed,
    wait_finished,
)

pytestmark = pytest.mark.integration

#: Long enough to outlast the second scheduler below (which would otherwise end the wait).
WAIT_MS = 4000
E = TypeVar("E", bound=Event)


@pytest.fixture
async def js(jetstream: JetStreamContext) -> JetStreamContext:
    await ensure_jetstream(jetstream, StreamSettings.from_env())
    return jetstream


def in_one_partition(*names: str, partition: int = 0) -> list[str]:
    """An execution id per name, all in ``partition`` of the layout in use."""
    layout = Layout.from_env()
    return [
        next(f"{n}-{i}" for i in range(10_000) if layout.partition_of(f"{n}-{i}") == partition)
        for n in names
    ]


def waiting(ms: int = WAIT_MS) -> dict[str, Any]:
    return chain({"id": "pause", "type": "wait", "parameters": {"ms": ms}})


async def recorded(js: JetStreamContext, execution_id: str, event_type: type[E]) -> tuple[int, E]:
    """The first ``event_type`` event of the execution and its stream sequence, once recorded."""
    for _ in range(250):
        for seq, event in await read_execution(js, execution_id, layout=Layout.from_env()):
            if isinstance(event, event_type):
                return seq, event
        await asyncio.sleep(0.02)
    raise AssertionError(f"{execution_id} never recorded {event_type.__name__}")


async def sleep_until_due(*waits: NodeWaiting) -> None:
    """While no scheduler runs: a timer is then overdue at the next start (and the start must
    find its execution to fire it: no event is coming for it)."""
    due = max(wait.until for wait in waits)
    await asyncio.sleep(max((due - datetime.now(UTC)).total_seconds(), 0) + 0.05)


async def next_snapshot(store: SnapshotStore, previous: Snapshot | None) -> Snapshot:
    """The snapshot a starting scheduler writes (once it has rebuilt its set)."""
    for _ in range(250):
        snapshot = await store.read()
        if snapshot is not None and snapshot != previous:
            return snapshot
        await asyncio.sleep(0.02)
    raise AssertionError("no new snapshot was written")


async def test_a_restart_recovers_executions_from_the_snapshot_and_the_stream_after_it(
    js: JetStreamContext, nats_url: str
) -> None:
    done, listed_id, ends_later_id, after_id = in_one_partition(
        "ex-done", "ex-listed", "ex-ends-later", "ex-after"
    )
    kv, _ = await open_bucket(js)
    store = SnapshotStore(kv, 0, "reader")  # their partition's snapshot (only read here)
    never = 3600.0  # no snapshot but the one each start writes
    async with scripted_runner(nats_url, succeed):
        async with running_scheduler(nats_url, snapshot_interval_s=never):
            await request(js, done, chain({"id": "a", "type": "noop"}))
            await request(js, listed_id, waiting())
            await request(js, ends_later_id, waiting(ms=300))
            await wait_finished(js, done)
            _, listed = await recorded(js, listed_id, NodeWaiting)
            _, ends_later = await recorded(js, ends_later_id, NodeWaiting)
        await sleep_until_due(ends_later)
        # The next start snapshots the set; then one execution ends, another is requested.
        first = await store.read()
        async with running_scheduler(nats_url, snapshot_interval_s=never):
            before = await next_snapshot(store, first)
            await request(js, after_id, waiting())
            _, after = await recorded(js, after_id, NodeWaiting)
            await wait_finished(js, ends_later_id)
        # Down, as after a crash (no snapshot on the way out).
        assert (await store.read()) == before
        assert {listed_id, ends_later_id} <= before.executions
        assert not {done, after_id} & before.executions
        requested_after, _ = await recorded(js, after_id, ExecutionRequested)
        assert requested_after > before.after_seq  # only the tail of the stream has it
        await sleep_until_due(listed, after)

        async with running_scheduler(nats_url, snapshot_interval_s=never):
            recovered = await next_snapshot(store, before)  # what this start rebuilt
            assert {listed_id, after_id} <= recovered.executions
            assert not {done, ends_later_id} & recovered.executions
            for execution_id in (listed_id, after_id):
                events = await wait_finished(js, execution_id)
                assert isinstance(events[-1], ExecutionFinished)
                assert events[-1].status == "succeeded"


async def test_a_timer_not_yet_due_at_a_restart_fires_after_it(
    js: JetStreamContext, nats_url: str
) -> None:
    """A rebuilt execution with nothing to decide at the start still gets its timer."""
    async with scripted_runner(nats_url, succeed):
        async with running_scheduler(nats_url):
            await request(js, "ex-pending-timer", waiting(ms=1500))
            _, wait = await recorded(js, "ex-pending-timer", NodeWaiting)
        assert wait.until > datetime.now(UTC)  # restarted before it is due
        async with running_scheduler(nats_url):
            events = await wait_finished(js, "ex-pending-timer")
    assert isinstance(events[-1], ExecutionFinished)
    assert events[-1].status == "succeeded"
