"""/ws/executions/{id} on the API relays to the notifier's WebSocket, both ways, close codes too.

The notifier is faked by a small websockets server; the API runs under a real uvicorn (httpx's
ASGI transport speaks no WebSocket). The relay needs neither NATS nor PostgreSQL, so the app runs
without its lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http import HTTPStatus

import pytest
import uvicorn
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from nodedrop.api.app import create_app
from nodedrop.api.settings import ApiSettings

pytestmark = pytest.mark.integration


@dataclass
class FakeNotifier:
    port: int = 0
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    protocols: list[str | None] = field(default_factory=list)
    received: list[str] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        path = ws.request.path
        self.requests.append((path, ws.request.headers.get("Authorization")))
        self.protocols.append(ws.request.headers.get("Sec-WebSocket-Protocol"))
        if "/bad-key" in path:
            await ws.close(4401, "invalid API key")
        elif "/unknown" in path:
            await ws.close(4404, "unknown execution")
        elif "/echo" in path:
            try:
                async for message in ws:
                    assert isinstance(message, str)
                    self.received.append(message)
                    await ws.send(f"echo {message}")
            finally:
                self.closed.set()
        else:
            await ws.send('{"seq": 4}')
            await ws.send('{"seq": 5}')
            await ws.close(1000, "execution finished")


def _listening_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


@dataclass
class Servers:
    api_url: str
    notifier: FakeNotifier


@asynccontextmanager
async def serve_api(config: ApiSettings) -> AsyncIterator[str]:
    """The app under uvicorn on a free port, without its lifespan; yields its ws:// base URL."""
    sock = _listening_socket()
    server = uvicorn.Server(uvicorn.Config(create_app(config), lifespan="off", log_level="error"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:  # noqa: ASYNC110  # uvicorn offers no event to wait on
            await asyncio.sleep(0.01)
        yield f"ws://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
async def servers() -> AsyncIterator[Servers]:
    notifier = FakeNotifier()
    async with serve(notifier.handle, "127.0.0.1", 0) as upstream:
        notifier.port = upstream.sockets[0].getsockname()[1]
        config = ApiSettings(host="127.0.0.1", notifier_port=notifier.port, admin_token="k")
        async with serve_api(config) as api_url:
            yield Servers(api_url, notifier)


async def test_events_and_normal_close_are_relayed(servers: Servers) -> None:
    url = f"{servers.api_url}/ws/executions/e1?after_seq=3&token=k"
    async with connect(url, additional_headers={"Authorization": "Bearer k"}) as ws:
        messages = [message async for message in ws]
    assert messages == ['{"seq": 4}', '{"seq": 5}']
    assert ws.close_code == 1000
    assert ws.close_reason == "execution finished"
    assert servers.notifier.requests == [("/ws/executions/e1?after_seq=3&token=k", "Bearer k")]


@pytest.mark.parametrize(
    ("execution", "code", "reason"),
    [("bad-key", 4401, "invalid API key"), ("unknown", 4404, "unknown execution")],
)
async def test_refusals_keep_their_close_code(
    servers: Servers, execution: str, code: int, reason: str
) -> None:
    async with connect(f"{servers.api_url}/ws/executions/{execution}") as ws:
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == code
    assert ws.close_reason == reason
    assert servers.notifier.requests[0][1] is None


async def test_client_messages_go_upstream_and_closing_closes_upstream(
    servers: Servers,
) -> None:
    async with connect(f"{servers.api_url}/ws/executions/echo") as ws:
        await ws.send("hello")
        assert await ws.recv() == "echo hello"
    await asyncio.wait_for(servers.notifier.closed.wait(), timeout=5)
    assert servers.notifier.received == ["hello"]


async def test_notifier_down_closes_with_try_again_later() -> None:
    unused = _listening_socket()  # bound but not listening: connections are refused
    config = ApiSettings(host="127.0.0.1", notifier_port=unused.getsockname()[1])
    try:
        async with serve_api(config) as api_url, connect(f"{api_url}/ws/executions/e1") as ws:
            with pytest.raises(ConnectionClosed):
                await ws.recv()
        assert ws.close_code == 1013
    finally:
        unused.close()


# ---------------------------------------------------------------- several notifiers


async def _relay_once(
    api_url: str, execution: str = "e1"
) -> tuple[list[str], int | None, str | None]:
    messages: list[str] = []
    async with connect(f"{api_url}/ws/executions/{execution}") as ws:
        with contextlib.suppress(ConnectionClosed):  # raised for a code other than 1000/1001
            async for message in ws:
                assert isinstance(message, str)
                messages.append(message)
    return messages, ws.close_code, ws.close_reason


@pytest.mark.parametrize("live_first", [True, False])
async def test_the_relay_reaches_a_live_notifier_wherever_it_is_in_the_list(
    live_first: bool,
) -> None:
    refusing = _listening_socket()  # bound but not listening: connections are refused
    notifier = FakeNotifier()
    try:
        async with serve(notifier.handle, "127.0.0.1", 0) as upstream:
            live = f"http://127.0.0.1:{upstream.sockets[0].getsockname()[1]}"
            dead = f"http://127.0.0.1:{refusing.getsockname()[1]}"
            urls = (live, dead) if live_first else (dead, live)
            async with serve_api(ApiSettings(notifier_url=urls)) as api_url:
                # Each relay starts at the next notifier: two relays start at both.
                outcomes = [await _relay_once(api_url) for _ in urls]
    finally:
        refusing.close()
    assert outcomes == [(['{"seq": 4}', '{"seq": 5}'], 1000, "execution finished")] * 2
    assert [path for path, _ in notifier.requests] == ["/ws/executions/e1"] * 2


async def test_a_notifier_answering_5xx_is_passed_over() -> None:
    async def unavailable(connection: ServerConnection, _request: Request) -> Response:
        return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "shutting down\n")

    notifier = FakeNotifier()
    async with (
        serve(notifier.handle, "127.0.0.1", 0, process_request=unavailable) as failing,
        serve(notifier.handle, "127.0.0.1", 0) as upstream,
    ):
        urls = tuple(
            f"http://127.0.0.1:{s.sockets[0].getsockname()[1]}" for s in (failing, upstream)
        )
        async with serve_api(ApiSettings(notifier_url=urls)) as api_url:
            outcomes = [await _relay_once(api_url) for _ in urls]
    assert outcomes == [(['{"seq": 4}', '{"seq": 5}'], 1000, "execution finished")] * 2


async def test_a_close_on_purpose_is_passed_through_without_trying_another() -> None:
    first, second = FakeNotifier(), FakeNotifier()
    async with (
        serve(first.handle, "127.0.0.1", 0) as one,
        serve(second.handle, "127.0.0.1", 0) as two,
    ):
        urls = tuple(f"http://127.0.0.1:{s.sockets[0].getsockname()[1]}" for s in (one, two))
        async with serve_api(ApiSettings(notifier_url=urls)) as api_url:
            outcomes = [await _relay_once(api_url, "bad-key") for _ in urls]
    assert outcomes == [([], 4401, "invalid API key")] * 2
    # One request each: every relay asked one notifier only, the next relay the other one.
    assert len(first.requests) == len(second.requests) == 1


async def test_a_handshake_refusal_is_passed_through_without_trying_another() -> None:
    async def unauthorized(connection: ServerConnection, _request: Request) -> Response:
        return connection.respond(HTTPStatus.UNAUTHORIZED, "no\n")

    refusing, serving = FakeNotifier(), FakeNotifier()
    async with (
        serve(refusing.handle, "127.0.0.1", 0, process_request=unauthorized) as one,
        serve(serving.handle, "127.0.0.1", 0) as two,
    ):
        urls = tuple(f"http://127.0.0.1:{s.sockets[0].getsockname()[1]}" for s in (one, two))
        async with serve_api(ApiSettings(notifier_url=urls)) as api_url:
            outcomes = [await _relay_once(api_url) for _ in urls]
    # The relay that started at the refusing notifier got 4401, the other one the events.
    assert sorted((code or 0) for _, code, _ in outcomes) == [1000, 4401]
    assert len(serving.requests) == 1


async def test_all_notifiers_down_closes_with_try_again_later() -> None:
    unused = [_listening_socket(), _listening_socket()]
    urls = tuple(f"http://127.0.0.1:{sock.getsockname()[1]}" for sock in unused)
    try:
        async with serve_api(ApiSettings(notifier_url=urls)) as api_url:
            outcome = await _relay_once(api_url)
    finally:
        for sock in unused:
            sock.close()
    assert outcome == ([], 1013, "event notifier unavailable, try again later")


# ---------------------------------------------------------------- keys out of URLs, quiet closes

KEY_PROTOCOLS = [Subprotocol("nodedrop"), Subprotocol("nodedrop.key.c2VjcmV0LWtleQ")]


@pytest.mark.parametrize("execution", ["e1", "bad-key"])
async def test_offered_subprotocols_go_upstream_and_nodedrop_is_accepted(
    servers: Servers, execution: str
) -> None:
    url = f"{servers.api_url}/ws/executions/{execution}"
    async with connect(url, subprotocols=KEY_PROTOCOLS) as ws:
        # Chosen even for a refusal: a browser would fail the handshake otherwise, and retry.
        assert ws.subprotocol == "nodedrop"
        with contextlib.suppress(ConnectionClosed):
            async for _ in ws:
                pass
    assert ws.close_code == (1000 if execution == "e1" else 4401)
    assert servers.notifier.protocols == ["nodedrop, nodedrop.key.c2VjcmV0LWtleQ"]
    assert servers.notifier.requests == [(f"/ws/executions/{execution}", None)]


async def test_normal_closes_log_nothing(
    servers: Servers, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for _ in range(5):  # the client leaves (a page closed), or the notifier ends the stream
        async with connect(f"{servers.api_url}/ws/executions/echo") as ws:
            await ws.send("hello")
            assert await ws.recv() == "echo hello"
        assert [m async for m in await connect(f"{servers.api_url}/ws/executions/e1")] == [
            '{"seq": 4}',
            '{"seq": 5}',
        ]
    await asyncio.sleep(0.1)  # let the relays finish
    gc.collect()  # a task's exception nobody took is logged when the task is collected
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert problems == [], [r.getMessage() for r in problems]


async def test_an_unreachable_notifier_is_logged_without_the_query() -> None:
    unused = _listening_socket()  # bound but not listening: connections are refused
    config = ApiSettings(host="127.0.0.1", notifier_port=unused.getsockname()[1])
    handler = _Lines()
    relay_log = logging.getLogger("nodedrop.api.ws_relay")
    relay_log.addHandler(handler)
    url = "/ws/executions/e1?after_seq=2&token=secret-key"
    try:
        async with serve_api(config) as api_url, connect(api_url + url) as ws:
            with pytest.raises(ConnectionClosed):
                await ws.recv()
    finally:
        relay_log.removeHandler(handler)
        unused.close()
    assert ws.close_code == 1013
    assert handler.lines, "the unreachable notifier is logged"
    assert not [line for line in handler.lines if "secret-key" in line or "token" in line]


class _Lines(logging.Handler):
    """Every message logged to it, as made by the logger (before any root handler's filter)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
