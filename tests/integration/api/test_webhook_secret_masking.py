"""A webhook trigger's ``secret`` stays in the saved workflow only: API answers, recorded events
and the schedules' entries show it masked, a save that sends the masked value back keeps it,
and a masked value that masks nothing saved is refused."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from nodedrop.contracts.events import ExecutionRequested
from nodedrop.platform import schedules

from .harness import Api
from .test_webhook_signatures import BODY, SIGNED, signature

pytestmark = pytest.mark.integration

LONG_SECRET = "a-long-webhook-secret-ending-9f3c"


def with_secret(secret: str) -> dict[str, Any]:
    definition: dict[str, Any] = json.loads(json.dumps(SIGNED))
    definition["nodes"][1]["parameters"]["secret"] = secret
    return definition


async def save(api: Api, definition: dict[str, Any]) -> dict[str, Any]:
    created = await api.client.post("/api/workflows", json=definition)
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


async def test_answers_show_the_secret_masked(api: Api) -> None:
    created = await save(api, with_secret(LONG_SECRET))
    answers = [
        created,
        (await api.client.get(f"/api/workflows/{created['id']}")).json(),
        (await api.client.get(f"/api/workflows/{created['id']}/versions/1")).json(),
        *(await api.client.get("/api/workflows")).json()["items"],
    ]
    for answer in answers:
        assert LONG_SECRET not in json.dumps(answer)
    assert created["nodes"][1]["parameters"]["secret"] == "****9f3c"
    assert created["nodes"][2]["parameters"]["secret"] == "****"  # short: nothing shown


async def test_saving_what_was_read_keeps_the_secret(
    api: Api, anonymous: httpx.AsyncClient
) -> None:
    created = await save(api, with_secret(LONG_SECRET))
    read = (await api.client.get(f"/api/workflows/{created['id']}")).json()
    definition = {key: read[key] for key in ("name", "nodes", "connections", "settings")}
    saved = await api.client.put(f"/api/workflows/{created['id']}", json=definition)
    assert saved.status_code == 200, saved.text
    assert saved.json()["version"] == 2
    response = await anonymous.post(
        f"/webhooks/{created['id']}/secured",
        content=BODY,
        headers={"X-Nodedrop-Signature": signature(BODY, secret=LONG_SECRET)},
    )
    assert response.status_code == 202, response.text
    wrong = await anonymous.post(
        f"/webhooks/{created['id']}/secured",
        content=BODY,
        headers={"X-Nodedrop-Signature": signature(BODY, secret="****9f3c")},
    )
    assert wrong.status_code == 401


async def test_a_new_secret_replaces_the_saved_one(api: Api, anonymous: httpx.AsyncClient) -> None:
    created = await save(api, with_secret(LONG_SECRET))
    saved = await api.client.put(f"/api/workflows/{created['id']}", json=with_secret("new-one"))
    assert saved.status_code == 200, saved.text
    url = f"/webhooks/{created['id']}/secured"
    fresh = {"X-Nodedrop-Signature": signature(BODY, secret="new-one")}
    assert (await anonymous.post(url, content=BODY, headers=fresh)).status_code == 202
    old = {"X-Nodedrop-Signature": signature(BODY, secret=LONG_SECRET)}
    assert (await anonymous.post(url, content=BODY, headers=old)).status_code == 401


async def test_a_masked_value_that_masks_nothing_saved_is_a_422_at_the_parameter(
    api: Api,
) -> None:
    refused = await api.client.post("/api/workflows", json=with_secret("****9f3c"))
    assert refused.status_code == 422, refused.text
    [problem] = refused.json()["detail"]
    assert problem["loc"] == ["body", "nodes", 1, "parameters", "secret"]
    created = await save(api, with_secret(LONG_SECRET))
    other = await api.client.put(f"/api/workflows/{created['id']}", json=with_secret("****0000"))
    assert other.status_code == 422, other.text


async def test_the_recorded_request_holds_the_secret_masked(
    api: Api, anonymous: httpx.AsyncClient
) -> None:
    created = await save(api, with_secret(LONG_SECRET))
    response = await anonymous.post(
        f"/webhooks/{created['id']}/secured",
        content=BODY,
        headers={"X-Nodedrop-Signature": signature(BODY, secret=LONG_SECRET)},
    )
    assert response.status_code == 202, response.text
    [(event, _)] = await api.stream_events(response.json()["id"])
    assert isinstance(event, ExecutionRequested)
    assert LONG_SECRET not in json.dumps(event.workflow)
    assert event.workflow["nodes"][1]["parameters"]["secret"] == "****9f3c"
    ran = await api.client.post(
        "/api/executions", json={"workflow_id": created["id"], "trigger": "open"}
    )
    assert ran.status_code == 202, ran.text
    [(saved_run, _)] = await api.stream_events(ran.json()["id"])
    assert isinstance(saved_run, ExecutionRequested)
    assert LONG_SECRET not in json.dumps(saved_run.workflow)


async def test_the_schedules_entry_holds_the_secret_masked(api: Api) -> None:
    definition = with_secret(LONG_SECRET)
    definition["nodes"].append(
        {"id": "nightly", "type": "schedule_trigger", "parameters": {"cron": "0 2 * * *"}}
    )
    created = await save(api, definition)
    kv = await schedules.open_bucket(api.js)
    entry = await kv.get(schedules.entry_key(created["id"]))
    assert entry.value is not None
    assert LONG_SECRET.encode() not in entry.value
    decoded = schedules.decode_entry(entry.value)
    assert decoded.workflow["nodes"][1]["parameters"]["secret"] == "****9f3c"
