"""The WebSocket endpoint (docs/api.md, "WebSocket") served by uvicorn, read by a real client."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
import uvicorn
from nats.js import JetStreamContext
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from nodedrop.contracts import codec
from nodedrop.contracts.events import AnyEvent
from nodedrop.contracts.routing import Layout, event_subject
from nodedrop.embedded import EmbeddedNats
from nodedrop.notifier.auth import Caller, key_auth, key_recheck
from nodedrop.notifier.testing import History
from nodedrop.notifier.websocket import create_app
from nodedrop.platform import apikeys
from nodedrop.platform.jetstream import StreamSettings, ensure_jetstream

pytestmark = pytest.mark.integration

TOKEN = "test-admin-token"


@contextlib.asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[str]:
    """``app`` on a real uvicorn server on a free port; yields ``host:port``."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="off", ws="websockets-sansio", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(500):  # uvicorn signals readiness by a flag only
        if server.started:
            break
        await asyncio.sleep(0.01)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


@pytest.fixture
async def base_url(events: JetStreamContext) -> AsyncIterator[str]:
    async with serving(create_app(events, TOKEN)) as base:
        yield base


async def receive_all(ws: ClientConnection, limit: float = 5.0) -> tuple[list[dict[str, Any]], int]:
    """Every message until the server closes; the messages and the close code."""
    messages: list[dict[str, Any]] = []
    with contextlib.suppress(ConnectionClosed):
        while True:
            messages.append(json.loads(await asyncio.wait_for(ws.recv(), limit)))
    assert ws.close_code is not None
    return messages, ws.close_code


def ws_url(base: str, execution_id: str, after_seq: int | None = None, token: str = TOKEN) -> str:
    query = f"token={token}" + (f"&after_seq={after_seq}" if after_seq is not None else "")
    return f"ws://{base}/ws/executions/{execution_id}?{query}"


def public(events: list[AnyEvent], seqs: list[int]) -> list[dict[str, Any]]:
    return [
        json.loads(json.dumps(codec.to_public(e, s))) for e, s in zip(events, seqs, strict=True)
    ]


async def test_health(base_url: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://{base_url}/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


@pytest.mark.parametrize("token", ["wrong", ""])
async def test_a_bad_or_missing_key_is_closed_with_4401_before_any_event(
    base_url: str, publish: Any, token: str
) -> None:
    await publish(History("ex1").typical(2).events)
    async with connect(ws_url(base_url, "ex1", token=token)) as ws:
        messages, code = await receive_all(ws)
    assert (messages, code) == ([], 4401)


async def test_the_key_may_come_as_a_bearer_header(base_url: str, publish: Any) -> None:
    history = History("ex1").typical(2).events
    seqs = await publish(history)
    async with connect(
        f"ws://{base_url}/ws/executions/ex1",
        additional_headers={"Authorization": f"Bearer {TOKEN}"},
    ) as ws:
        messages, code = await receive_all(ws)
    assert (messages, code) == (public(history, seqs), 1000)


async def test_an_unknown_execution_is_closed_with_4404(base_url: str, publish: Any) -> None:
    await publish(History("ex1").typical(2).events)
    for execution_id in ("nope", "ex*", "ex1.x"):
        async with connect(ws_url(base_url, execution_id)) as ws:
            messages, code = await receive_all(ws)
        assert (messages, code) == ([], 4404), execution_id


async def test_after_seq_sends_exactly_the_later_events_then_closes_1000(
    base_url: str, publish: Any
) -> None:
    layout = Layout.from_env()
    # In ex1's partition, so that its events come between those of ex1 in the stream.
    same = (f"other-{i}" for i in range(10_000))
    other = History(next(i for i in same if layout.partition_of(i) == layout.partition_of("ex1")))
    history = History("ex1")
    # Interleaved (by time) with another execution, whose events must not appear.
    for h in (history, other):
        h.requested()
        h.started(["start", "n1"])
    for name in ("start", "n1"):
        history.run_node(name)
        other.run_node(name)
    history.finished()
    ordered = sorted(history.events + other.events, key=lambda e: (e.time, e.execution_id))
    seqs = await publish(ordered)
    mine = [(s, e) for s, e in zip(seqs, ordered, strict=True) if e.execution_id == "ex1"]
    cut = mine[3][0]
    async with connect(ws_url(base_url, "ex1", after_seq=cut)) as ws:
        messages, code = await receive_all(ws)
    expected = [(s, e) for s, e in mine if s > cut]
    assert messages == public([e for _, e in expected], [s for s, _ in expected])
    assert messages[-1]["type"] == "ExecutionFinished"
    assert code == 1000


async def test_stored_then_live_events_in_order_and_a_reconnect_sees_each_once(
    base_url: str, events: JetStreamContext, publish: Any
) -> None:
    history = History("ex1")
    history.requested()
    history.started(["start", "a", "b", "c"])
    for name in ("start", "a", "b", "c"):
        history.run_node(name)
    history.finished()
    stored, live = history.events[:5], history.events[5:]
    all_seqs = await publish(stored)

    seen: list[dict[str, Any]] = []
    # First client: reads the stored events and two live ones, then drops the connection.
    async with connect(ws_url(base_url, "ex1")) as ws:
        for _ in stored:
            seen.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
        all_seqs += await publish(live[:2])
        for _ in range(2):
            seen.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
    all_seqs += await publish(live[2:6])  # while nobody listens

    # Second client resumes after the last event it saw; the rest arrives live.
    async with connect(ws_url(base_url, "ex1", after_seq=seen[-1]["seq"])) as ws:
        first = json.loads(await asyncio.wait_for(ws.recv(), 5))
        all_seqs += await publish(live[6:])
        rest, code = await receive_all(ws)
    seen += [first, *rest]
    assert seen == public(history.events, all_seqs)
    assert code == 1000

    # Both ordered consumers are gone once their clients are.
    async def consumers() -> int:
        stream = Layout.from_env().stream_of("ex1")
        return (await events.stream_info(stream)).state.consumer_count

    for _ in range(100):
        if await consumers() == 2:  # the two durable consumers of ensure_jetstream
            break
        await asyncio.sleep(0.05)
    assert await consumers() == 2


async def test_a_client_past_the_end_is_closed_1000_at_once(base_url: str, publish: Any) -> None:
    seqs = await publish(History("ex1").typical(2).events)
    async with connect(ws_url(base_url, "ex1", after_seq=seqs[-1])) as ws:
        messages, code = await receive_all(ws)
    assert (messages, code) == ([], 1000)


async def test_a_bad_after_seq_is_refused(base_url: str, publish: Any) -> None:
    await publish(History("ex1").typical(2).events)
    async with connect(ws_url(base_url, "ex1") + "&after_seq=-3") as ws:
        messages, code = await receive_all(ws)
    assert (messages, code) == ([], 4400)


async def test_another_users_execution_is_closed_with_4404(
    events: JetStreamContext, publish: Any
) -> None:
    callers = {"alice-key": Caller("alice"), "bob-key": Caller("bob")}

    async def authenticate(key: str) -> Caller | None:
        return callers.get(key)

    history = History("ex1", requested_by="alice").typical(2).events
    seqs = await publish(history)
    async with serving(create_app(events, None, authenticate=authenticate)) as base:
        async with connect(ws_url(base, "ex1", token="bob-key")) as ws:
            assert await receive_all(ws) == ([], 4404)
        async with connect(ws_url(base, "ex1", token="alice-key")) as ws:
            assert await receive_all(ws) == (public(history, seqs), 1000)


# ------------------------------------------------------------ users' keys and origins
# The notifier's real wiring (key_auth: keys from PostgreSQL), and the Origin allow-list.

UI = "https://ui.example"


async def add_user(pool: Any, user_id: str) -> tuple[str, str]:
    """A user row and an active key, as the API stores them; (key text, key id)."""
    issued = apikeys.issue()
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO users (id, name, is_admin, created_at) VALUES ($1, $1, false, $2)",
            user_id,
            now,
        )
        await conn.execute(
            "INSERT INTO api_keys (id, user_id, digest, created_at) VALUES ($1, $2, $3, $4)",
            issued.key_id,
            user_id,
            issued.digest,
            now,
        )
    return issued.text, issued.key_id


@pytest.fixture
async def keyed_base_url(events: JetStreamContext, pool: Any) -> AsyncIterator[str]:
    app = create_app(events, TOKEN, authenticate=key_auth(pool, TOKEN), allowed_origins={UI})
    async with serving(app) as base:
        yield base


async def test_a_users_key_reads_its_own_execution_only(
    keyed_base_url: str, pool: Any, publish: Any
) -> None:
    base_url = keyed_base_url
    alice_key, _ = await add_user(pool, "u-alice")
    bob_key, _ = await add_user(pool, "u-bob")
    history = History("ex1", requested_by="u-alice").typical(2).events
    seqs = await publish(history)
    async with connect(ws_url(base_url, "ex1", token=alice_key)) as ws:
        assert await receive_all(ws) == (public(history, seqs), 1000)
    async with connect(ws_url(base_url, "ex1", token=bob_key)) as ws:
        assert await receive_all(ws) == ([], 4404)
    async with connect(ws_url(base_url, "ex1", token=bob_key[:-1] + "x")) as ws:
        assert await receive_all(ws) == ([], 4401)
    async with connect(ws_url(base_url, "ex1")) as ws:  # the admin token sees everyone's
        assert (await receive_all(ws))[1] == 1000


async def test_a_revoked_key_is_refused(events: JetStreamContext, pool: Any, publish: Any) -> None:
    key, key_id = await add_user(pool, "u-alice")
    await publish(History("ex1", requested_by="u-alice").typical(2).events)
    async with pool.acquire() as conn:
        await conn.execute("UPDATE api_keys SET revoked_at = now() WHERE id = $1", key_id)
    app = create_app(events, None, authenticate=key_auth(pool, None))
    async with serving(app) as base, connect(ws_url(base, "ex1", token=key)) as ws:
        assert await receive_all(ws) == ([], 4401)


async def test_browsers_only_from_allowed_origins(keyed_base_url: str, publish: Any) -> None:
    base_url = keyed_base_url
    history = History("ex1").typical(2).events
    seqs = await publish(history)
    async with connect(ws_url(base_url, "ex1"), origin="https://evil.example") as ws:  # type: ignore[arg-type]
        assert await receive_all(ws) == ([], 4403)
    async with connect(ws_url(base_url, "ex1"), origin=UI) as ws:  # type: ignore[arg-type]
        assert await receive_all(ws) == (public(history, seqs), 1000)
    async with connect(ws_url(base_url, "ex1")) as ws:  # no Origin: not a browser
        assert (await receive_all(ws))[1] == 1000


# ------------------------------------------------------------ keys out of URLs, edge cases


def key_subprotocols(key: str) -> list[Subprotocol]:
    """What the web UI offers: the key in base64url, next to ``nodedrop``."""
    encoded = base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")
    return [Subprotocol("nodedrop"), Subprotocol(f"nodedrop.key.{encoded}")]


async def test_the_key_may_come_as_a_subprotocol_and_reaches_no_log(
    base_url: str, publish: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # uvicorn logs each accepted WebSocket, path and query, at INFO, on a logger of its own.
    caplog.set_level(logging.INFO, logger="uvicorn.error")
    logging.getLogger("uvicorn.error").addHandler(caplog.handler)
    history = History("ex1").typical(2).events
    seqs = await publish(history)
    url = f"ws://{base_url}/ws/executions/ex1"
    try:
        async with connect(url, subprotocols=key_subprotocols(TOKEN)) as ws:
            assert ws.subprotocol == "nodedrop"  # the key's subprotocol is never echoed
            messages, code = await receive_all(ws)
        assert (messages, code) == (public(history, seqs), 1000)
        async with connect(url, subprotocols=key_subprotocols("wrong")) as ws:
            assert (
                ws.subprotocol == "nodedrop"
            )  # a browser sees the refusal, not a failed handshake
            assert await receive_all(ws) == ([], 4401)
    finally:
        logging.getLogger("uvicorn.error").removeHandler(caplog.handler)
    assert any("/ws/executions/ex1" in r.getMessage() for r in caplog.records)
    encoded = key_subprotocols(TOKEN)[1]
    assert not [r for r in caplog.records if TOKEN in r.getMessage() or encoded in r.getMessage()]


async def test_after_seq_past_the_end_still_closes_when_the_execution_finishes(
    base_url: str, events: JetStreamContext, publish: Any
) -> None:
    history = History("ex1")
    history.requested()
    history.started(["start", "n1"])
    stored = await publish(history.events)
    history.run_node("start")
    history.run_node("n1")
    history.finished()
    far = stored[-1] + 1_000  # beyond every sequence the rest of the execution gets
    async with connect(ws_url(base_url, "ex1", after_seq=far)) as ws:
        await publish(history.events[len(stored) :])
        messages, code = await receive_all(ws)
    assert (messages, code) == ([], 1000)  # nothing after ``far``, and closed at the end

    stream = Layout.from_env().stream_of("ex1")
    for _ in range(100):  # its ordered consumer is gone with it
        if (await events.stream_info(stream)).state.consumer_count == 2:
            break
        await asyncio.sleep(0.05)
    assert (await events.stream_info(stream)).state.consumer_count == 2


@pytest.mark.parametrize("after_seq", [str(2**64 + 1), str(10**30), "1_0", "+5", "٣", "-3"])
async def test_an_after_seq_out_of_range_is_refused_with_4400_and_no_traceback(
    base_url: str, publish: Any, after_seq: str, caplog: pytest.LogCaptureFixture
) -> None:
    await publish(History("ex1").typical(2).events)
    async with connect(ws_url(base_url, "ex1") + f"&after_seq={after_seq}") as ws:
        assert await receive_all(ws) == ([], 4400)
    assert ws.close_reason == f"after_seq must be an integer from 0 to {2**64 - 1}"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_the_largest_after_seq_is_served(base_url: str, publish: Any) -> None:
    await publish(History("ex1").typical(2).events)
    async with connect(ws_url(base_url, "ex1", after_seq=2**64 - 1)) as ws:
        assert await receive_all(ws) == ([], 1000)  # past the end of a finished execution


async def test_a_key_revoked_while_its_socket_is_open_closes_it_with_4401(
    events: JetStreamContext, pool: Any, publish: Any
) -> None:
    key, key_id = await add_user(pool, "u-alice")
    history = History("ex1", requested_by="u-alice")
    history.requested()
    history.started(["start", "n1"])
    seqs = await publish(history.events)  # running: it would stream until its end
    app = create_app(
        events, None, authenticate=key_auth(pool, None), recheck=key_recheck(pool, None)
    )
    async with serving(app) as base, connect(ws_url(base, "ex1", token=key)) as ws:
        for _ in seqs:
            await asyncio.wait_for(ws.recv(), 5)
        async with pool.acquire() as conn:
            await conn.execute("UPDATE api_keys SET revoked_at = now() WHERE id = $1", key_id)
        assert await receive_all(ws, limit=10) == ([], 4401)
    assert ws.close_reason == "API key revoked"


async def test_the_recheck_asks_the_database_every_time(pool: Any) -> None:
    key, key_id = await add_user(pool, "u-alice")
    recheck = key_recheck(pool, None)
    assert await recheck(key) == Caller("u-alice", name="u-alice")
    async with pool.acquire() as conn:
        await conn.execute("UPDATE api_keys SET revoked_at = now() WHERE id = $1", key_id)
    assert await recheck(key) is None  # no cached answer in between


async def test_nats_away_closes_with_1011_and_one_line_not_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = EmbeddedNats(tmp_path / "nats", port=port)
    server.start()

    async def quiet(_: Exception) -> None:  # as the notifier's own callback, without a traceback
        pass

    nc = await nats.connect(
        server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.1, error_cb=quiet
    )
    try:
        js = nc.jetstream(timeout=1)
        await ensure_jetstream(js, StreamSettings.from_env())
        history = History("ex1")
        history.requested()
        for event in history.events:
            await js.publish(
                event_subject(event), codec.encode(event), stream=Layout.from_env().stream_of("ex1")
            )
        async with serving(create_app(js, TOKEN)) as base:
            await asyncio.to_thread(server.stop)
            for _ in range(3):  # the UI retrying while NATS is away
                async with connect(ws_url(base, "ex1")) as ws:
                    assert await receive_all(ws) == ([], 1011)
                assert ws.close_reason == "event stream unavailable"
    finally:
        with contextlib.suppress(Exception):  # the server is gone: closing may fail
            await nc.close()
        await asyncio.to_thread(server.stop)
    assert not [r for r in caplog.records if r.exc_info is not None]
    assert "Exception in ASGI application" not in caplog.text
    lines = [r for r in caplog.records if r.name == "nodedrop.notifier.websocket"]
    assert len(lines) == 3
    assert all("NATS" in r.getMessage() and "\n" not in r.getMessage() for r in lines)


async def test_many_sockets_on_one_notifier_share_one_consumer_and_each_reads_exactly(
    base_url: str, events: JetStreamContext, publish: Any
) -> None:
    # Five running executions, four sockets each, some resuming after the first event: one
    # consumer on the server for all of them, and every socket sees exactly its own events.
    layout = Layout.from_env()  # the app's is the default one: partition 0 is in both
    stream = layout.stream(0)
    same = (f"ex{i}" for i in range(10_000))
    ids = [i for i in same if layout.stream_of(i) == stream][:5]
    histories = [History(i) for i in ids]
    for history in histories:
        history.requested()
        history.started(["start", "n1"])
    stored = {h.execution_id: await publish(h.events) for h in histories}
    sockets = []
    async with contextlib.AsyncExitStack() as stack:
        for history in histories:
            for after in (None, None, stored[history.execution_id][0], None):
                url = ws_url(base_url, history.execution_id, after_seq=after)
                ws = await stack.enter_async_context(connect(url))
                skip = 0 if after is None else 1
                for _ in stored[history.execution_id][skip:]:  # the stored events first
                    await asyncio.wait_for(ws.recv(), 5)
                sockets.append((history, after, ws))
        assert (await events.stream_info(stream)).state.consumer_count == 3  # two durables

        seqs = {h.execution_id: list(stored[h.execution_id]) for h in histories}
        for history in histories:
            history.run_node("start")
            history.run_node("n1")
            history.finished()
            done = len(seqs[history.execution_id])
            seqs[history.execution_id] += await publish(history.events[done:])
        for history, after, ws in sockets:
            messages, code = await receive_all(ws)
            live = seqs[history.execution_id][len(stored[history.execution_id]) :]
            expected = history.events[len(stored[history.execution_id]) :]
            assert (messages, code) == (public(expected, live), 1000), (history, after)

    for _ in range(100):  # the shared consumer is gone with the last socket
        if (await events.stream_info(stream)).state.consumer_count == 2:
            break
        await asyncio.sleep(0.05)
    assert (await events.stream_info(stream)).state.consumer_count == 2
