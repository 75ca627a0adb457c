"""The scheduler core's parent/child bookkeeping for ``execute_workflow`` nodes.

A small world of several executions plays the stream: every decision is recorded into the
history of the execution it names (a child's request lands in the child's, a child's end report
in its parent's), inputs come back to the core in an order the test (or hypothesis) picks, and a
scripted runner answers ready attempts: ``execute_workflow`` with ``WorkflowCalled`` for the
saved workflows it knows, ``stop_and_error`` with a failure, anything else passes its items on.
"""

from __future__ import annotations

import io
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodedrop.cli.audit import AuditRequest, report
from nodedrop.contracts import ids
from nodedrop.contracts.events import (
    INPUT_EVENT_TYPES,
    ChildExecutionFinished,
    ChildExecutionStarted,
    ErrorInfo,
    Event,
    ExecutionCancelRequested,
    ExecutionFinished,
    ExecutionRequested,
    NodeFailed,
    NodeReady,
    NodeStarted,
    NodeSucceeded,
    WorkflowCalled,
)
from nodedrop.contracts.items import Item
from nodedrop.contracts.nodetypes import passthrough_items
from nodedrop.contracts.routing import child_execution_id, slot_of
from nodedrop.scheduler.core import ExecutionState, evolve, resume, step, tick
from nodedrop.scheduler.core.calls import ERROR_WORKFLOW_NODE, PARENT_STOPPED, final_output
from nodedrop.scheduler.core.replay import verify

from .harness import T0, n, wf
from .test_history_fold_agrees import assert_agrees

CHILD = wf(
    [n("ct", "manual_trigger"), n("double", "set", parameters={"values": {"seen": True}})],
    [("ct", "double")],
)
FAILING_CHILD = wf([n("ct", "manual_trigger"), n("boom", "stop_and_error")], [("ct", "boom")])
#: An error workflow that fails, and names itself as its own error workflow.
SELF_HANDLING = {**FAILING_CHILD, "settings": {"error_workflow_id": "self_handling"}}
SAVED = {"child": CHILD, "failing": FAILING_CHILD, "self_handling": SELF_HANDLING}


def parent(mode: str, *, workflow_id: str = "child", **node: Any) -> dict[str, Any]:
    parameters = {"workflow_id": workflow_id, "trigger": "ct", "mode": mode}
    parameters.update(node.pop("parameters", {}))
    return wf(
        [
            n("t", "manual_trigger"),
            n("call", "execute_workflow", parameters=parameters, **node),
            n("after", "noop"),
        ],
        [("t", "call"), ("call", "after")],
    )


#: Picks which waiting input the stream delivers next (index into the waiting list).
Picker = Callable[[int], int]


@dataclass
class World:
    """Every execution's history and state. Recorded inputs come back to the core in stream
    order (``stream``); ready attempts (``tasks``) are run by the scripted runner in any order."""

    now: Any = T0
    states: dict[str, ExecutionState] = field(default_factory=dict)
    histories: dict[str, list[Event]] = field(default_factory=dict)
    stream: deque[Event] = field(default_factory=deque)
    tasks: list[NodeReady] = field(default_factory=list)
    #: Most children of one node running at once, seen after any delivery.
    most_running: Counter[str] = field(default_factory=Counter)

    def request(self, workflow: dict[str, Any], items: list[Item], execution_id: str = "p1") -> str:
        self.record(
            [
                ExecutionRequested(
                    event_id=ids.execution_requested(execution_id),
                    execution_id=execution_id,
                    time=self.now,
                    workflow=workflow,
                    requested_by="alice",
                    trigger="t",
                    input=items,
                )
            ]
        )
        return execution_id

    def record(self, events: list[Event]) -> None:
        for event in events:
            history = self.histories.setdefault(event.execution_id, [])
            if any(e.event_id == event.event_id for e in history):
                continue  # the duplicate window drops it
            history.append(event)
            if isinstance(event, INPUT_EVENT_TYPES):
                self.stream.append(event)
            if isinstance(event, NodeReady):
                self.tasks.append(event)

    def deliver(self, pick: Picker = lambda waiting: 0) -> None:
        """``pick`` chooses among: 0 the stream's next input, i the runner's task i - 1."""
        choice = pick(len(self.tasks) + 1) if self.tasks else 0
        self.now += timedelta(milliseconds=1)
        if choice > 0 or not self.stream:
            self.record(self.run(self.tasks.pop(max(choice - 1, 0))))
            return
        event = self.stream.popleft()
        state, decided = step(self.states.get(event.execution_id), event, self.now)
        if state is not None:
            self.states[event.execution_id] = state
        self.record(decided)
        for node_id, node in state.nodes.items() if state is not None else ():
            if node.call is not None:
                key = f"{event.execution_id}/{node_id}"
                self.most_running[key] = max(self.most_running[key], len(node.call.running()))

    def run_all(self, pick: Picker = lambda waiting: 0, limit: int = 10_000) -> None:
        for _ in range(limit):
            if not (self.stream or self.tasks):
                return
            self.deliver(pick)
        raise AssertionError("the world did not settle")

    def run(self, task: NodeReady) -> list[Event]:
        """The scripted runner."""
        started = NodeStarted(
            event_id=ids.node_started(task.execution_id, task.node, task.attempt),
            execution_id=task.execution_id,
            time=self.now,
            node=task.node,
            attempt=task.attempt,
        )
        result: Event
        result_id = ids.node_result(task.execution_id, task.node, task.attempt)
        if task.node_type == "execute_workflow":
            params = task.parameters
            items = passthrough_items(task.input)
            each = params["mode"] == "each_item"
            result = WorkflowCalled(
                event_id=ids.workflow_called(task.execution_id, task.node, task.attempt),
                execution_id=task.execution_id,
                time=self.now,
                node=task.node,
                attempt=task.attempt,
                workflow_id=params["workflow_id"],
                workflow_version=1,
                workflow=SAVED[params["workflow_id"]],
                trigger=params.get("trigger") or "ct",
                mode=params["mode"],
                concurrency=params.get("concurrency", 1),
                inputs=[[item] for item in items] if each else [items],
            )
        elif task.node_type == "stop_and_error":
            result = NodeFailed(
                event_id=result_id,
                execution_id=task.execution_id,
                time=self.now,
                node=task.node,
                attempt=task.attempt,
                error=ErrorInfo(type="StopAndError", message="no", retryable=False),
            )
        else:
            output = [{**item, "by": task.node} for item in passthrough_items(task.input)]
            result = NodeSucceeded(
                event_id=result_id,
                execution_id=task.execution_id,
                time=self.now,
                node=task.node,
                attempt=task.attempt,
                output={"main": output},
            )
        return [started, result]

    def finished(self, execution_id: str) -> ExecutionFinished:
        return next(e for e in self.histories[execution_id] if isinstance(e, ExecutionFinished))

    def children(self, execution_id: str) -> list[str]:
        return [
            e.child
            for e in self.histories.get(execution_id, [])
            if isinstance(e, ChildExecutionStarted)
        ]

    def output_of(self, execution_id: str, node: str) -> list[Item]:
        result = next(
            e
            for e in self.histories[execution_id]
            if isinstance(e, NodeSucceeded) and e.node == node
        )
        return result.output["main"]

    def verified(self) -> None:
        """Every history replays to the decisions it recorded, and the notifier's projection
        of it agrees with the core."""
        for execution_id, history in self.histories.items():
            result = verify(list(enumerate(history, 1)))
            assert result.ok, (execution_id, [str(d) for d in result.differences])
            if isinstance(history[0], ExecutionRequested):  # not a cancel of a lost request
                projection_agrees(execution_id, history)


def test_wait_mode_outputs_the_childs_final_output_and_links_both_ways() -> None:
    world = World()
    world.request(parent("wait"), [{"a": 1}, {"a": 2}])
    world.run_all()
    assert world.finished("p1").status == "succeeded"
    [child] = world.children("p1")
    assert child == child_execution_id("p1", "call", 1, 0)
    assert slot_of(child) == slot_of("p1")  # one partition: one atomic batch
    request = world.histories[child][0]
    assert isinstance(request, ExecutionRequested)
    assert (request.parent_execution, request.parent_node, request.depth) == ("p1", "call", 1)
    assert request.requested_by == "alice"
    assert request.report_to_parent
    assert request.input == [{"a": 1, "by": "t"}, {"a": 2, "by": "t"}]
    assert world.finished(child).status == "succeeded"
    # The child's terminal node's output is the call's output.
    assert world.output_of("p1", "call") == world.output_of(child, "double")
    assert world.output_of("p1", "call") == [
        {"a": 1, "by": "double"},
        {"a": 2, "by": "double"},
    ]
    reports = [e for e in world.histories["p1"] if isinstance(e, ChildExecutionFinished)]
    assert [(r.child, r.status) for r in reports] == [(child, "succeeded")]
    world.verified()


def test_fire_and_forget_outputs_the_child_id_at_once_and_reports_nothing_back() -> None:
    world = World()
    world.request(parent("fire_and_forget"), [{"a": 1}])
    # Deliver the parent's events first: it finishes before its child even starts.
    world.run_all(pick=lambda waiting: 0)
    [child] = world.children("p1")
    assert world.output_of("p1", "call") == [{"execution_id": child, "workflow_id": "child"}]
    assert world.finished("p1").status == "succeeded"
    assert world.finished(child).status == "succeeded"
    assert not any(isinstance(e, ChildExecutionFinished) for e in world.histories["p1"])
    world.verified()


def test_each_item_keeps_item_order_and_the_concurrency_limit() -> None:
    world = World()
    items = [{"i": i} for i in range(5)]
    world.request(parent("each_item", parameters={"concurrency": 2}), items)
    world.run_all(pick=lambda waiting: waiting - 1)  # newest task first: out of item order
    assert world.finished("p1").status == "succeeded"
    assert len(world.children("p1")) == 5
    assert world.most_running["p1/call"] == 2
    assert world.output_of("p1", "call") == [{"i": i, "by": "double"} for i in range(5)]
    world.verified()


def test_a_failed_child_fails_the_node_under_on_error_and_stops_its_siblings() -> None:
    world = World()
    items = [{"i": i} for i in range(3)]
    workflow = parent("each_item", workflow_id="failing", parameters={"concurrency": 3})
    world.request(workflow, items)
    world.run_all()
    finished = world.finished("p1")
    assert finished.status == "failed"
    assert finished.error is not None
    assert finished.error.type == "ChildExecutionFailed"
    children = world.children("p1")
    statuses = sorted(world.finished(c).status for c in children)
    # The first child's failure fails the node; the others are cancelled by the parent.
    assert statuses[0] == "cancelled" or statuses.count("failed") == 3
    assert "failed" in statuses
    world.verified()


def test_a_failed_child_under_continue_lets_the_parent_go_on() -> None:
    world = World()
    world.request(parent("wait", workflow_id="failing", on_error="continue"), [{"a": 1}])
    world.run_all()
    assert world.finished("p1").status == "partial"
    world.verified()


def test_cancelling_the_parent_cancels_its_waiting_child() -> None:
    world = World()
    world.request(parent("wait"), [{"a": 1}])
    # Run until the child is requested, then cancel the parent before the child runs.
    while not world.children("p1"):
        world.deliver()
    world.record(
        [
            ExecutionCancelRequested(
                event_id=ids.cancel_requested("p1"),
                execution_id="p1",
                time=world.now,
                requested_by="alice",
            )
        ]
    )
    world.stream = deque(sorted(world.stream, key=lambda e: e.execution_id == "p1", reverse=True))
    world.run_all()
    [child] = world.children("p1")
    assert world.finished("p1").status == "cancelled"
    cancels = [e for e in world.histories[child] if isinstance(e, ExecutionCancelRequested)]
    assert [c.reason for c in cancels] == [PARENT_STOPPED]
    assert world.finished(child).status == "cancelled"
    world.verified()


def test_a_timeout_of_the_waiting_node_cancels_its_child() -> None:
    world = World()
    world.request(parent("wait", timeout_ms=1000), [{"a": 1}])
    while not world.children("p1"):
        world.deliver()
    world.stream = deque(e for e in world.stream if e.execution_id == "p1")
    world.run_all()  # the child's request is held back: it has not started
    world.now += timedelta(seconds=5)
    world.record(tick(world.states["p1"], world.now))  # the timeout, proposed
    world.run_all()
    [child] = world.children("p1")
    assert world.finished("p1").status == "failed"
    assert world.finished("p1").error.type == "NodeTimeout"  # type: ignore[union-attr]
    assert any(
        isinstance(e, ExecutionCancelRequested) and e.reason == PARENT_STOPPED
        for e in world.histories[child]
    )
    world.verified()


def test_a_rebuilt_parent_never_starts_a_child_twice() -> None:
    world = World()
    world.request(parent("each_item", parameters={"concurrency": 2}), [{"i": i} for i in range(4)])
    while len(world.children("p1")) < 2:
        world.deliver()
    rebuilt = None
    for event in world.histories["p1"]:
        rebuilt = evolve(rebuilt, event)
    assert rebuilt is not None
    again = resume(rebuilt, world.now + timedelta(hours=3))
    assert not [e for e in again if isinstance(e, ExecutionRequested)]


def test_final_output_is_the_terminal_nodes_main_items_in_plan_order() -> None:
    world = World()
    branches = wf(
        [n("t", "manual_trigger"), n("a", "noop"), n("b", "noop")],
        [("t", "a"), ("t", "b")],
    )
    world.request(branches, [{"x": 1}])
    world.run_all()
    assert final_output(world.states["p1"]) == [{"x": 1, "by": "a"}, {"x": 1, "by": "b"}]


PROPERTY = settings(
    max_examples=settings().max_examples * 3,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@PROPERTY
@given(
    items=st.integers(0, 6),
    concurrency=st.integers(1, 4),
    failing=st.booleans(),
    order=st.lists(st.integers(0, 1000), min_size=200, max_size=200),
)
def test_each_item_bookkeeping_holds_in_any_delivery_order(
    items: int, concurrency: int, failing: bool, order: list[int]
) -> None:
    """Whatever order the stream delivers the executions' inputs in: every child is requested
    once, at most ``concurrency`` run at once, the parent ends, a success gathers the outputs in
    item order, and every history (parent and children) replays to what it recorded."""
    world = World()
    workflow_id = "failing" if failing else "child"
    workflow = parent("each_item", workflow_id=workflow_id, parameters={"concurrency": concurrency})
    world.request(workflow, [{"i": i} for i in range(items)])
    choices = iter(order)
    world.run_all(pick=lambda waiting: next(choices, 0) % waiting)
    finished = world.finished("p1")
    requests = [e for h in world.histories.values() for e in h if isinstance(e, ExecutionRequested)]
    assert len({r.execution_id for r in requests}) == len(requests)
    assert world.most_running["p1/call"] <= concurrency
    if failing and items:
        assert finished.status == "failed"
    else:
        assert finished.status == "succeeded"
    if items and not failing:
        assert world.output_of("p1", "call") == [{"i": i, "by": "double"} for i in range(items)]
    for child in world.children("p1"):
        world.finished(child)  # every child ended, none left waiting
    world.verified()


def projection_agrees(execution_id: str, history: list[Event]) -> None:
    """The one fold of a history says what the core says wherever the scheduler has answered
    (as tests/unit/scheduler/test_history_fold_agrees.py checks for flat executions)."""
    assert_agrees(history)


def test_audit_shows_the_tree_and_verifies_every_history_in_it() -> None:
    world = World()
    world.request(parent("each_item", parameters={"concurrency": 2}), [{"i": 0}, {"i": 1}])
    world.run_all()
    tree = {i: list(enumerate(h, 1)) for i, h in world.histories.items()}
    out = io.StringIO()
    assert report(AuditRequest("p1", verify=True), tree["p1"], out, tree) == 0
    shown = out.getvalue()
    first, second = world.children("p1")
    assert f"  p1 succeeded  verified\n    call -> {first} succeeded  verified\n" in shown
    assert f"    call -> {second} succeeded  verified" in shown
    # A child's decision altered: the tree's verification fails and names it.
    history = tree[first]
    at = next(i for i, (_, e) in enumerate(history) if isinstance(e, ExecutionFinished))
    seq, end = history[at]
    history[at] = (seq, msgspec.structs.replace(end, status="failed"))
    out = io.StringIO()
    assert report(AuditRequest("p1", verify=True), tree["p1"], out, tree) == 1
    assert f"{first}: seq {seq}: ExecutionFinished: changed" in out.getvalue()


def failing_workflow(error_workflow_id: str) -> dict[str, Any]:
    workflow = wf([n("t", "manual_trigger"), n("boom", "stop_and_error")], [("t", "boom")])
    return {**workflow, "settings": {"error_workflow_id": error_workflow_id}}


def requests(world: World) -> dict[str, ExecutionRequested]:
    return {
        e.execution_id: e
        for history in world.histories.values()
        for e in history
        if isinstance(e, ExecutionRequested)
    }


def test_a_failed_execution_starts_its_error_workflow_once_with_what_failed() -> None:
    world = World()
    world.request(failing_workflow("child"), [{}])
    world.run_all()
    assert world.finished("p1").status == "failed"
    handler = child_execution_id("p1", ERROR_WORKFLOW_NODE, 0, 0)
    request = requests(world)[handler]
    assert request.error_handler
    assert (request.parent_execution, request.requested_by) == ("p1", "alice")
    assert request.input == [
        {
            "execution_id": "p1",
            "workflow_id": None,
            "workflow_name": "test",
            "status": "failed",
            "node": "boom",
            "error": {"type": "StopAndError", "message": "no"},
            "link": "/api/executions/p1",
        }
    ]
    assert world.finished(handler).status == "succeeded"
    # The handler started the error workflow (fire and forget) with that item as its input.
    [error_run] = world.children(handler)
    assert requests(world)[error_run].error_handler
    assert requests(world)[error_run].input == [{**request.input[0], "by": "failure"}]
    assert world.finished(error_run).status == "succeeded"
    # A rebuild of the failed execution starts nothing again.
    rebuilt = None
    for event in world.histories["p1"]:
        rebuilt = evolve(rebuilt, event)
    assert rebuilt is not None
    assert resume(rebuilt, world.now) == []
    world.verified()


def test_an_error_workflows_own_failure_starts_no_error_workflow() -> None:
    world = World()
    world.request(failing_workflow("self_handling"), [{}])
    world.run_all()
    # The failed run, its handler and the error workflow's run, which failed: nothing more.
    assert len(requests(world)) == 3
    handler = child_execution_id("p1", ERROR_WORKFLOW_NODE, 0, 0)
    [error_run] = world.children(handler)
    assert world.finished(error_run).status == "failed"
    world.verified()


def test_a_succeeded_execution_starts_no_error_workflow() -> None:
    world = World()
    world.request({**parent("wait"), "settings": {"error_workflow_id": "child"}}, [{}])
    world.run_all()
    assert world.finished("p1").status == "succeeded"
    assert len(requests(world)) == 2  # the parent and its child


def test_a_lost_runner_after_the_call_makes_the_call_again() -> None:
    """A runner that finds the call's attempt claimed (after a nats-server crash) records
    RunnerLost under the attempt's result id. The first result of an attempt wins, as for any
    node: the attempt's child is cancelled and the next attempt calls again."""
    world = World()
    world.request(parent("wait"), [{"a": 1}])
    while not world.children("p1"):
        world.deliver()
    lost = NodeFailed(
        event_id=ids.node_result("p1", "call", 1),
        execution_id="p1",
        time=world.now,
        node="call",
        attempt=1,
        error=ErrorInfo(type="RunnerLost", message="claimed before", retryable=True),
    )
    world.record([lost])
    world.stream = deque(sorted(world.stream, key=lambda e: e.execution_id == "p1", reverse=True))
    world.run_all()
    assert world.finished("p1").status == "succeeded"
    first, second = world.children("p1")
    assert world.finished(first).status == "cancelled"
    assert world.finished(second).status == "succeeded"
    world.verified()
