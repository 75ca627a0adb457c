"""Ownership (docs/api.md, "Users and API keys"): a user sees only its own workflows and
executions; the other user's ids answer 404 on every endpoint, lists show only one's own, and the
events record the acting user's real id (requests, cancels, webhooks)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from nodedrop.contracts.events import ExecutionCancelRequested, ExecutionRequested

from .harness import WORKFLOW, Api, project_execution
from .users import NewUser, client_for, create_user

pytestmark = pytest.mark.integration

HOOKED: dict[str, Any] = {
    **WORKFLOW,
    "nodes": [*WORKFLOW["nodes"], {"id": "hook", "type": "webhook_trigger"}],
    "connections": [*WORKFLOW["connections"], {"from": "hook", "to": "done"}],
}


@dataclass
class Owned:
    """What alice owns: a workflow, an execution queued from it, one the projection shows."""

    workflow_id: str
    queued_id: str
    projected_id: str


async def _owned_by(api: Api, client: httpx.AsyncClient, owner: NewUser) -> Owned:
    created = await client.post("/api/workflows", json=HOOKED)
    assert created.status_code == 201, created.text
    workflow_id = created.json()["id"]
    queued = await client.post(
        "/api/executions", json={"workflow_id": workflow_id, "trigger": "start"}
    )
    assert queued.status_code == 202, queued.text
    projected_id = f"{owner.name}-projected"
    await project_execution(
        api,
        projected_id,
        workflow_id=workflow_id,
        requested_by=owner.id,
        status="succeeded",
        nodes={"start": {"output": {"main": [{"a": 1}]}}},
        logs=[("info", "start", "hello")],
    )
    return Owned(workflow_id, queued.json()["id"], projected_id)


def _foreign_requests(owned: Owned) -> list[tuple[str, str, Any]]:
    """Every endpoint that takes an id, aimed at ``owned``."""
    wf = owned.workflow_id
    requests: list[tuple[str, str, Any]] = [
        ("GET", f"/api/workflows/{wf}", None),
        ("GET", f"/api/workflows/{wf}/versions/1", None),
        ("PUT", f"/api/workflows/{wf}", WORKFLOW),
        ("DELETE", f"/api/workflows/{wf}", None),
        ("POST", "/api/executions", {"workflow_id": wf, "trigger": "start"}),
        ("POST", "/api/executions", {"workflow_id": wf, "mode": "node", "node": "done"}),
    ]
    for ex in (owned.queued_id, owned.projected_id):
        requests += [
            ("GET", f"/api/executions/{ex}", None),
            ("POST", f"/api/executions/{ex}/cancel", None),
            ("GET", f"/api/executions/{ex}/events", None),
            ("GET", f"/api/executions/{ex}/logs", None),
            ("GET", f"/api/executions/{ex}/nodes/start/output", None),
            ("POST", f"/api/executions/{ex}/rerun", {"from_node": "shape"}),
        ]
    return requests


async def test_every_endpoint_answers_404_for_the_other_users_ids(api: Api) -> None:
    alice, bob = await create_user(api, "alice"), await create_user(api, "bob")
    async with client_for(api.app, alice.key) as as_alice, client_for(api.app, bob.key) as as_bob:
        owned = await _owned_by(api, as_alice, alice)
        before = await api.stream_count()
        for method, path, body in _foreign_requests(owned):
            response = await as_bob.request(method, path, json=body)
            assert response.status_code == 404, (method, path, response.text)
        assert await api.stream_count() == before  # nothing recorded for bob
        # Alice still has everything, unchanged.
        workflow = await as_alice.get(f"/api/workflows/{owned.workflow_id}")
        assert workflow.json()["version"] == 1
        for ex in (owned.queued_id, owned.projected_id):
            assert (await as_alice.get(f"/api/executions/{ex}")).status_code == 200
        output = await as_alice.get(f"/api/executions/{owned.projected_id}/nodes/start/output")
        assert output.json() == {"main": [{"a": 1}]}


async def test_lists_show_only_ones_own_and_admins_see_all(api: Api) -> None:
    alice, bob = await create_user(api, "alice"), await create_user(api, "bob")
    async with client_for(api.app, alice.key) as as_alice, client_for(api.app, bob.key) as as_bob:
        mine = await _owned_by(api, as_alice, alice)
        theirs = await _owned_by(api, as_bob, bob)
        for client, own, other in ((as_alice, mine, theirs), (as_bob, theirs, mine)):
            workflows = (await client.get("/api/workflows")).json()["items"]
            assert [w["id"] for w in workflows] == [own.workflow_id]
            executions = (await client.get("/api/executions")).json()["items"]
            assert [e["id"] for e in executions] == [own.projected_id]
            filtered = await client.get(f"/api/executions?workflow_id={other.workflow_id}")
            assert filtered.json()["items"] == []
    everyone = (await api.client.get("/api/workflows")).json()["items"]
    assert {w["id"] for w in everyone} == {mine.workflow_id, theirs.workflow_id}


async def test_requests_cancels_and_webhooks_record_the_real_user_id(api: Api) -> None:
    alice = await create_user(api, "alice")
    async with client_for(api.app, alice.key) as as_alice, client_for(api.app, None) as anyone:
        owned = await _owned_by(api, as_alice, alice)
        cancel = await as_alice.post(f"/api/executions/{owned.queued_id}/cancel")
        assert cancel.status_code == 202
        hooked = await anyone.post(f"/webhooks/{owned.workflow_id}/hook", json={"x": 1})
        assert hooked.status_code == 202
    recorded = {
        (type(event).__name__, event.execution_id): event for event, _ in await api.stream_events()
    }
    request = recorded["ExecutionRequested", owned.queued_id]
    assert isinstance(request, ExecutionRequested)
    assert request.requested_by == alice.id
    cancelled = recorded["ExecutionCancelRequested", owned.queued_id]
    assert isinstance(cancelled, ExecutionCancelRequested)
    assert cancelled.requested_by == alice.id
    webhook = recorded["ExecutionRequested", hooked.json()["id"]]
    assert isinstance(webhook, ExecutionRequested)
    assert webhook.requested_by == alice.id  # the workflow's owner, by id
    shown = await api.client.get(f"/api/executions/{owned.queued_id}")
    assert shown.json()["requested_by"] == alice.id
