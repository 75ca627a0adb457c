"""Node mode of a child on a failed node's ``error`` port, through the whole system: the failed
node's error items are its recorded output, so the child run alone gets the input it got in the
workflow's run."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from .api_client import finished, submit

pytestmark = pytest.mark.e2e

WORKFLOW = {
    "name": "error port",
    "nodes": [
        {"id": "start", "type": "manual_trigger"},
        {
            "id": "check",
            "type": "stop_and_error",
            "parameters": {"message": "not valid", "error_type": "Invalid"},
            "on_error": "error_output",
        },
        {"id": "handle", "type": "set", "parameters": {"values": {"handled": True}}},
    ],
    "connections": [
        {"from": "start", "to": "check"},
        {"from": "check", "output": "error", "to": "handle"},
    ],
}


async def event_data(
    client: httpx.AsyncClient, execution_id: str, kind: str, node: str | None = None
) -> dict[str, Any]:
    events = (await client.get(f"/api/executions/{execution_id}/events")).json()["events"]
    [found] = [e for e in events if e["type"] == kind and node in (None, e.get("node"))]
    data: dict[str, Any] = found["data"]
    return data


async def test_a_child_on_the_error_port_runs_alone_with_the_input_it_got_in_the_run(
    client: httpx.AsyncClient,
) -> None:
    workflow_id = (await client.post("/api/workflows", json=WORKFLOW)).json()["id"]
    run_id = await submit(client, workflow_id=workflow_id, input=[{"n": 1}, {"n": 2}])
    run = await finished(client, run_id)
    assert run["status"] == "partial", run
    error = {"type": "Invalid", "message": "not valid"}
    error_items = [{"error": error, "item": {"n": 1}}, {"error": error, "item": {"n": 2}}]
    assert run["nodes"]["check"]["status"] == "failed"
    assert run["nodes"]["check"]["output"] == {"error": error_items}
    assert run["nodes"]["handle"]["status"] == "succeeded"
    got_in_the_run = (await event_data(client, run_id, "NodeReady", "handle"))["input"]
    assert got_in_the_run == {"main": error_items}

    alone_id = await submit(client, workflow_id=workflow_id, mode="node", node="handle")
    alone = await finished(client, alone_id)
    assert alone["status"] == "succeeded", alone
    assert (await event_data(client, alone_id, "ExecutionRequested"))["input"] == got_in_the_run
    assert (await event_data(client, alone_id, "NodeReady", "handle"))["input"] == got_in_the_run
    assert alone["nodes"]["handle"]["output"] == run["nodes"]["handle"]["output"]
