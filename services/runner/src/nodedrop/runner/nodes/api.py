"""What a node implementation is: the interface between the runner and a node's code."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from nodedrop.contracts.items import PortItems


@dataclass(frozen=True, slots=True)
class NodeContext:
    """Which attempt of which node is running; ids for idempotency keys and logs."""

    execution_id: str
    node: str
    attempt: int
    trigger: str | None = None
    #: Outputs of earlier nodes that this node's expressions read: ``nodes["id"]["main"]``.
    upstream: Mapping[str, PortItems] = field(default_factory=dict)


@runtime_checkable
class NodeImplementation(Protocol):
    """One node type's code. ``run`` gets the node's input ``{port: items}`` and its parameters
    and returns its output ``{port: items}``; it fails by raising (:class:`NodeError` to choose
    the error type and whether a retry may help)."""

    type: str

    async def run(
        self, ctx: NodeContext, node_input: PortItems, parameters: dict[str, Any]
    ) -> PortItems: ...


class NodeError(Exception):
    """A failure a node reports on purpose, with the error type users see and can list in
    ``retry.non_retryable_errors``. ``retryable=False`` fails the node without retrying."""

    def __init__(self, type: str, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.type = type
        self.message = message
        self.retryable = retryable
