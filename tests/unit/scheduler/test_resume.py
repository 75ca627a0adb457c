"""A scheduler rebuilt from the stream after a crash finishes what it had decided."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from nodedrop.contracts.events import Event
from nodedrop.scheduler.core import ExecutionState, evolve, resume

from .harness import Sim, n, wf

RETRY = {"max_attempts": 2, "initial_interval_ms": 50}


def rebuild(events: list[Event]) -> ExecutionState:
    state: ExecutionState | None = None
    for event in events:
        state = evolve(state, event)
    assert state is not None
    return state


def crash_during(
    sim: Sim, action: Callable[[], list[Event]], kept: int
) -> tuple[ExecutionState, list[Event]]:
    """Run `action`, then rebuild from a stream that kept only `kept` of its decisions."""
    decisions = action()
    assert decisions, "the action decided nothing"
    stream = sim.log[: len(sim.log) - len(decisions) + kept]
    return rebuild(stream), decisions[kept:]


def chain_sim() -> Sim:
    return Sim(
        wf(
            [n("start", "manual_trigger"), n("a", retry=RETRY), n("b"), n("c")],
            [("start", "a"), ("start", "b"), ("a", "c")],
        )
    )


@pytest.mark.parametrize("kept", [0, 1])
def test_crash_before_the_execution_started(kept: int) -> None:
    sim = chain_sim()
    state, lost = crash_during(sim, sim.request, kept)
    assert [e.event_id for e in resume(state, sim.now)] == [e.event_id for e in lost]


@pytest.mark.parametrize("kept", [0, 1])
def test_crash_while_making_children_ready(kept: int) -> None:
    sim = chain_sim()
    sim.request()
    state, lost = crash_during(sim, lambda: sim.succeed("start"), kept)
    assert [e.event_id for e in resume(state, sim.now)] == [e.event_id for e in lost]


def test_crash_between_a_failure_and_its_retry() -> None:
    sim = chain_sim()
    sim.request()
    sim.succeed("start")
    state, lost = crash_during(sim, lambda: sim.fail("a"), 0)
    recovered = resume(state, sim.now)
    # The failure's outcome was lost with its retry: both are made again.
    assert [type(e).__name__ for e in recovered] == ["NodeFailureHandled", "NodeRetryScheduled"]
    assert [e.event_id for e in recovered] == [e.event_id for e in lost]


@pytest.mark.parametrize("kept", [0, 1, 2])
def test_crash_while_failing_the_execution(kept: int) -> None:
    sim = Sim(
        wf(
            [n("start", "manual_trigger"), n("bad"), n("x"), n("y")],
            [("start", "bad"), ("start", "x"), ("x", "y")],
        )
    )
    sim.request()
    sim.succeed("start")
    state, lost = crash_during(sim, lambda: sim.fail("bad"), kept)
    recovered = resume(state, sim.now)
    assert [e.event_id for e in recovered] == [e.event_id for e in lost]
    assert type(recovered[-1]).__name__ == "ExecutionFinished"


def test_overdue_timers_fire_on_resume() -> None:
    sim = chain_sim()
    sim.request()
    sim.succeed("start")
    sim.fail("a")
    state = rebuild(sim.log)
    assert resume(state, sim.now) == []  # nothing lost, retry not yet due
    later = sim.now.replace(second=sim.now.second + 1)
    assert [(type(e).__name__, getattr(e, "attempt", None)) for e in resume(state, later)] == [
        ("NodeReady", 2)
    ]


def test_nothing_is_decided_again_after_a_clean_rebuild() -> None:
    sim = chain_sim()
    sim.request()
    sim.succeed("start")
    sim.succeed("b")
    assert resume(rebuild(sim.log), sim.now) == []
