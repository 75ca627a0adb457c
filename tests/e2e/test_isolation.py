"""Two users on the whole system (issue 6): each one's ids answer the other 404 on every endpoint
and 4404 on the WebSocket, and while both run at once, no event of one reaches the other's
socket. Through the API's base URL, so the WebSocket goes through the relay to the notifier."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin, Subprotocol

from .system import System

pytestmark = pytest.mark.e2e

SLOW: dict[str, Any] = {
    "name": "slow",
    "nodes": [
        {"id": "start", "type": "manual_trigger"},
        {"id": "pause", "type": "wait", "parameters": {"ms": 800}},
        {"id": "done", "type": "noop"},
    ],
    "connections": [{"from": "start", "to": "pause"}, {"from": "pause", "to": "done"}],
}


@dataclass
class Person:
    id: str
    key: str
    http: httpx.AsyncClient


@contextlib.asynccontextmanager
async def person(system: System, admin: httpx.AsyncClient, name: str) -> AsyncIterator[Person]:
    created = await admin.post("/api/users", json={"name": name})
    assert created.status_code == 201, created.text
    key = created.json()["api_key"]
    async with httpx.AsyncClient(
        base_url=system.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=10
    ) as http:
        yield Person(created.json()["id"], key, http)


async def listen(
    system: System, execution_id: str, key: str, **options: Any
) -> tuple[list[dict[str, Any]], int]:
    """Every message of the execution's socket until it closes, and the close code."""
    url = f"{system.ws_url}/ws/executions/{execution_id}?token={key}"
    messages: list[dict[str, Any]] = []
    async with connect(url, **options) as ws:
        with contextlib.suppress(ConnectionClosed):
            while True:
                messages.append(json.loads(await asyncio.wait_for(ws.recv(), 20)))
    assert ws.close_code is not None
    return messages, ws.close_code


async def start(someone: Person, workflow_id: str) -> str:
    response = await someone.http.post("/api/executions", json={"workflow_id": workflow_id})
    assert response.status_code == 202, response.text
    execution_id: str = response.json()["id"]
    return execution_id


async def test_two_users_are_isolated_on_every_endpoint_and_socket(
    system: System, client: httpx.AsyncClient
) -> None:
    async with person(system, client, "alice") as alice, person(system, client, "bob") as bob:
        workflows = {}
        for someone in (alice, bob):
            created = await someone.http.post("/api/workflows", json=SLOW)
            assert created.status_code == 201
            workflows[someone.id] = created.json()["id"]
        runs = {someone.id: await start(someone, workflows[someone.id]) for someone in (alice, bob)}
        # Both sockets open while both executions run.
        (alice_events, alice_code), (bob_events, bob_code) = await asyncio.gather(
            listen(system, runs[alice.id], alice.key), listen(system, runs[bob.id], bob.key)
        )
        for events, code, own in (
            (alice_events, alice_code, runs[alice.id]),
            (bob_events, bob_code, runs[bob.id]),
        ):
            assert code == 1000
            assert events[-1]["type"] == "ExecutionFinished"
            assert {e["execution_id"] for e in events} == {own}
        requested = next(e for e in alice_events if e["type"] == "ExecutionRequested")
        assert requested["data"]["requested_by"] == alice.id

        # Each other's ids, everywhere.
        for me, other in ((alice, bob), (bob, alice)):
            wf, ex = workflows[other.id], runs[other.id]
            for method, path, body in [
                ("GET", f"/api/workflows/{wf}", None),
                ("GET", f"/api/workflows/{wf}/versions/1", None),
                ("PUT", f"/api/workflows/{wf}", SLOW),
                ("DELETE", f"/api/workflows/{wf}", None),
                ("POST", "/api/executions", {"workflow_id": wf}),
                ("GET", f"/api/executions/{ex}", None),
                ("POST", f"/api/executions/{ex}/cancel", None),
                ("GET", f"/api/executions/{ex}/events", None),
                ("GET", f"/api/executions/{ex}/logs", None),
                ("GET", f"/api/executions/{ex}/nodes/start/output", None),
                ("POST", f"/api/executions/{ex}/rerun", {"from_node": "done"}),
                ("GET", f"/api/users/{other.id}/keys", None),
            ]:
                response = await me.http.request(method, path, json=body)
                assert response.status_code == 404, (method, path, response.text)
            assert await listen(system, ex, me.key) == ([], 4404)
            listed = (await me.http.get("/api/workflows")).json()["items"]
            assert [w["id"] for w in listed] == [workflows[me.id]]
            own_runs = (await me.http.get("/api/executions")).json()["items"]
            assert ex not in {e["id"] for e in own_runs}


async def test_websocket_keys_and_origins_through_the_api(
    system: System, client: httpx.AsyncClient
) -> None:
    async with person(system, client, "carol") as carol:
        created = await carol.http.post("/api/workflows", json=SLOW)
        execution_id = await start(carol, created.json()["id"])
        assert await listen(system, execution_id, "not-a-key") == ([], 4401)
        assert await listen(system, execution_id, "") == ([], 4401)
        foreign = await listen(system, execution_id, carol.key, origin="https://evil.example")
        assert foreign == ([], 4403)
        events, code = await listen(system, execution_id, carol.key, origin=system.base_url)
        assert (events[-1]["type"], code) == ("ExecutionFinished", 1000)
        # A revoked key is refused on the socket too (the notifier's cache lasts at most 2 s).
        assert (await carol.http.delete(f"/api/users/{carol.id}/keys")).status_code == 204
        await asyncio.sleep(2.1)
        assert await listen(system, execution_id, carol.key) == ([], 4401)


def key_protocols(key: str) -> list[Subprotocol]:
    """How the web UI presents its key: in the subprotocols, never in the URL."""
    encoded = base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")
    return [Subprotocol("nodedrop"), Subprotocol(f"nodedrop.key.{encoded}")]


async def test_a_browser_key_in_the_subprotocol_and_its_revocation_through_the_api(
    system: System, client: httpx.AsyncClient
) -> None:
    long_wait = {**SLOW, "name": "long"}
    long_wait["nodes"] = [
        {**n, "parameters": {"ms": 60_000}} if n["id"] == "pause" else n for n in SLOW["nodes"]
    ]
    async with person(system, client, "dave") as dave:
        url = f"{system.ws_url}/ws/executions/{{}}"
        finished = await start(
            dave, (await dave.http.post("/api/workflows", json=SLOW)).json()["id"]
        )
        async with connect(
            url.format(finished),
            subprotocols=key_protocols(dave.key),
            origin=Origin(system.base_url),
        ) as ws:
            assert ws.subprotocol == "nodedrop"
            events: list[dict[str, Any]] = []
            with contextlib.suppress(ConnectionClosed):
                while True:
                    events.append(json.loads(await asyncio.wait_for(ws.recv(), 20)))
        assert (events[-1]["type"], ws.close_code) == ("ExecutionFinished", 1000)

        created = await dave.http.post("/api/workflows", json=long_wait)
        running = await start(dave, created.json()["id"])
        async with connect(url.format(running), subprotocols=key_protocols(dave.key)) as ws:
            first = json.loads(await asyncio.wait_for(ws.recv(), 20))
            assert first["type"] == "ExecutionRequested"
            # Revoked while the socket is open and the execution runs on: closed, not streamed.
            assert (await dave.http.delete(f"/api/users/{dave.id}/keys")).status_code == 204
            with contextlib.suppress(ConnectionClosed):
                while True:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 20))
                    assert message["type"] != "ExecutionFinished"
        assert (ws.close_code, ws.close_reason) == (4401, "API key revoked")
        assert (await client.post(f"/api/executions/{running}/cancel")).status_code == 202
