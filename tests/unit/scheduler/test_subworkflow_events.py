"""The events a parent's scheduler records for *other* executions, field for field: a child's
request, the cancel of a child it stops waiting for, a child's report of its end, the request of
an error workflow's handler.

tests/unit/scheduler/test_subworkflows.py checks what these make happen; here each event is
compared whole with the one it must be, so a field left out, emptied or taken from the wrong
place fails (found by mutation testing, docs/reliability.md).
"""

from __future__ import annotations

from collections import deque
from datetime import timedelta
from typing import Any

import pytest

from nodedrop.contracts import ids
from nodedrop.contracts.events import (
    SCHEDULER_ACTOR,
    ChildExecutionFinished,
    ChildExecutionStarted,
    ErrorInfo,
    ExecutionCancelRequested,
    ExecutionRequested,
    NodeFailed,
)
from nodedrop.contracts.items import Item
from nodedrop.contracts.routing import child_execution_id
from nodedrop.scheduler.core import tick

from .harness import n, wf
from .test_subworkflows import CHILD, SAVED, World, parent

TRACE = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}


def request_parent(
    world: World, workflow: dict[str, Any], items: list[Item], *, error_handler: bool = False
) -> None:
    """A parent that is itself a child (depth 1), with a trace context to pass on."""
    world.record(
        [
            ExecutionRequested(
                event_id=ids.execution_requested("p1"),
                execution_id="p1",
                time=world.now,
                workflow=workflow,
                requested_by="alice",
                trigger="t",
                input=items,
                trace_context=TRACE,
                depth=1,
                error_handler=error_handler,
            )
        ]
    )


def of_type(world: World, execution_id: str, kind: type[Any]) -> list[Any]:
    return [e for e in world.histories[execution_id] if isinstance(e, kind)]


def started_children(world: World) -> list[ChildExecutionStarted]:
    return of_type(world, "p1", ChildExecutionStarted)


def test_each_childs_request_is_the_called_workflow_run_for_the_parent() -> None:
    world = World()
    items = [{"i": 0}, {"i": 1}]
    workflow = parent("each_item", parameters={"concurrency": 1})
    request_parent(world, workflow, items, error_handler=True)
    world.run_all()
    assert world.finished("p1").status == "succeeded"
    started = started_children(world)
    assert [(s.attempt, s.index) for s in started] == [(1, 0), (1, 1)]
    for note, item in zip(started, items, strict=True):
        child = child_execution_id("p1", "call", 1, note.index)
        assert note.child == child
        assert note.event_id == ids.child_started("p1", "call", 1, note.index)
        assert world.histories[child][0] == ExecutionRequested(
            event_id=ids.execution_requested(child),
            execution_id=child,
            time=note.time,  # decided in the same step as the parent's note of it
            workflow=CHILD,
            requested_by="alice",
            trigger="ct",
            input=[{**item, "by": "t"}],
            workflow_id="child",
            workflow_version=1,
            trace_context=TRACE,
            parent_execution="p1",
            parent_node="call",
            parent_attempt=1,
            child_index=note.index,
            report_to_parent=True,
            depth=2,
            error_handler=True,  # a handler's children start no error workflow either
        )


def test_a_fire_and_forget_childs_request_asks_for_no_report() -> None:
    world = World()
    request_parent(world, parent("fire_and_forget"), [{"a": 1}])
    world.run_all()
    [note] = started_children(world)
    request = world.histories[note.child][0]
    assert isinstance(request, ExecutionRequested)
    assert (request.report_to_parent, request.error_handler) == (False, False)
    assert not of_type(world, "p1", ChildExecutionFinished)


def test_each_child_reports_its_end_to_the_attempt_and_index_that_started_it() -> None:
    """A lost runner ends the call's first attempt: its child is cancelled and reports
    ``cancelled`` (the parent ignores it); the second attempt's children report their ends,
    with their final output."""
    world = World()
    request_parent(world, parent("each_item", parameters={"concurrency": 2}), [{"i": 0}, {"i": 1}])
    while not world.children("p1"):
        world.deliver()
    lost = ErrorInfo(type="RunnerLost", message="claimed before", retryable=True)
    world.record(
        [
            NodeFailed(
                event_id=ids.node_result("p1", "call", 1),
                execution_id="p1",
                time=world.now,
                node="call",
                attempt=1,
                error=lost,
            )
        ]
    )
    world.stream = deque(sorted(world.stream, key=lambda e: e.execution_id == "p1", reverse=True))
    world.run_all()
    assert world.finished("p1").status == "succeeded"
    started = started_children(world)
    assert [(s.attempt, s.index) for s in started] == [(1, 0), (1, 1), (2, 0), (2, 1)]
    reports = {r.child: r for r in of_type(world, "p1", ChildExecutionFinished)}
    assert len(reports) == 4
    for note in started:
        assert note.event_id == ids.child_started("p1", "call", note.attempt, note.index)
        end = world.finished(note.child)
        status = "cancelled" if note.attempt == 1 else "succeeded"
        assert end.status == status
        output = world.output_of(note.child, "double") if status == "succeeded" else []
        assert reports[note.child] == ChildExecutionFinished(
            event_id=ids.child_finished("p1", note.child),
            execution_id="p1",
            time=end.time,  # recorded with the child's end
            node="call",
            attempt=note.attempt,
            index=note.index,
            child=note.child,
            status=status,
            output=output,
            error=None,
        )
    # The first attempt's children were cancelled by the parent, which stopped waiting.
    for note in started[:2]:
        [cancel] = of_type(world, note.child, ExecutionCancelRequested)
        assert cancel == ExecutionCancelRequested(
            event_id=ids.parent_cancel(note.child),
            execution_id=note.child,
            time=cancel.time,
            requested_by=SCHEDULER_ACTOR,
            reason="parent_stopped",
        )
        assert cancel.time in {e.time for e in world.histories["p1"]}  # decided by the parent


def test_a_failed_child_reports_its_error_and_no_output(monkeypatch: pytest.MonkeyPatch) -> None:
    """Even when one of its last nodes delivered before another failed."""
    branches = wf(
        [n("ct", "manual_trigger"), n("fine", "noop"), n("boom", "stop_and_error")],
        [("ct", "fine"), ("ct", "boom")],
    )
    monkeypatch.setitem(SAVED, "branches", branches)
    world = World()
    request_parent(world, parent("wait", workflow_id="branches"), [{"a": 1}])
    world.run_all()
    [note] = started_children(world)
    end = world.finished(note.child)
    assert end.status == "failed"
    assert end.error is not None
    assert world.output_of(note.child, "fine")  # delivered before the failure ended the child
    [report] = of_type(world, "p1", ChildExecutionFinished)
    assert (report.status, report.output, report.error) == ("failed", [], end.error)


def test_a_child_request_made_by_hand_without_a_parent_node_reports_to_nobody() -> None:
    """A report needs ``report_to_parent``, a parent execution and a parent node, each: a
    request missing one (made by hand; the scheduler always sets all three) reports nothing."""
    for missing in ("parent_execution", "parent_node"):
        world = World()
        fields: dict[str, Any] = {"parent_execution": "p0", "parent_node": "call"}
        fields[missing] = None
        world.record(
            [
                ExecutionRequested(
                    event_id=ids.execution_requested("c1"),
                    execution_id="c1",
                    time=world.now,
                    workflow=wf([n("t", "manual_trigger")], []),
                    requested_by="alice",
                    trigger="t",
                    report_to_parent=True,
                    **fields,
                )
            ]
        )
        world.run_all()
        assert world.finished("c1").status == "succeeded"
        assert set(world.histories) == {"c1"}, missing


def failing(error_workflow_id: str | None, **settings: Any) -> dict[str, Any]:
    workflow = wf([n("t", "manual_trigger"), n("boom", "stop_and_error")], [("t", "boom")])
    if error_workflow_id is not None:
        settings["error_workflow_id"] = error_workflow_id
    return {**workflow, "settings": settings}


HANDLER_WORKFLOW = {
    "name": "error workflow child",
    "nodes": [
        {"id": "failure", "type": "error_trigger"},
        {
            "id": "run_error_workflow",
            "type": "execute_workflow",
            "parameters": {"workflow_id": "child", "mode": "fire_and_forget"},
        },
    ],
    "connections": [{"from": "failure", "to": "run_error_workflow"}],
}


def handler_request(world: World, failure: Item) -> ExecutionRequested:
    handler = child_execution_id("p1", "error_workflow", 0, 0)
    return ExecutionRequested(
        event_id=ids.execution_requested(handler),
        execution_id=handler,
        time=world.finished("p1").time,  # recorded with the failed execution's end
        workflow=HANDLER_WORKFLOW,
        requested_by="alice",
        trigger="failure",
        input=[failure],
        trace_context=TRACE,
        parent_execution="p1",
        parent_node="error_workflow",
        depth=2,
        error_handler=True,
    )


def test_a_failure_starts_a_handler_of_the_error_workflow_with_what_failed() -> None:
    world = World()
    request_parent(world, {**failing("child"), "name": "nightly"}, [{}])
    world.run_all()
    handler = child_execution_id("p1", "error_workflow", 0, 0)
    assert world.histories[handler][0] == handler_request(
        world,
        {
            "execution_id": "p1",
            "workflow_id": None,
            "workflow_name": "nightly",
            "status": "failed",
            "node": "boom",
            "error": {"type": "StopAndError", "message": "no"},
            "link": "/api/executions/p1",
        },
    )
    # The handler ran the error workflow, fire and forget.
    assert world.finished(handler).status == "succeeded"
    [error_run] = world.children(handler)
    assert world.finished(error_run).status == "succeeded"


def test_a_timed_out_execution_starts_its_error_workflow_too() -> None:
    world = World()
    request_parent(world, failing("child", timeout_ms=1000), [{}])
    world.deliver()  # started; its trigger's attempt is never run before the deadline
    world.now += timedelta(seconds=2)
    world.record(tick(world.states["p1"], world.now))
    world.run_all()
    assert world.finished("p1").status == "timed_out"
    handler = child_execution_id("p1", "error_workflow", 0, 0)
    assert world.histories[handler][0] == handler_request(
        world,
        {
            "execution_id": "p1",
            "workflow_id": None,
            "workflow_name": "test",
            "status": "timed_out",
            "node": None,  # no node failed: the running one was cancelled
            "error": {"type": "ExecutionTimeout", "message": "execution ran longer than 1000 ms"},
            "link": "/api/executions/p1",
        },
    )


def test_a_failure_without_an_error_workflow_starts_nothing() -> None:
    world = World()
    request_parent(world, failing(None, timeout_ms=5000), [{}])
    world.run_all()
    assert world.finished("p1").status == "failed"
    assert set(world.histories) == {"p1"}


def test_a_partial_child_succeeds_its_call_with_its_main_items_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A child whose last node failed under ``error_output`` ends ``partial``, which counts as
    done for the parent; that node delivers on its error port only, so the call's output (the
    terminal nodes' main items) is empty."""
    routed = wf(
        [n("ct", "manual_trigger"), n("boom", "stop_and_error", on_error="error_output")],
        [("ct", "boom")],
    )
    monkeypatch.setitem(SAVED, "routed", routed)
    world = World()
    request_parent(world, parent("wait", workflow_id="routed"), [{"a": 1}])
    world.run_all()
    [note] = started_children(world)
    assert world.finished(note.child).status == "partial"
    [report] = of_type(world, "p1", ChildExecutionFinished)
    assert (report.status, report.output) == ("partial", [])
    assert world.output_of("p1", "call") == []
    assert world.finished("p1").status == "succeeded"
