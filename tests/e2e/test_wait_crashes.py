"""Waiting answers survive the crash of the service they depend on: a webhook answering
``when_finished`` while the scheduler is killed and restarted, and ``POST ?wait=`` while the
notifier (whose projection commit announces the end) is killed and restarted."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import httpx
import pytest

from .system import System

pytestmark = pytest.mark.e2e


async def kill_and_restart(system: System, name: str) -> None:
    await asyncio.to_thread(system.stop, name, signal.SIGKILL)
    await asyncio.sleep(0.5)
    system.start(name)
    await asyncio.to_thread(system.wait_healthy)


def waits_then_sets(ms: int) -> list[dict[str, Any]]:
    return [
        {"id": "w", "type": "wait", "parameters": {"ms": ms}},
        {"id": "done", "type": "set", "parameters": {"values": {"done": True}}},
    ]


async def running_execution(client: httpx.AsyncClient, workflow_id: str) -> str:
    """The id of the workflow's execution once the projection shows it running."""
    for _ in range(600):
        items = (await client.get("/api/executions", params={"workflow_id": workflow_id})).json()
        if items["items"] and items["items"][0]["status"] == "running":
            execution_id: str = items["items"][0]["id"]
            return execution_id
        await asyncio.sleep(0.05)
    raise AssertionError("the execution did not start")


async def test_a_when_finished_webhook_answers_across_a_scheduler_crash(
    system: System, client: httpx.AsyncClient
) -> None:
    nodes = [
        {"id": "hook", "type": "webhook_trigger", "parameters": {"respond": "when_finished"}},
        *waits_then_sets(2000),
    ]
    saved = await client.post(
        "/api/workflows",
        json={
            "name": "slow hook",
            "nodes": nodes,
            "connections": [{"from": "hook", "to": "w"}, {"from": "w", "to": "done"}],
        },
    )
    assert saved.status_code == 201, saved.text
    workflow_id = saved.json()["id"]
    answer = asyncio.create_task(
        client.post(f"/webhooks/{workflow_id}/hook", json={"n": 1}, timeout=60)
    )
    execution_id = await running_execution(client, workflow_id)
    await kill_and_restart(system, "scheduler")
    response = await answer
    assert response.status_code == 200, response.text
    assert response.json() == [{"n": 1, "done": True}]
    assert response.headers["X-Nodedrop-Execution-Id"] == execution_id


async def test_a_waiting_post_answers_across_a_notifier_crash(
    system: System, client: httpx.AsyncClient
) -> None:
    workflow = {
        "name": "slow",
        "nodes": [{"id": "start", "type": "manual_trigger"}, *waits_then_sets(2000)],
        "connections": [{"from": "start", "to": "w"}, {"from": "w", "to": "done"}],
    }
    saved = await client.post("/api/workflows", json=workflow)
    assert saved.status_code == 201, saved.text
    workflow_id = saved.json()["id"]
    answer = asyncio.create_task(
        client.post(
            "/api/executions", params={"wait": 50}, json={"workflow_id": workflow_id}, timeout=60
        )
    )
    await running_execution(client, workflow_id)
    await kill_and_restart(system, "notifier")
    response = await answer
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "succeeded"
    assert response.json()["nodes"]["done"]["output"] == {"main": [{"done": True}]}
