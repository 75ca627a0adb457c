"""A node whose input would not fit in one event fails with ``InputTooLarge`` instead of being
made ready (docs/architecture.md, "Inputs too large for one event"): no retries, the node's
``on_error`` applies, and a rebuilt scheduler decides the same."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from nodedrop.contracts import ids
from nodedrop.contracts.codec import MAX_MESSAGE_BYTES, encoded_size
from nodedrop.contracts.errors import INPUT_TOO_LARGE
from nodedrop.contracts.events import (
    Event,
    ExecutionCancelRequested,
    NodeFailed,
    NodeReady,
    NodeRetryScheduled,
    NodeStarted,
    NodeSucceeded,
    NodeWaiting,
)
from nodedrop.scheduler.core import ExecutionState, NodeStatus, evolve, resume, step
from nodedrop.scheduler.core.rules import MAX_INPUT_BYTES

from .harness import Sim, n, uncaused, wf

#: One item just under the offload threshold (256 KiB): each parent's output travels inline.
PADDING = 250_000


def fan_in(parents: int, **join: Any) -> dict[str, Any]:
    """start -> p0..p{parents-1} -> join -> after, and start -> handler via join's error port
    when ``join`` has ``on_error: error_output``."""
    names = [f"p{i}" for i in range(parents)]
    nodes = [n("start", "manual_trigger"), *(n(p) for p in names), n("join", **join), n("after")]
    edges: list[Any] = [("start", p) for p in names] + [(p, "join") for p in names]
    edges.append(("join", "after"))
    if join.get("on_error") == "error_output":
        nodes.append(n("handler"))
        edges.append(("join", "handler", "error"))
    return wf(nodes, edges)


def run_parents(sim: Sim, parents: int, padding: int = PADDING) -> None:
    sim.request()
    sim.succeed("start")
    for i in range(parents):
        sim.succeed(f"p{i}", {"main": [{"p": i, "padding": "x" * padding}]})


def refusals(sim: Sim) -> list[NodeFailed]:
    return [e for e in sim.of_type(NodeFailed) if e.error.type == INPUT_TOO_LARGE]


def test_the_default_limit_leaves_room_in_a_message_for_the_rest_of_the_event() -> None:
    assert MAX_INPUT_BYTES < MAX_MESSAGE_BYTES == 8 * 1024 * 1024


def test_a_fan_in_over_the_message_limit_fails_the_join_without_retrying() -> None:
    # 36 parents of ~250 KB each: ~9 MB of input, more than one 8 MB message.
    sim = Sim(fan_in(36, retry={"max_attempts": 3, "initial_interval_ms": 10}))
    run_parents(sim, 36)

    [refused] = refusals(sim)
    assert (refused.node, refused.attempt, refused.error.retryable) == ("join", 1, False)
    sizes = [
        int(s.replace(",", "")) for s in re.findall(r"\d[\d,]*(?= bytes)", refused.error.message)
    ]
    join_input = {"main": [{"p": i, "padding": "x" * PADDING} for i in range(36)]}
    # The input items, plus the empty parameters and upstream outputs a NodeReady would carry.
    assert sizes == [encoded_size(join_input) + len(b"{}") * 2, MAX_INPUT_BYTES]
    assert sizes[0] > MAX_INPUT_BYTES
    assert "join" in refused.error.message
    assert "join" not in sim.ran()  # no runner was ever given the node
    assert sim.of_type(NodeRetryScheduled) == []
    assert sim.status() == "failed"
    finished = sim.finished()
    assert finished is not None
    assert finished.error == refused.error
    assert sim.skipped() == {"after": "execution_failed"}
    assert sim.state is not None
    join = sim.state.nodes["join"]
    assert (join.status, join.attempt, join.error) == (NodeStatus.FAILED, 1, refused.error)


def test_a_fan_in_under_the_limit_is_unaffected() -> None:
    # 30 parents of ~250 KB each: ~7.5 MB, which fits.
    sim = Sim(fan_in(30))
    run_parents(sim, 30)

    [join] = sim.ready()
    assert join.node == "join"
    assert len(join.input["main"]) == 30
    sim.run_all()
    assert refusals(sim) == []
    assert sim.status() == "succeeded"


def test_continue_marks_the_join_failed_and_the_run_goes_on() -> None:
    sim = Sim(fan_in(3, on_error="continue"))
    sim.max_input_bytes = 2_000
    run_parents(sim, 3, padding=1_000)

    assert [e.node for e in refusals(sim)] == ["join"]
    assert sim.skipped() == {"after": "no_input"}  # a failed node under `continue` sends nothing
    assert sim.status() == "partial"


def test_error_output_sends_one_error_item_without_the_oversized_input() -> None:
    sim = Sim(fan_in(3, on_error="error_output"))
    sim.max_input_bytes = 2_000
    run_parents(sim, 3, padding=1_000)

    [refused] = refusals(sim)
    [handler] = sim.ready()
    assert handler.node == "handler"
    # The input that did not fit is not sent on: it would not fit downstream either.
    error = {"type": INPUT_TOO_LARGE, "message": refused.error.message}
    assert handler.input == {"main": [{"error": error, "item": {}}]}
    sim.run_all()
    assert sim.status() == "partial"


def test_a_wait_node_with_too_large_an_input_fails_the_same_way() -> None:
    sim = Sim(
        wf(
            [n("start", "manual_trigger"), n("pause", "wait", parameters={"ms": 10})],
            [("start", "pause")],
        )
    )
    sim.max_input_bytes = 500
    sim.request()
    sim.succeed("start", {"main": [{"padding": "x" * 600}]})

    assert sim.of_type(NodeWaiting) == []
    assert [(e.node, e.attempt) for e in refusals(sim)] == [("pause", 1)]
    assert sim.status() == "failed"


def test_a_trigger_whose_input_does_not_fit_fails_the_execution() -> None:
    sim = Sim(wf([n("start", "manual_trigger"), n("a")], [("start", "a")]))
    sim.max_input_bytes = 500
    sim.request(input=[{"padding": "x" * 600}])

    assert [e.node for e in refusals(sim)] == ["start"]
    assert sim.skipped() == {"a": "execution_failed"}
    assert sim.status() == "failed"


def test_a_retry_that_would_carry_more_than_the_first_attempt_is_refused() -> None:
    # `use` reads every recorded output (a dynamic nodes[...] reference): when it is retried,
    # `big` has finished meanwhile, and its output would travel with the retry.
    sim = Sim(
        wf(
            [
                n("start", "manual_trigger"),
                n(
                    "use",
                    "if",
                    parameters={"condition": "{{ len(nodes) > 0 }}"},
                    retry={"max_attempts": 3, "initial_interval_ms": 100},
                ),
                n("big"),
            ],
            [("start", "use"), ("start", "big")],
        )
    )
    sim.max_input_bytes = 500
    sim.request()
    sim.succeed("start")
    sim.fail("use")
    sim.succeed("big", {"main": [{"padding": "x" * 600}]})
    sim.advance(100)

    assert [(e.node, e.attempt) for e in refusals(sim)] == [("use", 2)]
    assert [(e.node, e.attempt) for e in sim.of_type(NodeReady) if e.node == "use"] == [("use", 1)]
    assert sim.status() == "failed"
    assert sim.state is not None
    assert sim.state.nodes["use"].attempt == 2

    # Rebuilt from what was recorded before the refusal came back, the scheduler refuses the
    # same attempt in the same words, once.
    refused = refusals(sim)[0]
    before = sim.log[: sim.log.index(refused)]
    rebuilt = fold(before)
    again = resume(rebuilt, sim.now, max_input_bytes=500)
    assert [msgspec.to_builtins(e) for e in uncaused(again) if isinstance(e, NodeFailed)] == [
        msgspec.to_builtins(uncaused([refused])[0])
    ]
    assert resume(rebuilt, sim.now, max_input_bytes=500) == []


def fold(events: list[Event]) -> ExecutionState:
    state: ExecutionState | None = None
    for event in events:
        state = evolve(state, event)
    assert state is not None
    return state


def test_a_lost_refusal_is_made_again_after_a_rebuild_and_only_once() -> None:
    sim = Sim(fan_in(3))
    sim.max_input_bytes = 2_000
    run_parents(sim, 3, padding=1_000)
    refused = refusals(sim)[0]
    lost = sim.log[: sim.log.index(refused)]  # the refusal's publish failed

    rebuilt = fold(lost)
    assert rebuilt.nodes["join"].status == NodeStatus.PENDING
    again = resume(rebuilt, sim.now, max_input_bytes=2_000)
    assert uncaused(again) == uncaused([refused])
    assert resume(rebuilt, sim.now, max_input_bytes=2_000) == []  # proposed once per state


def test_a_cancel_recorded_before_the_refusal_comes_back_wins() -> None:
    sim = Sim(fan_in(2))
    sim.request()
    sim.succeed("start")
    sim.succeed("p0", {"main": [{"padding": "x" * 1_000}]})
    state = sim.state
    # The last parent's result, stepped directly: the refusal is decided, not yet delivered.
    p1 = next(e for e in sim.ready() if e.node == "p1")
    for event in (
        NodeStarted(
            event_id=ids.node_started("ex1", "p1", 1),
            execution_id="ex1",
            time=sim.now,
            node="p1",
            attempt=p1.attempt,
        ),
        NodeSucceeded(
            event_id=ids.node_result("ex1", "p1", 1),
            execution_id="ex1",
            time=sim.now,
            node="p1",
            attempt=1,
            output={"main": [{"padding": "x" * 1_000}]},
        ),
    ):
        state, decided = step(state, event, sim.now, max_input_bytes=1_500)
    [refused] = decided
    assert isinstance(refused, NodeFailed)
    assert refused.error.type == INPUT_TOO_LARGE
    cancel = ExecutionCancelRequested(
        event_id=ids.cancel_requested("ex1"), execution_id="ex1", time=sim.now, requested_by="t"
    )
    state, _ = step(state, cancel, sim.now, max_input_bytes=1_500)
    state, after = step(state, refused, sim.now, max_input_bytes=1_500)

    assert after == []  # the refusal came back after the end began: ignored, as in a fold
    assert state is not None
    assert state.status == "cancelled"
    assert state.nodes["join"].status == NodeStatus.SKIPPED
    assert state.nodes["join"].skip_reason == "cancelled"
