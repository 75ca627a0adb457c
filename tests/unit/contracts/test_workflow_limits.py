"""Size limits of definitions (WorkflowLimits): too many nodes, long expressions, big pinned
outputs are 422 problems naming where, before or after the usual checks."""

from __future__ import annotations

from typing import Any

import pytest

from nodedrop.contracts.nodetypes import NodeTypeRegistry
from nodedrop.contracts.workflow import WorkflowInvalid, WorkflowLimits, validate_workflow

REGISTRY = NodeTypeRegistry()


def definition(*nodes: dict[str, Any]) -> dict[str, Any]:
    return {"name": "w", "nodes": [{"id": "start", "type": "manual_trigger"}, *nodes]}


def problems(data: Any, limits: WorkflowLimits) -> list[dict[str, Any]]:
    with pytest.raises(WorkflowInvalid) as caught:
        validate_workflow(data, REGISTRY, limits)
    return caught.value.problems


def test_too_many_nodes_is_refused_before_anything_else() -> None:
    data = definition(*({"id": f"n{i}", "type": "nope"} for i in range(5)))
    assert problems(data, WorkflowLimits(max_nodes=5)) == [
        {"loc": ["nodes"], "msg": "6 nodes; a workflow has at most 5", "type": "too_long"}
    ]
    data = definition(*({"id": f"n{i}", "type": "noop"} for i in range(4)))
    assert validate_workflow(data, REGISTRY, WorkflowLimits(max_nodes=5))


def test_a_long_expression_is_named_with_its_place() -> None:
    long = "{{ item.total + " + " + ".join(["1"] * 20) + " }}"
    data = definition({"id": "s", "type": "set", "parameters": {"values": {"x": long}}})
    found = problems(data, WorkflowLimits(max_expression_length=40))
    assert [(p["loc"], p["type"]) for p in found] == [
        (["nodes", 1, "parameters", "values", "x"], "too_long")
    ]
    assert "at most 40" in found[0]["msg"]
    assert validate_workflow(data, REGISTRY, WorkflowLimits(max_expression_length=200))


def test_pinned_output_items_are_limited_per_port() -> None:
    data = definition({"id": "n", "type": "noop", "pinned_output": {"main": [{}] * 4}})
    found = problems(data, WorkflowLimits(max_items=3))
    assert [(p["loc"], p["type"]) for p in found] == [
        (["nodes", 1, "pinned_output", "main"], "too_long")
    ]
