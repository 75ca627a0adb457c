"""Node type -> implementation: the built-ins plus the ``nodedrop.nodes`` entry points."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from importlib.metadata import entry_points
from typing import Any

from nodedrop.contracts.items import PortItems
from nodedrop.contracts.nodetypes import ENTRY_POINT_GROUP, NodeTypeSpec
from nodedrop.runner.nodes.api import NodeContext, NodeImplementation
from nodedrop.runner.nodes.builtins import builtin_nodes


class NodeRegistry:
    def __init__(self, nodes: Iterable[NodeImplementation] = ()) -> None:
        self._nodes: dict[str, NodeImplementation] = {}
        for node in nodes:
            self.register(node)

    def register(self, node: NodeImplementation) -> None:
        if node.type in self._nodes:
            raise ValueError(f"node type {node.type!r} is implemented twice")
        self._nodes[node.type] = node

    def get(self, type_name: str) -> NodeImplementation | None:
        return self._nodes.get(type_name)

    def __contains__(self, type_name: object) -> bool:
        return type_name in self._nodes

    def __iter__(self) -> Iterator[str]:
        return iter(self._nodes)


class PluginNode:
    """A custom node class from an entry point: its type is its ``spec.type`` (the same spec the
    API validates definitions with), its code its ``run`` method."""

    def __init__(self, plugin: Any) -> None:
        self.type: str = plugin.spec.type
        self._plugin = plugin

    async def run(
        self, ctx: NodeContext, node_input: PortItems, parameters: dict[str, Any]
    ) -> PortItems:
        output: PortItems = await self._plugin.run(ctx, node_input, parameters)
        return output


def plugin_node(cls: Any, name: str) -> PluginNode:
    if not isinstance(getattr(cls, "spec", None), NodeTypeSpec):
        raise TypeError(f"entry point {name!r} has no NodeTypeSpec `spec`")
    if not callable(getattr(cls, "run", None)):
        raise TypeError(f"entry point {name!r} has no `run` method")
    return PluginNode(cls())


def load_registry() -> NodeRegistry:
    """Built-ins plus every class registered under the ``nodedrop.nodes`` entry-point group.
    A broken plugin stops the runner at start rather than failing its nodes one by one later."""
    registry = NodeRegistry(builtin_nodes())
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        registry.register(plugin_node(entry_point.load(), entry_point.name))
    return registry
