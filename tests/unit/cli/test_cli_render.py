"""The terminal view of an execution, from its public events: decoded, folded with the shared
history fold, and shown."""

from __future__ import annotations

from tests.unit.cli.public_events import PublicHistory

from nodedrop.cli.render import EXECUTION, ExecutionView, duration, error_text, items_text
from nodedrop.contracts.events import ErrorInfo


def test_a_successful_run_reads_line_by_line_and_sums_up() -> None:
    view = ExecutionView("ex1")
    h = PublicHistory()
    h.requested(trigger="start")
    h.started("start", "fetch")
    h.ready("start")
    h.node_started("start")
    h.succeeded("start")
    h.ready("fetch")
    h.node_started("fetch")
    h.succeeded("fetch", output={"main": [{}, {}]}, at=9)
    h.finished("succeeded")
    lines = [view.apply(e) for e in h.events]

    assert all(line is not None for line in lines)
    assert EXECUTION in str(lines[0])
    assert "trigger start" in str(lines[0])
    assert "fetch" in str(lines[7])
    assert "succeeded" in str(lines[7])
    assert "#1" in str(lines[7])
    assert "main: 2 items" in str(lines[7])
    assert view.finished
    assert view.status == "succeeded"
    assert list(view.nodes) == ["start", "fetch"]
    assert view.nodes["fetch"].seconds == 2.0

    summary = view.summary()
    assert "fetch  succeeded         1    2.00 s  main: 2 items" in summary
    assert summary.endswith("execution ex1 succeeded in 9.00 s")


def test_retries_and_failures_show_the_error_the_outcome_and_the_attempt() -> None:
    view = ExecutionView("ex1")
    h = PublicHistory()
    for public in h.running("call"):
        view.apply(public)
    # The runner's failure says nothing yet: the scheduler's outcome of it follows.
    assert view.apply(h.failed("call", 1, message="503\nmore")) is None
    handled = view.apply(h.handled("call", 1, "retry", message="503\nmore"))
    retry = view.apply(h.retry("call", 1, delay_ms=200))
    view.apply(h.ready("call", 2))
    view.apply(h.node_started("call", 2))
    assert view.apply(h.failed("call", 2)) is None
    gave_up = view.apply(h.handled("call", 2, "fail"))
    done = view.apply(h.finished("failed", ErrorInfo(type="NodeFailed", message="call")))

    assert "retrying" in str(handled)
    assert "HttpServerError: 503 (will be retried)" in str(handled)
    assert "more" not in str(handled)  # first line only
    assert "retrying" in str(retry)
    assert "attempt 2 in 200 ms" in str(retry)
    assert "failed" in str(gave_up)
    assert "HttpServerError: 503 (the execution fails)" in str(gave_up)
    assert view.nodes["call"].attempts == 2
    assert view.nodes["call"].status == "failed"
    assert view.nodes["call"].seconds == 6.0  # from the first start to the final failure
    assert "failed" in str(done)
    assert view.status == "failed"
    assert "execution ex1 failed in 11.00 s: NodeFailed: call" in view.summary()


def test_a_failure_handled_as_retry_renders_as_retrying_not_failed() -> None:
    """The view never judges a failure itself: what the scheduler recorded decides."""
    view = ExecutionView("ex1")
    h = PublicHistory()
    h.running("call")
    h.failed("call")
    h.handled("call", 1, "retry")
    lines = [view.apply(e) for e in h.events]

    assert view.nodes["call"].status == "retrying"
    assert not any(" failed " in f"{line} " for line in lines if line)
    assert "retrying" in str(lines[-1])


def test_a_lost_runner_made_again_renders_as_retrying() -> None:
    view = ExecutionView("ex1")
    h = PublicHistory()
    h.running("call")
    h.handled("call", 1, "again")
    lines = [view.apply(e) for e in h.events]

    assert view.nodes["call"].status == "retrying"
    assert "runner lost, made again" in str(lines[-1])


def test_an_older_history_is_judged_by_the_fold_with_the_recorded_policy() -> None:
    """Before outcomes were recorded (ExecutionStarted v1) a failure is read with the node's
    retry policy from the recorded definition, as the scheduler then judged it."""
    workflow = {
        "nodes": [
            {"id": "start", "type": "manual_trigger"},
            {"id": "call", "type": "noop", "retry": {"max_attempts": 3, "backoff_ms": 100}},
        ],
        "connections": [{"from": "start", "to": "call"}],
    }
    view = ExecutionView("ex1")
    h = PublicHistory()
    for public in h.running("call", workflow=workflow, v=1):
        view.apply(public)

    line = view.apply(h.failed("call"))

    assert "retrying" in str(line)
    assert "HttpServerError: 503" in str(line)
    assert view.nodes["call"].status == "retrying"


def test_a_result_stored_after_the_end_began_is_not_shown() -> None:
    view = ExecutionView("ex1")
    h = PublicHistory()
    h.running("a")
    h.cancel_requested(reason="user")
    for public in h.events:
        view.apply(public)

    assert view.apply(h.succeeded("a")) is None  # a runner's result once the end began
    assert view.apply(h.succeeded("elsewhere")) is None  # no node of the plan
    assert "cancelled" in str(view.apply(h.cancelled("a")))
    assert view.nodes["a"].status == "cancelled"


def test_skips_cancels_and_unknown_events() -> None:
    view = ExecutionView("ex1")
    h = PublicHistory()
    view.apply(h.requested())
    view.apply(h.started("a", "b"))
    assert "no_input" in str(view.apply(h.skipped("a", "no_input")))
    assert "cancelling" in str(view.apply(h.cancel_requested(reason="user")))
    assert "cancelled" in str(view.apply(h.cancelled("b")))
    newer = {**h.events[-1], "type": "NodeSomethingNew", "seq": 6}
    assert "NodeSomethingNew" in str(view.apply(newer))
    assert view.apply({**newer, "type": "ExecutionSomethingNew", "node": None}) is None
    assert [s.status for s in view.nodes.values()] == ["skipped", "cancelled"]
    assert not view.finished
    assert "unfinished" in view.summary()


def test_colors_only_when_asked() -> None:
    h = PublicHistory()
    h.requested()
    h.finished("succeeded")
    plain, colored = ExecutionView("ex1"), ExecutionView("ex1", color=True)
    for public in h.events:
        last_plain, last_colored = plain.apply(public), colored.apply(public)
    assert "\x1b[" not in str(last_plain)
    assert "\x1b[32msucceeded\x1b[0m" in str(last_colored)


def test_helpers() -> None:
    assert duration(None) == "-"
    assert duration(0.0) == "<1 ms"
    assert duration(0.0123) == "12 ms"
    assert duration(1.5) == "1.50 s"
    assert duration(125) == "2m 05s"
    assert error_text({"type": "X"}) == "X"
    assert error_text(None) == ""
    assert items_text(None) == ""


def test_a_run_queued_for_a_limit_says_what_it_waits_for() -> None:
    view = ExecutionView("ex1")
    h = PublicHistory()
    view.apply(h.requested(trigger="start"))
    line = view.apply(h.queued(key="wf-9", limit=2))
    assert "waiting" in str(line)
    assert "workflow wf-9: 2 running (its limit)" in str(line)
    assert not view.finished
    assert "started" in str(view.apply(h.started("start")))
