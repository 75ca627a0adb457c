"""Small rules of CONTRACT.md section 3 that both the fold and the decisions apply."""

from __future__ import annotations

from nodedrop.contracts.errors import RUNNER_LOST
from nodedrop.contracts.events import ErrorInfo
from nodedrop.contracts.items import ERROR_PORT, Item, PortItems
from nodedrop.contracts.workflow import Node
from nodedrop.scheduler.core.plan import PlanNode
from nodedrop.scheduler.core.state import ExecutionState, NodeState, NodeStatus

#: Error type of an attempt that ran past its node's ``timeout_ms``.
NODE_TIMEOUT = "NodeTimeout"
#: The runner normally stops an attempt at ``timeout_ms`` itself; the scheduler's own timer is
#: the backstop for a runner that died or hangs, so it fires this much later.
NODE_TIMEOUT_GRACE_MS = 2000
#: Attempts of one node that may end ``RunnerLost`` and be made again at once, outside the
#: retry policy. Past this a node that keeps losing its runner (it exhausts the runner's memory,
#: say) fails like any other: its policy decides, counting that attempt.
MAX_RUNNER_LOST_ATTEMPTS = 3


def runner_lost_again(definition: Node, node: NodeState, error: ErrorInfo) -> bool:
    """The attempt ended because its runner was lost, not because of the node: make another at
    once, whatever the retry policy, unless the policy lists ``RunnerLost`` as non-retryable
    (a node whose effects must never be repeated) or the node used up its lost attempts."""
    return (
        error.type == RUNNER_LOST
        and error.type not in definition.retry_policy.non_retryable_errors
        and len(node.runner_lost) < MAX_RUNNER_LOST_ATTEMPTS
    )


def counted_attempts(node: NodeState) -> int:
    """The attempts the retry policy counts: all but those a lost runner ended."""
    return node.attempt - len(node.runner_lost)


def will_retry(node: Node, attempt: int, error: ErrorInfo) -> bool:
    """Rule 6: retry unless attempts are used up or the error is non-retryable (``attempt``:
    the attempts counted so far, :func:`counted_attempts`)."""
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
