"""GET execution (stream fallback and projection), listing, cancel, events, logs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from nodedrop.api.app import create_app
from nodedrop.contracts import ids, subjects
from nodedrop.contracts.codec import encode
from nodedrop.contracts.events import (
    Event,
    ExecutionCancelRequested,
    ExecutionFinished,
    ExecutionStarted,
    NodeReady,
    NodeStarted,
    NodeSucceeded,
)
from nodedrop.contracts.routing import Layout, event_subject

from .harness import T0, TOKEN, Api, api_config, project_execution

pytestmark = pytest.mark.integration


async def _request(api: Api, workflow: dict[str, Any]) -> str:
    response = await api.client.post("/api/executions", json={"workflow": workflow})
    assert response.status_code == 202, response.text
    execution_id: str = response.json()["id"]
    return execution_id


async def _publish(api: Api, event: Event) -> int:
    ack = await api.js.publish(
        event_subject(event),
        encode(event),
        stream=Layout.from_env().stream_of(event.execution_id),
        headers={"Nats-Msg-Id": event.event_id},
    )
    return ack.seq


NOW = datetime(2026, 11, 26, 10, 0, 1, 250_000, tzinfo=UTC)


async def test_get_right_after_post_is_queued(api: Api, workflow: dict[str, Any]) -> None:
    execution_id = await _request(api, workflow)
    response = await api.client.get(f"/api/executions/{execution_id}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == execution_id
    assert body["status"] == "queued"
    assert body["mode"] == "trigger"
    assert body["trigger"] == "start"
    assert body["requested_by"] == "admin"
    assert body["nodes"] == {}
    assert body["last_seq"] == 1
    assert body["finished_at"] is None
    assert body["created_at"].endswith("Z")


async def test_get_from_the_projection(api: Api) -> None:
    await project_execution(
        api,
        "exec-1",
        status="running",
        created_at=T0,
        nodes={
            "start": {"output": {"main": [{}]}, "finished_at": T0 + timedelta(seconds=1)},
            "fetch": {
                "status": "retrying",
                "attempts": 2,
                "started_at": T0 + timedelta(milliseconds=1500),
                "error": {"type": "HttpServerError", "message": "503", "stack": "..."},
            },
            "after": {"status": "pending", "attempts": 0},
        },
    )
    response = await api.client.get("/api/executions/exec-1")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "running"
    assert body["created_at"] == "2026-11-26T10:00:00.000Z"
    assert body["started_at"] == "2026-11-26T10:00:00.005Z"
    assert list(body["nodes"]) == ["start", "fetch", "after"]
    fetch = body["nodes"]["fetch"]
    assert fetch["status"] == "retrying"
    assert fetch["attempts"] == 2
    assert fetch["started_at"] == "2026-11-26T10:00:01.500Z"
    assert fetch["finished_at"] is None
    assert fetch["error"]["type"] == "HttpServerError"
    assert fetch["output"] is None
    assert fetch["skip_reason"] is None
    assert body["nodes"]["start"]["output"] == {"main": [{}]}


@pytest.mark.parametrize("execution_id", ["nope", "a.b", "a*", "%3E"])
async def test_unknown_execution_is_404(api: Api, execution_id: str) -> None:
    for path in ("", "/events", "/logs"):
        response = await api.client.get(f"/api/executions/{execution_id}{path}")
        assert response.status_code == 404, (path, response.text)
    response = await api.client.post(f"/api/executions/{execution_id}/cancel")
    assert response.status_code == 404


async def test_other_users_executions_are_404(api: Api) -> None:
    await project_execution(api, "theirs", requested_by="alice")
    # The admin sees everyone's; the check itself is User.can_see (unit-tested).
    assert (await api.client.get("/api/executions/theirs")).status_code == 200


async def test_list_newest_first_filters_and_pages(api: Api) -> None:
    for i in range(5):
        await project_execution(
            api,
            f"e{i}",
            workflow_id="wf-a" if i % 2 == 0 else "wf-b",
            status="succeeded" if i < 3 else "running",
            created_at=T0 + timedelta(seconds=i),
        )
    listed = (await api.client.get("/api/executions")).json()
    assert [e["id"] for e in listed["items"]] == ["e4", "e3", "e2", "e1", "e0"]
    assert listed["next_cursor"] is None
    assert "nodes" not in listed["items"][0]

    by_workflow = (await api.client.get("/api/executions", params={"workflow_id": "wf-a"})).json()
    assert [e["id"] for e in by_workflow["items"]] == ["e4", "e2", "e0"]
    by_status = (await api.client.get("/api/executions", params={"status": "running"})).json()
    assert [e["id"] for e in by_status["items"]] == ["e4", "e3"]

    seen = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.client.get("/api/executions", params=params)).json()
        seen += [e["id"] for e in page["items"]]
        if (cursor := page["next_cursor"]) is None:
            break
    assert seen == ["e4", "e3", "e2", "e1", "e0"]


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"limit": 0}, ["query", "limit"]),
        ({"limit": 201}, ["query", "limit"]),
        ({"status": "sleeping"}, ["query", "status"]),
        ({"cursor": "eyJ4IjoxfQ"}, ["query", "cursor"]),
    ],
)
async def test_list_rejects_bad_parameters(
    api: Api, params: dict[str, Any], loc: list[str]
) -> None:
    response = await api.client.get("/api/executions", params=params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == loc


async def test_cancel_publishes_the_request(api: Api, workflow: dict[str, Any]) -> None:
    execution_id = await _request(api, workflow)
    response = await api.client.post(f"/api/executions/{execution_id}/cancel")
    assert response.status_code == 202, response.text
    assert response.json()["id"] == execution_id
    events = await api.stream_events(execution_id)
    assert [type(e).__name__ for e, _ in events] == [
        "ExecutionRequested",
        "ExecutionCancelRequested",
    ]
    cancel = events[1][0]
    assert isinstance(cancel, ExecutionCancelRequested)
    assert cancel.requested_by == "admin"
    assert cancel.event_id == ids.cancel_requested(execution_id)


async def test_cancel_after_finish_is_409_even_before_the_projection(
    api: Api, workflow: dict[str, Any]
) -> None:
    execution_id = await _request(api, workflow)
    await _publish(
        api,
        ExecutionFinished(
            event_id=ids.execution_finished(execution_id),
            execution_id=execution_id,
            time=NOW,
            status="succeeded",
        ),
    )
    response = await api.client.post(f"/api/executions/{execution_id}/cancel")
    assert response.status_code == 409
    assert "succeeded" in response.json()["detail"]
    assert await api.stream_count() == 2


async def test_cancel_of_finished_projection_row_is_409(api: Api) -> None:
    await project_execution(api, "done-1", status="failed", finished_at=T0 + timedelta(seconds=2))
    response = await api.client.post("/api/executions/done-1/cancel")
    assert response.status_code == 409


async def test_events_in_order_and_after_seq(api: Api, workflow: dict[str, Any]) -> None:
    layout = Layout.from_env()
    execution_id = await _request(api, workflow)
    # Another execution in the same partition, so that its events come between these in the
    # stream (requests landing in other partitions leave this stream alone).
    for _ in range(20 * layout.partitions):
        other_id = await _request(api, workflow)
        if layout.partition_of(other_id) == layout.partition_of(execution_id):
            break
    else:
        raise AssertionError("no execution requested in the same partition")
    published = [
        ExecutionStarted(
            event_id=ids.execution_started(execution_id),
            execution_id=execution_id,
            time=NOW,
            plan=["start", "shape"],
        ),
        NodeReady(
            event_id=ids.node_ready(execution_id, "start", 1),
            execution_id=execution_id,
            time=NOW,
            node="start",
            attempt=1,
            node_type="manual_trigger",
            input={},
        ),
        ExecutionStarted(
            event_id=ids.execution_started(other_id),
            execution_id=other_id,
            time=NOW,
            plan=["start"],
        ),
        NodeStarted(
            event_id=ids.node_started(execution_id, "start", 1),
            execution_id=execution_id,
            time=NOW,
            node="start",
            attempt=1,
        ),
        NodeSucceeded(
            event_id=ids.node_result(execution_id, "start", 1),
            execution_id=execution_id,
            time=NOW,
            node="start",
            attempt=1,
            output={"main": [{}]},
        ),
    ]
    for event in published:
        await _publish(api, event)

    response = await api.client.get(f"/api/executions/{execution_id}/events")
    assert response.status_code == 200
    events = response.json()["events"]
    assert [e["type"] for e in events] == [
        "ExecutionRequested",
        "ExecutionStarted",
        "NodeReady",
        "NodeStarted",
        "NodeSucceeded",
    ]
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs)
    assert seqs == [1, 3, 4, 6, 7]
    assert all(e["execution_id"] == execution_id for e in events)
    succeeded = events[-1]
    assert succeeded["node"] == "start"
    assert succeeded["attempt"] == 1
    assert succeeded["data"]["output"] == {"main": [{}]}
    assert succeeded["time"].startswith("2026-11-26T10:00:01.25")

    later = await api.client.get(f"/api/executions/{execution_id}/events", params={"after_seq": 4})
    assert [e["seq"] for e in later.json()["events"]] == [6, 7]
    none = await api.client.get(f"/api/executions/{execution_id}/events", params={"after_seq": 7})
    assert none.json() == {"events": []}
    bad = await api.client.get(f"/api/executions/{execution_id}/events", params={"after_seq": -1})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["query", "after_seq"]
    # No consumer is left behind by the reads (only the durable ones of ensure_jetstream).
    consumers = await api.js.consumers_info(layout.stream_of(execution_id))
    assert {c.name for c in consumers} == {
        subjects.RUNNER_CONSUMER,
        subjects.NOTIFIER_CONSUMER,
    }


async def test_many_events_are_read_in_batches(api: Api, workflow: dict[str, Any]) -> None:
    execution_id = await _request(api, workflow)
    for attempt in range(1, 601):
        await _publish(
            api,
            NodeStarted(
                event_id=ids.node_started(execution_id, "start", attempt),
                execution_id=execution_id,
                time=NOW,
                node="start",
                attempt=attempt,
            ),
        )
    events = (await api.client.get(f"/api/executions/{execution_id}/events")).json()["events"]
    assert len(events) == 601
    assert [e["attempt"] for e in events[1:]] == list(range(1, 601))


async def test_logs(api: Api) -> None:
    await project_execution(
        api,
        "logged",
        logs=[("info", None, "execution started"), ("warning", "fetch", "retrying after 503")],
    )
    response = await api.client.get("/api/executions/logged/logs")
    assert response.status_code == 200
    logs = response.json()["logs"]
    assert [(x["level"], x["node"], x["message"]) for x in logs] == [
        ("info", None, "execution started"),
        ("warning", "fetch", "retrying after 503"),
    ]
    assert logs[0]["time"] == "2026-11-26T10:00:01.000Z"


async def test_queued_execution_has_empty_logs(api: Api, workflow: dict[str, Any]) -> None:
    execution_id = await _request(api, workflow)
    response = await api.client.get(f"/api/executions/{execution_id}/logs")
    assert response.json() == {"logs": []}


async def test_database_down_is_503(nats_url: str, jetstream: object) -> None:
    app = create_app(api_config(nats_url, "postgresql+asyncpg://nobody@127.0.0.1:9/none"))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://api",
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as client,
    ):
        for method, path in (("GET", "/api/workflows"), ("GET", "/api/executions/x")):
            response = await client.request(method, path)
            assert response.status_code == 503, response.text
            assert "database" in response.json()["detail"]


async def test_no_admin_token_means_every_key_is_refused(
    nats_url: str, migrated_database_url: str, jetstream: object
) -> None:
    app = create_app(api_config(nats_url, migrated_database_url, admin_token=None))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client,
    ):
        for key in ("", "None", "null", TOKEN):
            response = await client.get(
                "/api/workflows", headers={"Authorization": f"Bearer {key}"}
            )
            assert response.status_code == 401
