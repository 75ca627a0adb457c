"""POST /webhooks/{workflow_id}/{node_id}: runs the saved workflow from its webhook trigger."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest

from nodedrop.contracts.events import ExecutionRequested

from .harness import Api

pytestmark = pytest.mark.integration

SECRET = "s3cret-value"

HOOKED: dict[str, Any] = {
    "name": "Hooked",
    "nodes": [
        {"id": "start", "type": "manual_trigger"},
        {"id": "hook", "type": "webhook_trigger"},
        {"id": "secured", "type": "webhook_trigger", "parameters": {"secret": SECRET}},
        {"id": "done", "type": "noop"},
    ],
    "connections": [
        {"from": "start", "to": "done"},
        {"from": "hook", "to": "done"},
        {"from": "secured", "to": "done"},
    ],
}


async def saved(api: Api, definition: dict[str, Any] | None = None) -> str:
    created = await api.client.post("/api/workflows", json=definition or HOOKED)
    assert created.status_code == 201, created.text
    workflow_id: str = created.json()["id"]
    return workflow_id


async def requested(api: Api, execution_id: str) -> ExecutionRequested:
    [(event, _)] = await api.stream_events(execution_id)
    assert isinstance(event, ExecutionRequested)
    return event


async def test_webhook_queues_the_saved_workflow_with_the_body(
    api: Api, anonymous: httpx.AsyncClient
) -> None:
    workflow_id = await saved(api)
    response = await anonymous.post(
        f"/webhooks/{workflow_id}/hook", json={"order": 7, "lines": [1, 2]}
    )
    assert response.status_code == 202, response.text
    execution_id = response.json()["id"]
    assert response.headers["Location"] == f"/api/executions/{execution_id}"

    event = await requested(api, execution_id)
    assert event.mode == "trigger"
    assert event.trigger == "hook"
    assert event.input == [{"order": 7, "lines": [1, 2]}]
    assert event.workflow_id == workflow_id
    assert event.workflow_version == 1
    assert event.requested_by == "admin"  # the workflow's owner
    assert [n["id"] for n in event.workflow["nodes"]] == ["start", "hook", "secured", "done"]

    # Readable through the API like any execution.
    got = await api.client.get(f"/api/executions/{execution_id}")
    assert got.status_code == 200
    assert got.json()["trigger"] == "hook"


async def test_webhook_runs_the_latest_version(api: Api, anonymous: httpx.AsyncClient) -> None:
    workflow_id = await saved(api)
    changed = copy.deepcopy(HOOKED)
    changed["name"] = "Hooked v2"
    assert (await api.client.put(f"/api/workflows/{workflow_id}", json=changed)).status_code == 200
    response = await anonymous.post(f"/webhooks/{workflow_id}/hook", json={})
    assert response.status_code == 202
    event = await requested(api, response.json()["id"])
    assert event.workflow_version == 2
    assert event.workflow["name"] == "Hooked v2"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"[1, 2]", [{"body": [1, 2]}]),
        (b'"text"', [{"body": "text"}]),
        (b"42", [{"body": 42}]),
        (b"null", [{"body": None}]),
        (b"", [{}]),
    ],
)
async def test_non_object_bodies_are_wrapped(
    api: Api, anonymous: httpx.AsyncClient, content: bytes, expected: list[Any]
) -> None:
    workflow_id = await saved(api)
    response = await anonymous.post(
        f"/webhooks/{workflow_id}/hook",
        content=content,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 202, response.text
    assert (await requested(api, response.json()["id"])).input == expected


async def test_invalid_json_is_422_and_records_nothing(
    api: Api, anonymous: httpx.AsyncClient
) -> None:
    workflow_id = await saved(api)
    before = await api.stream_count()
    response = await anonymous.post(
        f"/webhooks/{workflow_id}/hook",
        content=b'{"order": ',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body"]
    assert problem["type"] == "json_invalid"
    assert await api.stream_count() == before


async def test_secret_is_required_and_checked(api: Api, anonymous: httpx.AsyncClient) -> None:
    workflow_id = await saved(api)
    url = f"/webhooks/{workflow_id}/secured"
    before = await api.stream_count()
    for headers in ({}, {"X-Nodedrop-Secret": "wrong"}, {"X-Nodedrop-Secret": SECRET + "x"}):
        refused = await anonymous.post(url, json={"a": 1}, headers=headers)
        assert refused.status_code == 401, headers
        assert "X-Nodedrop-Secret" in refused.json()["detail"]
    assert await api.stream_count() == before

    accepted = await anonymous.post(url, json={"a": 1}, headers={"X-Nodedrop-Secret": SECRET})
    assert accepted.status_code == 202, accepted.text
    event = await requested(api, accepted.json()["id"])
    assert event.trigger == "secured"
    assert event.input == [{"a": 1}]


async def test_a_secret_is_not_needed_by_a_node_without_one(
    api: Api, anonymous: httpx.AsyncClient
) -> None:
    workflow_id = await saved(api)
    response = await anonymous.post(
        f"/webhooks/{workflow_id}/hook", json={}, headers={"X-Nodedrop-Secret": "anything"}
    )
    assert response.status_code == 202


async def test_unknown_workflow_or_node_is_404(api: Api, anonymous: httpx.AsyncClient) -> None:
    workflow_id = await saved(api)
    before = await api.stream_count()
    for path in (
        "/webhooks/no-such-workflow/hook",
        f"/webhooks/{workflow_id}/nope",  # no such node
        f"/webhooks/{workflow_id}/start",  # a trigger, but not a webhook trigger
        f"/webhooks/{workflow_id}/done",  # not a trigger at all
    ):
        response = await anonymous.post(path, json={}, headers={"X-Nodedrop-Secret": SECRET})
        assert response.status_code == 404, path
    assert await api.stream_count() == before


async def test_deleted_workflow_is_404(api: Api, anonymous: httpx.AsyncClient) -> None:
    workflow_id = await saved(api)
    assert (await api.client.delete(f"/api/workflows/{workflow_id}")).status_code == 204
    response = await anonymous.post(f"/webhooks/{workflow_id}/hook", json={})
    assert response.status_code == 404


async def test_webhooks_are_not_under_api(api: Api) -> None:
    workflow_id = await saved(api)
    response = await api.client.post(f"/api/webhooks/{workflow_id}/hook", json={})
    assert response.status_code in {404, 405}
