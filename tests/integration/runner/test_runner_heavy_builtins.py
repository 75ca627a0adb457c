"""Built-ins that evaluate expressions per item (``set``, ``if``, ``switch``) run in the runner's
event loop, so a heavy one must not hold it: it gives the loop back every few milliseconds (a
small node of another execution, heartbeats and claims are served meanwhile), its timeout and
a cancel really stop it, its claim is recorded while it runs, and one work budget bounds the
whole attempt, however many items it has.

The heavy nodes here are heavy by item count: each item evaluates an expression just under the
per-render budget, so the attempt as a whole would run for tens of seconds (or, with the real
attempt budget, run out of it). Where the test is about stopping rather than the budget, the
attempt budget is raised out of the way.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from nodedrop.contracts import ids
from nodedrop.contracts.events import (
    AnyEvent,
    NodeCancelled,
    NodeFailed,
    NodeStarted,
    NodeSucceeded,
)
from nodedrop.contracts.expressions import Budget, make_scope, render
from nodedrop.contracts.expressions.limits import MAX_ATTEMPT_STEPS, MAX_STEPS
from nodedrop.platform.jetstream import StreamSettings
from nodedrop.runner.nodes import flow

from .harness import Rig, eventually, has_result, results

pytestmark = pytest.mark.integration

#: About 96,000 steps: just under the budget of one render, so every item renders fine alone.
HEAVY_EXPRESSION = "len([x for x in range(24000)])"
HEAVY = "{{ " + HEAVY_EXPRESSION + " }}"
HEAVY_ITEMS = [{"n": n} for n in range(2000)]


def heavy_parameters(node_type: str) -> dict[str, Any]:
    if node_type == "set":
        return {"values": {"v": HEAVY}}
    if node_type == "if":
        return {"condition": "{{ " + HEAVY_EXPRESSION + " > 0 }}"}
    return {"cases": [{"output": "big", "condition": "{{ " + HEAVY_EXPRESSION + " > 0 }}"}]}


@pytest.fixture
def unbounded_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    """An attempt budget the heavy nodes never reach: only a timeout or a cancel stops them."""
    monkeypatch.setattr(flow, "MAX_ATTEMPT_STEPS", 10**15)


def one_result(events: list[AnyEvent]) -> NodeSucceeded | NodeFailed:
    [result] = results(events)
    return result


def started_without_result(events: list[AnyEvent]) -> bool:
    started = any(isinstance(e, NodeStarted) for e in events)
    assert not has_result(events), "the claim was recorded only with the result"
    return started


def cancelled(execution_id: str) -> NodeCancelled:
    return NodeCancelled(
        event_id=ids.node_cancelled(execution_id, "n1", 1),
        execution_id=execution_id,
        time=datetime.now(UTC),
        node="n1",
        attempt=1,
    )


def test_every_heavy_item_renders_alone_within_the_per_render_budget() -> None:
    """What the tests below rely on: the items are heavy, but each one alone is allowed."""
    budget = Budget()
    assert render(HEAVY, make_scope({}), budget) == 24000
    assert MAX_STEPS * 0.9 < budget.spent <= MAX_STEPS
    assert budget.spent * len(HEAVY_ITEMS) > 10 * MAX_ATTEMPT_STEPS


@pytest.mark.usefixtures("unbounded_attempts")
async def test_a_heavy_set_node_is_claimed_while_it_runs_and_others_are_served_meanwhile(
    rig: Rig,
) -> None:
    runner = await rig.start_runner(concurrency=4)
    heavy = rig.ready("set", parameters=heavy_parameters("set"), input={"main": HEAVY_ITEMS})
    await rig.publish(heavy)
    # Its claim is stored while it runs (so the scheduler's timeout backstop can start), not
    # only with its result.
    await rig.stored(heavy.execution_id, until=started_without_result, within_s=30)

    small = rig.ready("set", parameters={"values": {"m": "{{ item.n + 1 }}"}})
    await rig.publish(small)
    done = one_result(await rig.stored(small.execution_id, until=has_result, within_s=30))
    assert isinstance(done, NodeSucceeded)
    assert done.output == {"main": [{"n": 1, "m": 2}]}
    # The heavy node still runs: the small one was served in between, not after it.
    assert not has_result(await rig.stored(heavy.execution_id))
    assert runner.busy == 1

    # And a cancel reaches it in the middle of its items.
    await rig.publish(cancelled(heavy.execution_id))

    async def stopped() -> bool:
        return runner.busy == 0

    await eventually(stopped, within_s=30)
    await eventually(rig.all_acked)
    assert not has_result(await rig.stored(heavy.execution_id))


@pytest.mark.usefixtures("unbounded_attempts")
@pytest.mark.parametrize("node_type", ["set", "if", "switch"])
async def test_a_heavy_expression_node_ends_with_node_timeout(rig: Rig, node_type: str) -> None:
    await rig.start_runner()
    heavy = rig.ready(
        node_type,
        parameters=heavy_parameters(node_type),
        input={"main": HEAVY_ITEMS},
        timeout_ms=300,
    )
    await rig.publish(heavy)
    failed = one_result(await rig.stored(heavy.execution_id, until=has_result, within_s=30))
    assert isinstance(failed, NodeFailed)
    assert (failed.error.type, failed.error.retryable) == ("NodeTimeout", True)
    await eventually(rig.all_acked)


@pytest.mark.usefixtures("unbounded_attempts")
@pytest.mark.parametrize(
    "stream_settings", [replace(StreamSettings.from_env(), runner_ack_wait_s=1.0)]
)
async def test_a_heavy_node_past_the_ack_wait_keeps_its_task_with_heartbeats(rig: Rig) -> None:
    """Heartbeats are not starved: the attempt ends with its own timeout, never as RunnerLost
    from a redelivery while the runner was busy but alive."""
    await rig.start_runner(heartbeat_s=0.25)
    heavy = rig.ready(
        "set", parameters=heavy_parameters("set"), input={"main": HEAVY_ITEMS}, timeout_ms=2500
    )
    await rig.publish(heavy)
    failed = one_result(await rig.stored(heavy.execution_id, until=has_result, within_s=30))
    assert isinstance(failed, NodeFailed)
    assert failed.error.type == "NodeTimeout"
    await eventually(rig.all_acked)
    assert (await rig.consumer()).redelivered == 0


async def test_the_work_budget_is_per_attempt_not_per_item(rig: Rig) -> None:
    """200 items, each well within the budget of one render, together over the attempt's."""
    await rig.start_runner()
    many = rig.ready("set", parameters=heavy_parameters("set"), input={"main": HEAVY_ITEMS[:200]})
    few = rig.ready("set", parameters=heavy_parameters("set"), input={"main": HEAVY_ITEMS[:3]})
    await rig.publish(many, few)

    failed = one_result(await rig.stored(many.execution_id, until=has_result, within_s=60))
    assert isinstance(failed, NodeFailed)
    assert (failed.error.type, failed.error.retryable) == ("ExpressionBudgetExceeded", False)
    assert f"{MAX_ATTEMPT_STEPS:,} steps" in failed.error.message
    assert HEAVY_EXPRESSION in failed.error.message  # names the expression
    # Each attempt has a budget of its own: another execution's node is not charged for it.
    done = one_result(await rig.stored(few.execution_id, until=has_result, within_s=60))
    assert isinstance(done, NodeSucceeded)
    assert [item["v"] for item in done.output["main"]] == [24000] * 3
