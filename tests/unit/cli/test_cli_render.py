"""The terminal view of an execution, from its public events."""

from __future__ import annotations

from typing import Any

from nodedrop.cli.render import EXECUTION, ExecutionView, duration, error_text, items_text

T0 = "2026-11-26T10:00:00.000Z"


def event(
    seq: int, kind: str, node: str | None = None, attempt: int | None = None, **data: Any
) -> dict[str, Any]:
    return {
        "seq": seq,
        "type": kind,
        "time": f"2026-11-26T10:00:{seq:02d}.000Z",
        "execution_id": "ex1",
        "node": node,
        "attempt": attempt,
        "data": data,
    }


def test_a_successful_run_reads_line_by_line_and_sums_up() -> None:
    view = ExecutionView("ex1")
    events = [
        event(1, "ExecutionRequested", trigger="start"),
        event(2, "ExecutionStarted", plan=["start", "fetch"]),
        event(3, "NodeReady", "start", 1),
        event(4, "NodeStarted", "start", 1),
        event(5, "NodeSucceeded", "start", 1, output={"main": [{}]}),
        event(6, "NodeReady", "fetch", 1),
        event(7, "NodeStarted", "fetch", 1),
        event(9, "NodeSucceeded", "fetch", 1, output={"main": [{}, {}]}),
        event(10, "ExecutionFinished", status="succeeded"),
    ]
    lines = [view.apply(e) for e in events]

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


def test_retries_and_failures_show_the_error_and_the_attempt() -> None:
    view = ExecutionView("ex1")
    view.apply(event(1, "ExecutionStarted", plan=["call"]))
    view.apply(event(2, "NodeStarted", "call", 1))
    failed = view.apply(
        event(3, "NodeFailed", "call", 1, error={"type": "HttpServerError", "message": "503\nmore"})
    )
    retry = view.apply(event(4, "NodeRetryScheduled", "call", 1, delay_ms=200))
    view.apply(event(5, "NodeStarted", "call", 2))
    view.apply(
        event(6, "NodeFailed", "call", 2, error={"type": "HttpServerError", "message": "503"})
    )
    done = view.apply(
        event(
            7, "ExecutionFinished", status="failed", error={"type": "NodeFailed", "message": "call"}
        )
    )

    assert "HttpServerError: 503" in str(failed)
    assert "more" not in str(failed)  # first line only
    assert "retrying" in str(retry)
    assert "attempt 2 in 200 ms" in str(retry)
    assert view.nodes["call"].attempts == 2
    assert view.nodes["call"].status == "failed"
    assert view.nodes["call"].seconds == 4.0  # from the first start to the final failure
    assert "failed" in str(done)
    assert view.status == "failed"
    assert "execution ex1 failed in 6.00 s: NodeFailed: call" in view.summary()


def test_skips_cancels_and_unknown_events() -> None:
    view = ExecutionView("ex1")
    view.apply(event(1, "ExecutionStarted", plan=["a", "b"]))
    assert "no_input" in str(view.apply(event(2, "NodeSkipped", "a", reason="no_input")))
    assert "cancelling" in str(view.apply(event(3, "ExecutionCancelRequested", reason="user")))
    assert "cancelled" in str(view.apply(event(4, "NodeCancelled", "b", 1)))
    assert "NodeSomethingNew" in str(view.apply(event(5, "NodeSomethingNew", "b", 1)))
    assert view.apply(event(6, "ExecutionSomethingNew")) is None
    assert [s.status for s in view.nodes.values()] == ["skipped", "cancelled"]
    assert not view.finished
    assert "unfinished" in view.summary()


def test_a_node_outside_the_seen_plan_is_added() -> None:
    view = ExecutionView("ex1")
    view.apply(event(8, "NodeSucceeded", "late", 1, output={"true": [], "false": [{}]}))
    assert view.nodes["late"].status == "succeeded"
    assert view.nodes["late"].detail == "true: 0 items, false: 1 item"


def test_colors_only_when_asked() -> None:
    plain = ExecutionView("ex1").apply(event(1, "ExecutionFinished", status="succeeded"))
    colored = ExecutionView("ex1", color=True).apply(
        event(1, "ExecutionFinished", status="succeeded")
    )
    assert "\x1b[" not in str(plain)
    assert "\x1b[32msucceeded\x1b[0m" in str(colored)


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
    view.apply(event(1, "ExecutionRequested", trigger="start"))
    line = view.apply(event(2, "ExecutionQueued", scope="workflow", key="wf-9", limit=2))
    assert "waiting" in str(line)
    assert "workflow wf-9: 2 running (its limit)" in str(line)
    assert not view.finished
    assert "started" in str(view.apply(event(3, "ExecutionStarted", plan=["start"])))
