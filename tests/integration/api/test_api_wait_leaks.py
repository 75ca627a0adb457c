"""No waiter outlives its request, with the api served by uvicorn against a real nats-server and
PostgreSQL (no scheduler runs here, so no execution ever finishes): a waiting POST or GET whose
client hangs up, or whose wait runs out, leaves nothing in the api's map of waiters."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from nats.js import JetStreamContext

from nodedrop.api.app import create_app
from nodedrop.api.waiters import Waiters

from .harness import TOKEN, api_config


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def served(nats_url: str, database_url: str) -> AsyncIterator[tuple[int, Waiters]]:
    app = create_app(api_config(nats_url, database_url))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    try:
        await until(lambda: server.started)
        yield port, app.state.resources.waiters
    finally:
        server.should_exit = True
        await serving


def request(method: str, path: str, body: dict[str, Any] | None = None) -> bytes:
    payload = json.dumps(body).encode() if body is not None else b""
    return (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload


async def until(condition: Any) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


async def test_clients_that_hang_up_leave_no_waiter(
    nats_url: str, migrated_database_url: str, jetstream: JetStreamContext, workflow: Any
) -> None:
    async with served(nats_url, migrated_database_url) as (port, waiters):
        writers = []
        for _ in range(20):
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request("POST", "/api/executions?wait=60", {"workflow": workflow}))
            writers.append(writer)
        await until(lambda: len(waiters) == 20)
        for writer in writers:
            writer.close()
        await until(lambda: len(waiters) == 0)


async def test_a_wait_that_runs_out_leaves_no_waiter(
    nats_url: str, migrated_database_url: str, jetstream: JetStreamContext, workflow: Any
) -> None:
    async with served(nats_url, migrated_database_url) as (port, waiters):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request("POST", "/api/executions?wait=0.3", {"workflow": workflow}))
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 202")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        execution_id = json.loads(await reader.readexactly(length))["id"]
        assert len(waiters) == 0
        # The same for a long-poll of it, on the same connection.
        writer.write(request("GET", f"/api/executions/{execution_id}?wait=0.3"))
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert len(waiters) == 0
        writer.close()


@pytest.fixture
def workflow() -> dict[str, Any]:
    return {
        "name": "never runs here",
        "nodes": [{"id": "start", "type": "manual_trigger"}, {"id": "n", "type": "noop"}],
        "connections": [{"from": "start", "to": "n"}],
    }
