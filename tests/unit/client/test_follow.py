"""Following an execution over the WebSocket: resume after the last seq, stop on final codes.

The server is a real WebSocket server on 127.0.0.1 playing the notifier's part."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve

from nodedrop.client import AsyncClient, Client, NotFound, Reconnecting, Unauthorized
from nodedrop.client.follow import websocket_url


def event(seq: int, kind: str, **data: Any) -> str:
    return json.dumps(
        {
            "seq": seq,
            "type": kind,
            "time": "2026-12-07T20:00:00.000Z",
            "execution_id": "ex1",
            "node": None,
            "attempt": None,
            "data": data,
        }
    )


EVENTS = [
    event(1, "ExecutionRequested"),
    event(2, "ExecutionStarted"),
    event(4, "NodeSucceeded"),
    event(7, "ExecutionFinished", status="succeeded"),
]


class FakeNotifier:
    """Drops the first connection after two events; serves the rest, one duplicate included."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str | None]] = []
        self.close_with: int | None = None

    async def handler(self, websocket: ServerConnection) -> None:
        request = websocket.request
        assert request is not None
        self.requests.append((request.path, request.headers.get("Authorization")))
        if self.close_with is not None:
            await websocket.close(self.close_with, "no")
            return
        if len(self.requests) == 1:
            for message in EVENTS[:2]:
                await websocket.send(message)
            websocket.transport.abort()  # dropped: no close frame
            return
        after = int(request.path.rsplit("=", 1)[1])
        for message in EVENTS:
            if json.loads(message)["seq"] >= after:  # one duplicate, which must not come out
                await websocket.send(message)
        await websocket.close(1000)


@pytest.fixture
async def notifier() -> AsyncIterator[tuple[FakeNotifier, str]]:
    fake = FakeNotifier()
    server: Server
    async with serve(fake.handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield fake, f"http://127.0.0.1:{port}"


async def test_async_follow_resumes_after_the_last_seq(
    notifier: tuple[FakeNotifier, str],
) -> None:
    fake, url = notifier
    told: list[Reconnecting] = []
    async with AsyncClient(url, "k") as client:
        seqs = [e.seq async for e in client.follow("ex1", on_reconnect=told.append)]
    assert seqs == [1, 2, 4, 7]
    assert [path for path, _ in fake.requests] == [
        "/ws/executions/ex1?after_seq=0",
        "/ws/executions/ex1?after_seq=2",
    ]
    assert {auth for _, auth in fake.requests} == {"Bearer k"}
    assert [r.after_seq for r in told] == [2]


async def test_sync_follow_resumes_after_the_last_seq(notifier: tuple[FakeNotifier, str]) -> None:
    fake, url = notifier

    def follow() -> list[int]:
        with Client(url, "k") as client:
            return [e.seq for e in client.follow("ex1", after_seq=0)]

    assert await asyncio.to_thread(follow) == [1, 2, 4, 7]
    assert len(fake.requests) == 2


@pytest.mark.parametrize(("code", "kind"), [(4401, Unauthorized), (4404, NotFound)])
async def test_follow_stops_on_a_bad_key_or_an_unknown_execution(
    notifier: tuple[FakeNotifier, str], code: int, kind: type[Exception]
) -> None:
    fake, url = notifier
    fake.close_with = code
    async with AsyncClient(url, "k") as client:
        with pytest.raises(kind):
            _ = [e async for e in client.follow("ex1")]
    assert len(fake.requests) == 1


def test_the_websocket_url_follows_the_base_url() -> None:
    assert (
        websocket_url("http://127.0.0.1:8000", "ex1", 0)
        == "ws://127.0.0.1:8000/ws/executions/ex1?after_seq=0"
    )
    assert (
        websocket_url("https://h.example/nd/", "a b", 7)
        == "wss://h.example/nd/ws/executions/a%20b?after_seq=7"
    )
