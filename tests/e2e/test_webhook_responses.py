"""Webhook answers through the real system: at once (202), when the run ends (the last or a
chosen node's items, 502 when the run fails, 504 when it takes too long), or as a
``respond_to_webhook`` node says while the run goes on; the methods a webhook accepts; the
request as the trigger's output, without its secret headers. Every answer names the execution
in ``X-Nodedrop-Execution-Id``."""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx
import pytest

from .through_client import finished

pytestmark = pytest.mark.e2e

ID_HEADER = "X-Nodedrop-Execution-Id"


async def save(client: httpx.AsyncClient, hook: dict[str, Any], *rest: dict[str, Any]) -> str:
    """A saved workflow: the webhook trigger ``hook`` (its parameters), then ``rest`` in a
    chain; the id of the workflow."""
    nodes = [{"id": "hook", "type": "webhook_trigger", "parameters": hook}, *rest]
    chain = [n["id"] for n in nodes]
    connections = [{"from": a, "to": b} for a, b in itertools.pairwise(chain)]
    response = await client.post(
        "/api/workflows", json={"name": "hooked", "nodes": nodes, "connections": connections}
    )
    assert response.status_code == 201, response.text
    workflow_id: str = response.json()["id"]
    return workflow_id


def set_node(node_id: str, values: dict[str, Any]) -> dict[str, Any]:
    return {"id": node_id, "type": "set", "parameters": {"values": values}}


def wait_node(ms: int) -> dict[str, Any]:
    return {"id": "w", "type": "wait", "parameters": {"ms": ms}}


async def test_immediately_answers_202_with_the_execution_id_in_a_header(
    client: httpx.AsyncClient,
) -> None:
    workflow_id = await save(client, {}, set_node("a", {"x": 1}))
    response = await client.post(f"/webhooks/{workflow_id}/hook", json={"order": 1})
    assert response.status_code == 202
    assert response.headers[ID_HEADER] == response.json()["id"]


async def test_when_finished_answers_the_last_nodes_items(client: httpx.AsyncClient) -> None:
    workflow_id = await save(
        client,
        {"respond": "when_finished"},
        set_node("a", {"doubled": "{{ item.order * 2 }}"}),
        set_node("b", {"done": True}),
    )
    response = await client.post(f"/webhooks/{workflow_id}/hook", json={"order": 21})
    assert response.status_code == 200, response.text
    assert response.json() == [{"order": 21, "doubled": 42, "done": True}]
    execution = await finished(client, response.headers[ID_HEADER])
    assert execution["nodes"]["b"]["output"]["main"] == response.json()


async def test_when_finished_answers_the_chosen_nodes_items(client: httpx.AsyncClient) -> None:
    workflow_id = await save(
        client,
        {"respond": "when_finished", "response_node": "a"},
        set_node("a", {"first": True}),
        set_node("b", {"second": True}),
    )
    response = await client.post(f"/webhooks/{workflow_id}/hook", json={})
    assert response.status_code == 200, response.text
    assert response.json() == [{"first": True}]


async def test_when_finished_answers_502_with_the_error_when_the_run_fails(
    client: httpx.AsyncClient,
) -> None:
    workflow_id = await save(
        client,
        {"respond": "when_finished"},
        {"id": "boom", "type": "stop_and_error", "parameters": {"message": "no stock"}},
    )
    response = await client.post(f"/webhooks/{workflow_id}/hook", json={})
    assert response.status_code == 502, response.text
    body = response.json()
    assert body["id"] == response.headers[ID_HEADER]
    assert body["status"] == "failed"
    assert "no stock" in json.dumps(body["error"])


async def test_a_run_slower_than_the_response_timeout_is_a_504_and_goes_on(
    client: httpx.AsyncClient,
) -> None:
    workflow_id = await save(
        client, {"respond": "when_finished", "response_timeout_s": 0.3}, wait_node(1500)
    )
    response = await client.post(f"/webhooks/{workflow_id}/hook", json={})
    assert response.status_code == 504, response.text
    execution_id = response.json()["id"]
    assert response.headers[ID_HEADER] == execution_id
    assert (await finished(client, execution_id))["status"] == "succeeded"


async def test_via_node_answers_what_the_node_says_while_the_run_goes_on(
    client: httpx.AsyncClient,
) -> None:
    respond = {
        "id": "respond",
        "type": "respond_to_webhook",
        "parameters": {
            "status": 201,
            "headers": {"X-Order": "{{ item.order }}"},
            "body": {"accepted": "{{ item.order }}"},
        },
    }
    workflow_id = await save(client, {"respond": "via_node"}, respond, wait_node(60_000))
    response = await client.post(f"/webhooks/{workflow_id}/hook", json={"order": 9})
    assert response.status_code == 201, response.text
    assert response.json() == {"accepted": 9}
    assert response.headers["X-Order"] == "9"
    execution_id = response.headers[ID_HEADER]
    # Answered before the end: the wait node still holds the run (cancelled here to end it).
    state = (await client.get(f"/api/executions/{execution_id}")).json()
    assert state["finished_at"] is None
    assert (await client.post(f"/api/executions/{execution_id}/cancel")).status_code == 202
    assert (await finished(client, execution_id))["nodes"]["respond"]["status"] == "succeeded"


async def test_via_node_answers_502_when_the_run_ends_without_answering(
    client: httpx.AsyncClient,
) -> None:
    never = {"id": "check", "type": "if", "parameters": {"condition": False}}
    nodes = [
        {"id": "hook", "type": "webhook_trigger", "parameters": {"respond": "via_node"}},
        never,
        {"id": "respond", "type": "respond_to_webhook", "parameters": {}},
    ]
    connections = [
        {"from": "hook", "to": "check"},
        {"from": "check", "to": "respond", "output": "true"},
    ]
    saved = await client.post(
        "/api/workflows", json={"name": "never", "nodes": nodes, "connections": connections}
    )
    assert saved.status_code == 201, saved.text
    response = await client.post(f"/webhooks/{saved.json()['id']}/hook", json={})
    assert response.status_code == 502, response.text
    assert response.json()["status"] == "succeeded"
    assert response.json()["id"] == response.headers[ID_HEADER]


async def test_a_webhook_accepts_the_methods_it_lists_and_405s_the_others(
    client: httpx.AsyncClient,
) -> None:
    workflow_id = await save(client, {"methods": ["GET", "DELETE"]}, set_node("a", {}))
    url = f"/webhooks/{workflow_id}/hook"
    assert (await client.get(url)).status_code == 202
    assert (await client.delete(url)).status_code == 202
    for method in ("POST", "PUT", "PATCH"):
        refused = await client.request(method, url, json={})
        assert refused.status_code == 405, method
        assert refused.headers["Allow"] == "GET, DELETE"
    # The default is POST only.
    default = await save(client, {}, set_node("a", {}))
    assert (await client.get(f"/webhooks/{default}/hook")).status_code == 405


async def test_the_request_is_the_trigger_output_without_its_secret_headers(
    client: httpx.AsyncClient,
) -> None:
    workflow_id = await save(
        client,
        {
            "secret": "s3cret-webhook-value",
            "output": "request",
            "methods": ["PUT"],
            "respond": "when_finished",
            "response_node": "hook",
        },
        set_node("a", {}),
    )
    response = await client.put(
        f"/webhooks/{workflow_id}/hook?page=2&tag=a&tag=b",
        json={"order": 5},
        headers={
            "X-Nodedrop-Secret": "s3cret-webhook-value",
            "Cookie": "session=cookie-value",
            "X-Api-Key": "key-value",
            "X-Custom-Token": "token-value",
            "X-Trace": "visible",
        },
    )
    assert response.status_code == 200, response.text
    (item,) = response.json()
    assert item["method"] == "PUT"
    assert item["query"] == {"page": "2", "tag": ["a", "b"]}
    assert item["body"] == {"order": 5}
    assert item["headers"]["x-trace"] == "visible"
    headers = set(item["headers"])
    assert not headers & {"authorization", "cookie", "x-nodedrop-secret", "x-api-key"}
    assert "x-custom-token" not in headers
    # Nowhere in the record either: not in the execution, not in its events.
    execution_id = response.headers[ID_HEADER]
    recorded = json.dumps(await finished(client, execution_id))
    recorded += (await client.get(f"/api/executions/{execution_id}/events")).text
    api_key = client.headers["Authorization"].removeprefix("Bearer ")
    # (The webhook's own secret is a parameter of the definition, which every execution's
    # request snapshots: not checked here.)
    for secret in ("cookie-value", "key-value", "token-value", api_key):
        assert secret not in recorded


async def test_a_response_node_that_is_not_in_the_workflow_is_a_422(
    client: httpx.AsyncClient,
) -> None:
    nodes = [
        {
            "id": "hook",
            "type": "webhook_trigger",
            "parameters": {"respond": "when_finished", "response_node": "nope"},
        },
        set_node("a", {}),
    ]
    response = await client.post(
        "/api/workflows",
        json={"name": "x", "nodes": nodes, "connections": [{"from": "hook", "to": "a"}]},
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == [
        "body",
        "nodes",
        0,
        "parameters",
        "response_node",
    ]
