"""One test per rule of docs/architecture.md, "Execution semantics", on small named graphs."""

from __future__ import annotations

from datetime import timedelta

import pytest

from nodedrop.contracts import ids
from nodedrop.contracts.events import (
    ErrorInfo,
    ExecutionFinished,
    ExecutionStarted,
    NodeCancelled,
    NodeFailed,
    NodeReady,
    NodeRetryScheduled,
    NodeSucceeded,
    NodeWaiting,
)
from nodedrop.scheduler.core import NodeStatus, evolve, resume, step
from nodedrop.scheduler.core.rules import NODE_TIMEOUT_GRACE_MS

from .harness import T0, Sim, n, wf

# The seed's multi-trigger example: A -> Node1 -> Output; B -> Node2 -> Node1.
SEED = wf(
    [n("A", "manual_trigger"), n("B", "manual_trigger"), n("node1"), n("node2"), n("output")],
    [("A", "node1"), ("node1", "output"), ("B", "node2"), ("node2", "node1")],
)


class TestMultiTrigger:
    def test_from_trigger_a_runs_a_node1_output_without_waiting_for_b(self) -> None:
        sim = Sim(SEED)
        sim.request(trigger="A")
        sim.succeed("A")
        # node1 has a parent (node2) outside the plan: it must be ready now, not wait for it.
        assert sim.ready_ids() == ["node1"]
        sim.run_all()
        assert sim.ran() == ["A", "node1", "output"]
        assert sim.status() == "succeeded"
        assert sim.of_type(ExecutionStarted)[0].plan == ["A", "node1", "output"]

    def test_from_trigger_b_runs_b_node2_node1_output_without_waiting_for_a(self) -> None:
        sim = Sim(SEED)
        sim.request(trigger="B")
        sim.run_all()
        assert sim.ran() == ["B", "node2", "node1", "output"]
        assert sim.status() == "succeeded"
        assert "A" not in sim.of_type(ExecutionStarted)[0].plan


def test_nodes_outside_the_plan_never_appear() -> None:
    sim = Sim(
        wf(
            [n("start", "manual_trigger"), n("other", "manual_trigger"), n("a"), n("b")],
            [("start", "a"), ("other", "b")],
        )
    )
    sim.request()
    sim.run_all()
    assert sim.of_type(ExecutionStarted)[0].plan == ["start", "a"]
    assert sim.state is not None
    assert set(sim.state.nodes) == {"start", "a"}


def test_diamond_joins_after_both_branches_and_concatenates_in_connection_order() -> None:
    sim = Sim(
        wf(
            [n("start", "manual_trigger"), n("left"), n("right"), n("join")],
            [("start", "left"), ("start", "right"), ("left", "join"), ("right", "join")],
        )
    )
    sim.request(input=[{"i": 0}])
    sim.succeed("start")
    assert sim.ready_ids() == ["left", "right"]  # rule 4: independent nodes ready together
    sim.succeed("right", {"main": [{"from": "right"}]})
    assert sim.ready_ids() == ["left"]  # join waits for every plan parent (rule 2)
    sim.succeed("left", {"main": [{"from": "left"}]})
    join = sim.ready()[0]
    assert join.node == "join"
    assert join.input == {"main": [{"from": "left"}, {"from": "right"}]}
    sim.run_all()
    assert sim.status() == "succeeded"


def test_if_else_then_merge_skips_the_branch_without_items() -> None:
    sim = Sim(
        wf(
            [
                n("start", "manual_trigger"),
                n("check", "if", parameters={"condition": True}),
                n("yes"),
                n("no"),
                n("merge", "merge"),
            ],
            [
                ("start", "check"),
                ("check", "yes", "true"),
                ("check", "no", "false"),
                ("yes", "merge", "main", "a"),
                ("no", "merge", "main", "b"),
            ],
        )
    )
    sim.request()
    sim.succeed("start")
    sim.succeed("check", {"true": [{"v": 1}], "false": []})
    assert sim.skipped() == {"no": "no_input"}  # rule 3
    assert sim.ready_ids() == ["yes"]
    sim.succeed("yes")
    merge = sim.ready()[0]
    assert merge.input == {"a": [{"v": 1}], "b": []}
    sim.run_all()
    assert sim.status() == "succeeded"


def test_skip_cascades_through_a_chain_without_input() -> None:
    sim = Sim(
        wf(
            [n("start", "manual_trigger"), n("a"), n("b"), n("c")],
            [("start", "a"), ("a", "b"), ("b", "c")],
        )
    )
    sim.request()
    sim.succeed("start")
    sim.succeed("a", {"main": []})
    assert sim.skipped() == {"b": "no_input", "c": "no_input"}
    assert sim.status() == "succeeded"


def test_trigger_always_runs_even_with_empty_input() -> None:
    sim = Sim(wf([n("start", "manual_trigger"), n("a")], [("start", "a")]))
    sim.request(input=[])
    assert sim.ready_ids() == ["start"]
    assert sim.ready()[0].input == {"main": []}


def test_default_trigger_input_is_one_empty_item() -> None:
    sim = Sim(wf([n("start", "manual_trigger")], []))
    sim.request()
    assert sim.ready()[0].input == {"main": [{}]}


def test_fail_ends_failed_stops_running_nodes_and_skips_the_rest() -> None:
    sim = Sim(
        wf(
            [n("start", "manual_trigger"), n("bad"), n("slow"), n("after_bad"), n("after")],
            [("start", "bad"), ("start", "slow"), ("bad", "after_bad"), ("slow", "after")],
        )
    )
    sim.request()
    sim.succeed("start")
    sim.start("slow")
    sim.fail("bad")
    assert sim.status() == "failed"
    assert sim.skipped() == {"after_bad": "execution_failed", "after": "execution_failed"}
    assert [e.node for e in sim.of_type(NodeCancelled)] == ["slow"]
    finished = sim.finished()
    assert finished is not None
    assert finished.error is not None
    assert finished.error.type == "Boom"


def test_continue_marks_failed_delivers_nothing_and_ends_partial() -> None:
    sim = Sim(
        wf(
            [n("start", "manual_trigger"), n("bad", on_error="continue"), n("next"), n("other")],
            [("start", "bad"), ("bad", "next"), ("start", "other")],
        )
    )
    sim.request()
    sim.succeed("start")
    sim.fail("bad")
    assert sim.skipped() == {"next": "no_input"}
    sim.run_all()
    assert sim.status() == "partial"
    assert sim.state is not None
    assert sim.state.nodes["bad"].status == NodeStatus.FAILED


def test_error_output_sends_error_items_on_the_error_port() -> None:
    sim = Sim(
        wf(
            [
                n("start", "manual_trigger"),
                n("bad", on_error="error_output"),
                n("ok"),
                n("handler"),
            ],
            [("start", "bad"), ("bad", "ok"), ("bad", "handler", "error")],
        )
    )
    sim.request(input=[{"order": 7}])
    sim.succeed("start")
    sim.fail("bad", "HttpClientError")
    assert sim.skipped() == {"ok": "no_input"}
    handler = sim.ready()[0]
    assert handler.node == "handler"
    assert handler.input == {
        "main": [
            {"error": {"type": "HttpClientError", "message": "bad failed"}, "item": {"order": 7}},
        ]
    }
    sim.run_all()
    assert sim.status() == "partial"


RETRY = {"max_attempts": 3, "initial_interval_ms": 100, "backoff_coefficient": 2.0}


def test_retries_follow_the_backoff_formula_until_exhausted() -> None:
    sim = Sim(wf([n("start", "manual_trigger"), n("flaky", retry=RETRY)], [("start", "flaky")]))
    sim.request()
    sim.succeed("start")
    sim.fail("flaky")
    retry = sim.of_type(NodeRetryScheduled)[-1]
    assert (retry.attempt, retry.delay_ms) == (1, 100)
    assert sim.ready() == []  # nothing runs before the backoff has passed
    assert sim.wakeup() == sim.now + timedelta(milliseconds=100)
    assert sim.advance(99) == []
    assert [(e.node, e.attempt) for e in sim.advance(1) if isinstance(e, NodeReady)] == [
        ("flaky", 2)
    ]
    sim.fail("flaky")
    assert sim.of_type(NodeRetryScheduled)[-1].delay_ms == 200  # 100 x 2^(2-1)
    sim.advance(200)
    sim.fail("flaky")  # third attempt: retries exhausted
    assert sim.status() == "failed"
    assert len(sim.of_type(NodeRetryScheduled)) == 2


def test_retry_delay_is_capped_by_max_interval() -> None:
    policy = {
        "max_attempts": 5,
        "initial_interval_ms": 100,
        "backoff_coefficient": 10.0,
        "max_interval_ms": 500,
    }
    sim = Sim(wf([n("start", "manual_trigger"), n("flaky", retry=policy)], [("start", "flaky")]))
    sim.request()
    sim.succeed("start")
    delays = []
    for _ in range(3):
        sim.fail("flaky")
        delay = sim.of_type(NodeRetryScheduled)[-1].delay_ms
        delays.append(delay)
        sim.advance(delay)
    assert delays == [100, 500, 500]


def test_a_retry_that_succeeds_ends_succeeded() -> None:
    sim = Sim(wf([n("start", "manual_trigger"), n("flaky", retry=RETRY)], [("start", "flaky")]))
    sim.request()
    sim.succeed("start")
    sim.fail("flaky")
    sim.advance(100)
    sim.succeed("flaky")
    assert sim.status() == "succeeded"


@pytest.mark.parametrize(("listed", "retryable"), [(True, True), (False, False)])
def test_non_retryable_errors_fail_at_once(listed: bool, retryable: bool) -> None:
    policy = {**RETRY, "non_retryable_errors": ["HttpClientError"] if listed else []}
    sim = Sim(wf([n("start", "manual_trigger"), n("call", retry=policy)], [("start", "call")]))
    sim.request()
    sim.succeed("start")
    sim.fail("call", "HttpClientError", retryable=retryable)
    assert sim.of_type(NodeRetryScheduled) == []
    assert sim.status() == "failed"


def test_node_timeout_fails_the_attempt_as_node_timeout_and_retries() -> None:
    policy = {"max_attempts": 2, "initial_interval_ms": 0}
    sim = Sim(
        wf(
            [n("start", "manual_trigger"), n("slow", timeout_ms=1000, retry=policy)],
            [("start", "slow")],
        )
    )
    sim.request()
    sim.succeed("start")
    sim.start("slow")
    assert sim.advance(1000 + NODE_TIMEOUT_GRACE_MS - 1) == []
    decided = sim.advance(1)
    failed = [e for e in decided if isinstance(e, NodeFailed)]
    assert [(e.node, e.attempt, e.error.type) for e in failed] == [("slow", 1, "NodeTimeout")]
    assert [(e.node, e.attempt) for e in decided if isinstance(e, NodeReady)] == [("slow", 2)]
    # The first attempt's runner answering late changes nothing: the first result won.
    late = NodeSucceeded(
        event_id="late",
        execution_id="ex1",
        time=sim.now,
        node="slow",
        attempt=1,
        output={"main": [{}]},
    )
    assert sim._record(late) == []
    sim.start("slow")
    sim.advance(1000 + NODE_TIMEOUT_GRACE_MS)
    assert sim.status() == "failed"


def test_execution_timeout_ends_timed_out() -> None:
    sim = Sim(
        wf(
            [n("start", "manual_trigger"), n("slow"), n("after")],
            [("start", "slow"), ("slow", "after")],
            timeout_ms=5000,
        )
    )
    sim.request()
    sim.succeed("start")
    sim.start("slow")
    assert sim.wakeup() == sim.now + timedelta(milliseconds=5000)
    sim.advance(5000)
    assert sim.status() == "timed_out"
    assert [e.node for e in sim.of_type(NodeCancelled)] == ["slow"]
    assert sim.skipped() == {"after": "timed_out"}


def test_request_timeout_overrides_the_workflow_setting() -> None:
    sim = Sim(wf([n("start", "manual_trigger"), n("slow")], [("start", "slow")], timeout_ms=60_000))
    sim.request(timeout_ms=100)
    sim.advance(100)
    assert sim.status() == "timed_out"


def test_cancel_mid_run_stops_running_nodes_and_skips_the_rest() -> None:
    sim = Sim(
        wf(
            [n("start", "manual_trigger"), n("a"), n("b"), n("c")],
            [("start", "a"), ("start", "b"), ("a", "c")],
        )
    )
    sim.request()
    sim.succeed("start")
    sim.start("a")
    sim.cancel()
    assert sim.status() == "cancelled"
    assert sorted(e.node for e in sim.of_type(NodeCancelled)) == ["a", "b"]
    assert sim.skipped() == {"c": "cancelled"}
    # Results arriving after the end change nothing.
    assert (
        sim._record(
            NodeSucceeded(
                event_id="x",
                execution_id="ex1",
                time=sim.now,
                node="a",
                attempt=1,
                output={"main": [{}]},
            )
        )
        == []
    )


def test_cancel_during_retry_backoff_cancels_the_retrying_node() -> None:
    sim = Sim(wf([n("start", "manual_trigger"), n("flaky", retry=RETRY)], [("start", "flaky")]))
    sim.request()
    sim.succeed("start")
    sim.fail("flaky")
    sim.cancel()
    assert sim.status() == "cancelled"
    assert sim.advance(10_000) == []  # the retry timer is gone with the execution


def test_node_mode_runs_only_the_named_node_with_the_given_input() -> None:
    sim = Sim(SEED)
    sim.request(mode="node", node="node1", input={"main": [{"x": 1}]})
    assert [(e.node, e.input) for e in sim.ready()] == [("node1", {"main": [{"x": 1}]})]
    sim.succeed("node1")
    assert sim.status() == "succeeded"
    assert sim.ran() == ["node1"]


def test_node_mode_uses_the_nodes_retry_policy() -> None:
    sim = Sim(wf([n("start", "manual_trigger"), n("flaky", retry=RETRY)], [("start", "flaky")]))
    sim.request(mode="node", node="flaky", input={"main": [{}]})
    sim.fail("flaky")
    assert len(sim.of_type(NodeRetryScheduled)) == 1
    sim.advance(100)
    sim.succeed("flaky")
    assert sim.status() == "succeeded"


def test_pinned_output_is_recorded_without_running_the_node() -> None:
    sim = Sim(
        wf(
            [
                n("start", "manual_trigger"),
                n("fetch", pinned_output={"main": [{"p": 1}]}),
                n("use"),
            ],
            [("start", "fetch"), ("fetch", "use")],
        )
    )
    sim.request()
    sim.succeed("start")
    pinned = [e for e in sim.of_type(NodeSucceeded) if e.pinned]
    assert [(e.node, e.output) for e in pinned] == [("fetch", {"main": [{"p": 1}]})]
    assert sim.ready()[0].input == {"main": [{"p": 1}]}
    sim.run_all()
    assert "fetch" not in sim.ran()
    assert sim.status() == "succeeded"


def test_duplicate_and_late_results_change_nothing() -> None:
    sim = Sim(wf([n("start", "manual_trigger"), n("a"), n("b")], [("start", "a"), ("a", "b")]))
    sim.request()
    sim.succeed("start")
    success = sim.succeed("a")
    result = next(e for e in sim.log if isinstance(e, NodeSucceeded) and e.node == "a")
    assert success  # b became ready
    assert sim._record(result) == []  # the same result redelivered
    failure = NodeFailed(
        event_id=result.event_id,
        execution_id="ex1",
        time=sim.now,
        node="a",
        attempt=1,
        error=ErrorInfo(type="Late", message="late"),
    )
    assert sim._record(failure) == []  # a second, different result for the same attempt
    assert sim.ready_ids() == ["b"]


def test_events_of_an_unknown_execution_are_ignored() -> None:
    stray = NodeSucceeded(
        event_id="x", execution_id="nope", time=T0, node="a", attempt=1, output={}
    )
    state, decisions = step(None, stray, T0)
    assert (state, decisions) == (None, [])


def test_a_request_for_an_unknown_trigger_fails_visibly() -> None:
    sim = Sim(SEED)
    sim.request(trigger="nope")
    finished = sim.finished()
    assert finished is not None
    assert finished.status == "failed"
    assert finished.error is not None
    assert "nope" in finished.error.message
    assert (finished.event_id, finished.execution_id) == (ids.execution_finished("ex1"), "ex1")
    assert sim.state is not None
    assert sim.state.request.trigger == "nope"


@pytest.mark.parametrize("mode", ["trigger", "node"])
def test_a_request_that_names_no_root_fails_saying_what_it_lacks(mode: str) -> None:
    sim = Sim(SEED)
    sim.request(mode=mode, trigger=None, node=None)
    finished = sim.finished()
    assert finished is not None
    assert finished.error is not None
    assert (finished.status, finished.error.type) == ("failed", "InvalidRequest")
    assert finished.error.message == f"the request names no {mode}"


def test_results_recorded_after_the_end_began_are_ignored_by_a_rebuild() -> None:
    """A publish that recorded the first decisions of ending a run (a node cancelled) but lost
    the rest: a runner's result stored after them does not count when the run is rebuilt; the
    rebuild ends the run as it was ending."""
    workflow = wf([n("start", "manual_trigger"), n("a"), n("b")], [("start", "a"), ("start", "b")])
    sim = Sim(workflow)
    sim.request()
    sim.succeed("start")
    ending = sim.cancel()
    first_cancel = next(e for e in ending if isinstance(e, NodeCancelled))
    cut = sim.log.index(first_cancel) + 1
    late = NodeSucceeded(
        event_id=ids.node_result("ex1", "b", 1),
        execution_id="ex1",
        time=sim.now,
        node="b",
        attempt=1,
        output={"main": [{}]},
    )
    rebuilt = None
    for event in [*sim.log[:cut], late]:
        rebuilt = evolve(rebuilt, event)
    assert rebuilt is not None
    assert rebuilt.ending
    assert rebuilt.nodes["b"].status != NodeStatus.SUCCEEDED
    decided = resume(rebuilt, sim.now)
    finished = [e for e in decided if isinstance(e, ExecutionFinished)]
    assert [e.status for e in finished] == ["cancelled"]


class TestWait:
    WORKFLOW = wf(
        [n("start", "manual_trigger"), n("pause", "wait", parameters={"ms": 1000}), n("after")],
        [("start", "pause"), ("pause", "after")],
    )

    def test_a_wait_runs_on_the_schedulers_timer_without_a_runner(self) -> None:
        sim = Sim(self.WORKFLOW)
        sim.request(input=[{"x": 1}])
        sim.succeed("start")
        waiting = sim.of_type(NodeWaiting)
        assert [(e.node, e.until - e.time) for e in waiting] == [("pause", timedelta(seconds=1))]
        assert "pause" not in sim.ready_ids()  # no runner task for it
        assert sim.wakeup() == waiting[0].until
        assert sim.advance(999) == []
        woken = sim.advance(1)
        done = [e for e in woken if isinstance(e, NodeSucceeded)]
        assert [(e.node, e.output) for e in done] == [("pause", {"main": [{"x": 1}]})]
        assert sim.ready_ids() == ["after"]

    def test_a_wait_survives_a_rebuild_from_the_record(self) -> None:
        sim = Sim(self.WORKFLOW)
        sim.request()
        sim.succeed("start")
        rebuilt = None
        for event in sim.log:
            rebuilt = evolve(rebuilt, event)
        assert rebuilt is not None
        later = sim.now + timedelta(seconds=2)
        assert resume(rebuilt, later)[0].node == "pause"  # type: ignore[attr-defined]
        assert rebuilt.nodes["pause"].status == NodeStatus.SUCCEEDED

    def test_cancel_stops_a_waiting_node(self) -> None:
        sim = Sim(self.WORKFLOW)
        sim.request()
        sim.succeed("start")
        sim.cancel()
        assert [e.node for e in sim.of_type(NodeCancelled)] == ["pause"]
        assert sim.advance(5000) == []
        assert sim.status() == "cancelled"

    #: A wait of 5 s with a timeout of 100 ms.
    TOO_LONG = wf(
        [n("start", "manual_trigger"), n("pause", "wait", parameters={"ms": 5000}, timeout_ms=100)],
        [("start", "pause")],
    )

    @pytest.mark.parametrize("fired_after_ms", [100, 60_000])
    def test_a_wait_longer_than_its_timeout_fails_with_node_timeout(
        self, fired_after_ms: int
    ) -> None:
        # Also when a busy or restarted scheduler fires the timer past both the timeout and the
        # wake-up: the timeout came first, so the node fails as it would have on time.
        sim = Sim(self.TOO_LONG)
        sim.request()
        sim.succeed("start")
        fired = sim.advance(fired_after_ms)
        failed = [e for e in fired if isinstance(e, NodeFailed)]
        assert [(e.node, e.error.type) for e in failed] == [("pause", "NodeTimeout")]
        assert not [e for e in fired if isinstance(e, NodeSucceeded)]  # the wait never woke
        assert sim.status() == "failed"

    def test_a_wait_shorter_than_its_timeout_wakes_on_time(self) -> None:
        workflow = wf(
            [
                n("start", "manual_trigger"),
                n("pause", "wait", parameters={"ms": 100}, timeout_ms=5000),
            ],
            [("start", "pause")],
        )
        sim = Sim(workflow)
        sim.request()
        sim.succeed("start")
        (waiting,) = sim.of_type(NodeWaiting)
        assert sim.wakeup() == waiting.until  # the wake-up, not the later timeout
        woken = sim.advance(100)
        assert [e.node for e in woken if isinstance(e, NodeSucceeded)] == ["pause"]
        assert not [e for e in woken if isinstance(e, NodeFailed)]
        assert sim.status() == "succeeded"

    def test_node_mode_runs_a_wait_on_the_timer_too(self) -> None:
        sim = Sim(self.WORKFLOW)
        sim.request(mode="node", node="pause", input={"main": [{"y": 2}]})
        sim.advance(1000)
        assert sim.status() == "succeeded"


def test_a_wait_with_invalid_ms_fails_visibly_instead_of_hanging() -> None:
    sim = Sim(
        wf(
            [n("start", "manual_trigger"), n("pause", "wait", parameters={"ms": "soon"})],
            [("start", "pause")],
        )
    )
    sim.request()
    sim.succeed("start")
    failed = sim.of_type(NodeFailed)
    assert [(e.node, e.error.type, e.error.retryable) for e in failed] == [
        ("pause", "InvalidParameters", False)
    ]
    assert sim.status() == "failed"


def test_a_node_gets_the_upstream_outputs_its_expressions_read_and_only_those() -> None:
    sim = Sim(
        wf(
            [
                n("start", "manual_trigger"),
                n("a"),
                n("b"),
                n("use", "set", parameters={"values": {"x": '{{ nodes["a"].main[0].v }}'}}),
            ],
            [("start", "a"), ("a", "b"), ("b", "use")],
        )
    )
    sim.request()
    sim.succeed("start")
    sim.succeed("a", {"main": [{"v": 1}]})
    sim.succeed("b", {"main": [{"w": 2}]})
    task = sim.ready()[0]
    assert task.node == "use"
    assert task.upstream == {"a": {"main": [{"v": 1}]}}


def test_a_dynamic_nodes_reference_gets_every_recorded_output() -> None:
    sim = Sim(
        wf(
            [
                n("start", "manual_trigger"),
                n("a"),
                n("use", "if", parameters={"condition": "{{ len(nodes) > 0 }}"}),
            ],
            [("start", "a"), ("a", "use")],
        )
    )
    sim.request(input=[{"s": 1}])
    sim.succeed("start")
    sim.succeed("a")
    assert set(sim.ready()[0].upstream) == {"start", "a"}
