"""An example custom node type (see docs/nodes.md): adds a greeting to each item."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from nodedrop.contracts.nodetypes import NodeTypeSpec, Parameters


class GreetParameters(Parameters):
    greeting: str = Field(default="hello", min_length=1, max_length=100)


class Greet:
    spec = NodeTypeSpec(
        "greet", "Greet", "action", GreetParameters, description="Adds `greeting` to each item"
    )

    def run(
        self, ctx: Any, node_input: dict[str, list[dict[str, Any]]], parameters: dict[str, Any]
    ) -> dict[str, list[dict[str, Any]]]:
        greeting = GreetParameters.model_validate(parameters).greeting
        items = [item for port in node_input.values() for item in port]
        ctx.log.info(f"greeting {len(items)} item(s) with {greeting!r}")
        return {
            "main": [
                {**item, "greeting": f"{greeting}, {item.get('name', 'world')}"} for item in items
            ]
        }
