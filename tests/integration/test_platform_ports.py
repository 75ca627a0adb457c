"""The event log, task queue and key-value ports. Each test runs twice, with the same body: on
the in-memory stand-ins the services' unit tests use (``nodedrop.platform.testing``) and on a
real nats-server, so the stand-ins cannot drift from the adapters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime

import pytest
from nats.js import JetStreamContext
from tests.fixtures.servers import clean_jetstream

from nodedrop.contracts import codec, ids, subjects
from nodedrop.contracts.events import (
    ErrorInfo,
    Event,
    ExecutionFinished,
    ExecutionRequested,
    NodeFailed,
    NodeReady,
    NodeStarted,
)
from nodedrop.contracts.routing import event_subject
from nodedrop.notifier.consumer import Projector
from nodedrop.notifier.testing import History, MemoryProjection, running
from nodedrop.platform.bus import FencedError
from nodedrop.platform.event_log import EventLog, JetStreamEventLog
from nodedrop.platform.jetstream import StreamSettings, ensure_jetstream
from nodedrop.platform.key_values import KeyValueStore, RevisionMismatchError
from nodedrop.platform.task_queue import RunnerTasks, TaskQueue
from nodedrop.platform.testing.event_log import MemoryEventLog
from nodedrop.platform.testing.key_values import MemoryKeyValues
from nodedrop.platform.testing.task_queue import MemoryTaskQueue
from nodedrop.scheduler.snapshot_store import open_bucket

pytestmark = pytest.mark.integration

SETTINGS = StreamSettings()
TASK_SETTINGS = StreamSettings(runner_ack_wait_s=1.0)
T = datetime(2026, 12, 1, tzinfo=UTC)
#: The scheduler consumer these tests read through.
CONSUMER = subjects.scheduler_consumer(0)


#: Both logs serve the scheduler's port and the projectors' (``ProjectionLog``).
AnyLog = MemoryEventLog | JetStreamEventLog


@pytest.fixture(params=["memory", "nats"])
async def event_log(request: pytest.FixtureRequest) -> AsyncIterator[AnyLog]:
    if request.param == "memory":
        yield MemoryEventLog(SETTINGS.layout)
        return
    async with connected(request) as js:
        await ensure_jetstream(js, SETTINGS)
        yield JetStreamEventLog(js._nc, js, SETTINGS)


@pytest.fixture(params=["memory", "nats"])
async def tasks(request: pytest.FixtureRequest) -> AsyncIterator[tuple[EventLog, TaskQueue]]:
    """A log to record tasks in, and the runners' queue of them (ack wait: 1 s)."""
    if request.param == "memory":
        log = MemoryEventLog(TASK_SETTINGS.layout)
        yield log, MemoryTaskQueue(log, capacity=8, settings=TASK_SETTINGS)
        return
    async with connected(request) as js:
        await ensure_jetstream(js, TASK_SETTINGS)
        queue = RunnerTasks(js._nc, TASK_SETTINGS.layout, capacity=8)
        yield JetStreamEventLog(js._nc, js, TASK_SETTINGS), queue
        await queue.stop_and_drain()


@pytest.fixture(params=["memory", "nats"])
async def key_values(request: pytest.FixtureRequest) -> AsyncIterator[KeyValueStore]:
    if request.param == "memory":
        yield MemoryKeyValues()
        return
    async with connected(request) as js:
        kv, _ = await open_bucket(js)
        yield kv


def connected(request: pytest.FixtureRequest) -> AbstractAsyncContextManager[JetStreamContext]:
    return clean_jetstream(request.getfixturevalue("nats_url"))


def requested(execution_id: str) -> ExecutionRequested:
    return ExecutionRequested(
        event_id=ids.execution_requested(execution_id),
        execution_id=execution_id,
        time=T,
        workflow={"nodes": [{"id": "start", "type": "manual_trigger"}], "connections": []},
        requested_by="tester",
        trigger="start",
    )


def started(execution_id: str) -> NodeStarted:
    return NodeStarted(
        event_id=ids.node_started(execution_id, "start", 1),
        execution_id=execution_id,
        time=T,
        node="start",
        attempt=1,
    )


def ready(execution_id: str) -> NodeReady:
    return NodeReady(
        event_id=ids.node_ready(execution_id, "start", 1),
        execution_id=execution_id,
        time=T,
        node="start",
        attempt=1,
        node_type="manual_trigger",
        input={"main": [{}]},
    )


def failed(execution_id: str) -> NodeFailed:
    return NodeFailed(
        event_id=ids.node_result(execution_id, "start", 1),
        execution_id=execution_id,
        time=T,
        node="start",
        attempt=1,
        error=ErrorInfo(type="Boom", message="boom"),
    )


def finished(execution_id: str) -> ExecutionFinished:
    return ExecutionFinished(
        event_id=ids.execution_finished(execution_id),
        execution_id=execution_id,
        time=T,
        status="succeeded",
    )


def kinds(history: Sequence[tuple[int, Event]]) -> list[str]:
    return [type(e).__name__ for _, e in history]


async def test_each_event_id_is_stored_once_and_read_back_in_order(event_log: EventLog) -> None:
    await event_log.publish([requested("a"), ready("a"), requested("b")])
    await event_log.publish([ready("a"), started("a")])  # the first again: stored once

    history = await event_log.history("a")

    assert kinds(history) == ["ExecutionRequested", "NodeReady", "NodeStarted"]
    sequences = [seq for seq, _ in history]
    assert sequences == sorted(sequences)
    assert history[0][1] == requested("a")
    assert await event_log.has_event("a", NodeStarted)
    assert not await event_log.has_event("b", NodeStarted)
    assert await event_log.history("nobody") == []
    assert await event_log.last_sequence(0) == 4


async def test_a_publish_under_a_fence_that_moved_on_stores_nothing(event_log: EventLog) -> None:
    assert await event_log.last_fence(0) is None
    first = await event_log.write_fence(0, '{"owner": "one"}')
    await event_log.publish([requested("a")], fences={0: first})
    second = await event_log.write_fence(0, '{"owner": "two"}')

    with pytest.raises(FencedError):
        await event_log.publish([ready("a"), started("a")], fences={0: first})
    await event_log.publish([finished("a")], fences={0: second})

    assert kinds(await event_log.history("a")) == ["ExecutionRequested", "ExecutionFinished"]
    fence = await event_log.last_fence(0)
    assert fence is not None
    assert (fence.sequence, fence.body) == (second, b'{"owner": "two"}')


async def test_executions_with_an_event_type_after_a_sequence_are_found(
    event_log: EventLog,
) -> None:
    await event_log.publish([requested("a"), requested("b"), finished("a")])
    after_a = (await event_log.history("a"))[0][0]

    assert await event_log.executions_with(0, ExecutionRequested, 0) == {"a", "b"}
    assert await event_log.executions_with(0, ExecutionRequested, after_a) == {"b"}
    assert await event_log.executions_with(0, ExecutionFinished, 0) == {"a"}


async def test_inputs_are_delivered_until_acknowledged_and_the_floor_follows(
    event_log: EventLog,
) -> None:
    await event_log.publish([requested("a"), ready("a"), started("a"), failed("a")])
    sequences = [seq for seq, _ in await event_log.history("a")]
    await event_log.open_inputs(0, CONSUMER, 1)
    feed = event_log.input_feed(capacity=16)
    await feed.add(event_log.layout.stream(0), CONSUMER)
    try:
        first = list(await feed.next_batch(10, 5.0))
        while len(first) < 3:  # (a real consumer may hand them over in more than one batch)
            first += await feed.next_batch(10, 5.0)
        # Inputs only: the runners' NodeReady is not one.
        assert [m.metadata.sequence.stream for m in first] == [sequences[0], *sequences[2:]]
        assert [m.metadata.num_delivered for m in first] == [1, 1, 1]
        assert await event_log.ack_floor(0, CONSUMER) == 0

        await first[0].ack()
        await first[1].nak()
        await first[2].ack()
        again = await feed.next_batch(10, 5.0)
        assert [(m.subject, m.metadata.num_delivered) for m in again] == [(first[1].subject, 2)]
        # Just below the first input not settled (the NodeReady between counts as below).
        assert await event_log.ack_floor(0, CONSUMER) == sequences[2] - 1

        await again[0].ack()
        assert await _floor_reaches(event_log, sequences[3])
        assert list(await feed.next_batch(10, 0.2)) == []
    finally:
        await feed.stop()
    await event_log.delete_inputs(0, CONSUMER)
    assert await event_log.ack_floor(0, CONSUMER) is None


async def test_a_consumer_starts_where_it_is_told(event_log: EventLog) -> None:
    await event_log.publish([requested("a"), requested("b")])
    [(second, _)] = await event_log.history("b")
    await event_log.open_inputs(0, CONSUMER, second)
    feed = event_log.input_feed(capacity=16)
    await feed.add(event_log.layout.stream(0), CONSUMER)
    try:
        [only] = await feed.next_batch(10, 5.0)
        assert only.metadata.sequence.stream == second
        assert await event_log.ack_floor(0, CONSUMER) == second - 1
    finally:
        await feed.stop()


async def test_tasks_come_again_when_given_back_or_held_past_the_ack_wait(
    tasks: tuple[EventLog, TaskQueue],
) -> None:
    event_log, queue = tasks
    await queue.start()
    await event_log.publish([requested("a"), ready("a"), started("a"), ready("b")])

    taken = list(await queue.next_batch(10, 5.0))
    while len(taken) < 2:
        taken += await queue.next_batch(10, 5.0)
    # Tasks only, each delivered once so far.
    assert sorted(m.subject for m in taken) == sorted(
        [event_subject(ready("a")), event_subject(ready("b"))]
    )
    assert [m.metadata.num_delivered for m in taken] == [1, 1]
    a_task, b_task = sorted(taken, key=lambda m: m.subject != event_subject(ready("a")))

    await a_task.ack()
    await b_task.nak()
    queue.release(a_task)
    queue.release(b_task)
    [again] = await queue.next_batch(10, 5.0)
    assert (again.subject, again.metadata.num_delivered) == (b_task.subject, 2)

    # Not settled: after the ack wait it comes again (to this runner or another).
    queue.release(again)
    [late] = await queue.next_batch(10, 5.0)
    assert (late.subject, late.metadata.num_delivered) == (b_task.subject, 3)
    await late.ack()
    queue.release(late)
    assert list(await queue.next_batch(10, 1.5)) == []  # a was acknowledged: never again


async def _floor_reaches(event_log: EventLog, seq: int, consumer: str = CONSUMER) -> bool:
    """JetStream moves the ack floor when it processes the ack, a moment after it is sent."""
    for _ in range(500):
        if await event_log.ack_floor(0, consumer) == seq:
            return True
        await asyncio.sleep(0.01)
    return False


async def test_a_projector_projects_every_event_once_across_a_restart_and_acks_them(
    event_log: AnyLog,
) -> None:
    """The projector's loop on the port: events in, rows out, the checkpoint resumed after a
    restart, a fence between events (no event, a gap in the sequences) passed over, and the
    notifier consumer acknowledged up to the last event."""
    history = History.one_node_succeeded("a")
    store = MemoryProjection()

    await event_log.publish(history.events[:3])
    first = Projector(event_log, store, partition=0, announce=True)
    async with running(first.run):
        await asyncio.wait_for(first.wait_for(3), 10)
    fence = await event_log.write_fence(0, '{"owner": "scheduler"}')
    await event_log.publish(history.events[3:])
    last = await event_log.last_sequence(0)
    second = Projector(event_log, store, partition=0, announce=True)
    async with running(second.run):
        await asyncio.wait_for(second.wait_for(last), 10)
        assert await _floor_reaches(event_log, last, subjects.NOTIFIER_CONSUMER)

    applied = [seq for commit in store.commits for seq in commit]
    assert applied == [seq for seq in range(1, last + 1) if seq != fence]
    assert store.executions["a"].status == "succeeded"
    assert store.nodes[("a", "start")].status == "succeeded"


async def test_a_partition_is_read_in_batches_of_events_after_a_sequence(
    event_log: AnyLog,
) -> None:
    await event_log.publish([requested("a"), ready("a")])
    fence = await event_log.write_fence(0, '{"owner": "scheduler"}')
    await event_log.publish([started("a"), failed("a"), finished("a")])
    stored = [seq for seq, _ in await event_log.history("a")]

    batches = [list(b) async for b in event_log.read_partition(0, after_seq=1, batch_size=2)]

    assert all(0 < len(batch) <= 2 for batch in batches)
    read = [message for batch in batches for message in batch]
    assert [m.seq for m in read] == stored[1:]  # events only: not the fence
    assert fence not in [m.seq for m in read]
    later = [ready("a"), started("a"), failed("a"), finished("a")]
    assert [m.subject for m in read] == [event_subject(e) for e in later]
    assert read[0].data == codec.encode(ready("a"))


async def test_keys_are_written_by_compare_and_swap(key_values: KeyValueStore) -> None:
    assert await key_values.get("k") is None
    first = await key_values.create("k", b"one")
    with pytest.raises(RevisionMismatchError):
        await key_values.create("k", b"two")
    second = await key_values.update("k", b"two", last=first)
    with pytest.raises(RevisionMismatchError):
        await key_values.update("k", b"three", last=first)
    entry = await key_values.get("k")
    assert entry is not None
    assert (entry.value, entry.revision) == (b"two", second)
    third = await key_values.put("k", b"four")
    assert third > second
    with pytest.raises(RevisionMismatchError):
        await key_values.update("other", b"x", last=third)
