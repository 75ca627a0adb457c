"""An ``execute_workflow`` node after a crash, and how its children's ends fail it.

A parent's scheduler may crash after an input of the call was recorded and before it recorded
what it decided in answer (the next children, the node's success, the cancel of children it no
longer waits for). A scheduler rebuilt from the parent's history decides those again
(``resume``): the same events, with the same ids. Each test cuts the history at such a point.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import msgspec

from nodedrop.contracts import ids
from nodedrop.contracts.events import (
    SCHEDULER_ACTOR,
    ChildExecutionFinished,
    ChildExecutionStarted,
    ErrorInfo,
    Event,
    ExecutionCancelRequested,
    ExecutionFinished,
    ExecutionRequested,
    NodeFailed,
    NodeReady,
    NodeSucceeded,
    WorkflowCalled,
)
from nodedrop.contracts.routing import child_execution_id
from nodedrop.scheduler.core import ExecutionState, evolve, resume, step

from .test_subworkflows import World, parent


def run_until_recorded(world: World, kind: type[Event], count: int = 1) -> None:
    """Deliver until the parent's history holds ``count`` events of ``kind``, which the
    parent's scheduler has not acted on yet (they wait in the stream)."""
    while sum(isinstance(e, kind) for e in world.histories["p1"]) < count:
        world.deliver()


def rebuilt(world: World) -> ExecutionState:
    state = None
    for event in world.histories["p1"]:
        state = evolve(state, event)
    assert state is not None
    return state


def started(decisions: list[Event]) -> list[int]:
    """The child indexes the decisions start (each request and its note, alike)."""
    requests = [e.child_index for e in decisions if isinstance(e, ExecutionRequested)]
    notes = [e.index for e in decisions if isinstance(e, ChildExecutionStarted)]
    assert requests == notes
    return notes


def items(count: int) -> list[dict[str, Any]]:
    return [{"i": i} for i in range(count)]


def test_a_rebuild_after_the_call_was_recorded_starts_the_first_children() -> None:
    world = World()
    world.request(parent("each_item", parameters={"concurrency": 2}), items(3))
    run_until_recorded(world, WorkflowCalled)
    again = resume(rebuilt(world), world.now)
    assert started(again) == [0, 1]
    assert not [e for e in again if isinstance(e, NodeSucceeded)]


def test_a_rebuild_after_a_fire_and_forget_call_starts_its_child_and_succeeds() -> None:
    world = World()
    world.request(parent("fire_and_forget"), items(1))
    run_until_recorded(world, WorkflowCalled)
    again = resume(rebuilt(world), world.now)
    assert started(again) == [0]
    [done] = [e for e in again if isinstance(e, NodeSucceeded)]
    child = next(e.child for e in again if isinstance(e, ChildExecutionStarted))
    assert (done.node, done.output) == (
        "call",
        {"main": [{"execution_id": child, "workflow_id": "child"}]},
    )


def test_a_rebuild_after_a_childs_end_starts_the_next_child_only() -> None:
    world = World()
    world.request(parent("each_item", parameters={"concurrency": 2}), items(4))
    run_until_recorded(world, ChildExecutionFinished)
    again = resume(rebuilt(world), world.now)
    assert started(again) == [2]  # two started, one ended: one more may run
    assert not [e for e in again if isinstance(e, NodeSucceeded)]


def test_a_rebuild_after_the_last_childs_end_succeeds_the_node_with_their_outputs() -> None:
    world = World()
    world.request(parent("each_item", parameters={"concurrency": 2}), items(2))
    run_until_recorded(world, ChildExecutionFinished, count=2)
    again = resume(rebuilt(world), world.now)
    assert started(again) == []
    [done] = [e for e in again if isinstance(e, NodeSucceeded)]
    assert (done.node, done.attempt) == ("call", 1)
    assert done.output == {"main": [{"i": 0, "by": "double"}, {"i": 1, "by": "double"}]}
    assert [e.node for e in again if isinstance(e, NodeReady)] == ["after"]


def test_a_rebuild_after_the_call_failed_cancels_the_children_it_waited_for() -> None:
    """A lost runner ended the call's attempt while two children ran: a rebuild that lost the
    parent's answer cancels them again and makes the call again."""
    world = World()
    world.request(parent("each_item", parameters={"concurrency": 2}), items(3))
    run_until_recorded(world, ChildExecutionStarted, count=2)
    world.record([lost_runner(world)])
    first, second = world.children("p1")
    again = resume(rebuilt(world), world.now)
    cancels = [e for e in again if isinstance(e, ExecutionCancelRequested)]
    assert cancels == [
        ExecutionCancelRequested(
            event_id=ids.parent_cancel(child),
            execution_id=child,
            time=world.now,
            requested_by=SCHEDULER_ACTOR,
            reason="parent_stopped",
        )
        for child in (first, second)
    ]
    assert [(e.node, e.attempt) for e in again if isinstance(e, NodeReady)] == [("call", 2)]
    assert started(again) == []


def lost_runner(world: World) -> NodeFailed:
    return NodeFailed(
        event_id=ids.node_result("p1", "call", 1),
        execution_id="p1",
        time=world.now,
        node="call",
        attempt=1,
        error=ErrorInfo(type="RunnerLost", message="claimed before", retryable=True),
    )


def call_failure(world: World) -> ErrorInfo:
    [failed] = [e for e in world.histories["p1"] if isinstance(e, NodeFailed)]
    assert (failed.node, failed.attempt) == ("call", 1)
    # The attempt's result id: a runner's result for the attempt would be a duplicate of it.
    assert failed.event_id == ids.node_result("p1", "call", 1)
    return failed.error


def test_a_failed_child_fails_the_call_with_its_error_and_its_retryability() -> None:
    world = World()
    world.request(parent("wait", workflow_id="failing"), items(1))
    world.run_all()
    [child] = world.children("p1")
    assert call_failure(world) == ErrorInfo(
        type="ChildExecutionFailed",
        message=f"child execution {child} ended failed: StopAndError: no",
        retryable=False,  # the child's error was not retryable
    )


def cancelled_by_its_user(world: World, child: str) -> None:
    """``child``'s user asks to cancel it, and the child's events come first: it ends before it
    ran anything."""
    world.record(
        [
            ExecutionCancelRequested(
                event_id=ids.cancel_requested(child),
                execution_id=child,
                time=world.now,
                requested_by="alice",
            )
        ]
    )
    world.stream = deque(sorted(world.stream, key=lambda e: e.execution_id != child))


def test_a_child_cancelled_by_its_user_fails_the_call_as_retryable() -> None:
    world = World()
    world.request(parent("wait", retry={"max_attempts": 2, "initial_interval_ms": 0}), items(1))
    run_until_recorded(world, ChildExecutionStarted)
    [child] = world.children("p1")
    cancelled_by_its_user(world, child)
    world.run_all()
    assert world.finished(child).status == "cancelled"
    assert call_failure(world) == ErrorInfo(
        type="ChildExecutionFailed",
        message=f"child execution {child} ended cancelled",  # no error to quote
        retryable=True,
    )
    # Retryable, so the call's retry policy made it again, and the second child succeeded.
    assert world.finished("p1").status == "succeeded"
    assert len(world.children("p1")) == 2


def test_a_failed_child_fails_the_call_and_cancels_only_its_running_siblings() -> None:
    world = World()
    workflow = parent("each_item", workflow_id="failing", parameters={"concurrency": 2})
    world.request(workflow, items(3))
    run_until_recorded(world, ChildExecutionStarted, count=2)
    first, second = world.children("p1")
    failure = ErrorInfo(type="StopAndError", message="no", retryable=False)
    world.record(
        [
            ChildExecutionFinished(
                event_id=ids.child_finished("p1", first),
                execution_id="p1",
                time=world.now,
                node="call",
                attempt=1,
                index=0,
                child=first,
                status="failed",
                error=failure,
            )
        ]
    )
    world.stream = deque(e for e in world.stream if e.execution_id == "p1")  # only the parent
    world.run_all()
    assert world.finished("p1").status == "failed"
    assert call_failure(world).message == f"child execution {first} ended failed: StopAndError: no"
    cancelled = {
        e.execution_id
        for h in world.histories.values()
        for e in h
        if isinstance(e, ExecutionCancelRequested)
    }
    assert cancelled == {second}  # the one that ended is not cancelled; the third never started
    assert len(world.children("p1")) == 2


def test_call_events_naming_a_node_outside_the_plan_are_ignored() -> None:
    """As every event of the fold: a call's events for a node the plan does not have (a
    hand-made or foreign event) change nothing and decide nothing."""
    world = World()
    world.request(parent("wait"), items(1))
    run_until_recorded(world, WorkflowCalled)
    called = next(e for e in world.histories["p1"] if isinstance(e, WorkflowCalled))
    state = rebuilt(world)
    before = repr(state)
    child = child_execution_id("p1", "nope", 1, 0)
    for event in (
        msgspec.structs.replace(called, event_id="x1", node="nope"),
        ChildExecutionStarted(
            event_id="x2",
            execution_id="p1",
            time=world.now,
            node="nope",
            attempt=1,
            index=0,
            child=child,
        ),
        ChildExecutionFinished(
            event_id="x3",
            execution_id="p1",
            time=world.now,
            node="nope",
            attempt=1,
            index=0,
            child=child,
            status="succeeded",
        ),
    ):
        _, decided = step(state, event, world.now)  # folded in place
        assert decided == []
        assert repr(state) == before


def state_before(world: World, stop: Event) -> ExecutionState:
    """The parent as a rebuild from its history up to ``stop`` (excluded) makes it."""
    state = None
    for event in world.histories["p1"]:
        if event is stop:
            break
        state = evolve(state, event)
    assert state is not None
    return state


def test_a_copy_of_a_childs_report_starts_no_further_child() -> None:
    """A report delivered again (a copy past the duplicate window) is not a second end: it must
    not start one more child than the concurrency allows."""
    world = World()
    world.request(parent("each_item", parameters={"concurrency": 1}), items(3))
    world.run_all()
    reports = [e for e in world.histories["p1"] if isinstance(e, ChildExecutionFinished)]
    state = state_before(world, reports[1])  # the first report is folded, the second not yet
    copy = msgspec.structs.replace(reports[0], event_id="copy")
    assert step(state, copy, world.now)[1] == []


def test_a_siblings_report_after_the_call_failed_decides_nothing() -> None:
    """A child cancelled by its user fails the call (retryable: it waits for its retry); the
    sibling the parent cancelled then reports its end to an attempt that no longer waits."""
    world = World()
    retry = {"max_attempts": 2, "initial_interval_ms": 60_000}
    world.request(parent("each_item", parameters={"concurrency": 2}, retry=retry), items(2))
    run_until_recorded(world, ChildExecutionStarted, count=2)
    first, second = world.children("p1")
    cancelled_by_its_user(world, first)
    world.run_all()
    assert world.finished(second).status == "cancelled"
    late = next(
        e
        for e in world.histories["p1"]
        if isinstance(e, ChildExecutionFinished) and e.child == second
    )
    state = state_before(world, late)
    assert state.nodes["call"].attempt == 1  # waiting for its retry
    assert step(state, late, world.now)[1] == []


def test_a_report_to_a_running_node_that_called_nothing_is_ignored() -> None:
    """The call's attempt runs (``NodeStarted``) but its runner has not recorded the call yet:
    a report naming that node (hand-made, or from a child of nothing) changes nothing."""
    world = World()
    world.request(parent("wait"), items(1))
    run_until_recorded(world, WorkflowCalled)
    called = next(e for e in world.histories["p1"] if isinstance(e, WorkflowCalled))
    state = state_before(world, called)
    assert state.nodes["call"].status == "running"
    before = repr(state)
    child = child_execution_id("p1", "call", 1, 0)
    report = ChildExecutionFinished(
        event_id=ids.child_finished("p1", child),
        execution_id="p1",
        time=world.now,
        node="call",
        attempt=1,
        index=0,
        child=child,
        status="succeeded",
    )
    assert step(state, report, world.now)[1] == []
    assert repr(state) == before


def test_a_call_recorded_for_an_attempt_not_in_flight_is_ignored() -> None:
    world = World()
    world.request(parent("wait"), items(1))
    world.run_all()
    called = next(e for e in world.histories["p1"] if isinstance(e, WorkflowCalled))
    end = next(e for e in world.histories["p1"] if isinstance(e, ExecutionFinished))
    state = state_before(world, end)  # every node ended, the end not folded yet
    before = repr(state)
    # `after` ran (and succeeded) as a plain node: it has no call to take.
    late = msgspec.structs.replace(called, event_id="late", node="after")
    assert step(state, late, world.now)[1] == []
    assert repr(state) == before
