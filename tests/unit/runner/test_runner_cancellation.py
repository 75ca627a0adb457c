"""Which running attempts a NodeCancelled or an ExecutionFinished stops."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, cast

from nats.aio.msg import Msg

from nodedrop.contracts import codec, ids
from nodedrop.contracts.events import (
    ErrorInfo,
    ExecutionFinished,
    NodeCancelled,
    NodeReady,
    NodeStarted,
)
from nodedrop.contracts.items import PortItems
from nodedrop.runner.cancellation import RunningAttempt, RunningAttempts

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
MSG = Msg(_client=cast(Any, None))


def task(execution_id: str, node: str, attempt: int = 1) -> NodeReady:
    return NodeReady(
        event_id=ids.node_ready(execution_id, node, attempt),
        execution_id=execution_id,
        time=T0,
        node=node,
        attempt=attempt,
        node_type="wait",
        input={"main": []},
    )


async def forever() -> PortItems | ErrorInfo:
    await asyncio.sleep(60)
    return {}


def running(attempts: RunningAttempts, ready: NodeReady) -> RunningAttempt:
    attempt = RunningAttempt(ready, MSG, asyncio.create_task(forever()))
    attempts.add(attempt)
    return attempt


def cancelled(execution_id: str, node: str, attempt: int = 1) -> bytes:
    return codec.encode(
        NodeCancelled(
            event_id=ids.node_cancelled(execution_id, node, attempt),
            execution_id=execution_id,
            time=T0,
            node=node,
            attempt=attempt,
        )
    )


def finished(execution_id: str) -> bytes:
    return codec.encode(
        ExecutionFinished(
            event_id=ids.execution_finished(execution_id), execution_id=execution_id, time=T0,
            status="cancelled",
        )
    )  # fmt: skip


async def settle(*attempts: RunningAttempt) -> None:
    await asyncio.gather(*(a.node_run for a in attempts), return_exceptions=True)


async def test_node_cancelled_stops_only_that_attempt() -> None:
    attempts = RunningAttempts()
    target = running(attempts, task("e1", "a", 1))
    other_node = running(attempts, task("e1", "b", 1))
    other_attempt_task = task("e1", "a", 2)
    assert attempts.on_stop_event(cancelled("e1", "a", 1)) == 1
    await asyncio.sleep(0)
    assert target.node_run.cancelled()
    assert not other_node.node_run.done()
    assert not attempts.was_stopped(other_attempt_task)
    other_node.node_run.cancel()
    await settle(target, other_node)


async def test_execution_finished_stops_every_node_of_the_execution() -> None:
    attempts = RunningAttempts()
    mine = [running(attempts, task("e1", "a")), running(attempts, task("e1", "b"))]
    elsewhere = running(attempts, task("e2", "a"))
    assert attempts.on_stop_event(finished("e1")) == 2
    await asyncio.sleep(0)
    assert all(a.node_run.cancelled() for a in mine)
    assert not elsewhere.node_run.done()
    elsewhere.node_run.cancel()
    await settle(*mine, elsewhere)


def test_stops_are_remembered_for_tasks_that_arrive_later() -> None:
    attempts = RunningAttempts()
    assert attempts.on_stop_event(finished("e1")) == 0
    assert attempts.on_stop_event(cancelled("e2", "a", 3)) == 0
    assert attempts.was_stopped(task("e1", "anything"))
    assert attempts.was_stopped(task("e2", "a", 3))
    assert not attempts.was_stopped(task("e2", "a", 4))
    assert not attempts.was_stopped(task("e3", "a"))


def test_the_memory_of_stops_is_bounded() -> None:
    attempts = RunningAttempts(memory=2)
    for execution_id in ("e1", "e2", "e3"):
        attempts.on_stop_event(finished(execution_id))
    assert not attempts.was_stopped(task("e1", "a"))
    assert attempts.was_stopped(task("e3", "a"))


async def test_removed_attempts_are_no_longer_tracked() -> None:
    attempts = RunningAttempts()
    attempt = running(attempts, task("e1", "a"))
    assert len(attempts) == 1
    attempts.remove(attempt)
    assert len(attempts) == 0
    assert list(attempts) == []
    attempt.node_run.cancel()
    await settle(attempt)


def test_other_and_undecodable_events_are_ignored() -> None:
    attempts = RunningAttempts()
    started = NodeStarted(
        event_id=ids.node_started("e1", "a", 1), execution_id="e1", time=T0, node="a", attempt=1
    )
    assert attempts.on_stop_event(codec.encode(started)) == 0
    assert attempts.on_stop_event(b"not json") == 0
