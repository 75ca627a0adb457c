"""Delivery guarantees of the runner: acks after the result is stored, redelivery when it is not,
a redelivered attempt recorded as RunnerLost (never run twice), heartbeats for long nodes,
stopping nodes on cancel, graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from nodedrop.contracts import ids
from nodedrop.contracts.errors import RUNNER_LOST
from nodedrop.contracts.events import (
    Event,
    ExecutionFinished,
    NodeCancelled,
    NodeFailed,
    NodeStarted,
    NodeSucceeded,
)
from nodedrop.contracts.items import PortItems
from nodedrop.contracts.routing import execution_subject
from nodedrop.platform.bus import PublishError
from nodedrop.platform.jetstream import StreamSettings
from nodedrop.runner.nodes import NodeContext

from .harness import Rig, eventually, has_result, results

pytestmark = pytest.mark.integration


def _is_result(events: Sequence[Event]) -> bool:
    return any(isinstance(e, NodeSucceeded | NodeFailed) for e in events)


class DelayedResults:
    """Records results late, to widen the window between a node's end and its acknowledgement."""

    def __init__(self, rig: Rig, delay_s: float) -> None:
        self._inner = rig.publisher
        self._delay_s = delay_s

    async def publish(self, events: Sequence[Event]) -> list[int]:
        if _is_result(events):
            await asyncio.sleep(self._delay_s)
        return await self._inner.publish(events)


class FailingResults:
    """The stream does not acknowledge the first ``failures`` result publishes."""

    def __init__(self, rig: Rig, failures: int) -> None:
        self._inner = rig.publisher
        self.failures = failures

    async def publish(self, events: Sequence[Event]) -> list[int]:
        if _is_result(events) and self.failures > 0:
            self.failures -= 1
            raise PublishError("not acknowledged (test)")
        return await self._inner.publish(events)


def _has_started(events: Sequence[Event]) -> bool:
    return any(isinstance(e, NodeStarted) for e in events)


def cancelled(execution_id: str, node: str, attempt: int = 1) -> NodeCancelled:
    return NodeCancelled(
        event_id=ids.node_cancelled(execution_id, node, attempt),
        execution_id=execution_id,
        time=datetime.now(UTC),
        node=node,
        attempt=attempt,
    )


def finished(execution_id: str) -> ExecutionFinished:
    return ExecutionFinished(
        event_id=ids.execution_finished(execution_id),
        execution_id=execution_id,
        time=datetime.now(UTC),
        status="cancelled",
    )


async def test_the_task_is_acked_only_after_its_result_is_stored(rig: Rig) -> None:
    await rig.start_runner(publisher=DelayedResults(rig, 0.3))
    task = rig.ready("noop")
    await rig.publish(task)

    held_without_result = False
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        # Counters first, stream second: an ack seen here was sent before the read below.
        acked = (await rig.consumer()).ack_pending == 0
        stored = has_result(await rig.stored(task.execution_id))
        if not acked and not stored:
            held_without_result = True
        if acked and held_without_result:
            assert stored, "the task was acked before its result was in the stream"
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the task was never acked")
    assert held_without_result


async def test_an_unacknowledged_result_is_sent_again_without_running_the_node_again(
    rig: Rig,
) -> None:
    failing = FailingResults(rig, failures=2)
    await rig.start_runner(publisher=failing)
    task = rig.ready("probe")
    await rig.publish(task)

    found = await rig.stored(task.execution_id, until=has_result, within_s=10)
    assert failing.failures == 0
    assert len(rig.probe.runs) == 1
    [result] = results(found)
    assert isinstance(result, NodeSucceeded)
    assert sum(isinstance(e, NodeStarted) for e in found) == 1  # deduplicated by id
    await eventually(rig.all_acked)
    assert (await rig.consumer()).redelivered == 0  # never handed back


def _runner_lost(events: Sequence[Event]) -> NodeFailed:
    [result] = [e for e in events if isinstance(e, NodeSucceeded | NodeFailed)]
    assert isinstance(result, NodeFailed), result
    assert result.error.type == RUNNER_LOST
    assert result.error.retryable
    return result


async def test_a_task_given_back_is_recorded_as_runner_lost_not_run_again(rig: Rig) -> None:
    # The stream refuses every send of the result: the task goes back (nak). Its next delivery
    # must not run the node under the same attempt again.
    failing = FailingResults(rig, failures=3)
    await rig.start_runner(publisher=failing)
    task = rig.ready("probe")
    await rig.publish(task)

    found = await rig.stored(task.execution_id, until=has_result, within_s=10)
    assert rig.probe.runs == [(task.execution_id, "n1", 1)]
    lost = _runner_lost(found)
    assert lost.attempt == 1
    assert "delivery 2" in lost.error.message
    await eventually(rig.all_acked)


async def test_an_undecodable_task_is_terminated(rig: Rig) -> None:
    runner = await rig.start_runner()
    await rig.js.publish(execution_subject("bad", "NodeReady"), b"{not an event")
    await eventually(rig.all_acked)
    await asyncio.sleep(0.2)
    assert (await rig.consumer()).ack_pending == 0
    assert runner.busy == 0
    # and the runner goes on working
    task = rig.ready("noop")
    await rig.publish(task)
    await rig.stored(task.execution_id, until=has_result)


async def test_node_cancelled_stops_a_running_node_and_records_nothing(rig: Rig) -> None:
    runner = await rig.start_runner()
    task = rig.ready("probe", parameters={"ms": 10_000})
    await rig.publish(task)
    await rig.stored(
        task.execution_id, until=lambda ev: any(isinstance(e, NodeStarted) for e in ev)
    )
    assert rig.probe.running == 1

    await rig.publish(cancelled(task.execution_id, "n1"))

    async def stopped() -> bool:
        return rig.probe.running == 0 and runner.busy == 0

    assert await eventually(stopped, within_s=1.0) < 1.0
    await eventually(rig.all_acked, within_s=1.0)
    await asyncio.sleep(0.2)
    assert not has_result(await rig.stored(task.execution_id))


class Stubborn:
    """Ignores its cancellation and returns anyway."""

    type = "stubborn"

    async def run(self, ctx: NodeContext, node_input: PortItems, parameters: Any) -> PortItems:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(10)
        return {"main": [{"late": True}]}


async def test_a_node_that_ignores_its_cancel_still_records_nothing(rig: Rig) -> None:
    rig.registry.register(Stubborn())
    await rig.start_runner()
    task = rig.ready("stubborn")
    await rig.publish(task)
    await rig.stored(task.execution_id, until=_has_started)
    await asyncio.sleep(0.05)
    await rig.publish(cancelled(task.execution_id, "n1"))
    await eventually(rig.all_acked, within_s=1.0)
    await asyncio.sleep(0.1)
    assert not has_result(await rig.stored(task.execution_id))


async def test_a_cancel_for_another_attempt_leaves_the_node_running(rig: Rig) -> None:
    await rig.start_runner()
    task = rig.ready("probe", parameters={"ms": 300}, attempt=2)
    await rig.publish(task)
    await rig.stored(
        task.execution_id, until=lambda ev: any(isinstance(e, NodeStarted) for e in ev)
    )
    await rig.publish(cancelled(task.execution_id, "n1", attempt=1))
    [result] = results(await rig.stored(task.execution_id, until=has_result))
    assert isinstance(result, NodeSucceeded)


async def test_execution_finished_stops_every_node_of_that_execution(rig: Rig) -> None:
    runner = await rig.start_runner(concurrency=4)
    execution_id = uuid.uuid4().hex
    doomed = [
        rig.ready("probe", execution_id=execution_id, node=f"n{i}", parameters={"ms": 10_000})
        for i in range(2)
    ]
    other = rig.ready("probe", parameters={"ms": 400})
    await rig.publish(*doomed, other)

    async def all_running() -> bool:
        return rig.probe.running == 3

    await eventually(all_running)
    await rig.publish(finished(execution_id))

    async def only_other_left() -> bool:
        return runner.busy <= 1 and rig.probe.running <= 1

    assert await eventually(only_other_left, within_s=1.0) < 1.0
    [result] = results(await rig.stored(other.execution_id, until=has_result))
    assert isinstance(result, NodeSucceeded)
    await eventually(rig.all_acked)
    assert not has_result(await rig.stored(execution_id))


async def test_a_task_of_a_finished_execution_is_not_run(rig: Rig) -> None:
    await rig.start_runner()
    task = rig.ready("probe")
    await rig.publish(finished(task.execution_id))
    await asyncio.sleep(0.05)  # the stop signal is live only: let it arrive first
    await rig.publish(task)
    await eventually(rig.all_acked)
    assert rig.probe.runs == []
    assert not has_result(await rig.stored(task.execution_id))


@pytest.mark.parametrize(
    "stream_settings", [replace(StreamSettings.from_env(), runner_ack_wait_s=1.0)]
)
@pytest.mark.parametrize(("heartbeat_s", "redelivered"), [(0.25, False), (60.0, True)])
async def test_heartbeats_keep_a_long_node_from_being_redelivered(
    rig: Rig, heartbeat_s: float, redelivered: bool
) -> None:
    # Ack wait 1 s, node 2.5 s: with heartbeats it runs once and succeeds; without (the control
    # case) the server hands it out again after the ack wait, and that delivery records the
    # attempt as RunnerLost, which beats the late success (one result per attempt).
    await rig.start_runner(heartbeat_s=heartbeat_s)
    task = rig.ready("probe", parameters={"ms": 2_500})
    await rig.publish(task)
    found = await rig.stored(task.execution_id, until=has_result, within_s=6)
    await asyncio.sleep(0.2)
    assert len(rig.probe.runs) == 1  # never run twice under one attempt
    if redelivered:
        _runner_lost(found)
    else:
        [result] = results(found)
        assert isinstance(result, NodeSucceeded)


# The ack wait is ten minutes here, so that a task back within a minute was handed back (nak'ed),
# not given up on by the server.
@pytest.mark.parametrize(
    "stream_settings",
    [replace(StreamSettings.from_env(), runner_ack_wait_s=600.0)],
    ids=["ack-wait-600s"],
)
async def test_shutdown_finishes_short_nodes_and_hands_back_the_rest(rig: Rig) -> None:
    first = await rig.start_runner(concurrency=2)
    execution_id = uuid.uuid4().hex
    short = rig.ready("probe", execution_id=execution_id, node="short", parameters={"ms": 200})
    long = rig.ready("probe", execution_id=execution_id, node="long", parameters={"ms": 600_000})
    await rig.publish(short, long)

    async def both_running() -> bool:
        return rig.probe.running == 2

    await eventually(both_running)
    # A grace period the short node fits in on any machine, and the long one never does: the
    # stop ending at all shows it gave up on the long node at the grace period.
    await asyncio.wait_for(first.stop(grace_s=10), 60)
    found = await rig.stored(execution_id)
    assert [r.node for r in results(found)] == ["short"]

    # The abandoned task went back unacked (nak'ed): another runner gets it at once and
    # records the attempt as RunnerLost (the scheduler then makes another).
    second = await rig.start_runner(concurrency=2)
    found = await rig.stored(execution_id, until=lambda ev: len(results(ev)) == 2, within_s=60)
    assert sorted(node for _, node, _ in rig.probe.runs) == ["long", "short"]
    assert _runner_lost([e for e in found if getattr(e, "node", None) == "long"]).attempt == 1
    assert second.busy == 0
    await eventually(rig.all_acked)


async def test_a_stopped_runner_takes_no_more_work(rig: Rig) -> None:
    first = await rig.start_runner(concurrency=8)
    await first.stop()
    await rig.start_runner(concurrency=1)
    # The first runner's open pull request must not swallow new tasks.
    task = rig.ready("noop")
    await rig.publish(task)
    await rig.stored(task.execution_id, until=has_result, within_s=2)
