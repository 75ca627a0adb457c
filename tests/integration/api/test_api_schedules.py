"""Saving a workflow with schedule_trigger nodes keeps its entry in the schedules bucket."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from nodedrop.api.errors import ServiceUnavailableError
from nodedrop.api.schedules import ScheduleStore
from nodedrop.platform import schedules
from nodedrop.platform.schedules import ScheduleEntry

from .harness import Api

pytestmark = pytest.mark.integration

SCHEDULED: dict[str, Any] = {
    "name": "Nightly",
    "nodes": [
        {"id": "nightly", "type": "schedule_trigger", "parameters": {"cron": "0 2 * * *"}},
        {"id": "start", "type": "manual_trigger"},
        {"id": "done", "type": "noop"},
    ],
    "connections": [{"from": "nightly", "to": "done"}, {"from": "start", "to": "done"}],
}


def unscheduled() -> dict[str, Any]:
    definition = copy.deepcopy(SCHEDULED)
    definition["nodes"] = definition["nodes"][1:]
    definition["connections"] = definition["connections"][1:]
    return definition


def with_cron(cron: str) -> dict[str, Any]:
    definition = copy.deepcopy(SCHEDULED)
    definition["nodes"][0]["parameters"]["cron"] = cron
    return definition


async def bucket(api: Api) -> KeyValue:
    return await schedules.open_bucket(api.js)


async def stored(api: Api, workflow_id: str) -> ScheduleEntry | None:
    kv = await bucket(api)
    try:
        got = await kv.get(schedules.entry_key(workflow_id))
    except KeyNotFoundError:
        return None
    assert got.value is not None
    return schedules.decode_entry(got.value)


async def test_entry_follows_create_update_delete(api: Api) -> None:
    created = (await api.client.post("/api/workflows", json=SCHEDULED)).json()
    workflow_id = created["id"]
    entry = await stored(api, workflow_id)
    assert entry is not None
    assert entry.workflow_id == workflow_id
    assert entry.version == 1
    assert entry.owner == "admin"
    assert [(t.node_id, t.cron) for t in entry.triggers] == [("nightly", "0 2 * * *")]
    assert [n["id"] for n in entry.workflow["nodes"]] == ["nightly", "start", "done"]
    assert schedules.tick_iso(entry.saved_at) == created["updated_at"][:19] + "Z"

    updated = await api.client.put(f"/api/workflows/{workflow_id}", json=with_cron("30 3 * * *"))
    assert updated.status_code == 200
    entry = await stored(api, workflow_id)
    assert entry is not None
    assert entry.version == 2
    assert entry.triggers[0].cron == "30 3 * * *"

    # No schedule trigger any more: the entry goes; back again: it returns.
    assert (await api.client.put(f"/api/workflows/{workflow_id}", json=unscheduled())).is_success
    assert await stored(api, workflow_id) is None
    assert (await api.client.put(f"/api/workflows/{workflow_id}", json=SCHEDULED)).is_success
    entry = await stored(api, workflow_id)
    assert entry is not None
    assert entry.version == 4

    assert (await api.client.delete(f"/api/workflows/{workflow_id}")).status_code == 204
    assert await stored(api, workflow_id) is None


async def test_a_workflow_without_schedule_has_no_entry(api: Api, workflow: dict[str, Any]) -> None:
    workflow_id = (await api.client.post("/api/workflows", json=workflow)).json()["id"]
    assert await stored(api, workflow_id) is None


@pytest.mark.parametrize("cron", ["61 * * * *", "* * * *  ", "0 0 30 2 *", "every minute"])
async def test_invalid_cron_is_422_naming_the_node_and_field(api: Api, cron: str) -> None:
    response = await api.client.post("/api/workflows", json=with_cron(cron))
    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", "nodes", 0, "parameters", "cron"]
    assert "nightly" in problem["msg"]
    listed = (await api.client.get("/api/workflows")).json()
    assert listed["items"] == []
    # Inline submissions are checked the same way.
    submitted = await api.client.post("/api/executions", json={"workflow": with_cron(cron)})
    assert submitted.status_code == 422
    assert submitted.json()["detail"][0]["loc"] == [
        "body",
        "workflow",
        "nodes",
        0,
        "parameters",
        "cron",
    ]


class _BrokenStore(ScheduleStore):
    def __init__(self) -> None:
        self.writes: list[tuple[str, ScheduleEntry | None]] = []

    async def write(self, workflow_id: str, entry: ScheduleEntry | None) -> None:
        self.writes.append((workflow_id, entry))
        raise ServiceUnavailableError("the schedule store is down")


async def test_schedule_store_down_is_503_and_changes_nothing(
    api: Api, workflow: dict[str, Any]
) -> None:
    workflow_id = (await api.client.post("/api/workflows", json=SCHEDULED)).json()["id"]
    working = api.resources
    broken = _BrokenStore()
    api.app.state.resources = dataclasses.replace(working, schedules=broken)
    try:
        created = await api.client.post("/api/workflows", json=SCHEDULED)
        assert created.status_code == 503
        assert created.headers["Retry-After"] == "1"
        updated = await api.client.put(f"/api/workflows/{workflow_id}", json=with_cron("5 5 * * *"))
        assert updated.status_code == 503
        deleted = await api.client.delete(f"/api/workflows/{workflow_id}")
        assert deleted.status_code == 503
        # A workflow without schedule triggers before and after does not need the store.
        plain = await api.client.post("/api/workflows", json=workflow)
        assert plain.status_code == 201
    finally:
        api.app.state.resources = working

    listed = (await api.client.get("/api/workflows")).json()["items"]
    assert sorted(w["id"] for w in listed) == sorted([workflow_id, plain.json()["id"]])
    latest = (await api.client.get(f"/api/workflows/{workflow_id}")).json()
    assert latest["version"] == 1
    assert latest["nodes"][0]["parameters"]["cron"] == "0 2 * * *"
    entry = await stored(api, workflow_id)
    assert entry is not None
    assert entry.version == 1
