"""The runner service itself (``Runner``: its pull loop, claims, results and stop events) over
the in-memory event log and task queue."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, TypeVar

from nodedrop.contracts import ids
from nodedrop.contracts.events import (
    Event,
    ExecutionRequested,
    ExecutionStarted,
    NodeCancelled,
    NodeFailed,
    NodeReady,
    NodeStarted,
    NodeSucceeded,
)
from nodedrop.contracts.items import PortItems
from nodedrop.platform.testing.event_log import MemoryEventLog
from nodedrop.platform.testing.task_queue import MemoryTaskQueue
from nodedrop.runner.nodes import NodeContext, NodeRegistry
from nodedrop.runner.nodes.builtins import builtin_nodes
from nodedrop.runner.worker import Runner

E = TypeVar("E", bound=Event)


def task(node: str, node_type: str = "noop", attempt: int = 1) -> NodeReady:
    return NodeReady(
        event_id=ids.node_ready("ex", node, attempt),
        execution_id="ex",
        time=datetime.now(UTC),
        node=node,
        attempt=attempt,
        node_type=node_type,
        input={"main": [{"x": 1}]},
    )


def of_type(log: MemoryEventLog, kind: type[E]) -> list[E]:
    return [e for e in log.events() if isinstance(e, kind)]


async def until(condition: Any) -> None:
    """Wait for ``condition`` (the test's timeout is the bound)."""
    while True:
        if condition():
            return
        await asyncio.sleep(0.001)  # the runner runs meanwhile


@contextlib.asynccontextmanager
async def started(log: MemoryEventLog, *nodes: Any) -> AsyncIterator[MemoryTaskQueue]:
    queue = MemoryTaskQueue(log, capacity=4)
    runner = Runner(log, queue, NodeRegistry([*builtin_nodes(), *nodes]), concurrency=4)
    await runner.start()
    try:
        yield queue
    finally:
        await runner.stop(grace_s=0)


async def test_a_task_is_claimed_run_recorded_and_acknowledged() -> None:
    log = MemoryEventLog()
    async with started(log):
        log.record(task("a"))
        await until(lambda: of_type(log, NodeSucceeded))
        [consumer] = log.consumers()
        await until(lambda: not consumer.pending)
    assert [type(e).__name__ for e in log.events()] == ["NodeReady", "NodeStarted", "NodeSucceeded"]
    [result] = of_type(log, NodeSucceeded)
    assert (result.node, result.attempt, result.output) == ("a", 1, {"main": [{"x": 1}]})


async def test_a_task_handed_out_again_after_its_start_ends_its_attempt_as_runner_lost() -> None:
    log = MemoryEventLog()
    # The history as the scheduler records it: the runner folds it to judge the redelivery.
    now = datetime.now(UTC)
    log.record(
        ExecutionRequested(
            event_id=ids.execution_requested("ex"),
            execution_id="ex",
            time=now,
            workflow={"nodes": [], "connections": []},
            requested_by="user-1",
        )
    )
    log.record(
        ExecutionStarted(
            event_id=ids.execution_started("ex"), execution_id="ex", time=now, plan=["a"], v=2
        )
    )
    ready = task("a")
    log.record(ready)
    # Another runner claimed the attempt, and its delivery came back unsettled (it died).
    log.record(
        NodeStarted(
            event_id=ids.node_started("ex", "a", 1),
            execution_id="ex",
            time=datetime.now(UTC),
            node="a",
            attempt=1,
        )
    )
    queue = MemoryTaskQueue(log, capacity=4)
    await queue.start()
    [first] = await queue.next_batch(1, 1.0)
    await first.nak()
    await queue.stop_and_drain()
    async with started(log):
        await until(lambda: of_type(log, NodeFailed))
    [lost] = of_type(log, NodeFailed)
    assert (lost.node, lost.error.type) == ("a", "RunnerLost")
    assert not of_type(log, NodeSucceeded)  # the node did not run again


async def test_a_cancel_stops_the_running_node_and_records_nothing_for_it() -> None:
    log = MemoryEventLog()
    running = asyncio.Event()

    class Slow:
        type = "slow"

        async def run(
            self, ctx: NodeContext, node_input: PortItems, parameters: dict[str, Any]
        ) -> PortItems:
            running.set()
            await asyncio.Event().wait()
            return node_input

    async with started(log, Slow()):
        log.record(task("s", "slow"))
        await running.wait()
        log.record(
            NodeCancelled(
                event_id=ids.node_cancelled("ex", "s", 1),
                execution_id="ex",
                time=datetime.now(UTC),
                node="s",
                attempt=1,
            )
        )
        [consumer] = log.consumers()
        await until(lambda: not consumer.pending)  # settled without a result
    assert not of_type(log, NodeSucceeded)
    assert not of_type(log, NodeFailed)
