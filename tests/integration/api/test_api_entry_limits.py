"""What every entry point refuses before anything is stored: JSON nested deeper than the limit,
NUL characters in data, in names, in paths and query strings; loose types; numbers PostgreSQL
cannot hold. Each is a 4xx naming where, never a 500 nor raw database text."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from nodedrop.contracts.events import ExecutionRequested
from nodedrop.contracts.jsonlimits import MAX_JSON_DEPTH

from .harness import Api

pytestmark = pytest.mark.integration

JSON = {"content-type": "application/json"}

HOOKED: dict[str, Any] = {
    "name": "Hooked",
    "nodes": [{"id": "hook", "type": "webhook_trigger"}, {"id": "done", "type": "noop"}],
    "connections": [{"from": "hook", "to": "done"}],
}


def nested_text(levels: int) -> str:
    """JSON text of ``levels`` levels of objects (built as text: the encoders recurse)."""
    return '{"a":' * (levels - 1) + "{}" + "}" * (levels - 1)


def nested(levels: int) -> Any:
    return json.loads(nested_text(levels))


async def hooked(api: Api) -> str:
    created = await api.client.post("/api/workflows", json=HOOKED)
    assert created.status_code == 201, created.text
    workflow_id: str = created.json()["id"]
    return workflow_id


def only_problem(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert isinstance(problem, dict)
    return problem


# ------------------------------------------------------------------------------ depth


async def test_an_input_nested_deeper_than_the_limit_is_refused_before_it_is_stored(
    api: Api, workflow: dict[str, Any]
) -> None:
    # body (1) > input (2) > item (3): an item nesting MAX - 1 levels puts the body one over.
    body = {"workflow": workflow, "input": [nested(MAX_JSON_DEPTH - 1)]}
    before = await api.stream_count()
    problem = only_problem(await api.client.post("/api/executions", json=body))
    assert problem["type"] == "too_deep"
    assert problem["loc"][:4] == ["body", "input", 0, "a"]
    assert str(MAX_JSON_DEPTH) in problem["msg"]
    assert await api.stream_count() == before


@pytest.mark.parametrize("levels", [300, 990, 5_000])
async def test_far_deeper_bodies_are_the_same_422_never_a_500(
    api: Api, workflow: dict[str, Any], levels: int
) -> None:
    # 300 levels was accepted and then broke every read; 5,000 made the decoder raise.
    text = '{"workflow": ' + json.dumps(workflow) + ', "input": [' + nested_text(levels) + "]}"
    problem = only_problem(await api.client.post("/api/executions", content=text, headers=JSON))
    assert problem["type"] == "too_deep"
    assert problem["loc"][0] == "body"


async def test_an_input_at_the_limit_runs_and_stays_readable(
    api: Api, workflow: dict[str, Any]
) -> None:
    body = {"workflow": workflow, "input": [nested(MAX_JSON_DEPTH - 2)]}
    accepted = await api.client.post("/api/executions", json=body)
    assert accepted.status_code == 202, accepted.text
    execution_id = accepted.json()["id"]
    assert (await api.client.get(f"/api/executions/{execution_id}")).status_code == 200
    events = await api.client.get(f"/api/executions/{execution_id}/events")
    assert events.status_code == 200, events.text
    assert events.json()["events"][0]["data"]["input"] == body["input"]


async def test_a_definition_nested_too_deeply_is_refused(
    api: Api, workflow: dict[str, Any]
) -> None:
    workflow["nodes"][1]["parameters"] = {"values": {"deep": nested(MAX_JSON_DEPTH)}}
    problem = only_problem(await api.client.post("/api/workflows", json=workflow))
    assert problem["loc"][:6] == ["body", "nodes", 1, "parameters", "values", "deep"]
    assert problem["type"] == "too_deep"


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH - 1, 1_000, 100_000])
async def test_a_webhook_body_nested_too_deeply_is_refused(
    api: Api, anonymous: httpx.AsyncClient, levels: int
) -> None:
    # The trigger outputs {"main": [body]}: a body object may nest MAX - 2 levels.
    workflow_id = await hooked(api)
    before = await api.stream_count()
    response = await anonymous.post(
        f"/webhooks/{workflow_id}/hook", content=nested_text(levels), headers=JSON
    )
    problem = only_problem(response)
    assert problem["type"] == "too_deep"
    assert problem["loc"][0] == "body"
    assert await api.stream_count() == before


async def test_a_webhook_body_at_the_limit_is_accepted(
    api: Api, anonymous: httpx.AsyncClient
) -> None:
    workflow_id = await hooked(api)
    object_body = await anonymous.post(
        f"/webhooks/{workflow_id}/hook", content=nested_text(MAX_JSON_DEPTH - 2)
    )
    assert object_body.status_code == 202, object_body.text
    # Any other value is wrapped as {"body": value}: one level less.
    array_body = await anonymous.post(
        f"/webhooks/{workflow_id}/hook", content="[" + nested_text(MAX_JSON_DEPTH - 4) + "]"
    )
    assert array_body.status_code == 202, array_body.text
    too_deep = await anonymous.post(
        f"/webhooks/{workflow_id}/hook", content="[" + nested_text(MAX_JSON_DEPTH - 3) + "]"
    )
    assert only_problem(too_deep)["loc"][:2] == ["body", 0]


# ------------------------------------------------------------------------------ NUL


async def test_a_nul_character_in_item_data_is_refused_naming_where(
    api: Api, workflow: dict[str, Any]
) -> None:
    body = {"workflow": workflow, "input": [{"ok": "x"}, {"note": ["fine", "a\x00b"]}]}
    problem = only_problem(await api.client.post("/api/executions", json=body))
    assert problem["loc"] == ["body", "input", 1, "note", 1]
    assert problem["type"] == "nul_character"
    assert "database" not in problem["msg"]


async def test_a_nul_character_in_a_name_is_refused_naming_the_field(
    api: Api, workflow: dict[str, Any]
) -> None:
    workflow["name"] = "Order\x00sync"
    problem = only_problem(await api.client.post("/api/workflows", json=workflow))
    assert problem["loc"] == ["body", "name"]
    assert "database" not in problem["msg"]


async def test_a_nul_character_in_a_webhook_body_is_refused(
    api: Api, anonymous: httpx.AsyncClient
) -> None:
    workflow_id = await hooked(api)
    response = await anonymous.post(f"/webhooks/{workflow_id}/hook", json={"a": ["x\x00"]})
    assert only_problem(response)["loc"] == ["body", "a", 0]


async def test_a_nul_character_in_the_path_is_a_404(api: Api, anonymous: httpx.AsyncClient) -> None:
    assert (await anonymous.post("/webhooks/%00/%00")).status_code == 404
    workflow_id = await hooked(api)
    assert (await anonymous.post(f"/webhooks/{workflow_id}/ho%00ok")).status_code == 404
    assert (await api.client.get("/api/workflows/%00")).status_code == 404
    assert (await api.client.get("/api/executions/a%00b")).status_code == 404


async def test_a_nul_character_in_a_query_parameter_is_a_422_naming_it(api: Api) -> None:
    problem = only_problem(await api.client.get("/api/executions?workflow_id=%00"))
    assert problem["loc"] == ["query", "workflow_id"]
    assert "database" not in problem["msg"]


# ------------------------------------------------------------------------------ types and values


@pytest.mark.parametrize("timeout_ms", ["100", " 50 ", True, 1.5])
async def test_the_execution_timeout_is_strict(
    api: Api, workflow: dict[str, Any], timeout_ms: Any
) -> None:
    body = {"workflow": workflow, "timeout_ms": timeout_ms}
    problem = only_problem(await api.client.post("/api/executions", json=body))
    assert problem["loc"] == ["body", "timeout_ms"]


async def test_an_integer_timeout_is_recorded(api: Api, workflow: dict[str, Any]) -> None:
    accepted = await api.client.post(
        "/api/executions", json={"workflow": workflow, "timeout_ms": 100}
    )
    assert accepted.status_code == 202, accepted.text
    [(event, _)] = await api.stream_events(accepted.json()["id"])
    assert isinstance(event, ExecutionRequested)
    assert event.timeout_ms == 100


@pytest.mark.parametrize("version", ["2147483648", "99999999999999999999", "0"])
async def test_a_version_out_of_range_is_a_422_naming_it(
    api: Api, workflow: dict[str, Any], version: str
) -> None:
    created = await api.client.post("/api/workflows", json=workflow)
    workflow_id = created.json()["id"]
    response = await api.client.get(f"/api/workflows/{workflow_id}/versions/{version}")
    problem = only_problem(response)
    assert problem["loc"] == ["path", "version"]
    assert "database" not in problem["msg"]


async def test_is_admin_is_strict(api: Api) -> None:
    response = await api.client.post("/api/users", json={"name": "eve", "is_admin": "true"})
    assert only_problem(response)["loc"] == ["body", "is_admin"]
