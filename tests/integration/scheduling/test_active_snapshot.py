"""The scheduler's set of unfinished executions across restarts, against a real nats-server: an
execution listed in the last snapshot and one requested after it both come back (though nothing
wakes them but their own timers), a finished one does not, and a deployment of the former
layout (one key per execution) is taken over and cleaned up."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType

from nodedrop.contracts import subjects
from nodedrop.contracts.events import Event, ExecutionFinished, ExecutionRequested, NodeWaiting
from nodedrop.contracts.history import read_execution
from nodedrop.contracts.jetstream import ensure_jetstream
from nodedrop.scheduler.snapshot import Snapshot
from nodedrop.scheduler.snapshot_store import SnapshotStore

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
    await ensure_jetstream(jetstream)
    return jetstream


def waiting(ms: int = WAIT_MS) -> dict[str, Any]:
    return chain({"id": "pause", "type": "wait", "parameters": {"ms": ms}})


async def recorded(js: JetStreamContext, execution_id: str, event_type: type[E]) -> tuple[int, E]:
    """The first ``event_type`` event of the execution and its stream sequence, once recorded."""
    for _ in range(250):
        for seq, event in await read_execution(js, execution_id):
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
    store = SnapshotStore(js)
    await store.open()
    never = 3600.0  # no snapshot but the one each start writes
    async with scripted_runner(nats_url, succeed):
        async with running_scheduler(nats_url, snapshot_interval_s=never):
            await request(js, "ex-done", chain({"id": "a", "type": "noop"}))
            await request(js, "ex-listed", waiting())
            await request(js, "ex-ends-later", waiting(ms=300))
            await wait_finished(js, "ex-done")
            _, listed = await recorded(js, "ex-listed", NodeWaiting)
            _, ends_later = await recorded(js, "ex-ends-later", NodeWaiting)
        await sleep_until_due(ends_later)
        # The next start snapshots the set; then one execution ends, another is requested.
        first = await store.read()
        async with running_scheduler(nats_url, snapshot_interval_s=never):
            before = await next_snapshot(store, first)
            await request(js, "ex-after", waiting())
            _, after = await recorded(js, "ex-after", NodeWaiting)
            await wait_finished(js, "ex-ends-later")
        # Down, as after a crash (no snapshot on the way out).
        assert (await store.read()) == before
        assert {"ex-listed", "ex-ends-later"} <= before.executions
        assert not {"ex-done", "ex-after"} & before.executions
        requested_after, _ = await recorded(js, "ex-after", ExecutionRequested)
        assert requested_after > before.after_seq  # only the tail of the stream has it
        await sleep_until_due(listed, after)

        async with running_scheduler(nats_url, snapshot_interval_s=never):
            recovered = await next_snapshot(store, before)  # what this start rebuilt
            assert {"ex-listed", "ex-after"} <= recovered.executions
            assert not {"ex-done", "ex-ends-later"} & recovered.executions
            for execution_id in ("ex-listed", "ex-after"):
                events = await wait_finished(js, execution_id)
                assert isinstance(events[-1], ExecutionFinished)
                assert events[-1].status == "succeeded"


async def test_an_upgrade_takes_over_the_former_layout_then_purges_it(
    js: JetStreamContext, nats_url: str
) -> None:
    """Before the snapshot, the bucket held one key per unfinished execution (written before
    its request was acknowledged) and a deletion marker per finished one."""
    kv = await js.create_key_value(
        KeyValueConfig(bucket=subjects.SCHEDULER_STATE_BUCKET, history=1, storage=StorageType.FILE)
    )
    # A former scheduler took the request (acknowledged it) and listed the execution; then it
    # was upgraded before deciding anything more.
    await request(js, "ex-former", waiting(ms=200))
    consumer = await js.pull_subscribe_bind(
        subjects.SCHEDULER_CONSUMER, stream=subjects.EVENTS_STREAM
    )
    [taken] = await consumer.fetch(1, timeout=5)
    await kv.put(subjects.active_key("ex-former"), b"")
    await taken.ack_sync()
    await consumer.unsubscribe()
    await kv.put(subjects.active_key("ex-gone"), b"")
    await kv.delete(subjects.active_key("ex-gone"))

    async with scripted_runner(nats_url, succeed), running_scheduler(nats_url):
        events = await wait_finished(js, "ex-former")
        assert isinstance(events[-1], ExecutionFinished)
        assert events[-1].status == "succeeded"
        for _ in range(250):
            state = await js.stream_info(
                f"KV_{subjects.SCHEDULER_STATE_BUCKET}",
                subjects_filter=subjects.active_keys_subject(),
            )
            if not state.state.subjects:
                break
            await asyncio.sleep(0.02)
        assert not state.state.subjects, "the former layout's keys were not purged"
        store = SnapshotStore(js)
        await store.open()
        assert await store.read() is not None


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
