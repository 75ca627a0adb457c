"""A tick decides nothing for an execution that has ended, even one whose deadline and node
timers are past, and no wake-up is asked for it (mutation testing: the guards of ``tick`` and
``next_wakeup`` could be weakened unnoticed)."""

from __future__ import annotations

from nodedrop.contracts.events import ExecutionFinished

from .harness import Sim, n, wf


def test_a_finished_execution_past_its_deadline_gets_no_wakeup_and_no_decision() -> None:
    sim = Sim(
        wf([n("start", "manual_trigger"), n("a", timeout_ms=50)], [("start", "a")], timeout_ms=100)
    )
    sim.request()
    sim.start("start")
    sim.succeed("start")
    sim.start("a")
    sim.cancel()
    assert isinstance(sim.finished(), ExecutionFinished)
    count = len(sim.log)

    assert sim.wakeup() is None

    assert sim.advance(10_000) == []
    assert len(sim.log) == count
