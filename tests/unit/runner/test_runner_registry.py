"""The registry: built-ins, duplicates and custom node classes from entry points (named by import
path for the worker processes, never instantiated in the runner's process)."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from nodedrop.contracts.items import PortItems
from nodedrop.contracts.nodetypes import NodeTypeSpec
from nodedrop.runner.nodes import NodeContext, NodeImplementation, NodeRegistry, load_registry
from nodedrop.runner.nodes import registry as registry_module
from nodedrop.runner.nodes.builtins import NoopNode
from nodedrop.runner.nodes.registry import PluginNode, plugin_node


class Shout:
    """A custom node as a plugin author writes it: a spec and a run method."""

    spec: ClassVar[NodeTypeSpec] = NodeTypeSpec("shout", "Shout", "action")
    instances = 0

    def __init__(self) -> None:
        type(self).instances += 1

    async def run(
        self, ctx: NodeContext, node_input: PortItems, parameters: dict[str, Any]
    ) -> PortItems:
        return {"main": [{"text": str(item).upper()} for item in node_input.get("main", [])]}


class NoSpec:
    async def run(self, *_: Any) -> PortItems:
        return {}


class FakeEntryPoint:
    def __init__(self, name: str, target: Any) -> None:
        self.name = name
        self._target = target
        self.module = getattr(target, "__module__", "somewhere")
        self.attr = getattr(target, "__qualname__", "thing")

    def load(self) -> object:
        return self._target


def with_entry_points(monkeypatch: pytest.MonkeyPatch, *points: FakeEntryPoint) -> None:
    def fake_entry_points(*, group: str) -> list[FakeEntryPoint]:
        assert group == "nodedrop.nodes"
        return list(points)

    monkeypatch.setattr(registry_module, "entry_points", fake_entry_points)


def test_load_registry_has_the_builtins() -> None:
    registry = load_registry()
    for type_name in ("manual_trigger", "noop", "wait", "stop_and_error"):
        assert type_name in registry


def test_entry_point_classes_are_registered_by_import_path_under_their_spec_type(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with_entry_points(monkeypatch, FakeEntryPoint("shout-plugin", Shout))
    node = load_registry().get("shout")
    assert isinstance(node, PluginNode)
    assert (node.type, node.target) == ("shout", f"{__name__}:Shout")
    assert Shout.instances == 0  # its code runs in worker processes only
    assert isinstance(node, NodeImplementation)


async def test_a_plugin_node_never_runs_in_the_runners_process() -> None:
    node = plugin_node(Shout, "shout")
    with pytest.raises(RuntimeError, match="worker process"):
        await node.run(NodeContext("e", "n", 1), {"main": []}, {})


def test_only_plugin_nodes_are_listed_as_plugins() -> None:
    registry = NodeRegistry([NoopNode(), plugin_node(Shout, "shout")])
    assert registry.plugins() == [PluginNode("shout", f"{__name__}:Shout")]


def test_an_entry_point_that_is_no_importable_class_is_refused() -> None:
    class Local:
        spec = Shout.spec

        def run(self) -> None: ...

    with pytest.raises(TypeError, match="defined in a function"):
        plugin_node(Local, "local")
    with pytest.raises(TypeError, match="must name a class"):
        plugin_node(Shout(), "instance")


def test_an_entry_point_without_spec_stops_the_runner_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with_entry_points(monkeypatch, FakeEntryPoint("broken", NoSpec))
    with pytest.raises(TypeError, match="broken"):
        load_registry()


def test_a_type_implemented_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="noop"):
        NodeRegistry([NoopNode(), NoopNode()])
