"""The pure rules of POST /api/executions: trigger choice, input shapes, node-mode input."""

from __future__ import annotations

from typing import Any

import pytest

from nodedrop.api import execution_requests as rules
from nodedrop.api.errors import UnprocessableError
from nodedrop.contracts.nodetypes import NodeTypeRegistry
from nodedrop.contracts.workflow import Workflow, validate_workflow

REGISTRY = NodeTypeRegistry()


def wf(nodes: list[dict[str, Any]], connections: list[dict[str, Any]]) -> Workflow:
    return validate_workflow({"nodes": nodes, "connections": connections}, REGISTRY)


LINE = wf(
    [{"id": "start", "type": "manual_trigger"}, {"id": "a", "type": "noop"}],
    [{"from": "start", "to": "a"}],
)
TWO = wf(
    [
        {"id": "start", "type": "manual_trigger"},
        {"id": "hook", "type": "webhook_trigger"},
        {"id": "a", "type": "noop"},
    ],
    [{"from": "start", "to": "a"}, {"from": "hook", "to": "a"}],
)
FAN_IN = wf(
    [
        {"id": "start", "type": "manual_trigger"},
        {"id": "x", "type": "if", "parameters": {"condition": True}},
        {"id": "y", "type": "noop"},
        {"id": "m", "type": "merge"},
        {"id": "n", "type": "noop"},
    ],
    [
        {"from": "start", "to": "x"},
        {"from": "start", "to": "y"},
        {"from": "y", "to": "m", "input": "a"},
        {"from": "x", "output": "true", "to": "m", "input": "a"},
        {"from": "x", "output": "false", "to": "m", "input": "b"},
        {"from": "y", "to": "n"},
    ],
)


def rejected(call: Any, *args: Any) -> list[dict[str, Any]]:
    with pytest.raises(UnprocessableError) as caught:
        call(*args)
    return caught.value.problems


def test_the_only_trigger_is_chosen() -> None:
    assert rules.choose_trigger(LINE, REGISTRY, None) == "start"
    assert rules.choose_trigger(LINE, REGISTRY, "start") == "start"


def test_several_triggers_must_be_named_and_are_listed() -> None:
    [problem] = rejected(rules.choose_trigger, TWO, REGISTRY, None)
    assert problem["loc"] == ["body", "trigger"]
    assert "'start'" in problem["msg"]
    assert "'hook'" in problem["msg"]
    assert rules.choose_trigger(TWO, REGISTRY, "hook") == "hook"


@pytest.mark.parametrize(("name", "words"), [("a", "not a trigger"), ("zz", "not a node")])
def test_a_named_trigger_must_be_a_trigger_node(name: str, words: str) -> None:
    [problem] = rejected(rules.choose_trigger, TWO, REGISTRY, name)
    assert problem["loc"] == ["body", "trigger"]
    assert words in problem["msg"]


def test_node_mode_trigger_is_context_only() -> None:
    assert rules.node_mode_trigger(LINE, REGISTRY, None) == "start"
    assert rules.node_mode_trigger(TWO, REGISTRY, None) is None
    assert rules.node_mode_trigger(TWO, REGISTRY, "hook") == "hook"
    rejected(rules.node_mode_trigger, TWO, REGISTRY, "a")


def test_check_node() -> None:
    assert rules.check_node(LINE, "a") == "a"
    assert rejected(rules.check_node, LINE, None)[0]["loc"] == ["body", "node"]
    assert rejected(rules.check_node, LINE, "zz")[0]["loc"] == ["body", "node"]


def test_trigger_input() -> None:
    assert rules.trigger_input(None) == [{}]
    assert rules.trigger_input(None) is not rules.trigger_input(None)
    assert rules.trigger_input([{"a": 1}]) == [{"a": 1}]
    assert rejected(rules.trigger_input, {"a": 1})[0]["loc"] == ["body", "input"]
    assert rejected(rules.trigger_input, [{}, 3])[0]["loc"] == ["body", "input", 1]


def test_node_input() -> None:
    assert rules.node_input({"main": [{"a": 1}]}) == {"main": [{"a": 1}]}
    assert rules.node_input({}) == {}
    assert rejected(rules.node_input, [{}])[0]["loc"] == ["body", "input"]
    assert rejected(rules.node_input, {"main": {}})[0]["loc"] == ["body", "input", "main"]
    assert rejected(rules.node_input, {"main": [1]})[0]["loc"] == ["body", "input", "main", 0]


def test_input_ports_are_those_of_the_node_type() -> None:
    assert rules.check_input_ports(LINE, REGISTRY, "a", {"main": []}) == {"main": []}
    [problem] = rejected(rules.check_input_ports, LINE, REGISTRY, "a", {"other": []})
    assert problem["loc"] == ["body", "input", "other"]
    # merge takes any port name
    assert rules.check_input_ports(FAN_IN, REGISTRY, "m", {"zz": []}) == {"zz": []}


def test_parents_in_connection_order_once_each() -> None:
    assert rules.parents(FAN_IN, "m") == ["y", "x"]
    assert rules.parents(FAN_IN, "start") == []


def test_input_is_concatenated_per_port_in_connection_order() -> None:
    outputs: dict[str, dict[str, list[dict[str, Any]]]] = {
        "x": {"true": [{"x": "t"}], "false": [{"x": "f1"}, {"x": "f2"}]},
        "y": {"main": [{"y": 1}, {"y": 2}]},
    }
    assert rules.assemble_node_input(FAN_IN, "m", outputs) == {
        "a": [{"y": 1}, {"y": 2}, {"x": "t"}],
        "b": [{"x": "f1"}, {"x": "f2"}],
    }


def test_a_port_a_parent_did_not_emit_contributes_nothing() -> None:
    outputs: dict[str, dict[str, list[dict[str, Any]]]] = {"x": {"true": []}, "y": {"main": []}}
    assert rules.assemble_node_input(FAN_IN, "m", outputs) == {"a": [], "b": []}


def test_every_parent_without_data_is_named() -> None:
    problems = rejected(rules.assemble_node_input, FAN_IN, "m", {})
    assert [p["loc"] for p in problems] == [["body", "input"], ["body", "input"]]
    assert "'y'" in problems[0]["msg"]
    assert "'x'" in problems[1]["msg"]
    assert {p["type"] for p in problems} == {"missing_parent_output"}


def test_a_node_without_parents_gets_empty_input() -> None:
    assert rules.assemble_node_input(FAN_IN, "start", {}) == {}


def test_pinned_outputs() -> None:
    pinned = wf(
        [
            {"id": "start", "type": "manual_trigger"},
            {"id": "a", "type": "noop", "pinned_output": {"main": [{"p": 1}]}},
            {"id": "b", "type": "noop"},
        ],
        [{"from": "start", "to": "a"}, {"from": "a", "to": "b"}],
    )
    assert rules.pinned_outputs(pinned, ["start", "a"]) == {"a": {"main": [{"p": 1}]}}
    outputs = rules.pinned_outputs(pinned, rules.parents(pinned, "b"))
    assert rules.assemble_node_input(pinned, "b", outputs) == {"main": [{"p": 1}]}
