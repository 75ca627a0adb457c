"""A code node through the whole system: its ports route items on, its log lines are the
execution's logs, and its failure carries the user's own traceback."""

from __future__ import annotations

import shutil

import pytest

from nodedrop.client import AsyncClient

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        shutil.which("bwrap") is None,
        reason="bubblewrap (bwrap) is not installed: apt-get install bubblewrap (.ci/run does)",
    ),
]

SOURCE = """
def main(item, ctx):
    if item["total"] < 0:
        ctx.send("refunds", item)
        return None
    ctx.log.info(f"order {item['id']}: {item['total']}")
    return {**item, "big": item["total"] > 100}
"""

WORKFLOW = {
    "name": "code routing",
    "nodes": [
        {"id": "start", "type": "manual_trigger"},
        {
            "id": "sort",
            "type": "code",
            "parameters": {"source": SOURCE, "mode": "each_item", "outputs": ["refunds"]},
        },
        {"id": "orders", "type": "noop"},
        {"id": "refund", "type": "set", "parameters": {"values": {"refund": True}}},
    ],
    "connections": [
        {"from": "start", "to": "sort"},
        {"from": "sort", "to": "orders"},
        {"from": "sort", "output": "refunds", "to": "refund"},
    ],
}


async def test_a_code_node_routes_items_logs_and_fails_with_its_own_traceback(
    api: AsyncClient,
) -> None:
    items = [{"id": 1, "total": 150}, {"id": 2, "total": -5}, {"id": 3, "total": 20}]
    run_id = (await api.submit(workflow=WORKFLOW, input=items)).id
    run = await api.wait_for(run_id, 30)
    assert run.status == "succeeded", run
    assert run.nodes["orders"].output == {
        "main": [{"id": 1, "total": 150, "big": True}, {"id": 3, "total": 20, "big": False}]
    }
    assert run.nodes["refund"].output == {"main": [{"id": 2, "total": -5, "refund": True}]}
    messages = [line.message for line in await api.logs(run_id) if line.node == "sort"]
    # Between the system's own lines about the node (queued, started, ...), the code's.
    assert [m for m in messages if m.startswith("order")] == ["order 1: 150", "order 3: 20"]

    broken = (await api.submit(workflow=WORKFLOW, input=[{"id": 4}])).id
    failed = await api.wait_for(broken, 30)
    assert failed.status == "failed"
    error = failed.nodes["sort"].error
    assert error is not None
    assert error["type"] == "CodeError"
    assert error["message"] == "KeyError: 'total' (line 3)"
