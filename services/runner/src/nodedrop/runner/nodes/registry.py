"""Node type -> implementation: the built-ins plus the ``nodedrop.nodes`` entry points.

Built-ins run in the runner's event loop. A custom node type from an entry point is only
*named* here (:class:`PluginNode`, an import path); its code runs in a worker process the runner
can kill (:mod:`nodedrop.runner.isolation`), never in the runner's own process.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from nodedrop.contracts.items import PortItems
from nodedrop.contracts.nodetypes import BUILTIN_SPECS, ENTRY_POINT_GROUP, NodeTypeSpec
from nodedrop.runner.nodes.api import NodeContext, NodeImplementation
from nodedrop.runner.nodes.builtins import builtin_nodes
from nodedrop.runner.nodes.code import CodeNode
from nodedrop.runner.nodes.flow import flow_nodes
from nodedrop.runner.nodes.http_request import HttpRequestNode
from nodedrop.runner.nodes.respond import RespondToWebhookNode
from nodedrop.runner.sandbox.settings import SandboxSettings

_BUILTINS = {spec.type: spec for spec in BUILTIN_SPECS}


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

    def side_effect_free(self, type_name: str) -> bool:
        """Whether running the type twice is harmless (it computes its output from its input
        and parameters and touches nothing else): the built-ins that declare
        ``side_effect_free = True``. Plugin nodes never count, whatever they declare."""
        node = self._nodes.get(type_name)
        return node is not None and getattr(node, "side_effect_free", False) is True

    def credential_parameters(self, type_name: str) -> tuple[str, ...]:
        """The type's parameters that hold credential ids (its spec's)."""
        node = self._nodes.get(type_name)
        if isinstance(node, PluginNode):
            return node.credential_parameters
        spec = _BUILTINS.get(type_name)
        return spec.credential_parameters if spec is not None else ()

    def plugins(self) -> list[PluginNode]:
        """The node types whose code runs in worker processes."""
        return [node for node in self._nodes.values() if isinstance(node, PluginNode)]

    async def aclose(self) -> None:
        """Release what nodes hold between attempts (the HTTP node's connection pool)."""
        for node in self._nodes.values():
            close = getattr(node, "aclose", None)
            if close is not None:
                await close()

    def __contains__(self, type_name: object) -> bool:
        return type_name in self._nodes

    def __iter__(self) -> Iterator[str]:
        return iter(self._nodes)


@dataclass(slots=True)
class PluginNode:
    """A custom node type: its type is its class's ``spec.type`` (the same spec the API validates
    definitions with), its code the class at ``target`` (``"module:qualname"``), which a worker
    process imports, instantiates once without arguments and calls ``run`` on."""

    type: str
    target: str
    credential_parameters: tuple[str, ...] = ()

    async def run(
        self, ctx: NodeContext, node_input: PortItems, parameters: dict[str, Any]
    ) -> PortItems:
        # run_attempt hands plugin nodes to the runner's worker processes; reaching this means
        # it was called without them. Never fall back to running user code in-process.
        raise RuntimeError(
            f"custom node type {self.type!r} runs only in a worker process "
            "(run_attempt(..., processes=ProcessPool(...)))"
        )


def import_path(cls: Any) -> str:
    """``"module:qualname"`` of a class defined at a module's top level (or nested in one)."""
    return f"{cls.__module__}:{cls.__qualname__}"


def plugin_node(cls: Any, name: str, target: str | None = None) -> PluginNode:
    """Checks what can be checked without running the plugin's code: the class is not
    instantiated here (that happens in the worker processes)."""
    if not isinstance(cls, type):
        raise TypeError(f"entry point {name!r} must name a class, not {type(cls).__name__}")
    spec = getattr(cls, "spec", None)
    if not isinstance(spec, NodeTypeSpec):
        raise TypeError(f"entry point {name!r} has no NodeTypeSpec `spec`")
    if not callable(getattr(cls, "run", None)):
        raise TypeError(f"entry point {name!r} has no `run` method")
    if "<locals>" in cls.__qualname__:
        raise TypeError(f"entry point {name!r}: a class defined in a function cannot be imported")
    return PluginNode(spec.type, target or import_path(cls), spec.credential_parameters)


def load_registry(
    *, http_allow_private: bool = False, code: SandboxSettings | None = None
) -> NodeRegistry:
    """Built-ins plus every class registered under the ``nodedrop.nodes`` entry-point group.
    A broken plugin stops the runner at start rather than failing its nodes one by one later.

    The entry point's module is imported here for the class's ``spec`` (as the API does);
    ``run`` and the constructor only ever run in worker processes."""
    registry = NodeRegistry(
        [
            *builtin_nodes(),
            *flow_nodes(),
            RespondToWebhookNode(),
            HttpRequestNode(allow_private=http_allow_private),
            CodeNode(code),
        ]
    )
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        target = f"{entry_point.module}:{entry_point.attr}"
        registry.register(plugin_node(entry_point.load(), entry_point.name, target))
    return registry
