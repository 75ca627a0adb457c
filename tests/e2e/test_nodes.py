"""Every node type through the public API, against the real services: flow nodes with
expressions, http_request against a local server, the webhook trigger, a custom node type
installed from a package."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from .conftest import running_system
from .system import System

if TYPE_CHECKING:  # pytest gives the class as a fixture (see tests/fixtures/http_server.py)
    from tests.fixtures.http_server import LocalHttpServer, Request

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def system(pg_server_url: str, plugin_path: str) -> AsyncIterator[System]:
    env = {"NODEDROP_HTTP_ALLOW_PRIVATE": "true", "PYTHONPATH": plugin_path}
    async with running_system(pg_server_url, env) as started:
        yield started


@pytest.fixture
async def client(system: System) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=system.base_url, headers=system.headers, timeout=10
    ) as http:
        yield http


def echo(request: Request) -> tuple[int, dict[str, str | None]]:
    return 200, {"path": request.path, "who": request.headers.get("X-Who")}


@pytest.fixture
def http_server(local_http_server: type[LocalHttpServer]) -> Iterator[LocalHttpServer]:
    with local_http_server(echo) as server:
        yield server


async def finished(client: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
    for _ in range(300):
        body: dict[str, Any] = (await client.get(f"/api/executions/{execution_id}")).json()
        if body.get("finished_at"):
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"{execution_id} did not finish: {body}")


async def run(client: httpx.AsyncClient, workflow: dict[str, Any], **body: Any) -> dict[str, Any]:
    response = await client.post("/api/executions", json={"workflow": workflow, **body})
    assert response.status_code == 202, response.text
    return await finished(client, response.json()["id"])


ORDERS = [{"id": 1, "total": 50, "name": "ann"}, {"id": 2, "total": 150, "name": "bob"}]


async def test_flow_nodes_route_and_shape_items_with_expressions(client: httpx.AsyncClient) -> None:
    workflow = {
        "name": "flow",
        "nodes": [
            {"id": "start", "type": "manual_trigger"},
            {"id": "big", "type": "if", "parameters": {"condition": "{{ item.total > 100 }}"}},
            {
                "id": "tag",
                "type": "set",
                "parameters": {
                    "values": {
                        "vip": True,
                        "note": "order {{ item.id }} of {{ execution.trigger }}",
                    }
                },
            },
            {"id": "join", "type": "merge"},
            {
                "id": "route",
                "type": "switch",
                "parameters": {
                    "cases": [{"output": "vip", "condition": "{{ item.get('vip', false) }}"}],
                    "default_output": "rest",
                },
            },
            {"id": "vips", "type": "noop"},
            {"id": "others", "type": "noop"},
        ],
        "connections": [
            {"from": "start", "to": "big"},
            {"from": "big", "output": "true", "to": "tag"},
            {"from": "tag", "to": "join", "input": "a"},
            {"from": "big", "output": "false", "to": "join", "input": "b"},
            {"from": "join", "to": "route"},
            {"from": "route", "output": "vip", "to": "vips"},
            {"from": "route", "output": "rest", "to": "others"},
        ],
    }
    execution = await run(client, workflow, input=ORDERS)
    assert execution["status"] == "succeeded", execution
    nodes = execution["nodes"]
    assert nodes["big"]["output"] == {"true": [ORDERS[1]], "false": [ORDERS[0]]}
    vip = {**ORDERS[1], "vip": True, "note": "order 2 of start"}
    assert nodes["join"]["output"] == {"main": [vip, ORDERS[0]]}
    assert nodes["vips"]["output"] == {"main": [vip]}
    assert nodes["others"]["output"] == {"main": [ORDERS[0]]}


async def test_an_expression_that_fails_fails_its_node_naming_it(client: httpx.AsyncClient) -> None:
    workflow = {
        "name": "bad expression",
        "nodes": [
            {"id": "start", "type": "manual_trigger"},
            {"id": "check", "type": "if", "parameters": {"condition": "{{ item.nope > 1 }}"}},
        ],
        "connections": [{"from": "start", "to": "check"}],
    }
    execution = await run(client, workflow)
    assert execution["status"] == "failed"
    error = execution["nodes"]["check"]["error"]
    assert error["type"] == "ExpressionError"
    assert "item.nope > 1" in error["message"]


async def test_an_escape_attempt_is_refused_when_the_workflow_is_saved(
    client: httpx.AsyncClient,
) -> None:
    workflow = {
        "name": "escape",
        "nodes": [
            {"id": "start", "type": "manual_trigger"},
            {"id": "x", "type": "set", "parameters": {"values": {"a": "{{ item.__class__ }}"}}},
        ],
        "connections": [{"from": "start", "to": "x"}],
    }
    response = await client.post("/api/workflows", json=workflow)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "nodes", 1, "parameters", "values", "a"]


async def test_http_request_calls_a_server_once_per_item_with_idempotency_keys(
    client: httpx.AsyncClient, http_server: LocalHttpServer
) -> None:
    workflow = {
        "name": "http",
        "nodes": [
            {"id": "start", "type": "manual_trigger"},
            {
                "id": "call",
                "type": "http_request",
                "parameters": {
                    "url": http_server.url + "/orders/{{ item.id }}",
                    "headers": {"X-Who": "{{ item.name }}"},
                    "query": {"total": "{{ item.total }}"},
                },
            },
        ],
        "connections": [{"from": "start", "to": "call"}],
    }
    execution = await run(client, workflow, input=ORDERS)
    assert execution["status"] == "succeeded", execution["nodes"]["call"]["error"]
    bodies = [item["body"] for item in execution["nodes"]["call"]["output"]["main"]]
    assert bodies == [
        {"path": "/orders/1?total=50", "who": "ann"},
        {"path": "/orders/2?total=150", "who": "bob"},
    ]
    keys = [request.idempotency_key for request in http_server.requests()]
    assert len(keys) == 2
    assert None not in keys  # each request carried one
    assert len(set(keys)) == 2


async def test_a_webhook_runs_the_saved_workflow_with_its_body(client: httpx.AsyncClient) -> None:
    saved = await client.post(
        "/api/workflows",
        json={
            "name": "hooked",
            "nodes": [
                {"id": "hook", "type": "webhook_trigger", "parameters": {"secret": "s3"}},
                {
                    "id": "shape",
                    "type": "set",
                    "parameters": {"values": {"seen": "{{ item.event }}"}},
                },
            ],
            "connections": [{"from": "hook", "to": "shape"}],
        },
    )
    assert saved.status_code == 201, saved.text
    workflow_id = saved.json()["id"]
    async with httpx.AsyncClient(base_url=client.base_url) as anonymous:
        refused = await anonymous.post(f"/webhooks/{workflow_id}/hook", json={"event": "x"})
        assert refused.status_code == 401
        accepted = await anonymous.post(
            f"/webhooks/{workflow_id}/hook",
            json={"event": "paid"},
            headers={"X-Nodedrop-Secret": "s3"},
        )
    assert accepted.status_code == 202, accepted.text
    execution = await finished(client, accepted.json()["id"])
    assert execution["status"] == "succeeded"
    assert execution["trigger"] == "hook"
    assert execution["nodes"]["shape"]["output"] == {"main": [{"event": "paid", "seen": "paid"}]}


async def test_a_custom_node_type_from_an_installed_package_runs(client: httpx.AsyncClient) -> None:
    types = (await client.get("/api/node-types")).json()["items"]
    assert "greet" in {t["type"] for t in types}
    workflow: dict[str, Any] = {
        "name": "plugin",
        "nodes": [
            {"id": "start", "type": "manual_trigger"},
            {"id": "hello", "type": "greet", "parameters": {"greeting": "hi"}},
        ],
        "connections": [{"from": "start", "to": "hello"}],
    }
    execution = await run(client, workflow, input=[{"name": "ann"}])
    assert execution["status"] == "succeeded", execution
    assert execution["nodes"]["hello"]["output"] == {
        "main": [{"name": "ann", "greeting": "hi, ann"}]
    }
    # What the node logged (in its worker process) is in the execution's logs and events.
    logs = (await client.get(f"/api/executions/{execution['id']}/logs")).json()["logs"]
    assert [
        (line["node"], line["level"], line["message"])
        for line in logs
        if line["message"].startswith("greeting")
    ] == [("hello", "info", "greeting 1 item(s) with 'hi'")]
    events = (await client.get(f"/api/executions/{execution['id']}/events")).json()["events"]
    logged = [e for e in events if e["type"] == "NodeLogged"]
    assert [line["message"] for line in logged[0]["data"]["lines"]] == [
        "greeting 1 item(s) with 'hi'"
    ]
    bad = await client.post(
        "/api/workflows",
        json={
            **workflow,
            "nodes": [
                workflow["nodes"][0],
                {**workflow["nodes"][1], "parameters": {"greetin": "x"}},
            ],
        },
    )
    assert bad.status_code == 422


async def test_a_scheduled_workflow_runs_at_the_next_minute(client: httpx.AsyncClient) -> None:
    """The real clock: a `* * * * *` schedule fires at the next minute boundary (so this test
    waits up to a minute), through the scheduler's cron firer."""
    saved = await client.post(
        "/api/workflows",
        json={
            "name": "every minute",
            "nodes": [
                {"id": "tick", "type": "schedule_trigger", "parameters": {"cron": "* * * * *"}},
                {"id": "work", "type": "noop"},
            ],
            "connections": [{"from": "tick", "to": "work"}],
        },
    )
    assert saved.status_code == 201, saved.text
    workflow_id = saved.json()["id"]
    try:
        for _ in range(700):
            page = (await client.get("/api/executions", params={"workflow_id": workflow_id})).json()
            if page["items"]:
                break
            await asyncio.sleep(0.1)
        assert page["items"], "the schedule did not fire within 70 s"
        execution = await finished(client, page["items"][0]["id"])
        assert execution["status"] == "succeeded"
        assert execution["trigger"] == "tick"
        [item] = execution["nodes"]["work"]["output"]["main"]
        assert item["scheduled_at"].endswith(":00Z") or item["scheduled_at"].endswith(":00+00:00")
    finally:
        await client.delete(f"/api/workflows/{workflow_id}")
