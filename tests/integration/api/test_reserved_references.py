"""Users may not send references to stored data: they could read other executions' outputs."""

from __future__ import annotations

import pytest

from nodedrop.contracts.items import REF_KEY

from .harness import Api

pytestmark = pytest.mark.integration

FORGED = {
    REF_KEY: {"bucket": "nodedrop_data", "name": "someone-else/x/1/main", "count": 1, "bytes": 10}
}
WORKFLOW = {
    "nodes": [{"id": "start", "type": "manual_trigger"}, {"id": "n", "type": "noop"}],
    "connections": [{"from": "start", "to": "n"}],
}


async def test_trigger_input_with_a_reference_is_refused(api: Api) -> None:
    before = await api.stream_count()
    response = await api.client.post(
        "/api/executions", json={"workflow": WORKFLOW, "input": [{"a": 1}, FORGED]}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "input", 1, REF_KEY]
    assert await api.stream_count() == before


async def test_node_mode_input_with_a_reference_is_refused(api: Api) -> None:
    response = await api.client.post(
        "/api/executions",
        json={"workflow": WORKFLOW, "mode": "node", "node": "n", "input": {"main": [FORGED]}},
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "input", "main", 0, REF_KEY]


async def test_pinned_output_with_a_reference_is_refused(api: Api) -> None:
    pinned = {
        **WORKFLOW,
        "nodes": [
            WORKFLOW["nodes"][0],
            {"id": "n", "type": "noop", "pinned_output": {"main": [FORGED]}},
        ],
    }
    response = await api.client.post("/api/workflows", json=pinned)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "nodes", 1, "pinned_output", "main"]
