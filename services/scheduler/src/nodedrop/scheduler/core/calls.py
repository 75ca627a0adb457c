"""The events of ``execute_workflow`` calls and error workflows that concern *other* executions:
a child's request, a cancel of a child, a child's report to its parent, the start of an error
workflow's handler. Pure builders; :mod:`decide` chooses when (docs/architecture.md,
"Sub-workflows").

Every one of them is for an execution in the same slot as the one deciding it
(:func:`routing.child_execution_id`), so it is recorded in the decider's atomic batch.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from nodedrop.contracts import ids
from nodedrop.contracts.events import (
    SCHEDULER_ACTOR,
    ChildExecutionFinished,
    ErrorInfo,
    ExecutionCancelRequested,
    ExecutionRequested,
    FinalStatus,
    WorkflowCalled,
)
from nodedrop.contracts.items import MAIN_PORT, Item
from nodedrop.contracts.routing import child_execution_id
from nodedrop.scheduler.core.state import ExecutionState, NodeStatus

#: ``reason`` of the cancel request a parent's scheduler records into a child it stops waiting
#: for (the parent ended, its node timed out or failed, a sibling failed).
PARENT_STOPPED = "parent_stopped"
#: Error type of an ``execute_workflow`` node whose child did not succeed.
CHILD_FAILED = "ChildExecutionFailed"
#: A child ending so counts as done for its parent (``partial``: a node failed under
#: ``continue`` or ``error_output``, and the child went on).
CHILD_SUCCEEDED = frozenset({"succeeded", "partial"})
#: An execution ending so starts its workflow's ``settings.error_workflow_id``.
ERROR_WORKFLOW_STATUSES = frozenset({"failed", "timed_out"})
#: ``parent_node`` of the execution that handles a failure (no node of the failed one).
ERROR_WORKFLOW_NODE = "error_workflow"


def child_request(
    state: ExecutionState, node_id: str, called: WorkflowCalled, index: int, now: datetime
) -> ExecutionRequested:
    """Child ``index`` of the node's call: the called definition, run as the parent's
    requester, one level deeper."""
    request = state.request
    child = child_execution_id(state.execution_id, node_id, called.attempt, index)
    return ExecutionRequested(
        event_id=ids.execution_requested(child),
        execution_id=child,
        time=now,
        workflow=called.workflow,
        requested_by=request.requested_by,
        trigger=called.trigger,
        input=called.inputs[index],
        workflow_id=called.workflow_id,
        workflow_version=called.workflow_version,
        trace_context=request.trace_context,
        parent_execution=state.execution_id,
        parent_node=node_id,
        parent_attempt=called.attempt,
        child_index=index,
        report_to_parent=called.mode != "fire_and_forget",
        depth=request.depth + 1,
        error_handler=request.error_handler,
    )


def cancel_child(child: str, now: datetime) -> ExecutionCancelRequested:
    return ExecutionCancelRequested(
        event_id=ids.parent_cancel(child),
        execution_id=child,
        time=now,
        requested_by=SCHEDULER_ACTOR,
        reason=PARENT_STOPPED,
    )


def report_to_parent(
    state: ExecutionState, status: FinalStatus, error: ErrorInfo | None, now: datetime
) -> ChildExecutionFinished | None:
    """A child's end, for the parent that waits for it (None: nobody waits)."""
    request = state.request
    if not (request.report_to_parent and request.parent_execution and request.parent_node):
        return None
    return ChildExecutionFinished(
        event_id=ids.child_finished(request.parent_execution, state.execution_id),
        execution_id=request.parent_execution,
        time=now,
        node=request.parent_node,
        attempt=request.parent_attempt,
        index=request.child_index,
        child=state.execution_id,
        status=status,
        output=final_output(state) if status in CHILD_SUCCEEDED else [],
        error=error,
    )


def final_output(state: ExecutionState) -> list[Item]:
    """A child's final output, its parent node's output: the main items of the plan's terminal
    nodes (those with no plan children) that delivered, in plan order. One last node gives
    exactly its output; parallel branches give theirs one after the other."""
    assert state.plan is not None
    items: list[Item] = []
    for node_id in state.plan.order:
        node = state.nodes[node_id]
        if not state.plan.nodes[node_id].children and node.output:
            items.extend(node.output.get(MAIN_PORT, ()))
    return items


def error_workflow_request(
    state: ExecutionState, status: FinalStatus, error: ErrorInfo | None, now: datetime
) -> ExecutionRequested | None:
    """For an execution that ended ``status`` and whose workflow names an
    ``error_workflow_id``: the request of a handler execution, a fixed two-node definition
    (:func:`error_handler_workflow`) whose ``execute_workflow`` node the runner resolves like
    any call. Its id is derived from the failed execution and it is recorded with the failed
    execution's end: once per failure, whatever restarts. Handlers and what they start start
    none themselves (``error_handler``), so error workflows never loop."""
    request = state.request
    settings = request.workflow.get("settings")
    called = settings.get("error_workflow_id") if isinstance(settings, dict) else None
    if status not in ERROR_WORKFLOW_STATUSES or not isinstance(called, str):
        return None
    if request.error_handler:
        return None
    failed_node = next((n for n, s in state.nodes.items() if s.status == NodeStatus.FAILED), None)
    failure: Item = {
        "execution_id": state.execution_id,
        "workflow_id": request.workflow_id,
        "workflow_name": request.workflow.get("name"),
        "status": status,
        "node": failed_node,
        "error": {"type": error.type, "message": error.message} if error else None,
        "link": f"/api/executions/{state.execution_id}",
    }
    handler = child_execution_id(state.execution_id, ERROR_WORKFLOW_NODE, 0, 0)
    return ExecutionRequested(
        event_id=ids.execution_requested(handler),
        execution_id=handler,
        time=now,
        workflow=error_handler_workflow(called),
        requested_by=request.requested_by,
        trigger="failure",
        input=[failure],
        trace_context=request.trace_context,
        parent_execution=state.execution_id,
        parent_node=ERROR_WORKFLOW_NODE,
        depth=request.depth + 1,
        error_handler=True,
    )


def error_handler_workflow(error_workflow_id: str) -> dict[str, Any]:
    """The handler an error workflow is started through (see :func:`error_workflow_request`)."""
    call = {"workflow_id": error_workflow_id, "mode": "fire_and_forget"}
    return {
        "name": f"error workflow {error_workflow_id}",
        "nodes": [
            {"id": "failure", "type": "error_trigger"},
            {"id": "run_error_workflow", "type": "execute_workflow", "parameters": call},
        ],
        "connections": [{"from": "failure", "to": "run_error_workflow"}],
    }
