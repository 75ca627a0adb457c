"""The built-in node types the runner executes itself (docs/nodes.md, "Built-in types")."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

import pydantic

from nodedrop.contracts.items import MAIN_PORT, Item, PortItems
from nodedrop.contracts.nodetypes import (
    Parameters,
    StopAndErrorParameters,
    WaitParameters,
    passthrough_items,
)
from nodedrop.runner.nodes.api import NodeContext, NodeError, NodeImplementation

P = TypeVar("P", bound=Parameters)

#: What a trigger outputs when its execution was requested without input (docs/nodes.md).
_DEFAULT_TRIGGER_ITEMS: list[Item] = [{}]


def parse_parameters(model: type[P], parameters: dict[str, Any]) -> P:
    """The parameters as their spec's model. The API validated them already, so a failure here
    means a mismatched definition: retrying cannot fix it."""
    try:
        return model.model_validate(parameters)
    except pydantic.ValidationError as error:
        raise NodeError("InvalidParameters", str(error), retryable=False) from error


class TriggerNode:
    """Triggers output what the execution was started with, as given to them on ``main``."""

    side_effect_free = True

    def __init__(self, type_name: str) -> None:
        self.type = type_name

    async def run(
        self, ctx: NodeContext, node_input: PortItems, parameters: dict[str, Any]
    ) -> PortItems:
        return {MAIN_PORT: node_input.get(MAIN_PORT, _DEFAULT_TRIGGER_ITEMS)}


class NoopNode:
    type = "noop"
    side_effect_free = True

    async def run(
        self, ctx: NodeContext, node_input: PortItems, parameters: dict[str, Any]
    ) -> PortItems:
        return {MAIN_PORT: passthrough_items(node_input)}


class WaitNode:
    """The scheduler runs ``wait`` nodes on its own durable timer (``NodeWaiting``) and never
    gives them to a runner. This implementation stays for node-mode tools and tests that hand
    a runner a ``wait`` task directly: a runner must never fail a task of a known type."""

    type = "wait"

    async def run(
        self, ctx: NodeContext, node_input: PortItems, parameters: dict[str, Any]
    ) -> PortItems:
        await asyncio.sleep(parse_parameters(WaitParameters, parameters).ms / 1000)
        return {MAIN_PORT: passthrough_items(node_input)}


class StopAndErrorNode:
    type = "stop_and_error"
    side_effect_free = True

    async def run(
        self, ctx: NodeContext, node_input: PortItems, parameters: dict[str, Any]
    ) -> PortItems:
        chosen = parse_parameters(StopAndErrorParameters, parameters)
        # The user asked for this failure: retrying would only repeat it.
        raise NodeError(chosen.error_type, chosen.message, retryable=False)


def builtin_nodes() -> list[NodeImplementation]:
    """The built-ins defined here (``flow`` and ``http_request`` have modules of their own)."""
    return [
        TriggerNode("manual_trigger"),
        TriggerNode("webhook_trigger"),
        TriggerNode("schedule_trigger"),
        TriggerNode("error_trigger"),
        NoopNode(),
        WaitNode(),
        StopAndErrorNode(),
    ]
