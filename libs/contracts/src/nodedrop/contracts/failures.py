"""What a node's failure leads to (docs/architecture.md, "Execution semantics", rules 5 and 6).

The scheduler core judges each failure with these rules (its policy read from the validated
definition, ``nodedrop.scheduler.core.rules.failure_policy``) and records the outcome
(``NodeFailureHandled``): no reader of a history judges a failure itself. The one exception is
the upcaster of histories recorded before outcomes were (``nodedrop.contracts.history_fold``),
which reads each node's policy from the recorded definition (:func:`policies_in`) and judges as
the scheduler then did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from nodedrop.contracts.errors import RUNNER_LOST
from nodedrop.contracts.events import ErrorInfo
from nodedrop.contracts.items import ERROR_PORT, Item, PortItems

#: Attempts of one node that may end ``RunnerLost`` and be made again at once, outside the
#: retry policy. Past this a node that keeps losing its runner (it exhausts the runner's memory,
#: say) fails like any other: its policy decides, counting that attempt.
MAX_RUNNER_LOST_ATTEMPTS = 3

#: ``again``: a lost runner's attempt, made again at once, not counted by the retry policy;
#: ``retry``: the retry policy tries once more; ``failed``: the node failed for good.
FailureOutcome = Literal["again", "retry", "failed"]


@dataclass(frozen=True, slots=True)
class FailurePolicy:
    """The parts of a node's definition that decide what its failure leads to."""

    on_error: str = "fail"
    max_attempts: int = 1
    non_retryable_errors: frozenset[str] = field(default_factory=frozenset)


DEFAULT_POLICY = FailurePolicy()


def policies_in(workflow: object) -> dict[str, FailurePolicy] | None:
    """Each node's policy in a definition as recorded (``ExecutionRequested.workflow``), read
    without validating the rest; ``None`` when it cannot be read, a definition the scheduler
    makes no plan of either (so no node of it ever runs)."""
    nodes = workflow.get("nodes") if isinstance(workflow, dict) else None
    if not isinstance(nodes, list):
        return None
    policies: dict[str, FailurePolicy] = {}
    for node in nodes:
        if not isinstance(node, dict) or not isinstance(node_id := node.get("id"), str):
            return None
        retry = node.get("retry") or {}
        if not isinstance(retry, dict):
            return None
        on_error = node.get("on_error", DEFAULT_POLICY.on_error)
        max_attempts = retry.get("max_attempts", DEFAULT_POLICY.max_attempts)
        non_retryable = retry.get("non_retryable_errors", [])
        if not (
            isinstance(on_error, str)
            and isinstance(max_attempts, int)
            and isinstance(non_retryable, list)
            and all(isinstance(error_type, str) for error_type in non_retryable)
        ):
            return None
        policies[node_id] = FailurePolicy(on_error, max_attempts, frozenset(non_retryable))
    return policies


def failure_outcome(
    policy: FailurePolicy, attempt: int, runner_lost: int, error: ErrorInfo
) -> FailureOutcome:
    """The outcome of attempt ``attempt``'s failure; ``runner_lost``: the node's earlier
    attempts that a lost runner ended and that were made again (the policy does not count
    them)."""
    if (
        error.type == RUNNER_LOST
        and error.type not in policy.non_retryable_errors
        and runner_lost < MAX_RUNNER_LOST_ATTEMPTS
    ):
        return "again"
    if (
        error.retryable
        and error.type not in policy.non_retryable_errors
        and attempt - runner_lost < policy.max_attempts
    ):
        return "retry"
    return "failed"


def error_output(node_input: PortItems | None, error: ErrorInfo) -> PortItems:
    """``on_error: error_output``: one error item per input item, on the ``error`` port (an
    empty input gives one error item with an empty ``item``)."""
    summary = {"type": error.type, "message": error.message}
    items: list[Item] = [item for port in (node_input or {}).values() for item in port]
    return {ERROR_PORT: [{"error": summary, "item": item} for item in items or [{}]]}
