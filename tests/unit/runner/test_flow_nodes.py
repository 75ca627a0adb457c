"""set, if, switch and merge, with expressions rendered per item."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from nodedrop.runner.nodes.api import NodeContext, NodeError
from nodedrop.runner.nodes.flow import IfNode, MergeNode, SetNode, SwitchNode, attempt_budget
from nodedrop.runner.nodes.http_request import HttpRequestNode

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


HEAVY_EXPRESSION = "len([x for x in range(24000)])"  # just under the budget of one render
EXPRESSION_NODES: dict[str, tuple[Any, dict[str, Any]]] = {
    "set": (SetNode(), {"values": {"v": "{{ " + HEAVY_EXPRESSION + " }}"}}),
    "if": (IfNode(), {"condition": "{{ " + HEAVY_EXPRESSION + " > 0 }}"}),
    "switch": (
        SwitchNode(),
        {"cases": [{"output": "a", "condition": "{{ " + HEAVY_EXPRESSION + " > 0 }}"}]},
    ),
}


class OtherTask:
    """Another task of the event loop, counting the turns it gets."""

    def __init__(self) -> None:
        self.turns = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> OtherTask:
        self._task = asyncio.create_task(self._spin())
        await asyncio.sleep(0)
        self.turns = 0
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()

    async def _spin(self) -> None:
        while True:
            self.turns += 1
            await asyncio.sleep(0)


@pytest.mark.parametrize("node_type", sorted(EXPRESSION_NODES))
async def test_expression_nodes_give_the_loop_back_between_heavy_items(node_type: str) -> None:
    """Each item renders just under the budget of one render: the node pauses between items
    (at least once per SLICE_S of work), so other tasks of the loop run meanwhile."""
    node, parameters = EXPRESSION_NODES[node_type]
    async with OtherTask() as other:
        await node.run(CTX, {"main": [{"n": n} for n in range(20)]}, parameters)
    assert other.turns > 1


async def test_http_request_gives_the_loop_back_while_it_renders_its_requests() -> None:
    """It renders every item's parameters before it sends anything: that part pauses too."""
    turns_at_first_request: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        turns_at_first_request.append(other.turns)
        return httpx.Response(200, json={})

    node = HttpRequestNode(
        client_factory=lambda: httpx.AsyncClient(transport=httpx.MockTransport(answer))
    )
    parameters = {"url": "http://example.org/{{ " + HEAVY_EXPRESSION + " }}"}
    async with OtherTask() as other:
        await node.run(CTX, {"main": [{"n": n} for n in range(20)]}, parameters)
    assert turns_at_first_request[0] > 1


async def test_the_attempts_budget_spans_all_its_items() -> None:
    items = {"main": [{"n": n} for n in range(100)]}
    parameters = {"values": {"v": "{{ len([x for x in range(10)]) }}"}}  # ~40 steps an item
    with attempt_budget(10_000) as budget:
        await SetNode().run(CTX, items, parameters)
    assert 3_000 < budget.spent < 5_000
    with attempt_budget(1_000), pytest.raises(NodeError) as raised:
        await SetNode().run(CTX, items, parameters)
    assert (raised.value.type, raised.value.retryable) == ("ExpressionBudgetExceeded", False)
    assert "1,000 steps" in raised.value.message
    # Outside an attempt's budget, each render is bounded on its own only.
    assert len((await SetNode().run(CTX, items, parameters))["main"]) == 100


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
