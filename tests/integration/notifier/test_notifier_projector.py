"""The projector on a real stream and database: rows, rebuilds, restarts, bad messages."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import msgspec
import pytest
from nats.js import JetStreamContext

from nodedrop.contracts import subjects
from nodedrop.contracts.events import AnyEvent, ErrorInfo
from nodedrop.notifier.consumer import Projector
from nodedrop.notifier.projection import fold
from nodedrop.notifier.store import ProjectionStore
from nodedrop.notifier.testing import History, numbered

pytestmark = pytest.mark.integration


def scenario() -> list[AnyEvent]:
    """Three executions, interleaved: a retried success, a failure with a late result, and a
    cancelled one whose running node is stopped."""
    ok = History("ex-ok").typical(4)
    bad = History("ex-bad", requested_by="bob")
    bad.requested()
    bad.started(["start", "fetch", "store"])
    bad.run_node("start")
    bad.ready("fetch")
    bad.node_started("fetch")
    bad.failed("fetch", error_type="HttpClientError", message="404")
    bad.skipped("store", "execution_failed")
    bad.finished("failed", ErrorInfo(type="HttpClientError", message="404"))
    late = bad.succeeded("fetch")  # a late result after the end: ignored
    # Both results of an attempt share an id, so JetStream would drop this copy as a duplicate;
    # one recorded after the duplicate window gets through and must still change nothing.
    bad.events[-1] = msgspec.structs.replace(late, event_id=f"{late.event_id}.again")
    gone = History("ex-cancelled")
    gone.requested()
    gone.started(["start", "wait"])
    gone.run_node("start")
    gone.ready("wait")
    gone.node_started("wait")
    gone.cancel_requested("user")
    gone.cancelled("wait")
    gone.finished("cancelled")
    merged = [*ok.events, *bad.events, *gone.events]
    return sorted(merged, key=lambda e: e.time)


def expected_rows(events: list[AnyEvent]) -> dict[str, list[dict[str, Any]]]:
    """What the pure fold says the tables must hold after all of ``events``."""
    changes = fold(numbered(events))
    return {
        "executions": [dataclasses.asdict(r) for _, r in sorted(changes.executions.items())],
        "nodes": [dataclasses.asdict(r) for _, r in sorted(changes.nodes.items())],
        "logs": sorted(
            (dataclasses.asdict(line) for line in changes.logs),
            key=lambda r: (r["execution_id"], r["seq"], r["line"]),
        ),
    }


async def test_the_projection_holds_what_the_events_say(
    events: JetStreamContext, publish: Any, projector: Any, db: Any
) -> None:
    history = scenario()
    await publish(history)
    async with projector() as running:
        last = await running.caught_up(events)
    assert last == len(history)
    assert await db.checkpoint() == last
    rows = await db.dump()
    assert rows == expected_rows(history)

    by_id = {row["id"]: row for row in rows["executions"]}
    assert {k: v["status"] for k, v in by_id.items()} == {
        "ex-ok": "succeeded",
        "ex-bad": "failed",
        "ex-cancelled": "cancelled",
    }
    nodes = {(r["execution_id"], r["node"]): r for r in rows["nodes"]}
    assert (nodes[("ex-ok", "n1")]["status"], nodes[("ex-ok", "n1")]["attempts"]) == (
        "succeeded",
        2,
    )
    assert nodes[("ex-bad", "fetch")]["status"] == "failed"  # the late success was fenced
    assert nodes[("ex-bad", "fetch")]["error"]["type"] == "HttpClientError"
    assert nodes[("ex-bad", "store")]["skip_reason"] == "execution_failed"
    assert nodes[("ex-cancelled", "wait")]["status"] == "cancelled"
    assert len(rows["logs"]) == len(history)
    assert by_id["ex-bad"]["last_seq"] == max(
        seq for seq, e in numbered(history) if e.execution_id == "ex-bad"
    )


async def test_a_rebuild_gives_identical_rows(
    events: JetStreamContext, publish: Any, projector: Any, db: Any
) -> None:
    await publish(scenario())
    async with projector() as running:
        await running.caught_up(events)
    first = await db.dump()

    # Replay over the existing rows: upserts of the same values change nothing.
    await db.execute("UPDATE projection_checkpoints SET last_seq = 0")
    async with projector() as running:
        await running.caught_up(events)
    assert await db.dump() == first

    # Rebuild from nothing: the consumer is rewound to the empty checkpoint.
    await db.execute("TRUNCATE executions, node_executions, execution_logs, projection_checkpoints")
    async with projector(batch_size=7) as running:
        await running.caught_up(events)
    assert await db.dump() == first


async def test_events_delivered_but_never_committed_are_projected_after_a_restart(
    events: JetStreamContext, publish: Any, projector: Any, db: Any
) -> None:
    history = scenario()
    await publish(history[:10])
    async with projector() as running:
        await running.caught_up(events)
    await publish(history[10:])
    # A notifier that died mid-batch: it fetched events and never acked them. They come back
    # only after the ack wait (60 s), behind the events published later.
    crashed = await events.pull_subscribe_bind(
        subjects.NOTIFIER_CONSUMER, stream=subjects.EVENTS_STREAM
    )
    taken = await crashed.fetch(5, timeout=2)
    assert len(taken) == 5
    await crashed.unsubscribe()

    async with projector() as running:
        await running.caught_up(events, within=10)
    assert await db.dump() == expected_rows(history)


async def test_a_message_that_does_not_decode_is_skipped(
    events: JetStreamContext, publish: Any, projector: Any, db: Any
) -> None:
    history = History("ex1").typical(2).events
    await publish(history[:3])
    await events.publish(subjects.execution_subject("ex1", "NodeReady"), b'{"type": "Nope"}')
    await publish(history[3:])
    async with projector() as running:
        last = await running.caught_up(events)
    assert last == len(history) + 1
    assert await db.checkpoint() == last
    rows = await db.dump()
    assert rows["executions"][0]["status"] == "succeeded"
    assert len(rows["logs"]) == len(history)
    info = await events.consumer_info(subjects.EVENTS_STREAM, subjects.NOTIFIER_CONSUMER)
    assert info.num_ack_pending == 0  # acked, and the broken one terminated


async def test_a_live_event_is_projected_at_once(
    events: JetStreamContext, publish: Any, projector: Any, db: Any
) -> None:
    h = History("ex-live")
    await publish([h.requested()])
    async with projector() as running:
        await running.caught_up(events)
        await asyncio.sleep(0.2)  # the projector now waits in a long pull
        h.started(["start"])
        started = time.perf_counter()
        (seq,) = await publish(h.events[1:])
        await asyncio.wait_for(running.projector.wait_for(seq), 2)
        latency = time.perf_counter() - started
    assert (await db.dump())["executions"][0]["status"] == "running"
    assert latency < 0.5


async def test_the_store_skips_what_it_has_applied(pool: Any, db: Any) -> None:
    store = ProjectionStore(pool)
    batch = numbered(History("ex1").typical(3).events)
    assert await store.apply(batch, batch[-1][0]) == len(batch)
    first = await db.dump()
    assert await store.apply(batch, batch[-1][0]) == 0
    assert await store.apply(batch[:4], 4) == 0
    assert await db.dump() == first
    assert await store.checkpoint() == len(batch)


async def test_one_event_a_batch_gives_the_rows_of_one_fold(pool: Any, db: Any) -> None:
    # Each batch reads back only the rows its events name (store._node_keys): fencing across
    # batches (a late result after the node failed, a skip after a cancel) must still see them.
    store = ProjectionStore(pool)
    history = scenario()
    for seq, event in numbered(history):
        assert await store.apply([(seq, event)], seq) == 1
    assert await db.dump() == expected_rows(history)


async def test_nul_characters_do_not_stall_the_projection(pool: Any, db: Any) -> None:
    h = History("ex1")
    h.requested()
    h.started(["start"])
    h.ready("start", input={"main": [{"body": "a\x00b"}]})
    h.node_started("start")
    h.failed("start", message="bad \x00 byte")
    store = ProjectionStore(pool)
    await store.apply(numbered(h.events), len(h.events))
    rows = await db.dump()
    assert rows["nodes"][0]["input"] == {"main": [{"body": "a\ufffdb"}]}
    assert rows["logs"][-1]["message"].endswith("bad \ufffd byte")


class FlakyStore(ProjectionStore):
    """Fails its first writes, as a database that restarts does."""

    def __init__(self, pool: Any, failures: int) -> None:
        super().__init__(pool)
        self.failures = failures

    async def apply(self, events: Any, through_seq: int) -> int:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("database restarting")
        return await super().apply(events, through_seq)


async def test_a_batch_that_fails_to_commit_is_retried_in_order(
    events: JetStreamContext, publish: Any, pool: Any, db: Any
) -> None:
    history = scenario()
    await publish(history)
    store = FlakyStore(pool, failures=3)
    projector = Projector(events, store, batch_size=8, max_backoff=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))
    try:
        await asyncio.wait_for(projector.wait_for(len(history)), 10)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert store.failures == 0
    assert await db.dump() == expected_rows(history)
