"""Small rules of execution semantics (docs/architecture.md) that the fold and the decisions apply.

What a node's failure leads to (a lost runner's attempt made again, a retry, a failure under
``on_error``, the ``error_output`` items) is in :mod:`nodedrop.contracts.failures`;
:func:`failure_policy` reads a definition's policy for it. The scheduler records each outcome
(``NodeFailureHandled``), so readers of the history never apply these rules themselves.
"""

from __future__ import annotations

from nodedrop.contracts import codec
from nodedrop.contracts.codec import MAX_MESSAGE_BYTES
from nodedrop.contracts.errors import INPUT_TOO_LARGE
from nodedrop.contracts.events import ErrorInfo, NodeReady, NodeWaiting
from nodedrop.contracts.failures import FailurePolicy
from nodedrop.contracts.items import PortItems
from nodedrop.contracts.workflow import Node
from nodedrop.scheduler.core.plan import PlanNode
from nodedrop.scheduler.core.state import ExecutionState, NodeState, NodeStatus

#: Error type of an attempt that ran past its node's ``timeout_ms``.
NODE_TIMEOUT = "NodeTimeout"
#: The runner normally stops an attempt at ``timeout_ms`` itself; the scheduler's own timer is
#: the backstop for a runner that died or hangs, so it fires this much later.
NODE_TIMEOUT_GRACE_MS = 2000
#: The most data one node's work may carry, encoded: its input items, and for a runner its
#: parameters and the upstream outputs its expressions read (see :func:`carried_bytes`). The rest
#: of a message is for what is small and bounded: the event's other fields (ids, node name and
#: type, times, trace context), its subject and headers, a few hundred bytes, with a wide margin.
MAX_INPUT_BYTES = MAX_MESSAGE_BYTES - 64 * 1024


def failure_policy(definition: Node) -> FailurePolicy:
    """What decides the outcome of the node's failures, from its validated definition."""
    retry = definition.retry_policy
    return FailurePolicy(
        definition.on_error, retry.max_attempts, frozenset(retry.non_retryable_errors)
    )


def counted_attempts(node: NodeState) -> int:
    """The attempts the retry policy counts: all but those a lost runner ended."""
    return node.attempt - len(node.runner_lost)


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
