"""``evolve``: fold one recorded event into an execution's state.

The fold never decides anything; it only records what an event says. It is idempotent per
event: a duplicate, a late result for an old attempt, or anything after ``ExecutionFinished``
changes nothing (the first result recorded for an attempt wins). Work per event is proportional
to the node's out-degree.

For speed the state is updated in place and returned; callers own their state objects.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from nodedrop.contracts.events import (
    ChildExecutionFinished,
    ChildExecutionStarted,
    Event,
    ExecutionCancelRequested,
    ExecutionFinished,
    ExecutionQueued,
    ExecutionRequested,
    ExecutionStarted,
    FailureOutcome,
    NodeCancelled,
    NodeDeferred,
    NodeFailed,
    NodeFailureHandled,
    NodeReady,
    NodeRetryScheduled,
    NodeSkipped,
    NodeStarted,
    NodeSucceeded,
    NodeWaiting,
    WorkflowCalled,
)
from nodedrop.contracts.failures import error_output, failure_outcome
from nodedrop.contracts.workflow import Node, Workflow
from nodedrop.scheduler.core.plan import PlanError, build_plan
from nodedrop.scheduler.core.rules import NODE_TIMEOUT_GRACE_MS, failure_policy, refused_attempt
from nodedrop.scheduler.core.state import (
    IN_FLIGHT,
    TERMINAL,
    Call,
    ExecutionState,
    NodeState,
    NodeStatus,
)


def evolve(state: ExecutionState | None, event: Event) -> ExecutionState | None:
    """Fold ``event`` into ``state`` (``None`` before the execution's first event)."""
    if state is None:
        if not isinstance(event, ExecutionRequested):
            return None
        state = new_execution(event)
    elif not apply(state, event):
        return state  # (a duplicate read again does not move ``through`` back)
    state.through = event.event_id
    return state


def new_execution(request: ExecutionRequested) -> ExecutionState:
    root = request.trigger if request.mode == "trigger" else request.node
    try:
        workflow = Workflow.model_validate(request.workflow)
        if root is None:
            raise PlanError(f"the request names no {request.mode}")
        plan = build_plan(workflow, request.mode, root)
    except (ValueError, PlanError) as error:
        return ExecutionState(request.execution_id, request, None, plan_error=str(error))
    state = ExecutionState(request.execution_id, request, plan)
    state.timeout_ms = request.timeout_ms or workflow.settings.timeout_ms
    for node_id, plan_node in plan.nodes.items():
        state.nodes[node_id] = NodeState(waiting_on=plan_node.parent_count)
    state.unfinished = len(plan.nodes)
    return state


def apply(state: ExecutionState, event: Event) -> bool:
    """Fold ``event`` in place; return whether it changed anything."""
    if state.finished:
        return False
    handler = _HANDLERS.get(type(event))
    return handler(state, event) if handler is not None else False


def _execution_queued(state: ExecutionState, event: ExecutionQueued) -> bool:
    if state.started or state.queued:
        return False
    state.queued = True
    return True


def _execution_started(state: ExecutionState, event: ExecutionStarted) -> bool:
    if state.started:
        return False
    state.queued = False
    state.started = True
    state.started_at = event.time
    if state.timeout_ms is not None:
        state.deadline = event.time + timedelta(milliseconds=state.timeout_ms)
    return True


def _node_deferred(state: ExecutionState, event: NodeDeferred) -> bool:
    node = state.nodes.get(event.node)
    if (
        node is None
        or node.status in TERMINAL
        or node.status in IN_FLIGHT
        or event.attempt <= node.attempt
        or state.deferred.get(event.node) == event.attempt
    ):
        return False
    state.deferred[event.node] = event.attempt
    state.set_timer(event.node, None)  # a due retry now waits for its share, not its time
    return True


def _node_ready(state: ExecutionState, event: NodeReady) -> bool:
    node = state.nodes.get(event.node)
    if node is None or node.status in TERMINAL or event.attempt <= node.attempt:
        return False
    state.deferred.pop(event.node, None)
    node.status = NodeStatus.QUEUED
    node.attempt = event.attempt
    node.input = event.input
    node.outcome, node.outcome_recorded = None, False
    node.call = None  # an earlier attempt's children were stopped when it failed
    state.set_timer(event.node, None)
    return True


def _node_waiting(state: ExecutionState, event: NodeWaiting) -> bool:
    node = state.nodes.get(event.node)
    if node is None or node.status in TERMINAL or event.attempt <= node.attempt:
        return False
    node.status = NodeStatus.RUNNING
    node.attempt = event.attempt
    node.input = event.input
    node.outcome, node.outcome_recorded = None, False
    node.started_at = event.time
    node.wait_until = event.until
    due = event.until
    timeout_ms = _plan_node(state, event.node).timeout_ms
    if timeout_ms is not None:
        due = min(due, event.time + timedelta(milliseconds=timeout_ms))
    state.set_timer(event.node, due)
    return True


def _node_started(state: ExecutionState, event: NodeStarted) -> bool:
    node = state.nodes.get(event.node)
    if node is None or node.status != NodeStatus.QUEUED or event.attempt != node.attempt:
        return False
    node.status = NodeStatus.RUNNING
    node.started_at = event.time
    timeout_ms = _plan_node(state, event.node).timeout_ms
    if timeout_ms is not None:
        grace = timedelta(milliseconds=timeout_ms + NODE_TIMEOUT_GRACE_MS)
        state.set_timer(event.node, event.time + grace)
    return True


def _node_succeeded(state: ExecutionState, event: NodeSucceeded) -> bool:
    node = state.nodes.get(event.node)
    if node is None:
        return False
    stands_in = event.pinned or event.reused_from is not None  # recorded without a run
    # The scheduler's own results (pinned or reused data, a `wait` node's wake) were applied
    # when decided, even if a cancel was already in the stream, not yet delivered to it: the
    # fold applies them alike. Runner results are inputs, taken in stream order, so none counts
    # once the execution's end began.
    decided = stands_in or node.wait_until is not None or node.call is not None
    if not (decided or state.accepts_results) or not _accepts_result(
        node, event.attempt, pinned=stands_in
    ):
        return False
    node.status = NodeStatus.SUCCEEDED
    node.output = event.output
    node.error = None
    state.set_timer(event.node, None)
    _finish_node(state, event.node)
    return True


def _node_failed(state: ExecutionState, event: NodeFailed) -> bool:
    node = state.nodes.get(event.node)
    if node is None or not state.accepts_results:
        return False
    if refused_attempt(node, event.attempt, event.error):
        node.attempt = event.attempt  # an attempt that failed before it was made ready
    elif not _accepts_result(node, event.attempt, pinned=False):
        return False
    node.error = event.error
    node.failed_at = event.time
    state.set_timer(event.node, None)
    if state.deferred.get(event.node) == event.attempt:
        del state.deferred[event.node]  # refused when it was to be made ready at last
    policy = failure_policy(_plan_node(state, event.node))
    outcome = failure_outcome(policy, node.attempt, len(node.runner_lost), event.error)
    node.outcome_recorded = False
    if outcome == "again":
        node.outcome = "again"
        node.runner_lost += (event.attempt,)
        node.status = NodeStatus.RETRYING  # made again at once (decide.after_failure)
        return True
    if outcome == "retry":
        # The retry's due time arrives with NodeRetryScheduled.
        node.outcome = "retry"
        node.status = NodeStatus.RETRYING
        return True
    node.outcome = _ON_ERROR_OUTCOME.get(policy.on_error, "fail")
    node.status = NodeStatus.FAILED
    if policy.on_error == "fail":
        state.failure = event.error
        node.output = None
    else:
        state.tolerated_failures += 1
        node.output = (
            error_output(node.input, event.error) if policy.on_error == "error_output" else None
        )
    _finish_node(state, event.node)
    return True


#: A failure for good's recorded outcome under each ``on_error``.
_ON_ERROR_OUTCOME: dict[str, FailureOutcome] = {
    "fail": "fail",
    "continue": "continue",
    "error_output": "error_output",
}


def _failure_handled(state: ExecutionState, event: NodeFailureHandled) -> bool:
    # The scheduler's record of what the fold judged above; it changes nothing else.
    node = state.nodes.get(event.node)
    if node is None or node.outcome_recorded or event.attempt != node.attempt:
        return False
    node.outcome_recorded = True
    return True


def _workflow_called(state: ExecutionState, event: WorkflowCalled) -> bool:
    # The runner's answer to the attempt, like a result: counts only for the current attempt
    # while it is in flight, and not once the execution began to end.
    node = state.nodes.get(event.node)
    if (
        node is None
        or not state.accepts_results
        or not _accepts_result(node, event.attempt, pinned=False)
        or node.call is not None
    ):
        return False
    node.status = NodeStatus.RUNNING
    node.started_at = node.started_at or event.time
    node.call = Call(event)
    return True


def _child_started(state: ExecutionState, event: ChildExecutionStarted) -> bool:
    node = state.nodes.get(event.node)
    call = node.call if node is not None else None
    if call is None or call.called.attempt != event.attempt or event.index in call.started:
        return False
    call.started[event.index] = event.child
    return True


def _child_finished(state: ExecutionState, event: ChildExecutionFinished) -> bool:
    # An input, like a runner's result: it counts only while the node still waits for the
    # child, and not once the execution began to end.
    node = state.nodes.get(event.node)
    call = node.call if node is not None else None
    if (
        node is None
        or call is None
        or not state.accepts_results
        or node.status != NodeStatus.RUNNING
        or call.called.attempt != event.attempt
        or call.started.get(event.index) != event.child
        or event.index in call.finished
    ):
        return False
    call.finished[event.index] = event
    return True


def _node_retry_scheduled(state: ExecutionState, event: NodeRetryScheduled) -> bool:
    node = state.nodes.get(event.node)
    if node is None or node.status != NodeStatus.RETRYING or event.attempt != node.attempt:
        return False
    state.set_timer(event.node, event.due_at)
    return True


def _node_skipped(state: ExecutionState, event: NodeSkipped) -> bool:
    node = state.nodes.get(event.node)
    if node is None or node.status in TERMINAL:
        return False
    node.status = NodeStatus.SKIPPED
    node.skip_reason = event.reason
    state.deferred.pop(event.node, None)
    state.ending = state.ending or event.reason in ENDING_SKIP_REASONS
    state.set_timer(event.node, None)
    _finish_node(state, event.node)
    return True


def _node_cancelled(state: ExecutionState, event: NodeCancelled) -> bool:
    node = state.nodes.get(event.node)
    if node is None or node.status in TERMINAL:
        return False
    node.status = NodeStatus.CANCELLED
    state.deferred.pop(event.node, None)
    state.ending = True
    state.set_timer(event.node, None)
    _finish_node(state, event.node)
    return True


def _execution_cancel_requested(state: ExecutionState, event: ExecutionCancelRequested) -> bool:
    if state.cancel_requested:
        return False
    state.cancel_requested = True
    state.cancel_reason = event.reason
    return True


def _execution_finished(state: ExecutionState, event: ExecutionFinished) -> bool:
    state.finished = True
    state.final_status = event.status
    return True


_HANDLERS: dict[type[Event], Callable[[ExecutionState, Any], bool]] = {
    ExecutionQueued: _execution_queued,
    ExecutionStarted: _execution_started,
    NodeDeferred: _node_deferred,
    NodeReady: _node_ready,
    NodeWaiting: _node_waiting,
    NodeStarted: _node_started,
    NodeSucceeded: _node_succeeded,
    NodeFailed: _node_failed,
    NodeFailureHandled: _failure_handled,
    NodeRetryScheduled: _node_retry_scheduled,
    WorkflowCalled: _workflow_called,
    ChildExecutionStarted: _child_started,
    ChildExecutionFinished: _child_finished,
    NodeSkipped: _node_skipped,
    NodeCancelled: _node_cancelled,
    ExecutionCancelRequested: _execution_cancel_requested,
    ExecutionFinished: _execution_finished,
}


#: Skips that only the ending of an execution decides.
ENDING_SKIP_REASONS = frozenset({"cancelled", "timed_out", "execution_failed"})


def _accepts_result(node: NodeState, attempt: int, *, pinned: bool) -> bool:
    if pinned:
        # Pinned data stands in for a run: recorded once, while the node is still pending.
        return node.status == NodeStatus.PENDING and node.waiting_on == 0 and attempt == 0
    return node.status in IN_FLIGHT and attempt == node.attempt


def _finish_node(state: ExecutionState, node_id: str) -> None:
    state.unfinished -= 1
    assert state.plan is not None
    for child in state.plan.nodes[node_id].children:
        state.nodes[child].waiting_on -= 1


def _plan_node(state: ExecutionState, node_id: str) -> Node:
    assert state.plan is not None
    return state.plan.nodes[node_id].node
