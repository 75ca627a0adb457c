"""Which failures are the scheduler's own refusal to make an attempt ready (its input would not
fit in one event): only the next attempt of a node waiting to be made ready, and only with
``InputTooLarge``. Anything else is a runner's answer and goes through the usual fencing."""

from __future__ import annotations

import pytest

from nodedrop.contracts.errors import INPUT_TOO_LARGE
from nodedrop.contracts.events import ErrorInfo
from nodedrop.scheduler.core import NodeStatus
from nodedrop.scheduler.core.rules import refused_attempt
from nodedrop.scheduler.core.state import NodeState

TOO_LARGE = ErrorInfo(type=INPUT_TOO_LARGE, message="the input would not fit", retryable=False)


@pytest.mark.parametrize(
    "node",
    [
        NodeState(status=NodeStatus.PENDING, attempt=0, waiting_on=0),
        NodeState(status=NodeStatus.RETRYING, attempt=1),
    ],
    ids=["pending with its parents done", "retrying"],
)
def test_the_next_attempt_of_a_node_waiting_to_be_made_ready_is_a_refusal(
    node: NodeState,
) -> None:
    assert refused_attempt(node, node.attempt + 1, TOO_LARGE)


def test_a_node_still_waiting_on_its_parents_was_never_refused() -> None:
    node = NodeState(status=NodeStatus.PENDING, attempt=0, waiting_on=1)
    assert not refused_attempt(node, 1, TOO_LARGE)


def test_a_running_attempts_input_too_large_failure_is_a_runners_answer() -> None:
    node = NodeState(status=NodeStatus.RUNNING, attempt=1)
    assert not refused_attempt(node, 1, TOO_LARGE)
    assert not refused_attempt(node, 2, TOO_LARGE)


@pytest.mark.parametrize("attempt", [1, 3])
def test_only_the_very_next_attempt_can_have_been_refused(attempt: int) -> None:
    node = NodeState(status=NodeStatus.RETRYING, attempt=1)
    assert not refused_attempt(node, attempt, TOO_LARGE)


def test_another_error_of_the_next_attempt_is_no_refusal() -> None:
    node = NodeState(status=NodeStatus.RETRYING, attempt=1)
    other = ErrorInfo(type="HttpServerError", message="boom")
    assert not refused_attempt(node, 2, other)
