"""The one fold of a history (``nodedrop.contracts.history_fold``) reads what the scheduler core
decided: histories the core recorded (random DAGs, runner outcomes, races between runners and the
scheduler's publishes, lost publishes, cancels, deadlines) are folded by both, and wherever the
scheduler has recorded its answer to the inputs so far, each node's status, attempt, output,
error, skip reason and lost-runner count agree, as do the execution's status and whether it
began to end. The same histories in the old format (no ``NodeFailureHandled``, ``v`` 1 starts)
read the same through the upcaster.

Here rather than with the model's tests: the histories come from the scheduler's live model.
"""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodedrop.contracts.events import (
    INPUT_EVENT_TYPES,
    Event,
    ExecutionStarted,
    NodeFailureHandled,
)
from nodedrop.contracts.failures import policies_in
from nodedrop.contracts.history_fold import History, evolve, fold_history
from nodedrop.contracts.workflow import Node
from nodedrop.scheduler.core import ExecutionState
from nodedrop.scheduler.core import evolve as core_evolve
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


def fold_view(history: History | None, plan: list[str]) -> Any:
    if history is None:
        return None
    views = {
        name: (
            view.status,
            view.attempts,
            view.output,
            None if view.error is None else (view.error["type"], view.error["message"]),
            view.skip_reason,
            view.runner_lost,
        )
        for name, view in history.nodes.items()
    }
    # Before ExecutionStarted the fold has no node views; the core's plan nodes are pending.
    pending = ("pending", 0, None, None, None, 0)
    status = history.execution.status
    return status, history.execution.ending, {name: views.get(name, pending) for name in plan}


def answered(stream: list[Event], index: int, state: ExecutionState | None) -> bool:
    """Whether the scheduler has recorded its answer to every input up to ``stream[index]``:
    that event is one of its decisions, the next one (if any) is an input again, and every
    failure the core's fold counted has its recorded outcome. In between, an input is folded
    before its answer is: a failure whose outcome is still to come, say (a failure the
    scheduler proposed comes back to it as an input, and is acted on then)."""
    if isinstance(stream[index], INPUT_EVENT_TYPES):
        return False
    if state is not None and any(
        node.outcome is not None and not node.outcome_recorded for node in state.nodes.values()
    ):
        return False
    return index + 1 == len(stream) or isinstance(stream[index + 1], INPUT_EVENT_TYPES)


def assert_agrees(stream: list[Event]) -> None:
    state: ExecutionState | None = None
    history: History | None = None
    compared = 0
    for index, event in enumerate(stream):
        state = core_evolve(state, event)
        if history is None:
            history = fold_history([event])
        else:
            evolve(history, event)
        if answered(stream, index, state):
            plan = list(state.nodes) if state is not None else []
            core, folded = core_view(state), fold_view(history, plan)
            assert folded == core, _difference(folded, core, index, stream)
            compared += 1
    # Only a history the scheduler never answered (a request held back) has nothing to compare.
    assert compared > 0 or all(isinstance(e, INPUT_EVENT_TYPES) for e in stream)


def _difference(folded: Any, core: Any, index: int, stream: list[Event]) -> str:
    nodes = {n: (v, core[2].get(n)) for n, v in folded[2].items() if core[2].get(n) != v}
    recent = [type(e).__name__ + ":" + str(getattr(e, "node", "")) for e in stream[: index + 1]]
    return f"after event {index + 1}: {folded[:2]} vs {core[:2]}; {nodes}; {recent[-12:]}"


def old_format(stream: list[Event]) -> list[Event]:
    """The history as a scheduler that did not record outcomes would have recorded it."""
    return [
        msgspec.structs.replace(e, v=1) if isinstance(e, ExecutionStarted) else e
        for e in stream
        if not isinstance(e, NodeFailureHandled)
    ]


def assert_upcast_reads_the_same(stream: list[Event]) -> None:
    new, old = fold_history(stream), fold_history(old_format(stream))
    assert new is not None
    assert old is not None
    plan = new.plan or []
    assert fold_view(old, plan) == fold_view(new, plan)
    assert {n: v.outcome for n, v in old.nodes.items()} == {
        n: v.outcome for n, v in new.nodes.items()
    }


@EXAMPLES
@given(data=st.data(), workflow=workflows())
def test_the_fold_agrees_with_the_core_on_live_histories(
    data: st.DataObject, workflow: dict[str, Any]
) -> None:
    stream = play_live(data, workflow).stream
    assert_agrees(stream)
    assert_upcast_reads_the_same(stream)


@EXAMPLES
@given(data=st.data(), workflow=workflows())
def test_the_fold_agrees_with_the_core_on_redelivered_histories(
    data: st.DataObject, workflow: dict[str, Any]
) -> None:
    stream = play_world(data, workflow).log
    assert_agrees(stream)
    assert_upcast_reads_the_same(stream)


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
def test_the_upcaster_reads_the_policy_the_core_reads(definition: dict[str, Any]) -> None:
    # An old history's failures are judged by the upcaster from the definition as recorded;
    # the core read the same policy from the validated definition.
    core_policy = core_rules.failure_policy(Node.model_validate(definition))
    assert policies_in({"nodes": [definition]}) == {"n": core_policy}
