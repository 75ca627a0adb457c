"""The fold records what an event says once: a copy of an event recorded again later (a
redelivery, a rebuilt scheduler deciding again past the duplicate window) or an event that
names no node of the plan changes nothing. Histories come from the live model (batches, races,
lost publishes, shares of the runners)."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodedrop.contracts.events import Event, ExecutionRequested
from nodedrop.scheduler.core import ExecutionState, evolve

from .test_properties import workflows
from .test_replay import play

EXAMPLES = settings(
    max_examples=settings().max_examples * 5,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def fold(events: list[Event]) -> ExecutionState:
    state: ExecutionState | None = None
    for event in events:
        state = evolve(state, event)
    assert state is not None
    return state


def everything(state: ExecutionState) -> Any:
    """What the fold says, besides the proposal marks the decider keeps outside it."""
    return (
        state.status,
        state.queued,
        state.started,
        state.started_at,
        state.deadline,
        state.unfinished,
        state.tolerated_failures,
        state.failure,
        state.cancel_requested,
        state.cancel_reason,
        state.ending,
        state.finished,
        dict(state.deferred),
        {
            node_id: (
                node.status,
                node.attempt,
                node.waiting_on,
                node.input,
                node.output,
                node.error,
                node.skip_reason,
                node.started_at,
                node.timer,
                node.wait_until,
                node.runner_lost,
            )
            for node_id, node in state.nodes.items()
        },
    )


@EXAMPLES
@given(data=st.data(), workflow=workflows())
def test_an_event_recorded_again_later_changes_nothing(
    data: st.DataObject, workflow: dict[str, Any]
) -> None:
    stream = list(play(data, workflow).stream)
    copies = data.draw(st.integers(1, 5))
    for _ in range(copies):
        original = data.draw(st.integers(0, len(stream) - 1))
        # The copy lands after everything the original's own consequences recorded.
        at = data.draw(st.integers(original + 1, len(stream)))
        if at < len(stream) and not _settles(stream, original, at):
            at = len(stream)
        stream.insert(at, stream[original])
    assert everything(fold(stream)) == everything(fold(list(play_again(stream))))


def _settles(stream: list[Event], original: int, at: int) -> bool:
    """Whether a copy of ``stream[original]`` at ``at`` comes after every event of the same
    node and attempt (a result copied before its attempt's retry is not the same history)."""
    event = stream[original]
    key = (getattr(event, "node", None), getattr(event, "attempt", None))
    return all((getattr(e, "node", None), getattr(e, "attempt", None)) != key for e in stream[at:])


def play_again(stream: list[Event]) -> list[Event]:
    """The stream without copies: each id as first recorded."""
    seen: set[str] = set()
    unique = []
    for event in stream:
        if event.event_id not in seen:
            seen.add(event.event_id)
            unique.append(event)
    return unique


@EXAMPLES
@given(data=st.data(), workflow=workflows())
def test_an_event_of_a_node_outside_the_plan_changes_nothing(
    data: st.DataObject, workflow: dict[str, Any]
) -> None:
    stream = list(play(data, workflow).stream)
    with_node = [
        i
        for i, e in enumerate(stream)
        if isinstance(getattr(e, "node", None), str) and not isinstance(e, ExecutionRequested)
    ]
    if not with_node:
        return
    original = stream[data.draw(st.sampled_from(with_node))]
    stranger = msgspec.structs.replace(
        original, node="not-in-the-plan", event_id=original.event_id + ".stranger"
    )
    at = data.draw(st.integers(0, len(stream)))
    before = everything(fold(stream))
    stream.insert(at, stranger)
    assert everything(fold(stream)) == before
