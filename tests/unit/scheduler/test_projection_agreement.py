"""The notifier's projection says what the scheduler core says: histories the core recorded
(random DAGs, runner outcomes, races between runners and the scheduler's publishes, lost
publishes, cancels, deadlines) are folded event by event through the core's ``evolve`` and the
projection's ``fold``, and after every event each node's status, attempt, output, error and skip
reason agree, as do the execution's status and whether it began to end.

Here rather than with the notifier's tests: the histories come from the scheduler's live model.
"""

from __future__ import annotations

from typing import Any, cast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodedrop.contracts.events import AnyEvent, ErrorInfo, Event
from nodedrop.contracts.failures import (
    FailurePolicy,
    error_output,
    failure_outcome,
    policies_in,
)
from nodedrop.contracts.workflow import Node
from nodedrop.notifier.projection import ExecutionRecord, NodeKey, NodeRecord, fold
from nodedrop.scheduler.core import ExecutionState, evolve
from nodedrop.scheduler.core import rules as core_rules
from nodedrop.scheduler.core.state import NodeState

from .test_properties import play as play_world
from .test_properties import workflows
from .test_replay import play as play_live

EXAMPLES = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def core_view(state: ExecutionState | None) -> Any:
    if state is None:
        return None
    nodes = {
        name: (
            node.status.value,
            node.attempt,
            node.output,
            None if node.error is None else (node.error.type, node.error.message),
            node.skip_reason,
            len(node.runner_lost),
        )
        for name, node in state.nodes.items()
    }
    return state.status, not state.accepts_results, nodes


def projection_view(
    execution: ExecutionRecord | None, nodes: dict[NodeKey, NodeRecord], plan: list[str]
) -> Any:
    if execution is None:
        return None
    rows = {
        name: (
            row.status,
            row.attempts,
            row.output,
            None if row.error is None else (row.error["type"], row.error["message"]),
            row.skip_reason,
            row.runner_lost,
        )
        for (_, name), row in nodes.items()
    }
    # Before ExecutionStarted the projection has no node rows; the core's plan nodes are pending.
    pending = ("pending", 0, None, None, None, 0)
    return execution.status, execution.ending, {name: rows.get(name, pending) for name in plan}


def assert_agrees(stream: list[Event]) -> None:
    state: ExecutionState | None = None
    executions: dict[str, ExecutionRecord] = {}
    nodes: dict[NodeKey, NodeRecord] = {}
    for seq, event in enumerate(stream, start=1):
        state = evolve(state, event)
        changes = fold([(seq, cast(AnyEvent, event))], executions, nodes)
        executions.update(changes.executions)
        nodes.update(changes.nodes)
        plan = list(state.nodes) if state is not None else []
        core, projected = core_view(state), projection_view(executions.get("ex"), nodes, plan)
        assert projected == core, f"after event {seq} ({type(event).__name__})"


@EXAMPLES
@given(data=st.data(), workflow=workflows())
def test_the_projection_agrees_with_the_core_on_live_histories(
    data: st.DataObject, workflow: dict[str, Any]
) -> None:
    assert_agrees(play_live(data, workflow).stream)


@EXAMPLES
@given(data=st.data(), workflow=workflows())
def test_the_projection_agrees_with_the_core_on_redelivered_histories(
    data: st.DataObject, workflow: dict[str, Any]
) -> None:
    assert_agrees(play_world(data, workflow).log)


@settings(max_examples=500, deadline=None)
@given(
    on_error=st.sampled_from(["fail", "continue", "error_output"]),
    max_attempts=st.integers(1, 4),
    non_retryable=st.sets(st.sampled_from(["RunnerLost", "Boom"])),
    attempt=st.integers(1, 8),
    lost=st.integers(0, 4),
    error_type=st.sampled_from(["RunnerLost", "Boom", "Other"]),
    retryable=st.booleans(),
    node_input=st.none() | st.dictionaries(st.sampled_from(["main", "b"]), st.lists(st.just({}))),
)
def test_the_failure_rules_are_the_cores(
    *,
    on_error: str,
    max_attempts: int,
    non_retryable: set[str],
    attempt: int,
    lost: int,
    error_type: str,
    retryable: bool,
    node_input: dict[str, list[dict[str, Any]]] | None,
) -> None:
    retry = {"max_attempts": max_attempts, "non_retryable_errors": sorted(non_retryable)}
    definition = {"id": "n", "type": "noop", "on_error": on_error, "retry": retry}
    node = Node.model_validate(definition)
    state = NodeState(attempt=attempt, runner_lost=tuple(range(lost)))
    error = ErrorInfo(type=error_type, message="m", retryable=retryable)
    if core_rules.runner_lost_again(node, state, error):
        expected = "again"
    elif core_rules.will_retry(node, core_rules.counted_attempts(state), error):
        expected = "retry"
    else:
        expected = "failed"
    policy = (policies_in({"nodes": [definition]}) or {})["n"]
    assert policy == FailurePolicy(on_error, max_attempts, frozenset(non_retryable))
    assert failure_outcome(policy, attempt, lost, error) == expected
    assert error_output(node_input, error) == core_rules.error_output(node_input, error)


def test_the_default_policy_is_the_definitions_default() -> None:
    node = Node.model_validate({"id": "n", "type": "noop"})
    assert policies_in({"nodes": [{"id": "n", "type": "noop"}]}) == {
        "n": FailurePolicy(
            node.on_error,
            node.retry_policy.max_attempts,
            frozenset(node.retry_policy.non_retryable_errors),
        )
    }
