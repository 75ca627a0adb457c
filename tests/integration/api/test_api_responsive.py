"""A big definition is validated off the event loop: the api answers meanwhile."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from nodedrop.api import definitions
from nodedrop.contracts import workflow as workflow_module

from .harness import Api

pytestmark = pytest.mark.integration


def big_definition(nodes: int = 400, fan_out: int = 3) -> dict[str, Any]:
    return {
        "name": "Big",
        "nodes": [{"id": "n0", "type": "manual_trigger"}]
        + [
            {"id": f"n{i}", "type": "set", "parameters": {"values": {"x": "{{ item.a }}"}}}
            for i in range(1, nodes)
        ],
        "connections": [
            {"from": f"n{i}", "to": f"n{j}"}
            for i in range(nodes)
            for j in range(i + 1, min(i + 1 + fan_out, nodes))
        ],
    }


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/workflows", big_definition()),
        ("/api/executions", {"workflow": big_definition()}),
    ],
)
async def test_health_answers_while_a_big_definition_is_validated(
    api: Api, monkeypatch: pytest.MonkeyPatch, path: str, body: dict[str, Any]
) -> None:
    validating = threading.Event()
    health_answered = threading.Event()
    answered_meanwhile: list[bool] = []
    validate = workflow_module.validate_workflow

    def held_validation(*args: Any, **kwargs: Any) -> Any:
        validating.set()
        # On the event loop this wait would block /health too, and time out.
        answered_meanwhile.append(health_answered.wait(timeout=10))
        return validate(*args, **kwargs)

    monkeypatch.setattr(definitions, "validate_workflow", held_validation)
    request = asyncio.create_task(api.client.post(path, json=body))
    assert await asyncio.to_thread(validating.wait, 10)
    health = await api.client.get("/health")
    assert health.status_code == 200
    health_answered.set()
    response = await request
    assert response.status_code in (201, 202), response.text
    assert answered_meanwhile == [True]


async def test_a_small_definition_is_validated_as_before(
    api: Api, workflow: dict[str, Any]
) -> None:
    created = await api.client.post("/api/workflows", json=workflow)
    assert created.status_code == 201, created.text
    invalid = await api.client.post("/api/workflows", json={**workflow, "nodes": []})
    assert invalid.status_code == 422
    big = big_definition()
    big["nodes"][5]["type"] = "no_such_type"
    refused = await api.client.post("/api/workflows", json=big)
    assert refused.status_code == 422
    assert ["body", "nodes", 5, "type"] in [p["loc"] for p in refused.json()["detail"]]
