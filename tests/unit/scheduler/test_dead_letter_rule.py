"""A cancel request with reason ``dead_letter`` (recorded by the scheduler when one of the
execution's events was dead-lettered) ends the execution ``failed`` with error type
``DeadLetter``, live and after a rebuild."""

from __future__ import annotations

from nodedrop.contracts import ids
from nodedrop.contracts.errors import DEAD_LETTER
from nodedrop.contracts.events import ExecutionCancelRequested, NodeCancelled
from nodedrop.scheduler.core import evolve, resume
from nodedrop.scheduler.core.decide import DEAD_LETTERED

from .harness import Sim, n, uncaused, wf


def _running() -> Sim:
    sim = Sim(
        wf(
            [n("start", "manual_trigger"), n("slow"), n("after")],
            [("start", "slow"), ("slow", "after")],
        )
    )
    sim.request()
    sim.succeed("start")
    sim.start("slow")
    return sim


def _dead_lettered(sim: Sim) -> ExecutionCancelRequested:
    return ExecutionCancelRequested(
        event_id=ids.execution_dead_lettered(sim.execution_id),
        execution_id=sim.execution_id,
        time=sim.now,
        requested_by="scheduler",
        reason=DEAD_LETTERED,
    )


def test_a_dead_letter_fails_the_execution() -> None:
    sim = _running()
    sim._record(_dead_lettered(sim))
    finished = sim.finished()
    assert finished is not None
    assert finished.status == "failed"
    assert finished.error is not None
    assert finished.error.type == DEAD_LETTER
    assert [e.node for e in sim.of_type(NodeCancelled)] == ["slow"]
    assert sim.skipped() == {"after": "execution_failed"}


def test_a_rebuilt_scheduler_ends_it_the_same_way() -> None:
    sim = _running()
    request = _dead_lettered(sim)
    state = None
    for event in [*sim.log, request]:  # the crash: recorded, but not yet acted on
        state = evolve(state, event)
    assert state is not None
    decided = resume(state, sim.now)
    sim._record(request)
    assert uncaused(decided[-1:]) == uncaused([sim.finished()])


def test_a_user_cancel_still_ends_cancelled() -> None:
    sim = _running()
    sim.cancel()
    assert sim.status() == "cancelled"
