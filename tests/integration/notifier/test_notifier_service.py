"""The whole notifier as ``serve`` starts it, and the projector's replay throughput."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
import time
from typing import Any

import httpx
import pytest
from nats.js import JetStreamContext
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from nodedrop.contracts import codec
from nodedrop.contracts.events import AnyEvent
from nodedrop.contracts.routing import Layout, event_subject
from nodedrop.notifier.main import serve
from nodedrop.notifier.settings import NotifierSettings
from nodedrop.notifier.testing import History

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_serve_projects_and_streams_until_stopped(
    nats_url: str, migrated_database_url: str, events: JetStreamContext, publish: Any, db: Any
) -> None:
    port = free_port()
    config = NotifierSettings(
        nats_url=nats_url,
        database_url=migrated_database_url,
        notifier_port=port,
        admin_token="secret",
        partitions=Layout.from_env().partitions,
    )
    stop = asyncio.Event()
    service = asyncio.create_task(serve(config, stop))
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(200):
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                        break
                await asyncio.sleep(0.025)
        history = History("ex1").typical(3).events
        await publish(history)
        received: list[dict[str, Any]] = []
        async with connect(f"ws://127.0.0.1:{port}/ws/executions/ex1?token=secret") as ws:
            with contextlib.suppress(ConnectionClosed):
                while True:
                    received.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
        assert [m["seq"] for m in received] == list(range(1, len(history) + 1))
        assert ws.close_code == 1000
        for _ in range(200):
            if await db.checkpoint() == len(history):
                break
            await asyncio.sleep(0.025)
        assert (await db.dump())["executions"][0]["status"] == "succeeded"
    finally:
        stop.set()
        await asyncio.wait_for(service, 15)


def synthetic_history(executions: int, nodes: int) -> list[AnyEvent]:
    """``executions`` typical runs, ten at a time interleaved, as a busy system records them."""
    histories = [History(f"ex-{i:05d}").typical(nodes) for i in range(executions)]
    out: list[AnyEvent] = []
    for group in range(0, executions, 10):
        chunk = histories[group : group + 10]
        out += sorted((e for h in chunk for e in h.events), key=lambda e: e.time)
    return out


async def test_a_backlog_of_20000_events_is_projected_whole(
    events: JetStreamContext, projector: Any, db: Any
) -> None:
    """Projects ~20,000 events already in the stream, every row and log line of them; reports
    events/s (a report, not a check: how fast depends on the machine and its load; the
    benchmark S6 measures it)."""
    history = synthetic_history(executions=800, nodes=7)  # 25 events per execution
    for event in history:
        await events.publish_async(
            event_subject(event),
            codec.encode(event),
            stream=Layout.from_env().stream_of(event.execution_id),
            headers={"Nats-Msg-Id": event.event_id},
        )
    await events.publish_async_completed()
    started = time.perf_counter()
    async with projector() as running:
        last = await running.caught_up(events, within=120)
        elapsed = time.perf_counter() - started
    assert last == len(history)
    rate = len(history) / elapsed
    sys.stderr.write(
        f"\nnotifier replay: {len(history)} events in {elapsed:.2f} s = {rate:,.0f}/s\n"
    )
    rows = await db.dump()
    assert len(rows["executions"]) == 800
    assert {r["status"] for r in rows["executions"]} == {"succeeded"}
    assert len(rows["logs"]) == len(history)
