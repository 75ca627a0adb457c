"""The scheduler service's own loop (``Scheduler.run``) over the in-memory event log and
key-value store: executions run to their end, a takeover fences the previous owner, a publish
that fails is made good. A stand-in runner answers every task as it is recorded."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from nodedrop.contracts import ids
from nodedrop.contracts.events import (
    Event,
    ExecutionFinished,
    ExecutionRequested,
    NodeReady,
    NodeStarted,
    NodeSucceeded,
    NodeWaiting,
)
from nodedrop.platform.testing.event_log import MemoryEventLog
from nodedrop.platform.testing.key_values import MemoryKeyValues
from nodedrop.scheduler.service import Scheduler

from .harness import n, wf

E = TypeVar("E", bound=Event)

CHAIN = wf([n("start", "manual_trigger"), n("a"), n("b")], [("start", "a"), ("a", "b")])


#: Waits a minute between its trigger and b: on the scheduler's timer, on its clock.
WAITING = wf(
    [n("start", "manual_trigger"), n("w", "wait", parameters={"ms": 60_000}), n("b")],
    [("start", "w"), ("w", "b")],
)


class MovedClock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def request(execution_id: str, workflow: dict[str, Any] = CHAIN) -> ExecutionRequested:
    return ExecutionRequested(
        event_id=ids.execution_requested(execution_id),
        execution_id=execution_id,
        time=datetime.now(UTC),
        workflow=workflow,
        requested_by="tester",
        trigger="start",
    )


async def until(condition: Callable[[], bool]) -> None:
    """Wait for ``condition`` (the test's timeout is the bound)."""
    while True:
        if condition():
            return
        await asyncio.sleep(0.001)  # the loop under test runs meanwhile


def of_type(log: MemoryEventLog, kind: type[E]) -> list[E]:
    return [e for e in log.events() if isinstance(e, kind)]


def finished(log: MemoryEventLog, execution_id: str) -> bool:
    return any(e.execution_id == execution_id for e in of_type(log, ExecutionFinished))


@contextlib.asynccontextmanager
async def running(scheduler: Scheduler, partitions: list[int] | None = None) -> AsyncIterator[None]:
    task = asyncio.create_task(scheduler.run(partitions))
    try:
        yield
    finally:
        scheduler.stop()
        await task


@contextlib.asynccontextmanager
async def runner(log: MemoryEventLog) -> AsyncIterator[None]:
    """Starts and succeeds every task recorded, in order, as a runner would."""

    async def answer() -> None:
        answered: set[str] = set()
        while True:
            for task in of_type(log, NodeReady):
                if task.event_id in answered:
                    continue
                answered.add(task.event_id)
                for event in (
                    NodeStarted(
                        event_id=ids.node_started(task.execution_id, task.node, task.attempt),
                        execution_id=task.execution_id,
                        time=datetime.now(UTC),
                        node=task.node,
                        attempt=task.attempt,
                    ),
                    NodeSucceeded(
                        event_id=ids.node_result(task.execution_id, task.node, task.attempt),
                        execution_id=task.execution_id,
                        time=datetime.now(UTC),
                        node=task.node,
                        attempt=task.attempt,
                        output={"main": [{"node": task.node}]},
                    ),
                ):
                    log.record(event)
            await asyncio.sleep(0.001)

    answering = asyncio.create_task(answer())
    try:
        yield
    finally:
        answering.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await answering


async def test_executions_run_to_their_end_and_every_input_is_acknowledged() -> None:
    log, kv = MemoryEventLog(), MemoryKeyValues()
    scheduler = Scheduler(log, kv, owner="one")
    async with runner(log), running(scheduler):
        for execution_id in ("x1", "x2", "x3"):
            log.record(request(execution_id))
        await until(lambda: all(finished(log, i) for i in ("x1", "x2", "x3")))
        [consumer] = log.consumers()
        await until(lambda: not consumer.pending and not consumer.waiting())
    statuses = [e.status for e in of_type(log, ExecutionFinished)]
    assert statuses == ["succeeded"] * 3
    assert len(of_type(log, NodeReady)) == 9
    assert scheduler.active_count == 0


async def test_a_takeover_fences_the_previous_owner_which_then_gives_the_partition_up() -> None:
    log, kv = MemoryEventLog(), MemoryKeyValues()
    clock = MovedClock()
    first = Scheduler(log, kv, owner="one", clock=clock)
    second = Scheduler(log, kv, owner="two", clock=clock)
    async with runner(log), running(first):
        log.record(request("x1", WAITING))
        await until(lambda: bool(of_type(log, NodeWaiting)))
        async with running(second, partitions=[]):
            await second.take(0)  # rebuilds x1 from the log, its wait's timer with it
            clock.now += timedelta(minutes=2)
            # Both fire the wait's timer. The first's decision is refused under its old fence
            # (its consumer is gone, so only a timer makes it publish), and it gives the
            # partition up; the second's is recorded.
            await until(lambda: finished(log, "x1") and first.partitions == [])
            assert second.partitions == [0]
    assert log.fenced >= 1
    decided = [e.event_id for e in log.events() if isinstance(e, NodeReady | NodeSucceeded)]
    assert len(decided) == len(set(decided)) == 5  # start's and b's tasks; three results


async def test_a_failed_publish_has_its_inputs_redelivered_and_the_execution_rebuilt() -> None:
    log, kv = MemoryEventLog(), MemoryKeyValues()
    scheduler = Scheduler(log, kv, owner="one")
    async with running(scheduler):
        log.record(request("x1"))
        await until(lambda: len(of_type(log, NodeReady)) == 1)
        # The batch deciding on start's result stores nothing of what it decided, and fails.
        log.disturb_next_publish(keep=0)
        async with runner(log):
            await until(lambda: finished(log, "x1"))
    assert log.cut_short == 1
    [consumer] = log.consumers()
    assert max(consumer.deliveries.values()) == 2  # start's result came again
    assert [e.node for e in of_type(log, NodeReady)] == ["start", "a", "b"]
