"""The fold's answer: ``apply`` says whether an event changed the execution's state, and ``step``
decides again only then; a copy of the event delivered at once changes nothing and answers no.
Checked event by event over live histories with copies of their events recorded again anywhere
and events of nodes outside the plan mixed in (mutation testing found
every handler's answer, and several of their guards, unchecked: flipping one changed no test)."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodedrop.contracts import ids
from nodedrop.contracts.events import ExecutionRequested, ExecutionStarted, NodeRetryScheduled
from nodedrop.scheduler.core import admit, queue
from nodedrop.scheduler.core.fold import apply, new_execution
from nodedrop.scheduler.core.state import ExecutionState

from .harness import T0, n, wf
from .test_properties import workflows
from .test_replay import play

EXAMPLES = settings(
    max_examples=settings().max_examples * 3,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Never changed by an event (the request, its plan), or bookkeeping of the timers only: a timer
# set again to the same time is no change (its heap entry is a stale copy, dropped on reading).
_FIXED = {"request", "plan", "timer_heap"}


# A copy of a retry's schedule, while the node still waits for that retry, sets the same timer
# again and answers True: ``step`` then decides again and finds nothing new (each decision has a
# fixed id and is made once), so the imprecise answer costs a little work, not a wrong record.
SETS_ITS_TIMER_AGAIN = (NodeRetryScheduled,)


def observable(state: ExecutionState) -> dict[str, Any]:
    """Everything the fold keeps, as a deep copy to compare with later."""
    return {
        f.name: copy.deepcopy(getattr(state, f.name))
        for f in dataclasses.fields(state)
        if f.name not in _FIXED
    }


@EXAMPLES
@given(data=st.data(), workflow=workflows())
def test_apply_answers_true_exactly_when_the_event_changed_the_state(
    data: st.DataObject, workflow: dict[str, Any]
) -> None:
    stream = list(play(data, workflow).stream)
    request, events = stream[0], stream[1:]
    assert isinstance(request, ExecutionRequested)
    if events:
        for _ in range(data.draw(st.integers(0, 6))):
            copied = data.draw(st.sampled_from(events))
            events.insert(data.draw(st.integers(0, len(events))), copied)
        with_node = [e for e in events if isinstance(getattr(e, "node", None), str)]
        if with_node:
            original = data.draw(st.sampled_from(with_node))
            stranger = msgspec.structs.replace(original, node="not-in-the-plan")
            events.insert(data.draw(st.integers(0, len(events))), stranger)
    state = new_execution(request)
    for position, event in enumerate(events):
        before = observable(state)
        answer = apply(state, event)
        changed = observable(state) != before
        if not isinstance(event, SETS_ITS_TIMER_AGAIN):
            assert answer == changed, (position, type(event).__name__, answer)
        # The same event delivered again at once (a redelivery): every handler's guard says no.
        after = observable(state)
        again = apply(state, event)
        assert observable(state) == after, (position, type(event).__name__, "copy")
        assert not again or isinstance(event, SETS_ITS_TIMER_AGAIN), (position, "copy")


def test_queueing_and_starting_answer_yes_once_and_no_to_a_copy_or_a_late_queueing() -> None:
    """Live histories are never queued (they have a slot), so these two are checked here: an
    execution queued, queued again, started, started again, then queued late."""
    request = ExecutionRequested(
        event_id=ids.execution_requested("ex"),
        execution_id="ex",
        time=T0,
        workflow=wf([n("start", "manual_trigger"), n("a")], [("start", "a")]),
        requested_by="tester",
        trigger="start",
    )
    state = new_execution(request)
    [queued] = queue(state, T0, scope="workflow", key="wf1", limit=1)
    started = next(e for e in admit(state, T0) if isinstance(e, ExecutionStarted))
    state = new_execution(request)

    answers = [apply(state, event) for event in (queued, queued, started, started, queued)]

    assert answers == [True, False, True, False, False]
    assert (state.queued, state.started) == (False, True)
