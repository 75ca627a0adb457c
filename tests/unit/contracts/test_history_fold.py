"""The one fold of an execution's history (``nodedrop.contracts.history_fold``) on hand-written
histories: in the format the scheduler records now (each failure's outcome recorded), and in the
old one (no outcome: the upcaster judges failures from the recorded definition)."""

from __future__ import annotations

from typing import Any

import pytest

from nodedrop.contracts.events import FailureOutcome
from nodedrop.contracts.history_fold import History as Folded
from nodedrop.contracts.history_fold import fold_history, settled
from nodedrop.notifier.testing import History

POLICIES: dict[str, dict[str, Any]] = {
    "retried": {"retry": {"max_attempts": 2}},
    "tolerated": {"on_error": "continue"},
    "routed": {"on_error": "error_output"},
}
BOOM = {"type": "HttpServerError", "message": "boom"}
PLAN = ["start", "fetch", "retried", "tolerated", "routed"]


def history(*, outcomes_recorded: bool = True) -> History:
    h = History()
    h.requested(policies=POLICIES)
    h.started(PLAN, outcomes_recorded=outcomes_recorded)
    h.run_node("start")
    return h


def folded(h: History) -> Folded:
    result = fold_history(h.events)
    assert result is not None
    return result


def test_without_its_request_a_history_is_nothing() -> None:
    h = history()
    assert fold_history(h.events[1:]) is None
    assert fold_history([]) is None


@pytest.mark.parametrize("outcomes_recorded", [True, False])
def test_a_retried_failure_is_retrying_then_the_next_attempt_counts(
    outcomes_recorded: bool,
) -> None:
    h = history(outcomes_recorded=outcomes_recorded)
    h.ready("retried")
    h.node_started("retried")
    h.failed("retried", message="first")
    node = folded(h).nodes["retried"]
    assert (node.status, node.attempts, node.error) == (
        "retrying", 1, {"type": "HttpServerError", "message": "first", "stack": "Traceback ..."},
    )  # fmt: skip
    h.retry("retried")
    h.ready("retried", attempt=2)
    h.node_started("retried", attempt=2)
    h.succeeded("retried", attempt=2, output={"main": [{"ok": 1}]})
    node = folded(h).nodes["retried"]
    assert (node.status, node.attempts, node.output, node.error) == (
        "succeeded", 2, {"main": [{"ok": 1}]}, None,
    )  # fmt: skip
    assert settled(node) == "succeeded"


@pytest.mark.parametrize("outcomes_recorded", [True, False])
@pytest.mark.parametrize(
    ("node", "outcome", "output", "ending"),
    [
        ("fetch", "fail", None, True),
        ("tolerated", "continue", None, False),
        (
            "routed",
            "error_output",
            {
                "error": [
                    {"error": {"type": "HttpServerError", "message": "boom"}, "item": {"i": 1}}
                ]
            },
            False,
        ),
    ],
)
def test_a_failure_for_good_reads_its_outcome(
    outcomes_recorded: bool,
    node: str,
    outcome: FailureOutcome,
    output: dict[str, Any] | None,
    ending: bool,
) -> None:
    h = history(outcomes_recorded=outcomes_recorded)
    h.ready(node, input={"main": [{"i": 1}]})
    h.node_started(node)
    h.failed(node)
    result = folded(h)
    view = result.nodes[node]
    assert (view.status, view.outcome, view.output) == ("failed", outcome, output)
    assert view.finished_at == h.events[-1 if not outcomes_recorded else -2].time
    assert result.execution.ending is ending
    assert result.execution.outcomes_recorded is outcomes_recorded
    assert (result.legacy_policies is None) is outcomes_recorded


def test_a_lost_runner_s_attempt_is_made_again_outside_the_policy() -> None:
    h = history()
    h.ready("fetch")
    h.node_started("fetch")
    h.failed("fetch", error_type="RunnerLost")
    node = folded(h).nodes["fetch"]
    assert (node.status, node.runner_lost, node.outcome) == ("retrying", 1, None)


def test_a_failure_the_scheduler_did_not_act_on_changes_nothing() -> None:
    h = history()
    h.ready("fetch")
    h.node_started("fetch")
    h.cancel_requested()
    h.failed("fetch", acted_on=False)
    result = folded(h)
    assert (result.nodes["fetch"].status, result.nodes["fetch"].error) == ("running", None)
    h.cancelled("fetch")
    assert folded(h).nodes["fetch"].status == "cancelled"


def test_until_its_outcome_a_failure_of_a_new_history_changes_nothing() -> None:
    h = history()
    h.ready("routed")
    h.failed("routed", acted_on=False)
    assert folded(h).nodes["routed"].status == "queued"
    h.handled("routed", "error_output", failed_at=h.events[-1].time)
    assert folded(h).nodes["routed"].status == "failed"


def test_the_scheduler_s_cancel_overrules_a_success_it_ignored() -> None:
    """fetch fails under ``fail``; tolerated's success is stored before fetch's outcome: the
    scheduler, which had begun to end the run at the failure, ignored it and cancels it."""
    h = history()
    h.ready("fetch")
    h.ready("tolerated")
    h.failed("fetch", acted_on=False)
    h.succeeded("tolerated")
    assert folded(h).nodes["tolerated"].status == "succeeded"
    h.handled("fetch", "fail", failed_at=h.events[-2].time)
    h.cancelled("tolerated")
    h.finished("failed")
    result = folded(h)
    assert (result.nodes["tolerated"].status, result.nodes["tolerated"].output) == (
        "cancelled", None,
    )  # fmt: skip
    assert (result.execution.status, result.finished) == ("failed", True)
    assert settled(result.nodes["tolerated"]) == "cancelled"


def test_nothing_counts_after_the_end() -> None:
    h = history()
    h.ready("fetch")
    h.finished("cancelled")
    h.succeeded("fetch")
    assert folded(h).nodes["fetch"].status == "queued"
