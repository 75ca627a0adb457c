"""Small rules of CONTRACT.md section 3 that both the fold and the decisions apply."""

from __future__ import annotations

from nodedrop.contracts import codec
from nodedrop.contracts.codec import MAX_MESSAGE_BYTES
from nodedrop.contracts.errors import INPUT_TOO_LARGE, RUNNER_LOST
from nodedrop.contracts.events import ErrorInfo, NodeReady, NodeWaiting
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
#: The most data one node's work may carry, encoded: its input items, and for a runner its
#: parameters and the upstream outputs its expressions read (see :func:`carried_bytes`). The rest
#: of a message is for what is small and bounded: the event's other fields (ids, node name and
#: type, times, trace context), its subject and headers, a few hundred bytes, with a wide margin.
MAX_INPUT_BYTES = MAX_MESSAGE_BYTES - 64 * 1024


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


def refused_attempt(node: NodeState, attempt: int, error: ErrorInfo) -> bool:
    """Whether a failure of ``attempt`` is the scheduler's refusal to make that attempt ready
    (its input would not fit in one event): the node's next attempt, of a node waiting to be
    made ready. No runner ever had such an attempt, so no runner can have answered it."""
    waiting = node.status == NodeStatus.RETRYING or (
        node.status == NodeStatus.PENDING and node.waiting_on == 0
    )
    return waiting and attempt == node.attempt + 1 and error.type == INPUT_TOO_LARGE


def carried_bytes(work: NodeReady | NodeWaiting) -> int:
    """The encoded size of the data ``work`` carries: everything in it that can grow large.
    Only that is measured, not the whole event, so the size depends neither on the clock nor
    on the attempt number: the same state gives the same decision whenever it is made again."""
    size = codec.encoded_size(work.input)
    if isinstance(work, NodeReady):
        size += codec.encoded_size(work.parameters) + codec.encoded_size(work.upstream)
    return size


def has_items(port_items: PortItems) -> bool:
    return any(port_items.values())


def error_output(node_input: PortItems | None, error: ErrorInfo) -> PortItems:
    """``on_error: error_output``: one error item per input item, on the ``error`` port."""
    summary = {"type": error.type, "message": error.message}
    items: list[Item] = [item for port in (node_input or {}).values() for item in port]
    return {ERROR_PORT: [{"error": summary, "item": item} for item in items or [{}]]}


def delivers(status: NodeStatus) -> bool:
    return status in (NodeStatus.SUCCEEDED, NodeStatus.FAILED)
