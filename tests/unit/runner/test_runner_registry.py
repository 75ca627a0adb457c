"""The registry: built-ins, duplicates and custom node classes from entry points."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from nodedrop.contracts.items import PortItems
from nodedrop.contracts.nodetypes import NodeTypeSpec
from nodedrop.runner.nodes import NodeContext, NodeRegistry, load_registry
from nodedrop.runner.nodes import registry as registry_module
from nodedrop.runner.nodes.builtins import NoopNode


class Shout:
    """A custom node as a plugin author writes it: a spec and a run method."""

    spec: ClassVar[NodeTypeSpec] = NodeTypeSpec("shout", "Shout", "action")

    async def run(
        self, ctx: NodeContext, node_input: PortItems, parameters: dict[str, Any]
    ) -> PortItems:
        return {"main": [{"text": str(item).upper()} for item in node_input.get("main", [])]}


class NoSpec:
    async def run(self, *_: Any) -> PortItems:
        return {}


class FakeEntryPoint:
    def __init__(self, name: str, target: object) -> None:
        self.name = name
        self._target = target

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


async def test_entry_point_classes_are_registered_under_their_spec_type(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with_entry_points(monkeypatch, FakeEntryPoint("shout", Shout))
    node = load_registry().get("shout")
    assert node is not None
    assert node.type == "shout"
    output = await node.run(NodeContext("e", "n", 1), {"main": [{"a": "b"}]}, {})
    assert output == {"main": [{"text": "{'A': 'B'}"}]}


def test_an_entry_point_without_spec_stops_the_runner_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with_entry_points(monkeypatch, FakeEntryPoint("broken", NoSpec))
    with pytest.raises(TypeError, match="broken"):
        load_registry()


def test_a_type_implemented_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="noop"):
        NodeRegistry([NoopNode(), NoopNode()])
