"""A ``code`` node is checked when its workflow is saved: its source compiles and defines
``main``, its outputs are port names, and its source is never taken for an expression."""

from __future__ import annotations

from typing import Any

import pytest

from nodedrop.contracts.codecheck import MAX_SOURCE_CHARS, source_problem
from nodedrop.contracts.nodetypes import NodeTypeRegistry
from nodedrop.contracts.workflow import WorkflowInvalid, validate_workflow

REGISTRY = NodeTypeRegistry()
GOOD = "def main(items, ctx):\n    return items\n"


def definition(parameters: dict[str, Any], *connections: dict[str, Any]) -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "start", "type": "manual_trigger"},
            {"id": "py", "type": "code", "parameters": parameters},
            {"id": "after", "type": "noop"},
        ],
        "connections": [{"from": "start", "to": "py"}, *connections],
    }


def problems(data: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(WorkflowInvalid) as info:
        validate_workflow(data, REGISTRY)
    return info.value.problems


def test_a_syntax_error_names_the_node_the_field_and_the_line() -> None:
    source = "def main(items, ctx):\n    total = 0\n    return [items +]\n"
    [problem] = problems(definition({"source": source}))
    assert problem["loc"] == ["nodes", 1, "parameters", "source"]
    assert "node 'py'" in problem["msg"]
    assert "line 3" in problem["msg"]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def helper(items, ctx):\n    return items\n", "def main"),
        ("return 1\n", "'return' outside function"),  # found by the compiler, not the parser
        ("def main(items, ctx):\n    nonlocal x\n", "nonlocal"),
        ("x = (" * 300 + ")" * 300, "line 1"),  # too deeply nested: refused, not a crash
        ("main = lambda items, ctx: items\n", "def main"),
    ],
)
def test_sources_that_cannot_run_are_refused(source: str, expected: str) -> None:
    problem = source_problem(source)
    assert problem is not None
    assert expected in problem


def test_a_source_holding_a_nul_is_refused() -> None:
    assert source_problem("def main(items, ctx):\n    return '\x00'\n") is not None


def test_a_valid_source_with_escaped_braces_is_not_an_expression() -> None:
    # f"{{...}}" is an escaped brace in Python, not a {{ template }}: never checked as one.
    source = 'def main(items, ctx):\n    return [{"t": f"{{{{ {len(items)} }}}}"}]\n'
    assert source_problem(source) is None
    workflow = validate_workflow(definition({"source": source}), REGISTRY)
    assert workflow.node("py").parameters["source"] == source


def test_outputs_become_ports_that_connections_may_use() -> None:
    good = definition(
        {"source": GOOD, "mode": "each_item", "outputs": ["rejected"]},
        {"from": "py", "output": "rejected", "to": "after"},
    )
    validate_workflow(good, REGISTRY)
    bad = definition({"source": GOOD}, {"from": "py", "output": "rejected", "to": "after"})
    [problem] = problems(bad)
    assert problem["loc"] == ["connections", 1, "output"]


@pytest.mark.parametrize(
    ("parameters", "field"),
    [
        ({"source": GOOD, "outputs": ["main"]}, "outputs"),
        ({"source": GOOD, "outputs": ["a", "a"]}, "outputs"),
        ({"source": GOOD, "outputs": ["no spaces"]}, "outputs"),
        ({"source": GOOD, "mode": "some_items"}, "mode"),
        ({"source": ""}, "source"),
        ({"source": "#" * (MAX_SOURCE_CHARS + 1)}, "source"),
        ({"source": GOOD, "timeout": 3}, "timeout"),
        ({}, "source"),
    ],
)
def test_bad_parameters_name_their_field(parameters: dict[str, Any], field: str) -> None:
    locs = [p["loc"] for p in problems(definition(parameters))]
    assert ["nodes", 1, "parameters", field] in locs


def test_node_types_advertise_code_with_main_as_its_fixed_port() -> None:
    spec = REGISTRY.get("code")
    assert spec is not None
    assert spec.static_outputs() == ["main"]
    assert spec.parameters_schema()["properties"]["mode"]["default"] == "all_items"
