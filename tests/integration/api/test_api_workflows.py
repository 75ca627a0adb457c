"""Workflow CRUD, versions, pagination, validation, auth, node types, health."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest

from .harness import Api

pytestmark = pytest.mark.integration


async def test_create_get_update_delete(api: Api, workflow: dict[str, Any]) -> None:
    created = await api.client.post("/api/workflows", json=workflow)
    assert created.status_code == 201, created.text
    body = created.json()
    workflow_id = body["id"]
    assert "." not in workflow_id
    assert body["version"] == 1
    assert body["name"] == "Order sync"
    assert [n["id"] for n in body["nodes"]] == ["start", "shape", "big", "done"]
    assert body["connections"][2] == {"from": "big", "output": "true", "to": "done"}
    assert body["created_at"].endswith("Z")

    got = await api.client.get(f"/api/workflows/{workflow_id}")
    assert got.status_code == 200
    assert got.json() == body

    changed = copy.deepcopy(workflow)
    changed["name"] = "Order sync v2"
    changed["nodes"].append({"id": "other", "type": "noop"})
    changed["connections"].append({"from": "big", "output": "false", "to": "other"})
    updated = await api.client.put(f"/api/workflows/{workflow_id}", json=changed)
    assert updated.status_code == 200, updated.text
    assert updated.json()["version"] == 2
    assert updated.json()["name"] == "Order sync v2"

    latest = (await api.client.get(f"/api/workflows/{workflow_id}")).json()
    assert latest["version"] == 2
    assert len(latest["nodes"]) == 5
    first = (await api.client.get(f"/api/workflows/{workflow_id}/versions/1")).json()
    assert first["version"] == 1
    assert first["name"] == "Order sync"
    assert len(first["nodes"]) == 4
    missing = await api.client.get(f"/api/workflows/{workflow_id}/versions/3")
    assert missing.status_code == 404

    third = await api.client.put(f"/api/workflows/{workflow_id}", json=workflow)
    assert third.json()["version"] == 3

    deleted = await api.client.delete(f"/api/workflows/{workflow_id}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    for response in (
        await api.client.get(f"/api/workflows/{workflow_id}"),
        await api.client.put(f"/api/workflows/{workflow_id}", json=workflow),
        await api.client.delete(f"/api/workflows/{workflow_id}"),
    ):
        assert response.status_code == 404
    listed = (await api.client.get("/api/workflows")).json()
    assert workflow_id not in [w["id"] for w in listed["items"]]


async def test_unknown_workflow_is_404(api: Api) -> None:
    response = await api.client.get("/api/workflows/nope")
    assert response.status_code == 404
    assert "nope" in response.json()["detail"]


async def test_list_is_newest_first_with_keyset_pagination(
    api: Api, workflow: dict[str, Any]
) -> None:
    ids = []
    for i in range(5):
        workflow["name"] = f"wf {i}"
        ids.append((await api.client.post("/api/workflows", json=workflow)).json()["id"])
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await api.client.get("/api/workflows", params=params)).json()
        pages += 1
        seen += [w["id"] for w in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == list(reversed(ids))


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"limit": 0}, ["query", "limit"]),
        ({"limit": 201}, ["query", "limit"]),
        ({"cursor": "garbage!"}, ["query", "cursor"]),
    ],
)
async def test_list_rejects_bad_paging(api: Api, params: dict[str, Any], loc: list[str]) -> None:
    response = await api.client.get("/api/workflows", params=params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == loc


def _locs(response: httpx.Response) -> list[list[Any]]:
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert all(set(p) == {"loc", "msg", "type"} for p in detail)
    return [p["loc"] for p in detail]


async def test_invalid_definitions_name_each_problem(api: Api, workflow: dict[str, Any]) -> None:
    workflow["nodes"][1]["type"] = "no_such_type"
    workflow["nodes"][3]["id"] = "big"
    workflow["connections"].append({"from": "done", "to": "ghost"})
    workflow["bogus"] = 1
    locs = _locs(await api.client.post("/api/workflows", json=workflow))
    assert locs == [["body", "bogus"]]  # the JSON shape is checked before the graph
    del workflow["bogus"]
    locs = _locs(await api.client.post("/api/workflows", json=workflow))
    assert ["body", "nodes", 1, "type"] in locs
    assert ["body", "nodes", 3, "id"] in locs
    assert ["body", "connections", 3, "to"] in locs
    assert (await api.client.get("/api/workflows")).json()["items"] == []


async def test_cycle_and_bad_parameters(api: Api, workflow: dict[str, Any]) -> None:
    workflow["connections"].append({"from": "done", "to": "shape"})
    workflow["nodes"][2]["parameters"] = {"condition": "{{ x }}", "extra": 1}
    response = await api.client.post("/api/workflows", json=workflow)
    detail = response.json()["detail"]
    assert ["body", "nodes", 2, "parameters", "extra"] in _locs(response)
    cycle = next(p for p in detail if p["type"] == "cycle")
    assert cycle["loc"] == ["body", "connections"]
    assert "shape" in cycle["msg"]
    assert "done" in cycle["msg"]


async def test_a_code_nodes_syntax_error_is_refused_with_its_line(api: Api) -> None:
    source = "def main(items, ctx):\n    return [\n"
    definition: dict[str, Any] = {
        "nodes": [
            {"id": "start", "type": "manual_trigger"},
            {"id": "py", "type": "code", "parameters": {"source": source}},
        ],
        "connections": [{"from": "start", "to": "py"}],
    }
    response = await api.client.post("/api/workflows", json=definition)
    assert _locs(response) == [["body", "nodes", 1, "parameters", "source"]]
    message = response.json()["detail"][0]["msg"]
    assert "node 'py'" in message
    assert "line 2" in message
    definition["nodes"][1]["parameters"]["source"] = "def main(items, ctx):\n    return items\n"
    assert (await api.client.post("/api/workflows", json=definition)).status_code == 201


async def test_python_field_names_are_not_json_names(api: Api, workflow: dict[str, Any]) -> None:
    workflow["connections"] = [{"from_": "start", "to": "shape"}]
    locs = _locs(await api.client.post("/api/workflows", json=workflow))
    assert ["body", "connections", 0, "from"] in locs


async def test_body_that_is_not_an_object(api: Api) -> None:
    response = await api.client.post(
        "/api/workflows", content=b"[1, 2", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][0] == "body"
    assert _locs(await api.client.post("/api/workflows", json=[1]))[0][0] == "body"


async def test_put_validates_too(api: Api, workflow: dict[str, Any]) -> None:
    workflow_id = (await api.client.post("/api/workflows", json=workflow)).json()["id"]
    workflow["nodes"] = [{"id": "x", "type": "noop"}]
    workflow["connections"] = []
    response = await api.client.put(f"/api/workflows/{workflow_id}", json=workflow)
    assert _locs(response) == [["body", "nodes"]]
    assert (await api.client.get(f"/api/workflows/{workflow_id}")).json()["version"] == 1


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic dGVzdA=="}],
    ids=["missing", "wrong", "not-bearer"],
)
async def test_api_needs_the_key(api: Api, headers: dict[str, str]) -> None:
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as anonymous:
        for method, path in (
            ("GET", "/api/workflows"),
            ("POST", "/api/workflows"),
            ("GET", "/api/node-types"),
            ("POST", "/api/executions"),
            ("GET", "/api/executions/x"),
        ):
            response = await anonymous.request(method, path, headers=headers, json={})
            assert response.status_code == 401, (method, path)
            assert response.headers["WWW-Authenticate"] == "Bearer"
        health = await anonymous.get("/health")
        assert health.status_code == 200
        assert health.json() == {"status": "ok"}


async def test_node_types(api: Api) -> None:
    response = await api.client.get("/api/node-types")
    assert response.status_code == 200
    items = {t["type"]: t for t in response.json()["items"]}
    assert {"manual_trigger", "webhook_trigger", "if", "switch", "http_request"} <= set(items)
    assert items["manual_trigger"]["category"] == "trigger"
    assert items["if"]["outputs"] == ["true", "false"]
    assert items["noop"]["outputs"] == ["main"]
    assert items["http_request"]["parameters_schema"]["properties"]["url"]["type"] == "string"
    assert items["http_request"]["display_name"] == "HTTP request"


async def test_openapi_documents_the_models(api: Api) -> None:
    document = (await api.client.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    assert {"Workflow", "Node", "Connection", "ExecutionOut", "WorkflowOut"} <= set(schemas)
    post = document["paths"]["/api/executions"]["post"]
    assert "202" in post["responses"]
