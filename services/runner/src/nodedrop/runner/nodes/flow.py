"""``set``, ``if``, ``switch`` and ``merge``: the nodes that shape and route items.

Their parameters may hold ``{{ expressions }}``, rendered per item by the restricted evaluator of
:mod:`nodedrop.contracts.expressions` with ``item``, ``nodes`` (the upstream outputs the
scheduler sent along) and ``execution`` in scope. An expression that fails fails the node with
``ExpressionError`` naming the expression; retrying would evaluate the same text on the same
data, so it is not retryable.
"""

from __future__ import annotations

from typing import Any

from nodedrop.contracts.expressions import ExpressionError, make_scope, render
from nodedrop.contracts.items import MAIN_PORT, Item, PortItems
from nodedrop.contracts.nodetypes import (
    IfParameters,
    SetParameters,
    SwitchParameters,
    passthrough_items,
)
from nodedrop.runner.nodes.api import NodeContext, NodeError
from nodedrop.runner.nodes.builtins import parse_parameters


def rendered(value: Any, ctx: NodeContext, item: Item) -> Any:
    """``value`` with its expressions evaluated for ``item``."""
    scope = make_scope(
        item,
        nodes=dict(ctx.upstream),
        execution={"id": ctx.execution_id, "trigger": ctx.trigger},
    )
    try:
        return render(value, scope)
    except ExpressionError as error:
        raise NodeError("ExpressionError", str(error), retryable=False) from error


class SetNode:
    type = "set"
    side_effect_free = True

    async def run(
        self, ctx: NodeContext, node_input: PortItems, parameters: dict[str, Any]
    ) -> PortItems:
        values = parse_parameters(SetParameters, parameters).values
        return {
            MAIN_PORT: [
                {**item, **rendered(values, ctx, item)} for item in passthrough_items(node_input)
            ]
        }


class IfNode:
    type = "if"
    side_effect_free = True

    async def run(
        self, ctx: NodeContext, node_input: PortItems, parameters: dict[str, Any]
    ) -> PortItems:
        condition = parse_parameters(IfParameters, parameters).condition
        routed: PortItems = {"true": [], "false": []}
        for item in passthrough_items(node_input):
            routed["true" if rendered(condition, ctx, item) else "false"].append(item)
        return routed


class SwitchNode:
    type = "switch"
    side_effect_free = True

    async def run(
        self, ctx: NodeContext, node_input: PortItems, parameters: dict[str, Any]
    ) -> PortItems:
        chosen = parse_parameters(SwitchParameters, parameters)
        ports = [case.output for case in chosen.cases]
        if chosen.default_output is not None:
            ports.append(chosen.default_output)
        routed: PortItems = {port: [] for port in ports}
        for item in passthrough_items(node_input):
            port = next(
                (case.output for case in chosen.cases if rendered(case.condition, ctx, item)),
                chosen.default_output,
            )
            if port is not None:  # no case matched and no default: the item goes nowhere
                routed[port].append(item)
        return routed


class MergeNode:
    type = "merge"
    side_effect_free = True

    async def run(
        self, ctx: NodeContext, node_input: PortItems, parameters: dict[str, Any]
    ) -> PortItems:
        # The scheduler built the input port by port in the order of the connections.
        return {MAIN_PORT: passthrough_items(node_input)}


def flow_nodes() -> list[SetNode | IfNode | SwitchNode | MergeNode]:
    return [SetNode(), IfNode(), SwitchNode(), MergeNode()]
