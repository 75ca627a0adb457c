"""Drafts (``?draft=true``): a definition with problems is stored and its problems answered;
only a run needs a valid definition, and it names the problems (422)."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest

from .harness import Api
from .test_api_schedules import SCHEDULED, stored

pytestmark = pytest.mark.integration

DRAFTS = "/api/workflows?draft=true"


def _broken(workflow: dict[str, Any]) -> dict[str, Any]:
    """``workflow`` with an unknown type, a parameter of the wrong type and a dangling edge."""
    broken = copy.deepcopy(workflow)
    broken["nodes"][1]["type"] = "no_such_type"
    broken["nodes"].append({"id": "pause", "type": "wait", "parameters": {"ms": "5"}})
    broken["connections"].append({"from": "done", "to": "ghost"})
    return broken


def _locs(problems: list[dict[str, Any]]) -> list[list[Any]]:
    assert all(set(p) == {"loc", "msg", "type"} for p in problems)
    return [p["loc"] for p in problems]


async def test_a_draft_with_problems_is_stored_and_answered_with_them(
    api: Api, workflow: dict[str, Any]
) -> None:
    draft = _broken(workflow)
    created = await api.client.post(DRAFTS, json=draft)
    assert created.status_code == 201, created.text
    body = created.json()
    expected = [["nodes", 1, "type"], ["nodes", 4, "parameters", "ms"], ["connections", 3, "to"]]
    assert sorted(_locs(body["problems"]), key=str) == sorted(expected, key=str)
    assert body["nodes"] == draft["nodes"]
    assert body["connections"] == draft["connections"]

    got = (await api.client.get(f"/api/workflows/{body['id']}")).json()
    assert got["nodes"] == draft["nodes"]
    assert sorted(_locs(got["problems"]), key=str) == sorted(expected, key=str)
    listed = (await api.client.get("/api/workflows")).json()["items"]
    assert [w["id"] for w in listed] == [body["id"]]
    assert "problems" not in listed[0]  # a list does not check each definition

    # Fixed and saved again: no problems left, and the version moved on.
    fixed = await api.client.put(f"/api/workflows/{body['id']}?draft=true", json=workflow)
    assert fixed.status_code == 200, fixed.text
    assert (fixed.json()["version"], fixed.json()["problems"]) == (2, [])
    version_1 = (await api.client.get(f"/api/workflows/{body['id']}/versions/1")).json()
    assert len(version_1["problems"]) == 3


@pytest.mark.parametrize("empty", [{}, {"name": "Empty", "nodes": [], "connections": []}])
async def test_an_empty_draft_is_stored(api: Api, empty: dict[str, Any]) -> None:
    created = await api.client.post(DRAFTS, json=empty)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["name"] == empty.get("name", "Untitled")
    assert (body["nodes"], body["connections"], body["settings"]) == ([], [], {})
    assert body["problems"], "an empty workflow has no trigger: it cannot run"


async def test_without_draft_a_problem_is_still_a_422_and_nothing_is_stored(
    api: Api, workflow: dict[str, Any]
) -> None:
    refused = await api.client.post("/api/workflows", json=_broken(workflow))
    assert refused.status_code == 422
    assert ["body", "nodes", 1, "type"] in _locs(refused.json()["detail"])
    assert (await api.client.get("/api/workflows")).json()["items"] == []


@pytest.mark.parametrize(
    ("definition", "loc"),
    [
        ({"nodes": {"a": 1}}, ["body", "nodes"]),
        ({"nodes": [1]}, ["body", "nodes", 0]),
        ({"nodes": [{"id": 7, "type": "noop"}]}, ["body", "nodes", 0, "id"]),
        (
            {"nodes": [{"id": "a", "type": "noop", "parameters": [1]}]},
            ["body", "nodes", 0, "parameters"],
        ),
        ({"nodes": [], "connections": ["a->b"]}, ["body", "connections", 0]),
        ({"nodes": [], "settings": []}, ["body", "settings"]),
        ({"name": 5, "nodes": []}, ["body", "name"]),
        ({"name": "x" * 201, "nodes": []}, ["body", "name"]),
    ],
)
async def test_a_draft_not_of_the_storable_shape_is_a_422(
    api: Api, definition: dict[str, Any], loc: list[Any]
) -> None:
    refused = await api.client.post(DRAFTS, json=definition)
    assert refused.status_code == 422, refused.text
    assert _locs(refused.json()["detail"]) == [loc]
    assert (await api.client.get("/api/workflows")).json()["items"] == []


async def test_running_a_draft_with_problems_is_a_422_naming_them(
    api: Api, workflow: dict[str, Any]
) -> None:
    workflow_id = (await api.client.post(DRAFTS, json=_broken(workflow))).json()["id"]
    before = await api.stream_count()
    for request in (
        {"workflow_id": workflow_id},
        {"workflow_id": workflow_id, "mode": "node", "node": "done", "input": {"main": [{}]}},
    ):
        refused = await api.client.post("/api/executions", json=request)
        assert refused.status_code == 422, refused.text
        locs = _locs(refused.json()["detail"])
        assert ["body", "workflow_id", "nodes", 1, "type"] in locs
        assert ["body", "workflow_id", "nodes", 4, "parameters", "ms"] in locs
        assert ["body", "workflow_id", "connections", 3, "to"] in locs
    assert await api.stream_count() == before  # nothing was recorded


async def test_a_draft_naming_an_unknown_credential_stores_it_as_a_problem(
    api: Api, workflow: dict[str, Any]
) -> None:
    workflow["nodes"].append(
        {
            "id": "call",
            "type": "http_request",
            "parameters": {"url": "https://example.com", "credential": "no-such-credential"},
        }
    )
    workflow["connections"].append({"from": "done", "to": "call"})
    created = await api.client.post(DRAFTS, json=workflow)
    assert created.status_code == 201, created.text
    assert _locs(created.json()["problems"]) == [["nodes", 4, "parameters", "credential"]]
    refused = await api.client.post("/api/executions", json={"workflow_id": created.json()["id"]})
    assert refused.status_code == 422, refused.text
    assert _locs(refused.json()["detail"]) == [
        ["body", "workflow_id", "nodes", 4, "parameters", "credential"]
    ]


async def test_a_scheduled_draft_with_problems_has_no_schedule_until_fixed(api: Api) -> None:
    broken = copy.deepcopy(SCHEDULED)
    broken["nodes"][2]["parameters"] = {"bogus": 1}
    created = await api.client.post(DRAFTS, json=broken)
    assert created.status_code == 201, created.text
    workflow_id = created.json()["id"]
    assert created.json()["problems"]
    assert await stored(api, workflow_id) is None

    fixed = await api.client.put(f"/api/workflows/{workflow_id}?draft=true", json=SCHEDULED)
    assert fixed.status_code == 200, fixed.text
    entry = await stored(api, workflow_id)
    assert entry is not None
    assert entry.version == 2

    # Broken again: the schedule stops rather than firing a run that cannot run; so it does
    # for a problem in what the workflow refers to (a valid definition otherwise).
    unknown_credential = copy.deepcopy(SCHEDULED)
    unknown_credential["nodes"][2] = {
        "id": "done",
        "type": "http_request",
        "parameters": {"url": "https://example.com", "credential": "no-such-credential"},
    }
    for again in (broken, SCHEDULED, unknown_credential):
        saved = await api.client.put(f"/api/workflows/{workflow_id}?draft=true", json=again)
        assert saved.status_code == 200, saved.text
        scheduled = await stored(api, workflow_id)
        assert (scheduled is not None) == (again is SCHEDULED)
        assert bool(saved.json()["problems"]) == (again is not SCHEDULED)


async def test_a_webhook_of_a_draft_with_problems_is_a_422_listing_none(
    api: Api, anonymous: httpx.AsyncClient
) -> None:
    draft = {
        "nodes": [
            {"id": "hook", "type": "webhook_trigger", "parameters": {"methods": 5}},
            {"id": "done", "type": "noop"},
        ],
        "connections": [{"from": "hook", "to": "done"}],
    }
    workflow_id = (await api.client.post(DRAFTS, json=draft)).json()["id"]
    before = await api.stream_count()
    refused = await anonymous.post(f"/webhooks/{workflow_id}/hook", json={"a": 1})
    assert refused.status_code == 422, refused.text
    detail = refused.json()["detail"]
    assert _locs(detail) == [["path", "workflow_id"]]
    assert "methods" not in detail[0]["msg"]  # the problems are the owner's to read
    assert await api.stream_count() == before


async def test_a_webhook_with_a_secret_checks_its_caller_before_its_definition(
    api: Api, anonymous: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Checking a saved definition (and looking up what it calls) is work: a caller without
    # the secret must not be able to cause it.
    from nodedrop.api.drafts import runnable as real_runnable

    checks: list[str] = []

    async def counted(*args: Any, **kwargs: Any) -> Any:
        checks.append(kwargs["itself"])
        return await real_runnable(*args, **kwargs)

    monkeypatch.setattr("nodedrop.api.routes.webhooks.runnable", counted)
    draft = {
        "nodes": [
            {"id": "hook", "type": "webhook_trigger", "parameters": {"secret": "s3cret-value"}},
            {"id": "done", "type": "no_such_type"},
        ],
        "connections": [{"from": "hook", "to": "done"}],
    }
    workflow_id = (await api.client.post(DRAFTS, json=draft)).json()["id"]
    url = f"/webhooks/{workflow_id}/hook"
    before = await api.stream_count()

    unauthenticated = await anonymous.post(url, json={"a": 1})
    assert unauthenticated.status_code == 401, unauthenticated.text
    wrong = await anonymous.post(url, json={"a": 1}, headers={"X-Nodedrop-Secret": "guess"})
    assert wrong.status_code == 401, wrong.text
    assert checks == []

    authenticated = await anonymous.post(
        url, json={"a": 1}, headers={"X-Nodedrop-Secret": "s3cret-value"}
    )
    assert authenticated.status_code == 422, authenticated.text
    assert _locs(authenticated.json()["detail"]) == [["path", "workflow_id"]]
    assert checks == [workflow_id]
    assert await api.stream_count() == before


async def test_a_webhook_whose_secret_is_not_text_is_a_422_without_a_check(
    api: Api, anonymous: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the definition was checked for an unauthenticated caller")

    monkeypatch.setattr("nodedrop.api.routes.webhooks.runnable", never)
    draft = {
        "nodes": [
            {"id": "hook", "type": "webhook_trigger", "parameters": {"secret": 12345}},
            {"id": "done", "type": "noop"},
        ],
        "connections": [{"from": "hook", "to": "done"}],
    }
    workflow_id = (await api.client.post(DRAFTS, json=draft)).json()["id"]
    refused = await anonymous.post(
        f"/webhooks/{workflow_id}/hook", json={"a": 1}, headers={"X-Nodedrop-Secret": "12345"}
    )
    assert refused.status_code == 422, refused.text
    assert _locs(refused.json()["detail"]) == [["path", "workflow_id"]]
