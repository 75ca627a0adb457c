"""set, if, switch and merge, with expressions rendered per item."""

from __future__ import annotations

from typing import Any

import pytest

from nodedrop.runner.nodes.api import NodeContext, NodeError
from nodedrop.runner.nodes.flow import IfNode, MergeNode, SetNode, SwitchNode

CTX = NodeContext(
    "ex-1", "node", 1, trigger="start", upstream={"fetch": {"main": [{"token": "t-1"}]}}
)
ORDERS = {"main": [{"id": 1, "total": 50}, {"id": 2, "total": 150}]}


async def test_set_updates_each_item_with_rendered_values() -> None:
    out = await SetNode().run(
        CTX,
        ORDERS,
        {
            "values": {
                "big": "{{ item.total > 100 }}",
                "label": "order {{ item.id }}",
                "fixed": 7,
                "token": '{{ nodes["fetch"].main[0].token }}',
                "run": "{{ execution.id }}",
            }
        },
    )
    assert out == {
        "main": [
            {
                "id": 1,
                "total": 50,
                "big": False,
                "label": "order 1",
                "fixed": 7,
                "token": "t-1",
                "run": "ex-1",
            },
            {
                "id": 2,
                "total": 150,
                "big": True,
                "label": "order 2",
                "fixed": 7,
                "token": "t-1",
                "run": "ex-1",
            },
        ]
    }


async def test_if_routes_each_item_by_its_condition() -> None:
    out = await IfNode().run(CTX, ORDERS, {"condition": "{{ item.total > 100 }}"})
    assert out == {"true": [{"id": 2, "total": 150}], "false": [{"id": 1, "total": 50}]}


async def test_if_with_a_literal_condition() -> None:
    out = await IfNode().run(CTX, ORDERS, {"condition": False})
    assert out == {"true": [], "false": ORDERS["main"]}


async def test_switch_sends_each_item_to_the_first_matching_case_or_the_default() -> None:
    parameters: dict[str, Any] = {
        "cases": [
            {"output": "small", "condition": "{{ item.total < 100 }}"},
            {"output": "any", "condition": True},
        ],
        "default_output": "other",
    }
    out = await SwitchNode().run(CTX, ORDERS, parameters)
    assert out == {"small": [{"id": 1, "total": 50}], "any": [{"id": 2, "total": 150}], "other": []}


async def test_switch_without_default_drops_unmatched_items() -> None:
    parameters: dict[str, Any] = {
        "cases": [{"output": "big", "condition": "{{ item.total > 100 }}"}]
    }
    out = await SwitchNode().run(CTX, ORDERS, parameters)
    assert out == {"big": [{"id": 2, "total": 150}]}


async def test_merge_concatenates_its_inputs_in_port_order() -> None:
    out = await MergeNode().run(CTX, {"a": [{"x": 1}], "b": [{"x": 2}, {"x": 3}]}, {})
    assert out == {"main": [{"x": 1}, {"x": 2}, {"x": 3}]}


async def test_a_failing_expression_fails_the_node_naming_the_expression() -> None:
    with pytest.raises(NodeError) as raised:
        await IfNode().run(CTX, ORDERS, {"condition": "{{ item.missing > 1 }}"})
    assert raised.value.type == "ExpressionError"
    assert "item.missing > 1" in raised.value.message
    assert raised.value.retryable is False


async def test_an_escape_attempt_fails_as_an_expression_error() -> None:
    with pytest.raises(NodeError) as raised:
        await SetNode().run(CTX, ORDERS, {"values": {"x": "{{ item.__class__ }}"}})
    assert raised.value.type == "ExpressionError"


def test_node_log_keeps_lines_in_order_and_caps_them() -> None:
    from nodedrop.runner.nodes.api import MAX_LOG_CHARS, MAX_LOG_LINES, NodeLog

    log = NodeLog()
    log.info("first")
    log.error("x" * (MAX_LOG_CHARS + 5))
    for i in range(MAX_LOG_LINES + 10):
        log.debug(f"line {i}")
    assert [line.level for line in log.lines[:2]] == ["info", "error"]
    assert len(log.lines[1].message) == MAX_LOG_CHARS
    assert len(log.lines) == MAX_LOG_LINES
    assert log.lines[-1].level == "warning"
    assert "truncated" in log.lines[-1].message
