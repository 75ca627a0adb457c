"""What the scheduler records, field by field, where the rule tests only look at outcomes: the
deadline's cancel request, the timed-out end's error, a dead letter's error, and the ends a
rebuilt scheduler decides again (mutation testing found these fields unchecked)."""

from __future__ import annotations

from nodedrop.contracts import ids
from nodedrop.contracts.errors import DEAD_LETTER
from nodedrop.contracts.events import (
    SCHEDULER_ACTOR,
    ExecutionCancelRequested,
    ExecutionFinished,
    NodeCancelled,
    NodeSkipped,
)
from nodedrop.scheduler.core import resume
from nodedrop.scheduler.core.decide import DEAD_LETTERED, TIMED_OUT

from .harness import Sim, n, wf
from .test_resume import rebuild


def running(timeout_ms: int | None = None, on_error: str = "fail") -> Sim:
    settings = {"timeout_ms": timeout_ms} if timeout_ms is not None else {}
    sim = Sim(
        wf(
            [n("start", "manual_trigger"), n("slow", on_error=on_error), n("after")],
            [("start", "slow"), ("slow", "after")],
            **settings,
        )
    )
    sim.request()
    sim.succeed("start")
    sim.start("slow")
    return sim


def the_end(sim: Sim) -> ExecutionFinished:
    finished = sim.finished()
    assert finished is not None
    return finished


def test_the_deadline_is_a_cancel_request_of_the_scheduler_with_its_own_id() -> None:
    sim = running(timeout_ms=5000)
    sim.advance(5000)
    [proposal] = sim.of_type(ExecutionCancelRequested)
    assert proposal.event_id == ids.execution_timed_out("ex1")
    assert (proposal.execution_id, proposal.requested_by, proposal.reason) == (
        "ex1",
        SCHEDULER_ACTOR,
        TIMED_OUT,
    )
    [cancelled] = sim.of_type(NodeCancelled)
    assert cancelled.event_id == ids.node_cancelled("ex1", "slow", 1)
    assert cancelled.attempt == 1
    end = the_end(sim)
    assert end.status == "timed_out"
    assert end.error is not None
    assert (end.error.type, end.error.retryable) == ("ExecutionTimeout", False)
    assert end.error.message == "execution ran longer than 5000 ms"


def test_a_dead_letter_ends_failed_with_an_error_that_is_not_retried() -> None:
    sim = running()
    sim._record(
        ExecutionCancelRequested(
            event_id=ids.execution_dead_lettered("ex1"),
            execution_id="ex1",
            time=sim.now,
            requested_by=SCHEDULER_ACTOR,
            reason=DEAD_LETTERED,
        )
    )
    error = the_end(sim).error
    assert error is not None
    assert (error.type, error.retryable) == (DEAD_LETTER, False)
    assert error.message.startswith("an event of this execution could not be processed")


def test_a_rebuild_after_a_failure_whose_end_was_lost_ends_it_failed() -> None:
    sim = running()
    sim.fail("slow", retryable=False)
    end = the_end(sim)
    lost = sim.log.index(end) - len([e for e in sim.log if isinstance(e, NodeSkipped)])
    state = rebuild(sim.log[:lost])  # up to the failure: the skip and the end never stored
    decided = resume(state, sim.now)
    skips = [e for e in decided if isinstance(e, NodeSkipped)]
    assert [(s.node, s.reason) for s in skips] == [("after", "execution_failed")]
    [again] = [e for e in decided if isinstance(e, ExecutionFinished)]
    assert (again.status, again.error) == ("failed", end.error)


def test_a_rebuild_after_a_cancel_whose_end_was_lost_ends_it_as_the_cancel_says() -> None:
    sim = running(timeout_ms=5000)
    sim.advance(5000)
    [proposal] = sim.of_type(ExecutionCancelRequested)
    state = rebuild(sim.log[: sim.log.index(proposal) + 1])
    [again] = [e for e in resume(state, sim.now) if isinstance(e, ExecutionFinished)]
    assert again.status == "timed_out"
