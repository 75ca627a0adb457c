"""Following an execution over the WebSocket: resume after the last seq, stop on final codes.

The server is a real WebSocket server on 127.0.0.1 playing the notifier's part
(tests/fixtures/fake_notifier.py)."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from nodedrop.client import AsyncClient, Client, NotFound, Reconnecting, Unauthorized
from nodedrop.client.follow import websocket_url

if TYPE_CHECKING:  # pytest gives the class as a fixture (see tests/fixtures/fake_notifier.py)
    from tests.fixtures.fake_notifier import FakeNotifier


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


@pytest.fixture
def notifier(fake_notifier: FakeNotifier) -> FakeNotifier:
    """Drops the first connection after two events."""
    fake_notifier.events = EVENTS
    fake_notifier.drop_after = 2
    return fake_notifier


async def test_async_follow_resumes_after_the_last_seq(notifier: FakeNotifier) -> None:
    fake, url = notifier, notifier.url
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


async def test_sync_follow_resumes_after_the_last_seq(notifier: FakeNotifier) -> None:
    fake, url = notifier, notifier.url

    def follow() -> list[int]:
        with Client(url, "k") as client:
            return [e.seq for e in client.follow("ex1", after_seq=0)]

    assert await asyncio.to_thread(follow) == [1, 2, 4, 7]
    assert len(fake.requests) == 2


@pytest.mark.parametrize(("code", "kind"), [(4401, Unauthorized), (4404, NotFound)])
async def test_follow_stops_on_a_bad_key_or_an_unknown_execution(
    notifier: FakeNotifier, code: int, kind: type[Exception]
) -> None:
    fake, url = notifier, notifier.url
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


async def test_a_client_over_an_httpx_client_follows_with_its_key(notifier: FakeNotifier) -> None:
    http = httpx.AsyncClient(base_url=notifier.url, headers={"Authorization": "Bearer theirs"})
    async with http, AsyncClient(notifier.url, http=http) as client:
        assert [e.seq async for e in client.follow("ex1")][-1] == 7
    assert {auth for _, auth in notifier.requests} == {"Bearer theirs"}
