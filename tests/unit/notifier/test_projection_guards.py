"""The projection's guards, one per rule: an event that fencing ignores leaves every row as it
was *and* says so in the log (a warning naming what was ignored), an event that counts says
what happened. What mutation testing of the fold found untested."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest

from nodedrop.contracts import ids
from nodedrop.contracts.events import ErrorInfo, NodeDeferred, NodeLogged, NodeWaiting
from nodedrop.contracts.events import LogLine as RunnerLogLine
from nodedrop.notifier.projection import Changes, LogLine, NodeRecord, fold
from nodedrop.notifier.testing import T0, History, numbered

#: fetch is tried up to three times.
RETRIED = {"fetch": {"retry": {"max_attempts": 3}}}


def project(h: History) -> Changes:
    return fold(numbered(h.events))


def running(
    plan: tuple[str, ...] = ("start", "fetch", "store"),
    policies: dict[str, dict[str, Any]] | None = None,
) -> History:
    h = History()
    h.requested(policies=policies)
    h.started(list(plan))
    return h


def on_second_attempt() -> History:
    """fetch failed once and its second attempt is queued."""
    h = running(policies=RETRIED)
    h.ready("fetch")
    h.node_started("fetch")
    h.failed("fetch")
    h.retry("fetch")
    h.ready("fetch", attempt=2)
    return h


def deferred(h: History, node: str, attempt: int = 1) -> None:
    h.events.append(
        NodeDeferred(
            event_id=ids.node_deferred(h.execution_id, node, attempt),
            execution_id=h.execution_id,
            time=h.now,
            node=node,
            attempt=attempt,
            key="user-1",
            limit=4,
        )
    )
    h.now += h.step


def node_after(h: History, node: str = "fetch") -> NodeRecord:
    return project(h).nodes[(h.execution_id, node)]


def assert_ignored(h: History, before: Changes, node: str = "fetch") -> LogLine:
    """The last event changed no row of ``node`` and was logged as ignored; its log line."""
    after = project(h)
    assert after.nodes[(h.execution_id, node)] == before.nodes[(h.execution_id, node)]
    line = after.logs[-1]
    assert (line.level, line.seq) == ("warning", len(h.events))
    assert line.message.startswith("ignored (duplicate, late or after the end): ")
    return line


def assert_counted(h: History, level: str = "info") -> LogLine:
    line = project(h).logs[-1]
    assert (line.level, line.seq) == (level, len(h.events))
    assert not line.message.startswith("ignored")
    return line


class TestEveryLogLineNamesItsExecution:
    def test_lines_of_counted_ignored_and_logged_events_carry_the_execution_id(self) -> None:
        h = running()
        h.ready("fetch")
        h.ready("fetch")  # ignored
        h.requested()  # a copy of the request: ignored
        orphan = History("ex-unknown", start=h.now)
        orphan.ready("fetch")  # an execution the stream never requested
        h.events.extend(orphan.events)
        h.events.append(
            NodeLogged(
                event_id="logged-1",
                execution_id="ex1",
                time=h.now,
                node="fetch",
                attempt=1,
                lines=[
                    RunnerLogLine(time=h.now, level="info", message="one"),
                    RunnerLogLine(time=h.now, level="debug", message="two"),
                ],
            )
        )
        logs = project(h).logs
        assert [line.execution_id for line in logs] == [
            *(e.execution_id for e in h.events[:-1]),
            "ex1",
            "ex1",
        ]
        last = len(h.events)  # the logged event's two lines share its seq
        assert [line.seq for line in logs] == [*range(1, last), last, last]
        logs = logs[:-2]
        assert logs[-1].message == "ignored (duplicate, late or after the end): " + (
            "node fetch queued (attempt 1, 1 input item)"
        )
        assert logs[-2].message == "ignored (duplicate, late or after the end): " + (
            "execution requested by user-1 from trigger start"
        )


class TestDeferred:
    def test_a_deferral_of_the_next_attempt_counts_and_leaves_the_node_pending(self) -> None:
        h = running()
        deferred(h, "fetch")
        assert node_after(h).status == "pending"
        line = assert_counted(h)
        assert line.message == (
            "node fetch waiting for a runner (attempt 1): user-1 has 4 nodes queued or running "
            "(their share)"
        )

    def test_a_deferral_of_an_attempt_already_made_ready_is_ignored(self) -> None:
        h = running()
        h.ready("fetch")
        before = project(h)
        deferred(h, "fetch")
        assert_ignored(h, before)

    def test_a_deferral_after_the_node_succeeded_is_ignored(self) -> None:
        h = running()
        h.run_node("fetch")
        before = project(h)
        deferred(h, "fetch", attempt=2)
        assert_ignored(h, before)


class TestReady:
    def test_a_ready_for_a_node_that_succeeded_is_ignored(self) -> None:
        h = running()
        h.run_node("fetch")
        before = project(h)
        h.ready("fetch", attempt=2)
        assert_ignored(h, before)
        assert node_after(h).status == "succeeded"

    def test_a_ready_of_the_running_attempt_again_does_not_queue_it_again(self) -> None:
        h = running()
        h.ready("fetch")
        h.node_started("fetch")
        before = project(h)
        h.ready("fetch")
        assert_ignored(h, before)
        assert node_after(h).status == "running"

    def test_a_wait_for_an_attempt_already_made_is_ignored(self) -> None:
        h = running(("start", "pause"))
        h.waiting("pause")
        before = project(h)
        h.waiting("pause")
        assert_ignored(h, before, node="pause")

    def test_a_wait_after_the_node_succeeded_is_ignored(self) -> None:
        h = running(("start", "pause"))
        h.waiting("pause")
        h.succeeded("pause")
        before = project(h)
        h.waiting("pause", attempt=2)
        assert_ignored(h, before, node="pause")


class TestRetries:
    def test_a_retry_of_an_older_attempt_is_ignored_while_the_next_one_runs(self) -> None:
        h = on_second_attempt()
        h.node_started("fetch", attempt=2)
        before = project(h)
        h.retry("fetch", attempt=1)  # recorded again, late
        assert_ignored(h, before)
        assert node_after(h).status == "running"

    def test_a_retry_of_a_node_that_never_ran_is_ignored(self) -> None:
        h = running(policies=RETRIED)
        before = project(h)
        h.retry("fetch", attempt=0)
        assert_ignored(h, before)
        assert node_after(h).status == "pending"

    def test_a_failure_of_an_older_attempt_is_ignored(self) -> None:
        h = on_second_attempt()
        h.node_started("fetch", attempt=2)
        before = project(h)
        h.failed("fetch", attempt=1, message="again", acted_on=False)
        assert_ignored(h, before)

    def test_a_runner_failure_after_the_end_began_is_ignored_and_says_so(self) -> None:
        h = running()
        h.ready("fetch")
        h.node_started("fetch")
        h.cancel_requested()
        before = project(h)
        h.failed("fetch", acted_on=False)
        assert_ignored(h, before)


def ended_as(status: str) -> History:
    h = running()
    h.ready("fetch")
    h.node_started("fetch")
    if status == "succeeded":
        h.succeeded("fetch")
    else:
        h.failed("fetch")
    return h


class TestSkipsAndCancels:
    @pytest.mark.parametrize("done", ["succeeded", "failed"])
    def test_a_skip_of_a_node_that_ended_is_ignored(self, done: str) -> None:
        h = ended_as(done)
        before = project(h)
        h.skipped("fetch", "execution_failed")
        assert_ignored(h, before)
        assert node_after(h).status == done

    def test_a_cancel_of_a_node_that_ended_is_ignored(self) -> None:
        h = ended_as("failed")
        before = project(h)
        h.cancelled("fetch")
        assert_ignored(h, before)
        assert node_after(h).status == "failed"

    def test_a_cancel_overrules_a_success_the_scheduler_ignored(self) -> None:
        """A success stored after another node's failure ended the run, before that failure's
        outcome: counted until the outcome, ignored by the scheduler, which cancels the node."""
        h = running()
        h.ready("fetch")
        h.ready("store")
        h.failed("store", acted_on=False)
        h.succeeded("fetch")
        h.handled("store", "fail", failed_at=h.events[-2].time)
        h.cancelled("fetch")
        row = node_after(h)
        assert (row.status, row.output) == ("cancelled", None)
        assert node_after(h, "store").status == "failed"

    def test_a_cancel_of_an_older_attempt_is_ignored(self) -> None:
        h = on_second_attempt()
        before = project(h)
        h.cancelled("fetch", attempt=1)
        assert_ignored(h, before)
        assert node_after(h).status == "queued"

    def test_a_cancel_of_the_current_attempt_counts(self) -> None:
        h = running()
        h.ready("fetch")
        h.cancelled("fetch")
        row = node_after(h)
        assert (row.status, row.finished_at) == ("cancelled", h.events[-1].time)
        assert assert_counted(h, "warning").message == "node fetch cancelled (attempt 1)"


class TestStandIns:
    def test_a_pinned_output_recorded_twice_counts_once(self) -> None:
        h = running()
        h.succeeded("fetch", attempt=0, pinned=True)
        before = project(h)
        h.succeeded("fetch", attempt=0, pinned=True, output={"main": [{"other": 1}]})
        assert_ignored(h, before)

    def test_a_pinned_output_of_a_node_already_queued_is_ignored(self) -> None:
        h = running()
        h.ready("fetch")
        before = project(h)
        h.succeeded("fetch", attempt=0, pinned=True)
        assert_ignored(h, before)


class TestStartsAndRequests:
    def test_a_second_start_is_ignored_and_says_so(self) -> None:
        h = running()
        h.run_node("start")
        before = project(h)
        h.started(["start", "other"])
        assert_ignored(h, before, node="start")
        assert (h.execution_id, "other") not in project(h).nodes

    def test_the_plans_rows_are_stamped_with_the_start_events_seq(self) -> None:
        h = running(("start", "fetch"))
        changes = project(h)
        assert {row.last_seq for row in changes.nodes.values()} == {2}


class TestFailuresOfOldHistories:
    def test_a_failure_is_failed_at_its_time_and_logged_as_an_error(self) -> None:
        h = History()
        h.requested()
        # A definition the fold cannot read policies from.
        h.events[0] = msgspec.structs.replace(h.events[0], workflow={"nodes": "no list"})
        h.started(["start", "fetch"], outcomes_recorded=False)
        h.ready("fetch")
        h.node_started("fetch")
        h.failed("fetch", message="down")
        changes = project(h)
        assert not changes.executions["ex1"].outcomes_recorded
        row = changes.nodes[("ex1", "fetch")]
        assert (row.status, row.finished_at) == ("failed", h.events[-1].time)
        line = assert_counted(h, "error")
        assert line.message == "node fetch failed (attempt 1): HttpServerError: down"


class TestTimes:
    def test_an_aware_time_in_another_zone_keeps_its_instant(self) -> None:
        h = History(start=datetime(2026, 1, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))))
        h.requested()
        row = project(h).executions["ex1"]
        assert row.created_at == datetime(2026, 1, 1, 12, 0, tzinfo=T0.tzinfo)
        assert row.created_at.utcoffset() == timedelta(hours=2)


class TestMessages:
    """The timeline's words for the events the other tests do not spell out."""

    def test_each_event_is_described(self) -> None:
        h = History()
        h.requested(mode="node", node="fetch", trigger=None)
        h.queued(scope="user", key="alice", limit=1)
        h.started(["fetch", "pause", "store", "pinned", "reused"])
        wait = h.waiting("pause", ms=1500)
        assert isinstance(wait, NodeWaiting)
        until = wait.until
        h.ready("fetch", input={"main": [{}, {}], "other": [{}]})
        h.node_started("fetch")
        h.succeeded("fetch", output={"main": [{"a": 1}]})
        h.succeeded("pinned", attempt=0, pinned=True)
        h.succeeded("reused", attempt=0, reused_from="ex0")
        h.ready("store")
        h.ready("store", input={"main": []})
        h.cancel_requested(reason="enough")
        h.finished("cancelled", ErrorInfo(type="Cancelled", message="by alice"))
        messages = [(line.level, line.message) for line in project(h).logs]
        assert messages == [
            ("info", "execution requested by user-1: run node fetch"),
            (
                "info",
                "execution waiting: user alice has 1 execution running (its limit); it starts "
                "when one ends",
            ),
            ("info", "execution started: 5 nodes planned"),
            ("info", f"node pause waiting until {until.isoformat()} (attempt 1)"),
            ("info", "node fetch queued (attempt 1, 3 input items)"),
            ("info", "node fetch started (attempt 1) on runner-1"),
            ("info", "node fetch succeeded (attempt 1): 1 item out"),
            ("info", "node pinned used its pinned output"),
            ("info", "node reused reused its output recorded by execution ex0"),
            ("info", "node store queued (attempt 1, 1 input item)"),
            (
                "warning",
                "ignored (duplicate, late or after the end): node store queued (attempt 1, 0 "
                "input items)",
            ),
            ("warning", "cancel requested by user-1: enough"),
            ("warning", "execution cancelled: Cancelled: by alice"),
        ]

    def test_the_optional_parts_are_left_out_when_absent(self) -> None:
        h = History()
        h.requested(trigger=None)
        h.started(["fetch"])
        h.ready("fetch")
        start = h.node_started("fetch")
        h.events[-1] = msgspec.structs.replace(start, worker="")
        h.succeeded("fetch")
        h.cancel_requested()
        h.finished("succeeded")
        messages = [line.message for line in project(h).logs]
        assert messages == [
            "execution requested by user-1",
            "execution started: 1 node planned",
            "node fetch queued (attempt 1, 1 input item)",
            "node fetch started (attempt 1)",
            "node fetch succeeded (attempt 1): 1 item out",
            "cancel requested by user-1",
            "execution succeeded",
        ]


class TestLateStarts:
    def test_a_start_stored_after_its_result_still_gives_the_start_time(self) -> None:
        h = running()
        h.ready("fetch")
        h.succeeded("fetch")  # the runner's start was published first but stored last
        start = h.node_started("fetch")
        row = node_after(h)
        assert (row.status, row.started_at) == ("succeeded", start.time)
        assert row.finished_at == h.events[-2].time
        assert assert_counted(h).message == "node fetch started (attempt 1) on runner-1"

    def test_a_start_of_an_earlier_attempt_stored_late_is_ignored(self) -> None:
        h = on_second_attempt()
        h.succeeded("fetch", attempt=2)
        before = project(h)
        h.node_started("fetch", attempt=1)
        assert_ignored(h, before)

    def test_a_second_start_of_the_running_attempt_keeps_the_first_time(self) -> None:
        h = running()
        h.ready("fetch")
        first = h.node_started("fetch")
        before = project(h)
        h.node_started("fetch")
        assert_ignored(h, before)
        assert node_after(h).started_at == first.time

    def test_a_new_attempt_has_no_start_time_until_it_starts(self) -> None:
        h = on_second_attempt()
        assert node_after(h).started_at is None
        start = h.node_started("fetch", attempt=2)
        assert node_after(h).started_at == start.time
