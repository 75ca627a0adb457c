"""POST /api/executions: validation (422 with loc, nothing published), publishing, node mode."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from nodedrop.api.app import create_app
from nodedrop.api.eventlog import EventLog
from nodedrop.contracts import ids
from nodedrop.contracts.codec import encode
from nodedrop.contracts.events import ExecutionRequested
from nodedrop.contracts.routing import Layout, event_subject, execution_subject

from .harness import T0, TOKEN, Api, project_execution

pytestmark = pytest.mark.integration


def two_triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    workflow = copy.deepcopy(workflow)
    workflow["nodes"].append({"id": "hook", "type": "webhook_trigger"})
    workflow["connections"].append({"from": "hook", "to": "shape"})
    return workflow


async def test_inline_request_is_published_then_accepted(
    api: Api, workflow: dict[str, Any]
) -> None:
    response = await api.client.post(
        "/api/executions",
        json={"workflow": workflow, "input": [{"a": 1}, {"a": 2}], "timeout_ms": 5000},
    )
    assert response.status_code == 202, response.text
    execution_id = response.json()["id"]
    assert response.json() == {"id": execution_id, "status": "queued"}
    assert response.headers["Location"] == f"/api/executions/{execution_id}"
    assert "." not in execution_id

    raw = await api.js.get_last_msg(
        Layout.from_env().stream_of(execution_id),
        execution_subject(execution_id, "ExecutionRequested"),
    )
    assert raw.headers is not None
    assert raw.headers["Nats-Msg-Id"] == ids.execution_requested(execution_id)
    [(event, _)] = await api.stream_events(execution_id)
    assert isinstance(event, ExecutionRequested)
    assert event.event_id == ids.execution_requested(execution_id)
    assert event.mode == "trigger"
    assert event.trigger == "start"
    assert event.node is None
    assert event.input == [{"a": 1}, {"a": 2}]
    assert event.timeout_ms == 5000
    assert event.requested_by == "admin"
    assert event.workflow_id is None
    assert event.workflow_version is None
    assert [n["id"] for n in event.workflow["nodes"]] == ["start", "shape", "big", "done"]
    assert event.workflow["connections"][0] == {"from": "start", "to": "shape"}

    # The same event again (a client or service retry) is dropped by the duplicate window.
    ack = await api.js.publish(
        event_subject(event),
        encode(event),
        stream=Layout.from_env().stream_of(execution_id),
        headers={"Nats-Msg-Id": event.event_id},
    )
    assert ack.duplicate
    assert await api.stream_count() == 1


async def test_saved_workflow_request_carries_id_and_version(
    api: Api, workflow: dict[str, Any]
) -> None:
    workflow_id = (await api.client.post("/api/workflows", json=workflow)).json()["id"]
    workflow["name"] = "second version"
    await api.client.put(f"/api/workflows/{workflow_id}", json=workflow)
    response = await api.client.post("/api/executions", json={"workflow_id": workflow_id})
    assert response.status_code == 202, response.text
    [(event, _)] = await api.stream_events(response.json()["id"])
    assert isinstance(event, ExecutionRequested)
    assert event.workflow_id == workflow_id
    assert event.workflow_version == 2
    assert event.workflow["name"] == "second version"
    assert event.input == [{}]


async def test_unknown_or_deleted_workflow_is_404(api: Api, workflow: dict[str, Any]) -> None:
    response = await api.client.post("/api/executions", json={"workflow_id": "nope"})
    assert response.status_code == 404
    workflow_id = (await api.client.post("/api/workflows", json=workflow)).json()["id"]
    await api.client.delete(f"/api/workflows/{workflow_id}")
    response = await api.client.post("/api/executions", json={"workflow_id": workflow_id})
    assert response.status_code == 404
    assert await api.stream_count() == 0


CASES: list[tuple[str, dict[str, Any], list[Any]]] = [
    ("both", {"workflow": "W", "workflow_id": "x"}, ["body"]),
    ("neither", {"input": []}, ["body"]),
    ("unknown field", {"workflow": "W", "priority": 1}, ["body", "priority"]),
    ("bad mode", {"workflow": "W", "mode": "fast"}, ["body", "mode"]),
    ("timeout 0", {"workflow": "W", "timeout_ms": 0}, ["body", "timeout_ms"]),
    ("invalid definition", {"workflow": "BAD"}, ["body", "workflow", "nodes", 1, "type"]),
    ("workflow not an object", {"workflow": [1]}, ["body", "workflow"]),
    ("trigger not named", {"workflow": "TWO"}, ["body", "trigger"]),
    ("trigger unknown", {"workflow": "W", "trigger": "ghost"}, ["body", "trigger"]),
    ("trigger not a trigger", {"workflow": "W", "trigger": "shape"}, ["body", "trigger"]),
    ("node in trigger mode", {"workflow": "W", "node": "shape"}, ["body", "node"]),
    ("input not a list", {"workflow": "W", "input": {"a": 1}}, ["body", "input"]),
    ("item not an object", {"workflow": "W", "input": [{"a": 1}, 2]}, ["body", "input", 1]),
    ("node mode without node", {"workflow": "W", "mode": "node"}, ["body", "node"]),
    ("node unknown", {"workflow": "W", "mode": "node", "node": "ghost"}, ["body", "node"]),
    (
        "node input not ports",
        {"workflow": "W", "mode": "node", "node": "big", "input": [{}]},
        ["body", "input"],
    ),
    (
        "node input item",
        {"workflow": "W", "mode": "node", "node": "big", "input": {"main": [1]}},
        ["body", "input", "main", 0],
    ),
    (
        "node input port",
        {"workflow": "W", "mode": "node", "node": "big", "input": {"other": []}},
        ["body", "input", "other"],
    ),
    (
        "parent without data",
        {"workflow": "W", "mode": "node", "node": "big"},
        ["body", "input"],
    ),
]


@pytest.mark.parametrize(("body", "loc"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_rejected_requests_publish_nothing(
    api: Api, workflow: dict[str, Any], body: dict[str, Any], loc: list[Any]
) -> None:
    bad = copy.deepcopy(workflow)
    bad["nodes"][1]["type"] = "nope"
    body = {
        **body,
        **(
            {"workflow": {"W": workflow, "TWO": two_triggers(workflow), "BAD": bad}[w]}
            if isinstance(w := body.get("workflow"), str)
            else {}
        ),
    }
    response = await api.client.post("/api/executions", json=body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert loc in [p["loc"] for p in detail], detail
    assert all(set(p) == {"loc", "msg", "type"} for p in detail)
    assert await api.stream_count() == 0


async def test_several_triggers_are_listed(api: Api, workflow: dict[str, Any]) -> None:
    response = await api.client.post("/api/executions", json={"workflow": two_triggers(workflow)})
    [problem] = response.json()["detail"]
    assert "'start'" in problem["msg"]
    assert "'hook'" in problem["msg"]
    ok = await api.client.post(
        "/api/executions", json={"workflow": two_triggers(workflow), "trigger": "hook"}
    )
    assert ok.status_code == 202
    [(event, _)] = await api.stream_events(ok.json()["id"])
    assert isinstance(event, ExecutionRequested)
    assert event.trigger == "hook"


async def test_missing_parent_is_named(api: Api, workflow: dict[str, Any]) -> None:
    response = await api.client.post(
        "/api/executions", json={"workflow": workflow, "mode": "node", "node": "done"}
    )
    [problem] = response.json()["detail"]
    assert problem["type"] == "missing_parent_output"
    assert "'big'" in problem["msg"]


async def test_node_mode_with_explicit_input(api: Api, workflow: dict[str, Any]) -> None:
    response = await api.client.post(
        "/api/executions",
        json={"workflow": workflow, "mode": "node", "node": "big", "input": {"main": [{"x": 1}]}},
    )
    assert response.status_code == 202, response.text
    [(event, _)] = await api.stream_events(response.json()["id"])
    assert isinstance(event, ExecutionRequested)
    assert event.mode == "node"
    assert event.node == "big"
    assert event.trigger == "start"
    assert event.input == {"main": [{"x": 1}]}


async def test_node_mode_uses_pinned_parent_output(api: Api, workflow: dict[str, Any]) -> None:
    workflow["nodes"][1]["pinned_output"] = {"main": [{"total": 7}]}
    response = await api.client.post(
        "/api/executions", json={"workflow": workflow, "mode": "node", "node": "big"}
    )
    assert response.status_code == 202, response.text
    [(event, _)] = await api.stream_events(response.json()["id"])
    assert isinstance(event, ExecutionRequested)
    assert event.input == {"main": [{"total": 7}]}


async def test_node_mode_uses_latest_recorded_outputs(api: Api) -> None:
    merge_workflow = {
        "name": "fan in",
        "nodes": [
            {"id": "start", "type": "manual_trigger"},
            {"id": "a", "type": "noop"},
            {"id": "b", "type": "if", "parameters": {"condition": "{{ true }}"}},
            {"id": "m", "type": "merge"},
        ],
        "connections": [
            {"from": "start", "to": "a"},
            {"from": "start", "to": "b"},
            {"from": "b", "output": "true", "to": "m", "input": "left"},
            {"from": "a", "to": "m", "input": "left"},
            {"from": "b", "output": "false", "to": "m", "input": "right"},
        ],
    }
    workflow_id = (await api.client.post("/api/workflows", json=merge_workflow)).json()["id"]
    # An older finished run recorded both parents; a newer finished run only `a`; the newest
    # has not finished and must be ignored.
    await project_execution(
        api,
        "old",
        workflow_id=workflow_id,
        status="succeeded",
        created_at=T0,
        finished_at=T0 + timedelta(seconds=1),
        nodes={
            "a": {"output": {"main": [{"from": "a-old"}]}},
            "b": {"output": {"true": [{"from": "b-true"}], "false": [{"from": "b-false"}]}},
        },
    )
    await project_execution(
        api,
        "newer",
        workflow_id=workflow_id,
        status="failed",
        created_at=T0 + timedelta(seconds=2),
        finished_at=T0 + timedelta(seconds=3),
        nodes={"a": {"output": {"main": [{"from": "a-new"}]}}, "b": {"status": "failed"}},
    )
    await project_execution(
        api,
        "running",
        workflow_id=workflow_id,
        status="running",
        created_at=T0 + timedelta(seconds=4),
        nodes={"a": {"output": {"main": [{"from": "a-unfinished"}]}}},
    )
    response = await api.client.post(
        "/api/executions", json={"workflow_id": workflow_id, "mode": "node", "node": "m"}
    )
    assert response.status_code == 202, response.text
    [(event, _)] = await api.stream_events(response.json()["id"])
    assert isinstance(event, ExecutionRequested)
    assert event.input == {
        "left": [{"from": "b-true"}, {"from": "a-new"}],
        "right": [{"from": "b-false"}],
    }


async def test_event_too_large_is_413(api: Api, workflow: dict[str, Any]) -> None:
    resources = api.resources
    small = EventLog(
        resources.nc, resources.nc.jetstream(), max_msg_size=2_000, layout=Layout.from_env()
    )
    api.app.state.resources = dataclasses.replace(resources, events=small)
    big = [{"blob": "x" * 1_000} for _ in range(3)]
    response = await api.client.post("/api/executions", json={"workflow": workflow, "input": big})
    assert response.status_code == 413
    assert "at most 2000" in response.json()["detail"]
    assert await api.stream_count() == 0


async def test_body_too_large_is_413(api: Api, workflow: dict[str, Any]) -> None:
    limited = create_app(api.app.state.config, max_body_bytes=1_000)
    limited.state.resources = api.resources
    transport = httpx.ASGITransport(app=limited)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        big = [{"blob": "x" * 1_000}]
        headers = {"Authorization": f"Bearer {TOKEN}"}
        response = await client.post(
            "/api/executions", json={"workflow": workflow, "input": big}, headers=headers
        )
        assert response.status_code == 413

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(5):
                yield b" " * 400
            yield json.dumps({"workflow": workflow}).encode()

        chunked = await client.post(
            "/api/executions",
            content=chunks(),
            headers={**headers, "Content-Type": "application/json"},
        )
        assert chunked.status_code == 413
    assert await api.stream_count() == 0


async def test_publish_failure_is_503(api: Api, workflow: dict[str, Any]) -> None:
    for stream in Layout.from_env().streams:
        await api.js.delete_stream(stream)
    response = await api.client.post("/api/executions", json={"workflow": workflow})
    assert response.status_code == 503
    assert "nothing was recorded" in response.json()["detail"]
