"""The projection fold: one test per rule, fencing, and the determinism a rebuild relies on."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from nodedrop.contracts.events import AnyEvent, ErrorInfo, NodeStarted, SkipReason
from nodedrop.notifier.projection import Changes, ExecutionRecord, NodeRecord, fold
from nodedrop.notifier.testing import T0, History, numbered


def at(step: int) -> datetime:
    """The time of the ``step``-th event of a History (10 ms apart, from T0)."""
    return T0 + timedelta(milliseconds=10 * step)


def project(*histories: History) -> Changes:
    return fold(numbered(event for h in histories for event in h.events))


#: fetch is tried up to three times.
RETRIED = {"fetch": {"retry": {"max_attempts": 3}}}


def started(
    plan: tuple[str, ...] = ("start", "fetch", "store"),
    policies: dict[str, dict[str, Any]] | None = None,
) -> History:
    h = History()
    h.requested(policies=policies)
    h.started(list(plan))
    return h


class TestExecutionRows:
    def test_requested_creates_a_queued_execution_from_the_event(self) -> None:
        h = History("ex1", requested_by="alice", workflow_id="wf-9")
        h.requested(trigger="hook", rerun_of="ex0", policies={"fetch": {"on_error": "continue"}})
        row = project(h).executions["ex1"]
        assert row == ExecutionRecord(
            id="ex1",
            mode="trigger",
            status="queued",
            requested_by="alice",
            created_at=T0,
            last_seq=1,
            workflow_id="wf-9",
            workflow_version=1,
            trigger="hook",
            node=None,
            rerun_of="ex0",
        )

    def test_queued_for_a_limit_stays_queued_says_why_and_starts_later(self) -> None:
        h = History("ex1")
        h.requested()
        h.queued("user", "alice", 3)
        waiting = project(h)
        assert waiting.executions["ex1"].status == "queued"
        assert waiting.executions["ex1"].last_seq == 2
        assert waiting.logs[-1].message == (
            "execution waiting: user alice has 3 executions running (its limit); "
            "it starts when one ends"
        )
        assert waiting.logs[-1].level == "info"
        h.started(["start"])
        assert project(h).executions["ex1"].status == "running"

    def test_node_mode_keeps_the_node(self) -> None:
        h = History()
        h.requested(mode="node", trigger=None, node="fetch")
        row = project(h).executions["ex1"]
        assert (row.mode, row.node, row.trigger) == ("node", "fetch", None)

    def test_started_runs_the_execution_and_lists_the_plan_as_pending_nodes(self) -> None:
        changes = project(started(("start", "fetch", "store")))
        execution = changes.executions["ex1"]
        assert (execution.status, execution.started_at, execution.last_seq) == ("running", at(1), 2)
        assert {
            key: (row.position, row.status, row.attempts) for key, row in changes.nodes.items()
        } == {
            ("ex1", "start"): (0, "pending", 0),
            ("ex1", "fetch"): (1, "pending", 0),
            ("ex1", "store"): (2, "pending", 0),
        }

    @pytest.mark.parametrize("status", ["succeeded", "partial", "failed", "cancelled", "timed_out"])
    def test_finished_sets_the_final_status(self, status: str) -> None:
        h = started()
        error = ErrorInfo(type="NodeError", message="fetch failed") if status == "failed" else None
        h.finished(status, error)  # type: ignore[arg-type]
        row = project(h).executions["ex1"]
        assert (row.status, row.finished_at, row.last_seq) == (status, at(2), 3)
        assert row.error == (
            {"type": "NodeError", "message": "fetch failed", "stack": None} if error else None
        )

    def test_every_event_moves_last_seq(self) -> None:
        h = started()
        h.cancel_requested("enough")
        changes = project(h)
        assert changes.executions["ex1"].last_seq == 3
        assert changes.executions["ex1"].status == "running"  # cancel only ends with Finished

    def test_an_event_of_an_unknown_execution_changes_no_row(self) -> None:
        h = History("ghost")
        h.started(["a"])
        changes = project(h)
        assert (changes.executions, changes.nodes) == ({}, {})
        assert [line.level for line in changes.logs] == ["warning"]


class TestNodeRows:
    def test_ready_queues_the_attempt_with_its_input(self) -> None:
        h = started()
        h.ready("fetch", input={"main": [{"id": 1}]})
        row = project(h).nodes[("ex1", "fetch")]
        assert (row.status, row.attempts, row.input, row.last_seq) == (
            "queued", 1, {"main": [{"id": 1}]}, 3,
        )  # fmt: skip

    def test_started_and_succeeded(self) -> None:
        h = started()
        h.ready("fetch")
        h.node_started("fetch")
        h.succeeded("fetch", output={"main": [{"ok": True}]})
        row = project(h).nodes[("ex1", "fetch")]
        assert row == NodeRecord(
            execution_id="ex1",
            node="fetch",
            position=1,
            status="succeeded",
            last_seq=5,
            attempts=1,
            started_at=at(3),
            finished_at=at(4),
            input={"main": [{}]},
            output={"main": [{"ok": True}]},
        )

    def test_failed_records_the_error(self) -> None:
        h = started()
        h.ready("fetch")
        h.node_started("fetch")
        h.failed("fetch", error_type="HttpServerError", message="boom")
        row = project(h).nodes[("ex1", "fetch")]
        assert (row.status, row.finished_at) == ("failed", at(4))
        assert row.error == {"type": "HttpServerError", "message": "boom", "stack": "Traceback ..."}

    def test_retry_then_success_on_the_second_attempt(self) -> None:
        h = started(policies=RETRIED)
        h.ready("fetch")
        h.node_started("fetch")
        h.failed("fetch")
        h.retry("fetch")
        retrying = project(h).nodes[("ex1", "fetch")]
        assert (retrying.status, retrying.attempts, retrying.finished_at) == ("retrying", 1, None)
        assert retrying.error is not None  # the UI shows why it retries
        h.run_node("fetch", attempt=2)
        row = project(h).nodes[("ex1", "fetch")]
        assert (row.status, row.attempts, row.error) == ("succeeded", 2, None)

    def test_skipped_with_its_reason(self) -> None:
        h = started()
        h.skipped("store", "no_input")
        row = project(h).nodes[("ex1", "store")]
        assert (row.status, row.skip_reason, row.finished_at) == ("skipped", "no_input", at(2))

    def test_cancelled(self) -> None:
        h = started()
        h.ready("fetch")
        h.node_started("fetch")
        h.cancelled("fetch")
        row = project(h).nodes[("ex1", "fetch")]
        assert (row.status, row.finished_at) == ("cancelled", at(4))

    def test_pinned_output_of_a_node_that_never_ran(self) -> None:
        h = started()
        h.succeeded("fetch", attempt=0, output={"main": [{"pinned": 1}]}, pinned=True)
        row = project(h).nodes[("ex1", "fetch")]
        assert (row.status, row.pinned, row.output) == (
            "succeeded",
            True,
            {"main": [{"pinned": 1}]},
        )

    def test_reused_output_of_a_node_that_never_ran_in_this_execution(self) -> None:
        h = started()
        h.succeeded("fetch", attempt=0, output={"main": [{"old": 1}]}, reused_from="ex0")
        changes = project(h)
        row = changes.nodes[("ex1", "fetch")]
        assert (row.status, row.attempts, row.pinned, row.output, row.finished_at) == (
            "succeeded",
            0,
            False,
            {"main": [{"old": 1}]},
            at(2),
        )
        assert changes.logs[-1].message == "node fetch reused its output recorded by execution ex0"
        assert changes.logs[-1].level == "info"

    def test_an_event_for_a_node_outside_the_plan_is_ignored(self) -> None:
        h = started(("start",))
        h.ready("elsewhere")
        changes = project(h)
        assert ("ex1", "elsewhere") not in changes.nodes
        assert changes.logs[-1].level == "warning"


class TestFencing:
    def test_a_late_result_of_an_older_attempt_changes_nothing(self) -> None:
        h = started(policies=RETRIED)
        h.ready("fetch")
        h.node_started("fetch")
        h.failed("fetch")
        h.retry("fetch")
        h.ready("fetch", attempt=2)
        h.node_started("fetch", attempt=2)
        before = project(h).nodes[("ex1", "fetch")]
        h.succeeded("fetch", attempt=1)  # the first runner was only slow
        changes = project(h)
        assert changes.nodes[("ex1", "fetch")] == before
        assert changes.executions["ex1"].last_seq == len(h.events)
        assert changes.logs[-1].level == "warning"
        assert changes.logs[-1].message.startswith("ignored")

    def test_the_first_result_of_an_attempt_wins(self) -> None:
        h = started()
        h.ready("fetch")
        h.node_started("fetch")
        h.succeeded("fetch", output={"main": [{"first": True}]})
        h.failed("fetch")  # a second runner, same attempt
        h.succeeded("fetch", output={"main": [{"second": True}]})
        row = project(h).nodes[("ex1", "fetch")]
        assert (row.status, row.output, row.error) == (
            "succeeded",
            {"main": [{"first": True}]},
            None,
        )

    def test_duplicate_events_change_nothing(self) -> None:
        h = started()
        h.ready("fetch")
        h.node_started("fetch")
        once = project(h)
        # The same events recorded again (a redelivery past the duplicate window).
        h.events.extend(h.events[1:])
        twice = project(h)
        assert twice.nodes == once.nodes
        assert {k: dataclasses.replace(v, last_seq=0) for k, v in twice.executions.items()} == {
            k: dataclasses.replace(v, last_seq=0) for k, v in once.executions.items()
        }
        assert len(twice.logs) == len(h.events)

    def test_a_second_request_does_not_reset_the_execution(self) -> None:
        h = started()
        h.requested()
        row = project(h).executions["ex1"]
        assert (row.status, row.last_seq) == ("running", 3)

    def test_nothing_changes_after_execution_finished(self) -> None:
        h = started()
        h.ready("fetch")
        h.cancel_requested()
        h.finished("cancelled")
        final = project(h)
        h.node_started("fetch")
        h.succeeded("fetch")
        h.skipped("store", "cancelled")
        h.started(["start"])
        h.finished("succeeded")
        after = project(h)
        assert after.nodes == final.nodes
        assert after.executions["ex1"] == dataclasses.replace(
            final.executions["ex1"], last_seq=len(h.events)
        )
        assert all(line.level == "warning" for line in after.logs[len(final.logs) :])

    def test_a_start_must_match_the_queued_attempt(self) -> None:
        h = started()
        h.ready("fetch")
        h.node_started("fetch", attempt=2)
        assert project(h).nodes[("ex1", "fetch")].status == "queued"


class TestLogs:
    def test_one_line_per_event_with_a_human_message(self) -> None:
        h = started(("start", "fetch"), {"fetch": {"retry": {"max_attempts": 2}}})
        h.ready("fetch")
        h.node_started("fetch")
        h.failed("fetch", message="boom")
        h.retry("fetch", delay_ms=400)
        h.ready("fetch", attempt=2)
        h.node_started("fetch", attempt=2)
        h.failed("fetch", attempt=2, message="boom")
        h.skipped("start", "execution_failed")
        h.finished("failed", ErrorInfo(type="HttpServerError", message="boom"))
        logs = project(h).logs
        assert [line.seq for line in logs] == list(range(1, len(h.events) + 1))
        assert [(line.level, line.node, line.message) for line in logs] == [
            ("info", None, "execution requested by user-1 from trigger start"),
            ("info", None, "execution started: 2 nodes planned"),
            ("info", "fetch", "node fetch queued (attempt 1, 1 input item)"),
            ("info", "fetch", "node fetch started (attempt 1) on runner-1"),
            ("error", "fetch", "node fetch failed (attempt 1): HttpServerError: boom"),
            ("warning", "fetch", "node fetch failure handled (attempt 1): will be retried"),
            ("warning", "fetch", "node fetch will retry in 400 ms (attempt 2)"),
            ("info", "fetch", "node fetch queued (attempt 2, 1 input item)"),
            ("info", "fetch", "node fetch started (attempt 2) on runner-1"),
            ("error", "fetch", "node fetch failed (attempt 2): HttpServerError: boom"),
            (
                "error",
                "fetch",
                "node fetch failure handled (attempt 2): failed for good, the execution fails",
            ),
            ("info", "start", "node start skipped: execution_failed"),
            ("error", None, "execution failed: HttpServerError: boom"),
        ]
        assert [line.time for line in logs] == [at(i) for i in range(len(h.events))]


class TestDeterminism:
    def histories(self) -> list[AnyEvent]:
        a, b = History("ex-a").typical(4), History("ex-b", start=at(3)).typical(3)
        # Interleave the two executions, as the stream does.
        return sorted([*a.events, *b.events], key=lambda e: e.time)

    def test_folding_the_same_events_twice_gives_the_same_rows(self) -> None:
        events = numbered(self.histories())
        assert fold(events) == fold(events)

    @pytest.mark.parametrize("split", [1, 2, 5, 9, 13, 20, 27])
    def test_batches_give_the_rows_of_one_fold(self, split: int) -> None:
        events = numbered(self.histories())
        whole = fold(events)
        first = fold(events[:split])
        second = fold(events[split:], first.executions, first.nodes)
        assert {**first.executions, **second.executions} == whole.executions
        assert {**first.nodes, **second.nodes} == whole.nodes
        assert first.logs + second.logs == whole.logs

    def test_the_rows_passed_in_are_not_modified(self) -> None:
        events = numbered(self.histories())
        first = fold(events[:10])
        snapshot = dataclasses.replace(first.executions["ex-a"])
        fold(events[10:], first.executions, first.nodes)
        assert first.executions["ex-a"] == snapshot

    def test_events_on_one_row_collapse_into_one_final_row(self) -> None:
        changes = project(History().typical(3))
        assert list(changes.executions) == ["ex1"]
        assert sorted(changes.nodes) == [("ex1", "n1"), ("ex1", "n2"), ("ex1", "start")]
        assert {row.status for row in changes.nodes.values()} == {"succeeded"}

    def test_a_node_row_untouched_by_its_events_is_not_rewritten(self) -> None:
        h = started()
        h.ready("fetch")
        first = fold(numbered(h.events))
        late = NodeStarted(event_id="x", execution_id="ex1", time=at(9), node="fetch", attempt=7)
        second = fold([(4, late)], first.executions, first.nodes)
        assert second.nodes == {}
        assert second.executions["ex1"].last_seq == 4

    def test_a_naive_time_is_read_as_utc(self) -> None:
        h = History(start=datetime(2026, 1, 1, 12, 0))  # naive on purpose
        h.requested()
        assert project(h).executions["ex1"].created_at == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


class TestWaitingNodes:
    def test_a_waiting_node_is_running_from_its_event(self) -> None:
        h = started(("start", "pause"))
        h.run_node("start")
        h.waiting("pause")
        node = project(h).nodes[("ex1", "pause")]
        assert (node.status, node.attempts, node.input) == ("running", 1, {"main": [{}]})
        assert node.started_at == at(len(h.events) - 1)

    def test_a_waiting_node_succeeds_when_the_scheduler_wakes_it(self) -> None:
        h = started(("start", "pause"))
        h.run_node("start")
        h.waiting("pause")
        h.succeeded("pause", output={"main": [{}]})
        node = project(h).nodes[("ex1", "pause")]
        assert node.status == "succeeded"


class TestNodeLogs:
    def test_each_logged_line_is_a_log_row_with_the_nodes_time_and_level(self) -> None:
        from nodedrop.contracts import ids
        from nodedrop.contracts.events import LogLine, NodeLogged

        h = started(("start", "fetch"))
        h.run_node("start")
        logged = NodeLogged(
            event_id=ids.node_logged("ex1", "fetch", 1),
            execution_id="ex1",
            time=at(9),
            node="fetch",
            attempt=1,
            lines=[
                LogLine(time=at(7), level="info", message="3 orders"),
                LogLine(time=at(8), level="error", message="one bad"),
            ],
        )
        changes = fold(numbered([*h.events, logged]))
        rows = [
            (line.seq, line.line, line.time, line.level, line.node, line.message)
            for line in changes.logs
            if line.node == "fetch" and line.seq == len(h.events) + 1
        ]
        assert rows == [
            (len(h.events) + 1, 0, at(7), "info", "fetch", "3 orders"),
            (len(h.events) + 1, 1, at(8), "error", "fetch", "one bad"),
        ]


class TestEndingAsTheSchedulerCoreDoes:
    """Once an execution began to end, the scheduler core ignores runner results but still
    applies its own (pinned or reused outputs, a wait's wake-up); the projection likewise."""

    @pytest.mark.parametrize("reason", [None, "timed_out", "dead_letter"])
    def test_a_runner_success_after_a_cancel_request_is_ignored(self, reason: str | None) -> None:
        h = started()
        h.ready("fetch")
        h.node_started("fetch")
        h.cancel_requested(reason)
        h.succeeded("fetch")  # already in the stream when the scheduler ended the run
        changes = project(h)
        node = changes.nodes[("ex1", "fetch")]
        assert (node.status, node.output, node.finished_at) == ("running", None, None)
        assert changes.executions["ex1"].ending
        assert changes.logs[-1].message.startswith("ignored")
        h.cancelled("fetch")  # what the scheduler decided
        assert project(h).nodes[("ex1", "fetch")].status == "cancelled"

    def test_a_runner_failure_after_a_cancel_request_is_ignored(self) -> None:
        h = started(policies={"fetch": {"on_error": "error_output"}})
        h.ready("fetch")
        h.cancel_requested()
        h.failed("fetch", acted_on=False)  # the scheduler acts on no failure from here on
        node = project(h).nodes[("ex1", "fetch")]
        assert (node.status, node.error, node.output) == ("queued", None, None)

    def test_a_pinned_output_recorded_after_a_cancel_request_still_counts(self) -> None:
        h = started()
        h.run_node("start")
        h.cancel_requested()  # recorded while the scheduler was pinning fetch
        h.succeeded("fetch", attempt=0, output={"main": [{"pinned": 1}]}, pinned=True)
        node = project(h).nodes[("ex1", "fetch")]
        assert (node.status, node.pinned, node.output) == (
            "succeeded", True, {"main": [{"pinned": 1}]},
        )  # fmt: skip

    def test_a_reused_output_recorded_after_a_cancel_request_still_counts(self) -> None:
        h = started()
        h.cancel_requested()
        h.succeeded("fetch", attempt=0, output={"main": [{"old": 1}]}, reused_from="ex0")
        assert project(h).nodes[("ex1", "fetch")].status == "succeeded"

    def test_a_wait_woken_after_a_cancel_request_still_succeeds(self) -> None:
        h = started(("start", "pause"))
        h.run_node("start")
        h.waiting("pause")
        h.cancel_requested()
        h.succeeded("pause", output={"main": [{}]})  # the scheduler's own wake-up
        node = project(h).nodes[("ex1", "pause")]
        assert (node.status, node.wait_until) == ("succeeded", at(5) + timedelta(seconds=1))

    def test_a_runner_result_after_a_failure_under_on_error_fail_is_ignored(self) -> None:
        h = started(("start", "fetch", "store"))
        h.run_node("start")
        h.ready("fetch")
        h.ready("store")
        h.failed("fetch")  # no retry: the scheduler ends the run as failed
        h.succeeded("store")
        changes = project(h)
        assert changes.executions["ex1"].ending
        assert changes.nodes[("ex1", "fetch")].status == "failed"
        assert changes.nodes[("ex1", "store")].status == "queued"

    @pytest.mark.parametrize("reason", ["cancelled", "timed_out", "execution_failed"])
    def test_a_runner_result_after_an_ending_skip_is_ignored(self, reason: SkipReason) -> None:
        h = started()
        h.ready("fetch")
        h.skipped("store", reason)
        h.succeeded("fetch")
        changes = project(h)
        assert changes.executions["ex1"].ending
        assert changes.nodes[("ex1", "fetch")].status == "queued"

    def test_a_skip_for_lack_of_input_ends_nothing(self) -> None:
        h = started()
        h.ready("fetch")
        h.skipped("store", "no_input")
        h.succeeded("fetch")
        changes = project(h)
        assert not changes.executions["ex1"].ending
        assert changes.nodes[("ex1", "fetch")].status == "succeeded"

    def test_a_runner_result_after_another_node_was_cancelled_is_ignored(self) -> None:
        h = started()
        h.ready("fetch")
        h.ready("store")
        h.cancelled("store")
        h.succeeded("fetch")
        assert project(h).nodes[("ex1", "fetch")].status == "queued"


class TestFailurePolicies:
    def test_a_failure_with_attempts_left_is_retrying_at_once_and_ends_nothing(self) -> None:
        h = started(policies=RETRIED)
        h.ready("fetch")
        h.ready("store")
        h.failed("fetch")
        h.succeeded("store")
        changes = project(h)
        fetch = changes.nodes[("ex1", "fetch")]
        assert (fetch.status, fetch.finished_at, fetch.error is not None) == (
            "retrying",
            None,
            True,
        )
        assert changes.nodes[("ex1", "store")].status == "succeeded"
        assert not changes.executions["ex1"].ending

    def test_the_last_attempt_fails_for_good(self) -> None:
        h = started(policies={"fetch": {"retry": {"max_attempts": 2}}})
        h.ready("fetch")
        h.failed("fetch")
        h.retry("fetch")
        h.ready("fetch", attempt=2)
        h.failed("fetch", attempt=2)
        changes = project(h)
        assert changes.nodes[("ex1", "fetch")].status == "failed"
        assert changes.executions["ex1"].ending

    @pytest.mark.parametrize(("listed", "retryable"), [(True, True), (False, False)])
    def test_a_non_retryable_error_fails_at_once(self, listed: bool, retryable: bool) -> None:
        retry = {"max_attempts": 3, "non_retryable_errors": ["HttpClientError"] if listed else []}
        h = started(policies={"fetch": {"retry": retry}})
        h.ready("fetch")
        h.failed("fetch", error_type="HttpClientError", retryable=retryable)
        assert project(h).nodes[("ex1", "fetch")].status == "failed"

    def test_a_lost_runner_attempt_is_made_again_and_not_counted(self) -> None:
        h = started(policies={"fetch": {"retry": {"max_attempts": 2}}})
        h.ready("fetch")
        h.failed("fetch", error_type="RunnerLost")
        lost = project(h).nodes[("ex1", "fetch")]
        assert (lost.status, lost.runner_lost) == ("retrying", 1)
        h.retry("fetch", delay_ms=0)
        h.ready("fetch", attempt=2)
        h.failed("fetch", attempt=2)  # the first attempt the policy counts: one more
        assert project(h).nodes[("ex1", "fetch")].status == "retrying"
        h.retry("fetch", attempt=2)
        h.ready("fetch", attempt=3)
        h.failed("fetch", attempt=3)
        changes = project(h)
        assert (changes.nodes[("ex1", "fetch")].status, changes.executions["ex1"].ending) == (
            "failed", True,
        )  # fmt: skip

    def test_a_runner_lost_a_fourth_time_is_judged_by_the_policy(self) -> None:
        h = started()  # fetch: one attempt
        for attempt in (1, 2, 3):
            h.ready("fetch", attempt=attempt)
            h.failed("fetch", attempt=attempt, error_type="RunnerLost")
            h.retry("fetch", attempt=attempt, delay_ms=0)
        h.ready("fetch", attempt=4)
        h.failed("fetch", attempt=4, error_type="RunnerLost")
        node = project(h).nodes[("ex1", "fetch")]
        assert (node.status, node.runner_lost, node.attempts) == ("failed", 3, 4)

    def test_error_output_projects_the_error_port_items_its_children_get(self) -> None:
        h = started(policies={"fetch": {"on_error": "error_output"}})
        h.ready("fetch", input={"main": [{"id": 1}], "other": [{"id": 2}]})
        h.ready("store")
        h.failed("fetch", error_type="HttpServerError", message="boom")
        h.succeeded("store")  # a tolerated failure: the run goes on
        changes = project(h)
        fetch = changes.nodes[("ex1", "fetch")]
        error = {"type": "HttpServerError", "message": "boom"}
        assert (fetch.status, fetch.output) == (
            "failed",
            {"error": [{"error": error, "item": {"id": 1}}, {"error": error, "item": {"id": 2}}]},
        )
        assert changes.nodes[("ex1", "store")].status == "succeeded"
        assert not changes.executions["ex1"].ending

    def test_error_output_of_a_node_without_input_items_is_one_error_item(self) -> None:
        h = started(policies={"fetch": {"on_error": "error_output"}})
        h.ready("fetch", input={"main": []})
        h.failed("fetch", message="boom")
        output = project(h).nodes[("ex1", "fetch")].output
        assert output == {
            "error": [{"error": {"type": "HttpServerError", "message": "boom"}, "item": {}}]
        }

    def test_continue_delivers_nothing_and_ends_nothing(self) -> None:
        h = started(policies={"fetch": {"on_error": "continue"}})
        h.ready("fetch")
        h.failed("fetch")
        changes = project(h)
        assert (changes.nodes[("ex1", "fetch")].status, changes.nodes[("ex1", "fetch")].output) == (
            "failed", None,
        )  # fmt: skip
        assert not changes.executions["ex1"].ending

    def test_an_old_history_s_failure_is_failed_until_a_retry_and_ends_nothing(self) -> None:
        """A history started before the scheduler recorded outcomes (``v`` 1): row by row, the
        projection has no policy to judge its failure with, and reads it as failed."""
        h = History()
        h.requested(policies={"fetch": {"on_error": "error_output"}})
        h.started(["start", "fetch", "store"], outcomes_recorded=False)
        h.ready("fetch")
        h.failed("fetch")
        failed_only = project(h)
        assert failed_only.nodes[("ex1", "fetch")].status == "failed"
        assert not failed_only.executions["ex1"].outcomes_recorded
        h.retry("fetch")
        changes = project(h)
        assert changes.nodes[("ex1", "fetch")].status == "retrying"
        assert not changes.executions["ex1"].ending

    def test_a_new_history_s_failure_waits_for_its_outcome(self) -> None:
        h = started()
        h.ready("fetch")
        h.failed("fetch", acted_on=False)
        assert project(h).nodes[("ex1", "fetch")].status == "queued"
        assert project(h).executions["ex1"].outcomes_recorded
        h.handled("fetch", "continue", failed_at=h.events[-1].time)
        row = project(h).nodes[("ex1", "fetch")]
        assert (row.status, row.outcome, row.finished_at) == ("failed", "continue", at(3))

    @pytest.mark.parametrize("retried", [False, True])
    def test_an_attempt_refused_before_it_was_made_ready_fails_the_node(
        self, retried: bool
    ) -> None:
        """The scheduler records the next attempt as failed when its input would not fit in one
        event: no NodeReady comes before it."""
        h = started(policies=RETRIED if retried else None)
        if retried:
            h.ready("fetch")
            h.failed("fetch")
            h.retry("fetch")
        attempt = 2 if retried else 1
        h.failed("fetch", attempt=attempt, error_type="InputTooLarge", retryable=False)
        changes = project(h)
        node = changes.nodes[("ex1", "fetch")]
        assert (node.status, node.attempts, node.error is not None) == ("failed", attempt, True)
        assert changes.executions["ex1"].ending

    def test_only_the_refusal_fails_an_attempt_not_made_ready(self) -> None:
        h = started()
        h.failed("fetch", attempt=1)  # no runner can have had an attempt never made ready
        assert project(h).nodes[("ex1", "fetch")].status == "pending"
