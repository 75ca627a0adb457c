"""The decider's memo (``ExecutionState.memo``): what it proposed this run, kept apart from the
fold. A proposal leaves the fold's timers and deadline as the events say; the memo keeps it
from being proposed twice or waited for again; a state folded afresh from the same events (a
rebuild) has an empty memo and proposes again, under the same id."""

from __future__ import annotations

from datetime import timedelta

from nodedrop.contracts.events import ExecutionCancelRequested, NodeFailed
from nodedrop.scheduler.core import ExecutionState, evolve, next_wakeup, tick

from .harness import Sim, n, wf


def running_slow_node(timeout_ms: int | None = None) -> Sim:
    """A runner started ``slow`` (timeout 50 ms) and has not answered; nothing proposed yet."""
    sim = Sim(wf([n("start", "manual_trigger"), n("slow", timeout_ms=50)], [("start", "slow")]))
    sim.request(timeout_ms=timeout_ms)
    sim.succeed("start")
    sim.start("slow")
    return sim


def fresh_fold(sim: Sim) -> ExecutionState:
    state = None
    for event in sim.log:
        state = evolve(state, event)
    assert state is not None
    return state


def test_a_proposed_node_timeout_leaves_the_folds_timer_and_is_not_waited_for_again() -> None:
    sim = running_slow_node()
    state = sim.state
    assert state is not None
    timer = state.nodes["slow"].timer
    assert timer is not None
    assert next_wakeup(state) == timer

    later = timer + timedelta(seconds=1)
    [proposal] = tick(state, later)  # not delivered back: the proposal is on its way

    assert isinstance(proposal, NodeFailed)
    assert proposal.error.type == "NodeTimeout"
    assert state.nodes["slow"].timer == timer  # the fold's, as the events say
    assert state.memo.timers_answered == {"slow": timer}
    assert next_wakeup(state) is None  # nothing else to wake for: no busy loop on it
    assert tick(state, later) == []  # proposed once
    # A rebuild from the same events has an empty memo: it proposes again, the same event.
    rebuilt = fresh_fold(sim)
    assert rebuilt.memo.timers_answered == {}
    assert next_wakeup(rebuilt) == timer
    assert [e.event_id for e in tick(rebuilt, later)] == [proposal.event_id]


def test_a_proposed_deadline_leaves_the_folds_deadline_and_is_not_waited_for_again() -> None:
    sim = running_slow_node(timeout_ms=20)
    state = sim.state
    assert state is not None
    deadline = state.deadline
    assert deadline is not None
    assert next_wakeup(state) == deadline

    later = deadline + timedelta(seconds=1)
    [proposal] = tick(state, later)

    assert isinstance(proposal, ExecutionCancelRequested)
    assert proposal.reason == "timed_out"
    assert state.deadline == deadline
    assert state.memo.deadline_proposed
    assert next_wakeup(state) == state.nodes["slow"].timer  # the node's timer, not the deadline
    assert not any(isinstance(e, ExecutionCancelRequested) for e in tick(state, later))
    rebuilt = fresh_fold(sim)
    assert not rebuilt.memo.deadline_proposed
    assert [e.event_id for e in tick(rebuilt, later)] == [proposal.event_id]
