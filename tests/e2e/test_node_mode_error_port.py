"""Node mode of a child on a failed node's ``error`` port, through the whole system: the failed
node's error items are its recorded output, so the child run alone gets the input it got in the
workflow's run."""

from __future__ import annotations

from typing import Any

import pytest

from nodedrop.client import AsyncClient

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
    api: AsyncClient, execution_id: str, kind: str, node: str | None = None
) -> dict[str, Any]:
    events = await api.events(execution_id)
    [found] = [e for e in events if e.type == kind and node in (None, e.node)]
    return found.data


async def test_a_child_on_the_error_port_runs_alone_with_the_input_it_got_in_the_run(
    api: AsyncClient,
) -> None:
    workflow_id = (await api.create_workflow(WORKFLOW)).id
    run_id = (await api.submit(workflow_id, input=[{"n": 1}, {"n": 2}])).id
    run = await api.wait_for(run_id, 30)
    assert run.status == "partial", run
    error = {"type": "Invalid", "message": "not valid"}
    error_items = [{"error": error, "item": {"n": 1}}, {"error": error, "item": {"n": 2}}]
    assert run.nodes["check"].status == "failed"
    assert run.nodes["check"].output == {"error": error_items}
    assert run.nodes["handle"].status == "succeeded"
    got_in_the_run = (await event_data(api, run_id, "NodeReady", "handle"))["input"]
    assert got_in_the_run == {"main": error_items}

    alone_id = (await api.submit(workflow_id, mode="node", node="handle")).id
    alone = await api.wait_for(alone_id, 30)
    assert alone.status == "succeeded", alone
    assert (await event_data(api, alone_id, "ExecutionRequested"))["input"] == got_in_the_run
    assert (await event_data(api, alone_id, "NodeReady", "handle"))["input"] == got_in_the_run
    assert alone.nodes["handle"].output == run.nodes["handle"].output
