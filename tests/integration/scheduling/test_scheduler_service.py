"""The scheduler service against a real nats-server: decisions recorded once, state and timers
surviving a restart. The test plays the runner by answering NodeReady events itself."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import nats
import pytest
from nats.js import JetStreamContext

from nodedrop.contracts import codec, ids, routing
from nodedrop.contracts.events import (
    ErrorInfo,
    Event,
    ExecutionFinished,
    ExecutionRequested,
    NodeFailed,
    NodeReady,
    NodeStarted,
    NodeSucceeded,
)
from nodedrop.contracts.routing import Layout
from nodedrop.platform.bus import EventPublisher
from nodedrop.platform.history import read_execution
from nodedrop.platform.jetstream import StreamSettings, ensure_jetstream
from nodedrop.scheduler.main import open_scheduler
from nodedrop.scheduler.service import Scheduler
from nodedrop.scheduler.snapshot_store import SnapshotStore, open_bucket

pytestmark = pytest.mark.integration

Answer = Callable[[NodeReady], Event | None]


def chain(*nodes: dict[str, Any]) -> dict[str, Any]:
    all_nodes = [{"id": "start", "type": "manual_trigger"}, *nodes]
    return {
        "name": "chain",
        "nodes": all_nodes,
        "connections": [{"from": a["id"], "to": b["id"]} for a, b in itertools.pairwise(all_nodes)],
    }


def succeed(task: NodeReady) -> Event:
    return NodeSucceeded(
        event_id=ids.node_result(task.execution_id, task.node, task.attempt),
        execution_id=task.execution_id,
        time=datetime.now(UTC),
        node=task.node,
        attempt=task.attempt,
        output={"main": task.input.get("main", [])},
    )


def fail(task: NodeReady) -> Event:
    return NodeFailed(
        event_id=ids.node_result(task.execution_id, task.node, task.attempt),
        execution_id=task.execution_id,
        time=datetime.now(UTC),
        node=task.node,
        attempt=task.attempt,
        error=ErrorInfo(type="Flaky", message="try again"),
    )


@contextlib.asynccontextmanager
async def scripted_runner(nats_url: str, answer: Answer) -> AsyncIterator[None]:
    """Answers every NodeReady with NodeStarted and what ``answer`` says (None: no answer)."""
    nc = await nats.connect(nats_url)
    publisher = EventPublisher(nc.jetstream(), Layout.from_env())

    async def on_ready(msg: Any) -> None:
        task = codec.decode(msg.data)
        assert isinstance(task, NodeReady)
        started = NodeStarted(
            event_id=ids.node_started(task.execution_id, task.node, task.attempt),
            execution_id=task.execution_id,
            time=datetime.now(UTC),
            node=task.node,
            attempt=task.attempt,
        )
        result = answer(task)
        await publisher.publish([started] if result is None else [started, result])

    await nc.subscribe(routing.node_ready_subjects(), cb=on_ready)
    try:
        yield
    finally:
        await nc.close()


@contextlib.asynccontextmanager
async def running_scheduler(
    nats_url: str, *, snapshot_interval_s: float = 5.0, **options: Any
) -> AsyncIterator[Scheduler]:
    """A scheduler (made with ``options`` besides), run until the block ends, then stopped as
    by a crash (no snapshot is written on the way out, and none is at all if
    ``snapshot_interval_s`` is long)."""
    nc = await nats.connect(nats_url)
    streams = options.pop("settings", None) or StreamSettings()
    scheduler, _ = await open_scheduler(
        nc, streams, snapshot_interval_s=snapshot_interval_s, **options
    )
    task = asyncio.create_task(scheduler.run())
    try:
        yield scheduler
    finally:
        scheduler.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await nc.close()


async def request(
    js: JetStreamContext,
    execution_id: str,
    workflow: dict[str, Any],
    *,
    user: str = "test",
    **extra: Any,
) -> None:
    await EventPublisher(js, Layout.from_env()).publish(
        [
            ExecutionRequested(
                event_id=ids.execution_requested(execution_id),
                execution_id=execution_id,
                time=datetime.now(UTC),
                workflow=workflow,
                requested_by=user,
                trigger="start",
                **extra,
            )
        ]
    )


async def wait_finished(
    js: JetStreamContext, execution_id: str, timeout_s: float = 10.0
) -> list[Event]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    events: list[Event] = []
    while asyncio.get_running_loop().time() < deadline:
        events = [
            event for _, event in await read_execution(js, execution_id, layout=Layout.from_env())
        ]
        if any(isinstance(e, ExecutionFinished) for e in events):
            return events
        await asyncio.sleep(0.05)
    raise AssertionError(f"{execution_id} did not finish: {[type(e).__name__ for e in events]}")


def assert_nothing_twice(events: list[Event]) -> None:
    counts = Counter(e.event_id for e in events)
    assert [i for i, c in counts.items() if c > 1] == []


@pytest.fixture
async def js(jetstream: JetStreamContext) -> JetStreamContext:
    await ensure_jetstream(jetstream, StreamSettings.from_env())
    return jetstream


async def test_a_chain_runs_to_success(js: JetStreamContext, nats_url: str) -> None:
    async with running_scheduler(nats_url), scripted_runner(nats_url, succeed):
        await request(
            js,
            "ex-chain",
            chain({"id": "a", "type": "noop"}, {"id": "b", "type": "noop"}),
            input=[{"n": 1}],
        )
        events = await wait_finished(js, "ex-chain")
    kinds = [type(e).__name__ for e in events]
    assert kinds[:2] == ["ExecutionRequested", "ExecutionStarted"]
    assert [e.node for e in events if isinstance(e, NodeReady)] == ["start", "a", "b"]
    finished = events[-1]
    assert isinstance(finished, ExecutionFinished)
    assert finished.status == "succeeded"
    assert_nothing_twice(events)


async def test_a_restarted_scheduler_carries_on_where_it_stopped(
    js: JetStreamContext, nats_url: str
) -> None:
    held: list[NodeReady] = []

    def hold_b(task: NodeReady) -> Event | None:
        if task.node == "b":
            held.append(task)
            return None
        return succeed(task)

    workflow = chain(
        {"id": "a", "type": "noop"}, {"id": "b", "type": "noop"}, {"id": "c", "type": "noop"}
    )
    async with scripted_runner(nats_url, hold_b):
        async with running_scheduler(nats_url):
            await request(js, "ex-restart", workflow)
            for _ in range(200):
                if held:
                    break
                await asyncio.sleep(0.02)
            assert held, "b never became ready"
        # The scheduler is down; b's result is recorded meanwhile.
        await EventPublisher(js, Layout.from_env()).publish([succeed(held[0])])
        async with running_scheduler(nats_url):
            events = await wait_finished(js, "ex-restart")
    assert [e.node for e in events if isinstance(e, NodeReady)] == ["start", "a", "b", "c"]
    assert isinstance(events[-1], ExecutionFinished)
    assert events[-1].status == "succeeded"
    assert_nothing_twice(events)


async def test_a_retry_timer_survives_a_restart(js: JetStreamContext, nats_url: str) -> None:
    def fail_first_attempt(task: NodeReady) -> Event:
        return fail(task) if task.node == "flaky" and task.attempt == 1 else succeed(task)

    workflow = chain(
        {"id": "flaky", "type": "noop", "retry": {"max_attempts": 2, "initial_interval_ms": 600}}
    )
    async with scripted_runner(nats_url, fail_first_attempt):
        async with running_scheduler(nats_url):
            await request(js, "ex-retry", workflow)
            for _ in range(200):
                history = [
                    e for _, e in await read_execution(js, "ex-retry", layout=Layout.from_env())
                ]
                if any(type(e).__name__ == "NodeRetryScheduled" for e in history):
                    break
                await asyncio.sleep(0.02)
        # Down while the backoff runs out; the new scheduler must fire the timer.
        await asyncio.sleep(0.8)
        async with running_scheduler(nats_url):
            events = await wait_finished(js, "ex-retry")
    attempts = [(e.node, e.attempt) for e in events if isinstance(e, NodeReady)]
    assert attempts == [("start", 1), ("flaky", 1), ("flaky", 2)]
    assert isinstance(events[-1], ExecutionFinished)
    assert events[-1].status == "succeeded"
    assert_nothing_twice(events)


async def test_an_execution_timeout_fires_without_any_event(
    js: JetStreamContext, nats_url: str
) -> None:
    async with (
        running_scheduler(nats_url),
        scripted_runner(nats_url, lambda t: succeed(t) if t.node == "start" else None),
    ):
        await request(js, "ex-timeout", chain({"id": "stuck", "type": "noop"}), timeout_ms=300)
        events = await wait_finished(js, "ex-timeout", timeout_s=5)
    assert isinstance(events[-1], ExecutionFinished)
    assert events[-1].status == "timed_out"


async def test_a_start_unlists_executions_a_crash_left_listed(
    js: JetStreamContext, nats_url: str
) -> None:
    """An execution left in the snapshot by a crash between recording its end and unlisting it
    (or listed with a history pruned since) is dropped when the next scheduler starts and folds
    the history: the snapshots after that no longer hold it."""
    async with running_scheduler(nats_url), scripted_runner(nats_url, succeed):
        await request(js, "ex-left", chain({"id": "a", "type": "noop"}))
        await wait_finished(js, "ex-left")
    layout = routing.Layout.from_env()
    kv, _ = await open_bucket(js)
    left_behind = ["ex-left", "ex-pruned"]
    stores = {}
    for partition in {layout.partition_of(i) for i in left_behind}:
        stores[partition] = SnapshotStore(kv, partition, "crashed")
        await stores[partition].read()  # the head the first scheduler left: replaced below
        # What the crash left behind, complete up to the stream's end (so that no tail read,
        # only the fold of their histories, can tell that they are not running).
        stored_up_to = (await js.stream_info(layout.stream(partition))).state.last_seq
        await stores[partition].write(
            [i for i in left_behind if layout.partition_of(i) == partition], stored_up_to
        )

    async def still_listed() -> set[str]:
        listed: set[str] = set()
        for store in stores.values():
            snapshot = await store.read()
            assert snapshot is not None
            listed |= set(left_behind) & snapshot.executions
        return listed

    async with running_scheduler(nats_url, snapshot_interval_s=0.05) as scheduler:
        for _ in range(200):
            if not await still_listed():
                break
            await asyncio.sleep(0.02)
        assert await still_listed() == set()
        assert scheduler.active_count == 0
