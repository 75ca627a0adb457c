"""Admission: a new execution without a concurrency slot is folded but not started; it is
queued once (``ExecutionQueued``), waits without timers or a deadline, starts on ``admit``, and
ends at once if cancelled while it waits. Its history replays like any other."""

from __future__ import annotations

from datetime import timedelta

import msgspec

from nodedrop.contracts import ids
from nodedrop.contracts.events import (
    Event,
    ExecutionCancelRequested,
    ExecutionFinished,
    ExecutionQueued,
    ExecutionRequested,
    ExecutionStarted,
    NodeReady,
)
from nodedrop.scheduler.core import admit, next_wakeup, queue, resume, step, tick
from nodedrop.scheduler.core.replay import verify

from .harness import T0, Sim, n, wf

WORKFLOW = wf([n("start", "manual_trigger"), n("a")], [("start", "a")], timeout_ms=1000)


def request(execution_id: str = "ex1") -> ExecutionRequested:
    return ExecutionRequested(
        event_id=ids.execution_requested(execution_id),
        execution_id=execution_id,
        time=T0,
        workflow=WORKFLOW,
        requested_by="tester",
        trigger="start",
    )


def queued_sim() -> Sim:
    """A Sim whose execution was requested without a slot and queued on its workflow's limit."""
    sim = Sim(WORKFLOW)
    sim.log.append(request())
    sim.state, decided = step(None, sim.log[0], sim.now, admitted=False)
    assert decided == []
    assert sim.state is not None
    sim.log += queue(sim.state, sim.now, scope="workflow", key="wf1", limit=2)
    return sim


def types(events: list[Event]) -> list[str]:
    return [type(e).__name__ for e in events]


def test_an_execution_without_a_slot_is_queued_once_and_waits_without_timers() -> None:
    sim = queued_sim()
    assert sim.state is not None
    assert types(sim.log) == ["ExecutionRequested", "ExecutionQueued"]
    (queued,) = sim.of_type(ExecutionQueued)
    assert (queued.scope, queued.key, queued.limit) == ("workflow", "wf1", 2)
    assert queued.event_id == ids.execution_queued("ex1")
    assert sim.state.queued
    assert not sim.state.started
    # Queued again (another round without a slot): nothing new is recorded.
    assert queue(sim.state, sim.now, scope="user", key="u", limit=1) == []
    # No deadline while it waits: far past the workflow's timeout nothing is due.
    assert next_wakeup(sim.state) is None
    assert tick(sim.state, sim.now + timedelta(hours=1)) == []
    # A rebuild without a slot decides nothing either.
    assert resume(sim.state, sim.now + timedelta(hours=1), admitted=False) == []


def test_admitted_later_it_starts_and_its_timeout_counts_from_then() -> None:
    sim = queued_sim()
    assert sim.state is not None
    sim.now += timedelta(seconds=30)
    started = admit(sim.state, sim.now)
    sim.log += started
    assert types(started) == ["ExecutionStarted", "NodeReady"]
    assert not sim.state.queued
    assert sim.state.started
    assert sim.state.deadline == sim.now + timedelta(milliseconds=1000)
    assert admit(sim.state, sim.now) == []  # admitted once
    sim.succeed("start")
    sim.succeed("a")
    assert sim.status() == "succeeded"
    result = verify(list(enumerate(sim.log, start=1)))
    assert result.differences == [], result.differences
    assert result.finished


def test_cancelled_while_queued_it_ends_without_touching_its_nodes() -> None:
    sim = queued_sim()
    assert sim.state is not None
    sim.now += timedelta(seconds=5)
    cancel = ExecutionCancelRequested(
        event_id=ids.cancel_requested("ex1"), execution_id="ex1", time=sim.now, requested_by="u"
    )
    sim.log.append(cancel)
    sim.state, decided = step(sim.state, cancel, sim.now)
    sim.log += decided
    assert types(decided) == ["ExecutionFinished"]
    assert sim.status() == "cancelled"
    assert sim.state is not None
    assert admit(sim.state, sim.now) == []
    result = verify(list(enumerate(sim.log, start=1)))
    assert result.differences == [], result.differences


def test_a_replay_reports_work_of_a_queued_execution_that_never_started() -> None:
    """The admission is read from the record: the scheduler's ``admit`` call is the recorded
    cause of the queued execution's start and first task, so a start removed from it is
    reported missing there."""
    sim = queued_sim()
    assert sim.state is not None
    sim.now += timedelta(seconds=30)
    sim.log += admit(sim.state, sim.now)
    sim.succeed("start")
    sim.succeed("a")
    assert verify(list(enumerate(sim.log, start=1))).differences == []
    tampered = [e for e in sim.log if not isinstance(e, ExecutionStarted)]
    result = verify(list(enumerate(tampered, start=1)))
    assert [(d.kind, d.event_type) for d in result.differences] == [
        ("missing", "ExecutionStarted")
    ], result.differences


def test_a_request_with_no_plan_fails_at_once_even_without_a_slot() -> None:
    bad = msgspec.structs.replace(request(), trigger="nope")
    state, decided = step(None, bad, T0, admitted=False)
    assert state is not None
    assert [type(e) for e in decided] == [ExecutionFinished]
    assert not any(isinstance(e, ExecutionStarted | NodeReady) for e in decided)
