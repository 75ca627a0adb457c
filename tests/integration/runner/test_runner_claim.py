"""NodeStarted is the claim on an attempt: a task the server hands out again as a *first*
delivery (nats-server forgets deliveries made just before it is killed; tests/chaos scenario 3
found it) must not run the node a second time under the same attempt. A task older than the
claim can tell (tests/chaos scenario 5: copies republished after the duplicate window) is
checked against the execution's history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from nodedrop.contracts import ids
from nodedrop.contracts.errors import RUNNER_LOST
from nodedrop.contracts.events import (
    ExecutionFinished,
    NodeFailed,
    NodeReady,
    NodeStarted,
    NodeSucceeded,
)

from .harness import Rig, eventually, has_result, results

pytestmark = pytest.mark.integration


def started_by_a_runner_that_died(task: NodeReady) -> NodeStarted:
    """What an earlier delivery of ``task`` recorded before the server lost count of it."""
    return NodeStarted(
        event_id=ids.node_started(task.execution_id, task.node, task.attempt),
        execution_id=task.execution_id,
        time=datetime.now(UTC),
        node=task.node,
        attempt=task.attempt,
        worker="a runner that died",
    )


async def test_an_attempt_already_started_is_recorded_as_runner_lost_not_run(rig: Rig) -> None:
    await rig.start_runner()
    task = rig.ready("probe")
    await rig.publish(started_by_a_runner_that_died(task))
    await rig.publish(task)

    found = await rig.stored(task.execution_id, until=has_result, within_s=10)
    assert rig.probe.runs == []
    [result] = results(found)
    assert isinstance(result, NodeFailed)
    assert result.error.type == RUNNER_LOST
    assert "already started" in result.error.message
    await eventually(rig.all_acked)


async def test_a_first_delivery_claims_the_attempt_and_runs_it(rig: Rig) -> None:
    await rig.start_runner()
    task = rig.ready("probe")
    await rig.publish(task)

    found = await rig.stored(task.execution_id, until=has_result, within_s=10)
    assert rig.probe.runs == [(task.execution_id, "n1", 1)]
    [started] = [e for e in found if isinstance(e, NodeStarted)]
    assert started.worker == "runner-1"
    assert isinstance(results(found)[0], NodeSucceeded)


async def test_a_side_effect_free_node_runs_without_waiting_for_its_claim(rig: Rig) -> None:
    """Running a built-in like ``set`` twice is harmless: it is not held back by a claim taken
    before (its result is recorded; whichever result of the attempt came first wins), and its
    NodeStarted still precedes its result in the stream."""
    await rig.start_runner()
    task = rig.ready("set", parameters={"values": {"seen": True}})
    await rig.publish(started_by_a_runner_that_died(task))
    await rig.publish(task)

    found = await rig.stored(task.execution_id, until=has_result, within_s=10)
    [result] = results(found)
    assert isinstance(result, NodeSucceeded)
    assert result.output == {"main": [{"n": 1, "seen": True}]}
    await eventually(rig.all_acked)

    fresh = rig.ready("noop")
    await rig.publish(fresh)
    found = await rig.stored(fresh.execution_id, until=has_result, within_s=10)
    kinds = [type(e) for e in found if isinstance(e, NodeStarted | NodeSucceeded)]
    assert kinds == [NodeStarted, NodeSucceeded]


# A copy of a task republished after the duplicate window (or a task that waited that long)
# cannot rely on the claim: the stream would store a second NodeStarted. The runner checks the
# execution's history instead.


def _old(rig: Rig, **fields: Any) -> NodeReady:
    task = rig.ready("probe", **fields)
    return msgspec.structs.replace(task, time=task.time - timedelta(minutes=5))


async def test_an_old_task_of_an_ended_execution_is_not_run(rig: Rig) -> None:
    await rig.start_runner()
    task = _old(rig)
    ended = ExecutionFinished(
        event_id=ids.execution_finished(task.execution_id),
        execution_id=task.execution_id,
        time=datetime.now(UTC),
        status="succeeded",
    )
    await rig.publish(ended)
    await rig.publish(task)
    await eventually(rig.all_acked)
    assert rig.probe.runs == []
    assert results(await rig.stored(task.execution_id)) == []


async def test_an_old_task_whose_attempt_was_answered_is_not_run(rig: Rig) -> None:
    # The answer is stored after its task, as in any history, before a runner reads the task.
    task = _old(rig)
    await rig.publish(task)
    answered = NodeSucceeded(
        event_id=ids.node_result(task.execution_id, task.node, task.attempt),
        execution_id=task.execution_id,
        time=datetime.now(UTC),
        node=task.node,
        attempt=task.attempt,
        output={"main": []},
    )
    await rig.publish(answered)
    await rig.start_runner()
    await eventually(rig.all_acked)
    assert rig.probe.runs == []
    assert results(await rig.stored(task.execution_id)) == [answered]


async def test_an_old_task_never_started_runs(rig: Rig) -> None:
    await rig.start_runner()
    task = _old(rig)
    await rig.publish(task)
    await rig.stored(task.execution_id, until=has_result, within_s=10)
    assert rig.probe.runs == [(task.execution_id, "n1", 1)]
