"""A rerun's reused outputs: recorded as successes without running, like pinned data."""

from __future__ import annotations

from typing import Any

from nodedrop.contracts import ids
from nodedrop.contracts.events import Event, ExecutionRequested, NodeSkipped, NodeSucceeded
from nodedrop.contracts.items import PortItems
from nodedrop.scheduler.core import NodeStatus, evolve, resume

from .harness import Sim, n, wf

# start -> a -> b -> c, and a side branch start -> side.
CHAIN = wf(
    [n("start", "manual_trigger"), n("a"), n("b"), n("c"), n("side")],
    [("start", "a"), ("a", "b"), ("b", "c"), ("start", "side")],
)
REUSED: dict[str, PortItems] = {
    "start": {"main": [{"n": 1}]},
    "a": {"main": [{"n": 1, "a": True}]},
    "side": {"main": [{"side": 1}]},
}


def request_rerun(
    sim: Sim, reused: dict[str, PortItems], *, rerun_of: str | None = "first"
) -> list[Event]:
    return sim._record(
        ExecutionRequested(
            event_id=ids.execution_requested(sim.execution_id),
            execution_id=sim.execution_id,
            time=sim.now,
            workflow=sim.workflow,
            requested_by="tester",
            trigger="start",
            input=[{"n": 1}],
            rerun_of=rerun_of,
            reused_outputs=reused,
        )
    )


def reused_results(sim: Sim) -> dict[str, Any]:
    return {
        e.node: (e.output, e.attempt, e.reused_from, e.pinned)
        for e in sim.of_type(NodeSucceeded)
        if e.reused_from is not None or e.pinned
    }


def test_reused_nodes_succeed_without_running_and_the_rest_runs() -> None:
    sim = Sim(CHAIN)

    request_rerun(sim, REUSED)

    assert reused_results(sim) == {
        node: (output, 0, "first", False) for node, output in REUSED.items()
    }
    # b is the first node to run, with the input a's reused output delivers.
    assert sim.ready_ids() == ["b"]
    assert sim.ready()[0].input == {"main": [{"n": 1, "a": True}]}
    sim.run_all()
    assert sim.ran() == ["b", "c"]
    assert sim.status() == "succeeded"


def test_a_reused_output_is_read_by_expressions_downstream() -> None:
    sim = Sim(
        wf(
            [
                n("start", "manual_trigger"),
                n("a"),
                n("b", "set", parameters={"values": {"x": "{{ nodes['a']['main'][0]['n'] }}"}}),
            ],
            [("start", "a"), ("a", "b")],
        )
    )

    request_rerun(sim, {"start": {"main": [{}]}, "a": {"main": [{"n": 5}]}})

    [task] = sim.ready()
    assert task.upstream == {"a": {"main": [{"n": 5}]}}


def test_pinned_output_wins_over_a_reused_one() -> None:
    workflow = wf(
        [n("start", "manual_trigger"), n("a", pinned_output={"main": [{"p": 1}]}), n("b")],
        [("start", "a"), ("a", "b")],
    )
    sim = Sim(workflow)

    request_rerun(sim, {"start": {"main": [{}]}, "a": {"main": [{"old": 1}]}})

    assert reused_results(sim)["a"] == ({"main": [{"p": 1}]}, 0, None, True)
    assert sim.ready()[0].input == {"main": [{"p": 1}]}


def test_reused_outputs_without_rerun_of_are_ignored() -> None:
    sim = Sim(CHAIN)

    request_rerun(sim, REUSED, rerun_of=None)

    assert reused_results(sim) == {}
    assert sim.ready_ids() == ["start"]


def test_a_reused_node_without_input_is_skipped_as_usual() -> None:
    # The `if` runs again and sends nothing to `t`: rule 3 skips `t`, whatever was recorded.
    sim = Sim(
        wf(
            [n("start", "manual_trigger"), n("cond", "if"), n("t")],
            [("start", "cond"), ("cond", "t", "true")],
        )
    )
    request_rerun(sim, {"start": {"main": [{}]}, "t": {"main": [{"old": 1}]}})

    sim.succeed("cond", {"true": [], "false": [{}]})

    assert sim.skipped() == {"t": "no_input"}
    assert "t" not in reused_results(sim)
    assert sim.status() == "succeeded"


def test_a_reused_result_redelivered_or_replayed_changes_nothing() -> None:
    sim = Sim(CHAIN)
    decisions = request_rerun(sim, REUSED)
    reused = [e for e in decisions if isinstance(e, NodeSucceeded)]
    assert sim.state is not None

    # Redelivered: already recorded, nothing new is decided.
    assert all(sim._record(event) == [] for event in reused)
    # A scheduler rebuilt from the stream decides the same events (same ids) again, and a
    # rebuild that lost them decides them again.
    replayed = None
    for event in sim.log:
        replayed = evolve(replayed, event)
    assert replayed is not None
    assert replayed.nodes["a"].status == NodeStatus.SUCCEEDED
    assert resume(replayed, sim.now) == []
    lost = None
    for event in sim.log[:2]:  # the request and ExecutionStarted only
        lost = evolve(lost, event)
    assert lost is not None
    again = [e for e in resume(lost, sim.now) if isinstance(e, NodeSucceeded | NodeSkipped)]
    assert [e.event_id for e in again] == [e.event_id for e in reused]
