"""Small rules of CONTRACT.md section 3 that both the fold and the decisions apply."""

from __future__ import annotations

from nodedrop.contracts.events import ErrorInfo
from nodedrop.contracts.items import ERROR_PORT, Item, PortItems
from nodedrop.contracts.workflow import Node
from nodedrop.scheduler.core.plan import PlanNode
from nodedrop.scheduler.core.state import ExecutionState, NodeStatus

#: Error type of an attempt that ran past its node's ``timeout_ms``.
NODE_TIMEOUT = "NodeTimeout"
#: The runner normally stops an attempt at ``timeout_ms`` itself; the scheduler's own timer is
#: the backstop for a runner that died or hangs, so it fires this much later.
NODE_TIMEOUT_GRACE_MS = 2000


def will_retry(node: Node, attempt: int, error: ErrorInfo) -> bool:
    """Rule 6: retry unless attempts are used up or the error is non-retryable."""
    policy = node.retry_policy
    return (
        error.retryable
        and error.type not in policy.non_retryable_errors
        and attempt < policy.max_attempts
    )


def gather_input(state: ExecutionState, plan_node: PlanNode) -> PortItems:
    """Rule 2 of section 2: the items of every connection into a port, in connection order."""
    gathered: PortItems = {}
    for edge in plan_node.incoming:
        items = gathered.setdefault(edge.input, [])
        parent = state.nodes[edge.parent]
        if parent.output:
            items.extend(parent.output.get(edge.output, ()))
    return gathered


def has_items(port_items: PortItems) -> bool:
    return any(port_items.values())


def error_output(node_input: PortItems | None, error: ErrorInfo) -> PortItems:
    """``on_error: error_output``: one error item per input item, on the ``error`` port."""
    summary = {"type": error.type, "message": error.message}
    items: list[Item] = [item for port in (node_input or {}).values() for item in port]
    return {ERROR_PORT: [{"error": summary, "item": item} for item in items or [{}]]}


def delivers(status: NodeStatus) -> bool:
    return status in (NodeStatus.SUCCEEDED, NodeStatus.FAILED)
