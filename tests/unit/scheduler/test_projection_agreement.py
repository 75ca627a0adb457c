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

from nodedrop.contracts.events import AnyEvent, Event
from nodedrop.contracts.failures import policies_in
from nodedrop.contracts.workflow import Node
from nodedrop.notifier.projection import ExecutionRecord, NodeKey, NodeRecord, fold
from nodedrop.scheduler.core import ExecutionState, evolve
from nodedrop.scheduler.core import rules as core_rules

from .test_properties import play as play_world
from .test_properties import workflows
from .test_replay import play as play_live

EXAMPLES = settings(
    max_examples=settings().max_examples * 3,
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


#: A node's definition as recorded, with its failure policy's fields present or not.
definitions = st.fixed_dictionaries(
    {"id": st.just("n"), "type": st.just("noop")},
    optional={
        "on_error": st.sampled_from(["fail", "continue", "error_output"]),
        "retry": st.none()
        | st.fixed_dictionaries(
            {},
            optional={
                "max_attempts": st.integers(1, 100),
                "initial_interval_ms": st.integers(0, 1000),
                "non_retryable_errors": st.lists(st.sampled_from(["RunnerLost", "Boom", "X"])),
            },
        ),
    },
)


@settings(max_examples=settings().max_examples * 3, deadline=None)
@given(definition=definitions)
def test_the_core_and_the_projection_read_the_same_failure_policy(
    definition: dict[str, Any],
) -> None:
    # Both judge a failure with nodedrop.contracts.failures; what may differ is how they read
    # the node's policy: the core from the validated definition, the projection from the JSON
    # recorded in the request.
    core_policy = core_rules.failure_policy(Node.model_validate(definition))
    assert policies_in({"nodes": [definition]}) == {"n": core_policy}
