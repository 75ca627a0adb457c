"""A saved workflow run from its manual trigger with items typed in the UI (docs/ui.md)."""

from __future__ import annotations

from typing import Any

import pytest

from nodedrop.contracts.events import ExecutionRequested

from .harness import Api

pytestmark = pytest.mark.integration


async def test_the_typed_items_are_the_triggers_input(api: Api, workflow: dict[str, Any]) -> None:
    workflow_id = (await api.client.post("/api/workflows", json=workflow)).json()["id"]
    items = [{"name": "Ann", "total": 120}, {"name": "Bob", "tags": ["a"]}, {}]
    response = await api.client.post(
        "/api/executions", json={"workflow_id": workflow_id, "trigger": "start", "input": items}
    )
    assert response.status_code == 202, response.text
    [(event, _)] = await api.stream_events(response.json()["id"])
    assert isinstance(event, ExecutionRequested)
    assert (event.mode, event.trigger, event.input) == ("trigger", "start", items)


@pytest.mark.parametrize(
    ("items", "loc"),
    [
        ({"name": "Ann"}, ["body", "input"]),
        ([{"name": "Ann"}, "Bob"], ["body", "input", 1]),
        ([{}, {"$nodedrop_ref": "x"}], ["body", "input", 1, "$nodedrop_ref"]),
    ],
)
async def test_items_that_are_not_a_list_of_objects_are_a_422_at_the_item(
    api: Api, workflow: dict[str, Any], items: Any, loc: list[Any]
) -> None:
    workflow_id = (await api.client.post("/api/workflows", json=workflow)).json()["id"]
    response = await api.client.post(
        "/api/executions", json={"workflow_id": workflow_id, "trigger": "start", "input": items}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == loc
