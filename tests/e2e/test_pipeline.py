"""Journeys through the public API and WebSocket, against the four real services."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import nats
import pytest
import websockets

from nodedrop.contracts.routing import Layout

from .system import System

pytestmark = pytest.mark.e2e

SEED: dict[str, Any] = {
    "name": "seed multi-trigger",
    "nodes": [
        {"id": "A", "type": "manual_trigger"},
        {"id": "B", "type": "manual_trigger"},
        {"id": "node1", "type": "noop"},
        {"id": "node2", "type": "noop"},
        {"id": "output", "type": "noop"},
    ],
    "connections": [
        {"from": "A", "to": "node1"},
        {"from": "node1", "to": "output"},
        {"from": "B", "to": "node2"},
        {"from": "node2", "to": "node1"},
    ],
}


def linear(*nodes: dict[str, Any]) -> dict[str, Any]:
    all_nodes = [{"id": "start", "type": "manual_trigger"}, *nodes]
    return {
        "name": "linear",
        "nodes": all_nodes,
        "connections": [{"from": a["id"], "to": b["id"]} for a, b in itertools.pairwise(all_nodes)],
    }


async def submit(client: httpx.AsyncClient, workflow: dict[str, Any], **body: Any) -> str:
    response = await client.post("/api/executions", json={"workflow": workflow, **body})
    assert response.status_code == 202, response.text
    assert response.headers["location"].endswith(response.json()["id"])
    execution_id: str = response.json()["id"]
    return execution_id


async def watch(
    system: System,
    execution_id: str,
    *,
    after_seq: int = 0,
    stop_when: Callable[[dict[str, Any]], bool] | None = None,
) -> list[dict[str, Any]]:
    """Events from the WebSocket until it closes (or one satisfies ``stop_when``)."""
    url = f"{system.ws_url}/ws/executions/{execution_id}?after_seq={after_seq}"
    events: list[dict[str, Any]] = []
    async with websockets.connect(url, additional_headers=system.headers) as socket:
        async for message in socket:
            events.append(json.loads(message))
            if stop_when is not None and stop_when(events[-1]):
                return events
        assert socket.close_code == 1000
    return events


async def run_to_end(
    client: httpx.AsyncClient, system: System, workflow: dict[str, Any], **body: Any
) -> tuple[str, list[dict[str, Any]]]:
    execution_id = await submit(client, workflow, **body)
    events = await asyncio.wait_for(watch(system, execution_id), 30)
    assert events[-1]["type"] == "ExecutionFinished"
    return execution_id, events


async def projected(client: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
    """The execution as GET answers it, once the projection has caught up with its end."""
    for _ in range(200):
        response = await client.get(f"/api/executions/{execution_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["finished_at"] is not None:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"projection of {execution_id} did not finish: {body}")


def started(node: str) -> Callable[[dict[str, Any]], bool]:
    """The node began: a runner took it, or (a ``wait``) the scheduler's timer holds it."""
    return lambda event: event["type"] in ("NodeStarted", "NodeWaiting") and event["node"] == node


def of_type(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]


def seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        ("A", ["A", "node1", "output"]),
        ("B", ["B", "node2", "node1", "output"]),
    ],
)
async def test_seed_multi_trigger_runs_the_nodes_of_the_chosen_trigger(
    client: httpx.AsyncClient, system: System, trigger: str, expected: list[str]
) -> None:
    execution_id, events = await run_to_end(client, system, SEED, trigger=trigger)
    assert [e["node"] for e in of_type(events, "NodeSucceeded")] == expected
    assert of_type(events, "ExecutionStarted")[0]["data"]["plan"] == sorted(
        expected, key=[n["id"] for n in SEED["nodes"]].index
    )
    assert events[-1]["data"]["status"] == "succeeded"
    execution = await projected(client, execution_id)
    assert execution["status"] == "succeeded"
    assert execution["trigger"] == trigger
    assert sorted(execution["nodes"]) == sorted(expected)
    assert {n["status"] for n in execution["nodes"].values()} == {"succeeded"}


async def test_a_diamond_runs_its_branches_in_parallel(
    client: httpx.AsyncClient, system: System
) -> None:
    workflow = {
        "name": "diamond",
        "nodes": [
            {"id": "start", "type": "manual_trigger"},
            {"id": "left", "type": "wait", "parameters": {"ms": 500}},
            {"id": "right", "type": "wait", "parameters": {"ms": 500}},
            {"id": "join", "type": "noop"},
        ],
        "connections": [
            {"from": "start", "to": "left"},
            {"from": "start", "to": "right"},
            {"from": "left", "to": "join"},
            {"from": "right", "to": "join"},
        ],
    }
    _, events = await run_to_end(client, system, workflow)
    assert events[-1]["data"]["status"] == "succeeded"
    # In parallel: each branch began before the other ended (not timed: a busy machine is
    # slow, not sequential).
    began = {e["node"]: e["time"] for e in of_type(events, "NodeWaiting")}
    ended = {e["node"]: e["time"] for e in of_type(events, "NodeSucceeded")}
    assert seconds(began["left"], ended["right"]) > 0, events
    assert seconds(began["right"], ended["left"]) > 0, events
    join = of_type(events, "NodeReady")[-1]
    assert join["node"] == "join"
    assert len(join["data"]["input"]["main"]) == 2


async def test_continue_on_a_failing_node_ends_partial(
    client: httpx.AsyncClient, system: System
) -> None:
    workflow = linear(
        {
            "id": "bad",
            "type": "stop_and_error",
            "on_error": "continue",
            "parameters": {"message": "nope", "error_type": "Nope"},
        },
        {"id": "after", "type": "noop"},
    )
    execution_id, events = await run_to_end(client, system, workflow)
    assert events[-1]["data"]["status"] == "partial"
    failed = of_type(events, "NodeFailed")[0]
    assert (failed["node"], failed["data"]["error"]["type"]) == ("bad", "Nope")
    assert [(e["node"], e["data"]["reason"]) for e in of_type(events, "NodeSkipped")] == [
        ("after", "no_input")
    ]
    execution = await projected(client, execution_id)
    assert execution["status"] == "partial"
    assert execution["nodes"]["bad"]["status"] == "failed"
    assert execution["nodes"]["bad"]["error"]["message"] == "nope"


async def test_fail_on_a_failing_node_ends_failed_and_skips_the_rest(
    client: httpx.AsyncClient, system: System
) -> None:
    workflow = linear(
        {"id": "bad", "type": "stop_and_error"},
        {"id": "after", "type": "noop"},
        {"id": "last", "type": "noop"},
    )
    execution_id, events = await run_to_end(client, system, workflow)
    assert events[-1]["data"]["status"] == "failed"
    assert {e["node"]: e["data"]["reason"] for e in of_type(events, "NodeSkipped")} == {
        "after": "execution_failed",
        "last": "execution_failed",
    }
    execution = await projected(client, execution_id)
    assert execution["status"] == "failed"
    assert execution["error"]["type"] == "StopAndError"
    assert execution["nodes"]["last"]["skip_reason"] == "execution_failed"


async def test_cancel_during_a_long_wait_ends_cancelled(
    client: httpx.AsyncClient, system: System
) -> None:
    workflow = linear(
        {"id": "long", "type": "wait", "parameters": {"ms": 60_000}},
        {"id": "after", "type": "noop"},
    )
    execution_id = await submit(client, workflow)
    seen = await asyncio.wait_for(watch(system, execution_id, stop_when=started("long")), 10)
    response = await client.post(f"/api/executions/{execution_id}/cancel")
    assert response.status_code == 202, response.text
    rest = await asyncio.wait_for(watch(system, execution_id, after_seq=seen[-1]["seq"]), 10)
    assert rest[-1]["data"]["status"] == "cancelled"
    assert [e["node"] for e in of_type(rest, "NodeCancelled")] == ["long"]
    assert [(e["node"], e["data"]["reason"]) for e in of_type(rest, "NodeSkipped")] == [
        ("after", "cancelled")
    ]
    assert of_type(rest, "ExecutionCancelRequested")[0]["data"]["requested_by"]
    again = await client.post(f"/api/executions/{execution_id}/cancel")
    assert again.status_code == 409


async def test_an_invalid_definition_is_rejected_and_nothing_is_published(
    client: httpx.AsyncClient, system: System
) -> None:
    nc = await nats.connect(system.nats_url)
    try:
        js = nc.jetstream()
        streams = Layout.from_env().streams
        before = [(await js.stream_info(stream)).state.last_seq for stream in streams]
        bad = {
            "nodes": [{"id": "start", "type": "manual_trigger"}, {"id": "x", "type": "nope"}],
            "connections": [{"from": "start", "to": "x"}],
        }
        response = await client.post("/api/executions", json={"workflow": bad})
        assert response.status_code == 422
        problem = response.json()["detail"][0]
        assert problem["loc"][-3:] == ["nodes", 1, "type"]
        assert "nope" in problem["msg"]
        await asyncio.sleep(0.2)
        assert [(await js.stream_info(stream)).state.last_seq for stream in streams] == before
    finally:
        await nc.close()


async def test_a_websocket_client_that_reconnects_sees_every_event_once(
    client: httpx.AsyncClient, system: System
) -> None:
    workflow = linear(
        *({"id": f"w{i}", "type": "wait", "parameters": {"ms": 150}} for i in range(4))
    )
    execution_id = await submit(client, workflow)
    first = await asyncio.wait_for(watch(system, execution_id, stop_when=started("w0")), 10)
    await asyncio.sleep(0.3)  # events keep coming while the client is away
    rest = await asyncio.wait_for(watch(system, execution_id, after_seq=first[-1]["seq"]), 10)
    seen = first + rest
    seqs = [e["seq"] for e in seen]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    stored = (await client.get(f"/api/executions/{execution_id}/events")).json()["events"]
    assert [e["seq"] for e in stored] == seqs
    assert seen[-1]["data"]["status"] == "succeeded"


async def test_a_scheduler_killed_mid_execution_is_restarted_and_the_run_finishes_once(
    client: httpx.AsyncClient, system: System
) -> None:
    workflow = linear(
        {"id": "a", "type": "noop"},
        {"id": "slow", "type": "wait", "parameters": {"ms": 800}},
        {"id": "b", "type": "noop"},
        {"id": "c", "type": "noop"},
    )
    execution_id = await submit(client, workflow)
    seen = await asyncio.wait_for(watch(system, execution_id, stop_when=started("slow")), 10)
    await asyncio.to_thread(system.stop, "scheduler", signal.SIGKILL)
    await asyncio.sleep(1.0)  # the wait's time passes while no scheduler runs: it must wake
    system.start("scheduler")
    rest = await asyncio.wait_for(watch(system, execution_id, after_seq=seen[-1]["seq"]), 20)
    assert rest[-1]["data"]["status"] == "succeeded"
    events = (await client.get(f"/api/executions/{execution_id}/events")).json()["events"]
    assert [i for i, n in Counter(e["event_id"] for e in events).items() if n > 1] == []
    assert [e["node"] for e in events if e["type"] == "NodeSucceeded"] == [
        "start",
        "a",
        "slow",
        "b",
        "c",
    ]


async def test_a_saved_workflows_limit_queues_its_executions_and_runs_them_one_at_a_time(
    client: httpx.AsyncClient, system: System
) -> None:
    workflow = {
        **linear({"id": "pause", "type": "wait", "parameters": {"ms": 300}}),
        "settings": {"max_concurrent": 1},
    }
    saved = await client.post("/api/workflows", json=workflow)
    assert saved.status_code == 201, saved.text
    workflow_id = saved.json()["id"]
    assert saved.json()["settings"]["max_concurrent"] == 1
    ids = []
    for _ in range(3):
        response = await client.post("/api/executions", json={"workflow_id": workflow_id})
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    runs = [await asyncio.wait_for(watch(system, i), 30) for i in ids]

    spans = []
    for events in runs:
        assert events[-1]["data"]["status"] == "succeeded"
        spans.append((of_type(events, "ExecutionStarted")[0]["time"], events[-1]["time"], events))
    spans.sort()
    # One at a time: every execution started after the one before it finished.
    for (_, finished, _), (started_at, _, _) in itertools.pairwise(spans):
        assert seconds(finished, started_at) >= 0
    # The two that waited say why, before their start.
    waited = [events for _, _, events in spans[1:]]
    for events in waited:
        (queued,) = of_type(events, "ExecutionQueued")
        assert queued["data"] == {"scope": "workflow", "key": workflow_id, "limit": 1}
        kinds = [e["type"] for e in events]
        assert kinds.index("ExecutionQueued") < kinds.index("ExecutionStarted")
    logs = (await client.get(f"/api/executions/{spans[-1][2][0]['execution_id']}/logs")).json()
    assert any("execution waiting: workflow" in line["message"] for line in logs["logs"])
