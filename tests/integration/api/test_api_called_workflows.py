"""Saving a workflow with ``execute_workflow`` nodes: the called workflow must be the owner's
and have the named trigger, else 422 naming the parameter."""

from __future__ import annotations

from typing import Any

import pytest

from .harness import Api
from .users import client_for, create_user

pytestmark = pytest.mark.integration

CALLED = {
    "name": "called",
    "nodes": [{"id": "ct", "type": "manual_trigger"}, {"id": "x", "type": "noop"}],
    "connections": [{"from": "ct", "to": "x"}],
}


def calling(workflow_id: str, trigger: str = "ct") -> dict[str, Any]:
    return {
        "name": "calling",
        "nodes": [
            {"id": "start", "type": "manual_trigger"},
            {
                "id": "call",
                "type": "execute_workflow",
                "parameters": {"workflow_id": workflow_id, "trigger": trigger},
            },
        ],
        "connections": [{"from": "start", "to": "call"}],
    }


async def test_a_call_of_ones_own_workflow_saves(api: Api) -> None:
    called = (await api.client.post("/api/workflows", json=CALLED)).json()["id"]
    response = await api.client.post("/api/workflows", json=calling(called))
    assert response.status_code == 201, response.text


async def test_an_unknown_or_anothers_workflow_is_a_422_naming_workflow_id(api: Api) -> None:
    alice, bob = await create_user(api, "alice"), await create_user(api, "bob")
    async with client_for(api.app, alice.key) as as_alice, client_for(api.app, bob.key) as as_bob:
        alices = (await as_alice.post("/api/workflows", json=CALLED)).json()["id"]
        for workflow_id in (alices, "no-such-workflow"):
            response = await as_bob.post("/api/workflows", json=calling(workflow_id))
            assert response.status_code == 422, response.text
            [problem] = response.json()["detail"]
            assert problem["loc"] == ["body", "nodes", 1, "parameters", "workflow_id"]
            assert "no saved workflow" in problem["msg"]


async def test_an_unknown_trigger_is_a_422_naming_trigger(api: Api) -> None:
    called = (await api.client.post("/api/workflows", json=CALLED)).json()["id"]
    response = await api.client.post("/api/workflows", json=calling(called, "nope"))
    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", "nodes", 1, "parameters", "trigger"]


async def test_a_workflow_may_call_itself(api: Api) -> None:
    created = (await api.client.post("/api/workflows", json=CALLED)).json()["id"]
    recursive = calling(created, trigger="start")
    response = await api.client.put(f"/api/workflows/{created}", json=recursive)
    assert response.status_code == 200, response.text
    wrong = calling(created, trigger="ct")  # ct is gone from the new version
    response = await api.client.put(f"/api/workflows/{created}", json=wrong)
    assert response.status_code == 422, response.text


async def test_error_workflow_id_must_name_an_own_workflow_with_an_error_trigger(
    api: Api,
) -> None:
    handler = {
        "name": "handler",
        "nodes": [{"id": "failed", "type": "error_trigger"}, {"id": "x", "type": "noop"}],
        "connections": [{"from": "failed", "to": "x"}],
    }
    handler_id = (await api.client.post("/api/workflows", json=handler)).json()["id"]
    no_error_trigger = (await api.client.post("/api/workflows", json=CALLED)).json()["id"]
    good = {**CALLED, "settings": {"error_workflow_id": handler_id}}
    assert (await api.client.post("/api/workflows", json=good)).status_code == 201
    for wrong in (no_error_trigger, "no-such-workflow"):
        bad = {**CALLED, "settings": {"error_workflow_id": wrong}}
        response = await api.client.post("/api/workflows", json=bad)
        assert response.status_code == 422, response.text
        [problem] = response.json()["detail"]
        assert problem["loc"] == ["body", "settings", "error_workflow_id"]
