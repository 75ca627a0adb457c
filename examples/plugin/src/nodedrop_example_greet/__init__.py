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


class GenerateParameters(Parameters):
    count: int = Field(default=10, ge=0, le=1_000_000)
    #: Characters of padding per item, to make items of a realistic size.
    padding: int = Field(default=0, ge=0, le=100_000)


class Generate:
    """Makes ``count`` items: a source of test data of any size."""

    spec = NodeTypeSpec(
        "generate",
        "Generate items",
        "action",
        GenerateParameters,
        description="Outputs `count` items {n, padding}",
    )

    def run(
        self, ctx: Any, node_input: dict[str, list[dict[str, Any]]], parameters: dict[str, Any]
    ) -> dict[str, list[dict[str, Any]]]:
        chosen = GenerateParameters.model_validate(parameters)
        pad = "x" * chosen.padding
        ctx.log.info(f"generating {chosen.count} items")
        return {"main": [{"n": n, "padding": pad} for n in range(chosen.count)]}
