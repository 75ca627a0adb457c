"""respond_to_webhook: the answer recorded on its response port, rendered with the first item;
its items passed on; a status or header the api could not send fails the node, not retried."""

from __future__ import annotations

from typing import Any

import pytest

from nodedrop.runner.nodes.api import NodeContext, NodeError
from nodedrop.runner.nodes.respond import RespondToWebhookNode

CTX = NodeContext("ex-1", "respond", 1, trigger="hook")
ORDERS = {"main": [{"id": 7, "total": 50}, {"id": 8, "total": 150}]}


async def run(parameters: dict[str, Any], node_input: dict[str, Any] = ORDERS) -> dict[str, Any]:
    return await RespondToWebhookNode().run(CTX, node_input, parameters)


async def test_the_answer_is_rendered_with_the_first_item_and_the_items_go_on() -> None:
    out = await run(
        {
            "status": "{{ item.total > 10 and 201 or 200 }}",
            "headers": {"X-Order": "{{ item.id }}"},
            "body": {"order": "{{ item.id }}", "fixed": [1, 2]},
        }
    )
    assert out["main"] == ORDERS["main"]
    assert out["response"] == [
        {"status": 201, "headers": {"X-Order": "7"}, "body": {"order": 7, "fixed": [1, 2]}}
    ]


async def test_without_a_body_the_answer_is_the_items() -> None:
    out = await run({})
    assert out["response"] == [{"status": 200, "headers": {}, "body": ORDERS["main"]}]


async def test_without_input_the_node_still_answers() -> None:
    out = await run({"body": {"count": "{{ 1 + 1 }}"}}, {})
    assert out["response"][0]["body"] == {"count": 2}
    assert out["main"] == []


@pytest.mark.parametrize("status", [99, "abc", "{{ 700 }}", True, "1e3"])
async def test_a_status_that_is_not_200_to_599_fails_the_node(status: Any) -> None:
    with pytest.raises(NodeError) as failure:
        await run({"status": status})
    assert failure.value.type == "InvalidParameters"
    assert failure.value.retryable is False


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Content-Length", "3"),
        ("X-Nodedrop-Execution-Id", "other"),
        ("Bad Name", "x"),
        ("X-Split", "a\r\nSet-Cookie: stolen=1"),
    ],
)
async def test_a_header_the_node_may_not_set_fails_the_node(name: str, value: str) -> None:
    with pytest.raises(NodeError) as failure:
        await run({"headers": {name: value}})
    assert failure.value.type == "InvalidParameters"
