"""NodeStarted is the claim on an attempt: a task the server hands out again as a *first*
delivery (nats-server forgets deliveries made just before it is killed; tests/chaos scenario 3
found it) must not run the node a second time under the same attempt."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from nodedrop.contracts import ids
from nodedrop.contracts.errors import RUNNER_LOST
from nodedrop.contracts.events import NodeFailed, NodeStarted, NodeSucceeded

from .harness import Rig, eventually, has_result, results

pytestmark = pytest.mark.integration


async def test_an_attempt_already_started_is_recorded_as_runner_lost_not_run(rig: Rig) -> None:
    await rig.start_runner()
    task = rig.ready("probe")
    # What an earlier delivery of this task recorded before the server lost count of it.
    earlier = NodeStarted(
        event_id=ids.node_started(task.execution_id, task.node, task.attempt),
        execution_id=task.execution_id,
        time=datetime.now(UTC),
        node=task.node,
        attempt=task.attempt,
        worker="a runner that died",
    )
    await rig.publish(earlier)
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
