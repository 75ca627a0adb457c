"""The projector on a real stream and database: rows, rebuilds, restarts, bad messages."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import msgspec
import nats
import pytest
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig

from nodedrop.contracts import subjects
from nodedrop.contracts.events import AnyEvent, ErrorInfo
from nodedrop.contracts.routing import Layout, execution_subject
from nodedrop.notifier.consumer import Projector
from nodedrop.notifier.projection import fold
from nodedrop.notifier.store import ProjectionStore
from nodedrop.notifier.testing import History, numbered
from nodedrop.platform.event_log import JetStreamEventLog
from nodedrop.platform.jetstream import StreamSettings, consumer_configs, ensure_jetstream

pytestmark = pytest.mark.integration


def in_partition(partition: int, *names: str) -> list[str]:
    """An execution id per name, all in ``partition`` of the layout in use."""
    layout = Layout.from_env()
    return [
        next(f"{n}-{i}" for i in range(10_000) if layout.partition_of(f"{n}-{i}") == partition)
        for n in names
    ]


def scenario(
    ok_id: str = "ex-ok", bad_id: str = "ex-bad", cancelled_id: str = "ex-cancelled"
) -> list[AnyEvent]:
    """Three executions, interleaved: a retried success, a failure with a late result, and a
    cancelled one whose running node is stopped."""
    ok = History(ok_id).typical(4)
    bad = History(bad_id, requested_by="bob")
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
    gone = History(cancelled_id)
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


def one_partition() -> list[AnyEvent]:
    """:func:`scenario` with its three executions in partition 0: for one projector's batches."""
    return scenario(*in_partition(0, "ex-ok", "ex-bad", "ex-cancelled"))


def logged(events: list[AnyEvent]) -> list[tuple[int, AnyEvent]]:
    """Events with the sequences they get when published in order into an empty log: numbered
    one after another in each partition's stream."""
    layout = Layout.from_env()
    last = [0] * layout.partitions
    out = []
    for event in events:
        partition = layout.partition_of(event.execution_id)
        last[partition] += 1
        out.append((last[partition], event))
    return out


def expected_rows(
    events: list[AnyEvent], *, in_one_stream: bool = False
) -> dict[str, list[dict[str, Any]]]:
    """What the pure fold says the tables must hold after all of ``events`` (published, or
    ``in_one_stream``: numbered one after another, as applied to one store)."""
    changes = fold(numbered(events) if in_one_stream else logged(events))
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
        seq for seq, e in logged(history) if e.execution_id == "ex-bad"
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
    taken = 0
    for stream in Layout.from_env().streams:
        pending = (await events.consumer_info(stream, subjects.NOTIFIER_CONSUMER)).num_pending
        if not pending:
            continue
        crashed = await events.pull_subscribe_bind(subjects.NOTIFIER_CONSUMER, stream=stream)
        fetched = await crashed.fetch(min(pending, 5), timeout=2)
        assert len(fetched) == min(pending, 5)
        taken += len(fetched)
        await crashed.unsubscribe()
    assert taken >= 5

    async with projector() as running:
        await running.caught_up(events, within=10)
    assert await db.dump() == expected_rows(history)


async def test_a_message_that_does_not_decode_is_skipped(
    events: JetStreamContext, publish: Any, projector: Any, db: Any
) -> None:
    history = History("ex1").typical(2).events
    await publish(history[:3])
    await events.publish(execution_subject("ex1", "NodeReady"), b'{"type": "Nope"}')
    await publish(history[3:])
    async with projector() as running:
        last = await running.caught_up(events)
    assert last == len(history) + 1
    assert await db.checkpoint() == last
    rows = await db.dump()
    assert rows["executions"][0]["status"] == "succeeded"
    assert len(rows["logs"]) == len(history)
    assert await unacked(events) == 0  # acked, and the broken one terminated


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
        await asyncio.wait_for(running.of("ex-live").wait_for(seq), 2)
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
    assert await db.dump() == expected_rows(history, in_one_stream=True)


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
    # The failure's line, before its outcome's; the node's error comes with the outcome.
    assert rows["logs"][-2]["message"].endswith("bad \ufffd byte")
    assert rows["nodes"][0]["error"]["message"] == "bad \ufffd byte"


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
    projector_log: JetStreamEventLog, publish: Any, pool: Any, db: Any
) -> None:
    history = one_partition()
    await publish(history)
    store = FlakyStore(pool, failures=3)  # partition 0's checkpoint
    projector = Projector(
        projector_log,
        store,
        partition=0,
        batch_size=8,
        max_backoff=0.05,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))
    try:
        await asyncio.wait_for(projector.wait_for(len(history)), 10)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert store.failures == 0
    assert await db.dump() == expected_rows(history)


# ------------------------------------------------------------------ batches and acks


class RecordingStore(ProjectionStore):
    """The real store, noting each committed transaction: the sequences it carried, and how
    many events it applied (those at or below the checkpoint are skipped)."""

    def __init__(self, pool: Any) -> None:
        super().__init__(pool)
        self.transactions: list[tuple[list[int], int]] = []

    async def apply(self, events: Any, through_seq: int) -> int:
        applied = await super().apply(events, through_seq)
        self.transactions.append(([seq for seq, _ in events], applied))
        return applied


class Crash(BaseException):
    """The process dies here (nothing after it runs, as after a kill)."""


class DiesAfterCommit(RecordingStore):
    async def apply(self, events: Any, through_seq: int) -> int:
        await super().apply(events, through_seq)
        raise Crash


async def notifier_consumer(js: JetStreamContext, partition: int = 0) -> Any:
    return await js.consumer_info(Layout.from_env().stream(partition), subjects.NOTIFIER_CONSUMER)


async def unacked(js: JetStreamContext) -> int:
    """The notifier consumers' unacknowledged messages (every partition's), once acks still on
    their way have arrived (the projector acks after its checkpoint moves, on a connection of
    its own)."""
    pending = -1
    for _ in range(500):
        pending = 0
        for partition in range(Layout.from_env().partitions):
            pending += int((await notifier_consumer(js, partition)).num_ack_pending)
        if pending == 0:
            break
        await asyncio.sleep(0.01)
    return pending


async def until_taken(js: JetStreamContext, count: int) -> None:
    """Wait until the notifier's consumer has handed ``count`` messages over, unacknowledged."""
    for _ in range(500):
        if (await notifier_consumer(js)).num_ack_pending == count:
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"the projector never took {count} events")


async def test_a_batch_keeps_collecting_through_its_linger_and_commits_once(
    events: JetStreamContext, publish: Any, projector: Any, pool: Any, db: Any
) -> None:
    history = one_partition()[:12]
    store = RecordingStore(pool)  # partition 0's checkpoint
    # A linger far longer than the test: the batch can only end by filling up.
    async with projector(store, partition=0, batch_size=len(history), linger_s=60) as running:
        await publish(history[:1])
        await until_taken(events, 1)
        await asyncio.sleep(0.2)  # a projector without a linger would commit it now
        assert await db.checkpoint() == 0
        await publish(history[1:])
        await running.caught_up(events)
    assert store.transactions == [(list(range(1, 13)), 12)]
    assert await db.checkpoint() == 12
    assert await db.dump() == expected_rows(history)
    assert await unacked(events) == 0  # one ack covered the batch


async def test_without_a_linger_a_batch_is_what_has_arrived(
    events: JetStreamContext, publish: Any, projector: Any, db: Any
) -> None:
    history = scenario()[:4]
    async with projector(linger_s=0) as running:
        (first,) = await publish(history[:1])
        await asyncio.wait_for(running.of(history[0].execution_id).wait_for(first), 5)
        assert await db.checkpoint() == first
        await publish(history[1:])
        await running.caught_up(events)
    assert await db.dump() == expected_rows(history)


async def test_a_consumer_acking_one_by_one_is_recreated_to_ack_batches(
    events: JetStreamContext, publish: Any, projector: Any, db: Any
) -> None:
    # The consumer as releases before batch acks created it, standing at the checkpoint (0), so
    # no rewind would touch it: its ack policy alone must bring it in line.
    old = dataclasses.replace(canonical_notifier_config(), ack_policy=AckPolicy.EXPLICIT)
    partitions = range(Layout.from_env().partitions)
    for partition in partitions:
        stream = Layout.from_env().stream(partition)
        await events.delete_consumer(stream, subjects.NOTIFIER_CONSUMER)
        await events.add_consumer(stream, old)
        assert (await notifier_consumer(events, partition)).config.ack_policy == AckPolicy.EXPLICIT
    history = scenario()
    await publish(history)
    async with projector() as running:
        await running.caught_up(events)
    assert await unacked(events) == 0
    infos = [await notifier_consumer(events, p) for p in partitions]
    assert [info.config.ack_policy for info in infos] == [AckPolicy.ALL for _ in partitions]
    assert await db.dump() == expected_rows(history)
    # The other services check the layout at every start; none changes it back.
    await ensure_jetstream(
        events, StreamSettings.from_env()
    )  # as the api, the scheduler and the notifier do
    await ensure_jetstream(events, StreamSettings.from_env(), owner=subjects.RUNNER_CONSUMER)
    after = [await notifier_consumer(events, p) for p in partitions]
    assert [(a.config.ack_policy, a.delivered.stream_seq) for a in after] == [
        (AckPolicy.ALL, info.delivered.stream_seq) for info in infos
    ]


def canonical_notifier_config() -> ConsumerConfig:
    (config,) = [
        c
        for c in consumer_configs(StreamSettings(), fresh_stream=True)
        if c.durable_name == subjects.NOTIFIER_CONSUMER
    ]
    return config


async def test_a_crash_between_commit_and_ack_loses_nothing_and_duplicates_nothing(
    nats_url: str, events: JetStreamContext, publish: Any, projector: Any, db: Any
) -> None:
    history = one_partition()
    await publish(history[:10])
    doomed = await nats.connect(nats_url)
    first = DiesAfterCommit(db.pool)  # partition 0's checkpoint
    # The batch is exactly the ten events: it fills up long before its linger ends.
    crashed = Projector(
        JetStreamEventLog(doomed, doomed.jetstream(), StreamSettings.from_env()),
        first,
        partition=0,
        batch_size=10,
        linger_s=60,
    )
    with pytest.raises(Crash):
        await asyncio.wait_for(crashed.run(asyncio.Event()), 10)
    await doomed.close()  # the process is gone: its connection with it
    assert await db.checkpoint() == 10
    assert (await notifier_consumer(events)).num_ack_pending == 10  # committed, never acked

    await publish(history[10:])
    second = RecordingStore(db.pool)
    async with projector(second, partition=0) as running:  # on a connection of its own
        await running.caught_up(events)
    assert first.transactions == [(list(range(1, 11)), 10)]
    # Every event applied once: ten before the crash, the rest after it.
    assert sum(count for _, count in second.transactions) == len(history) - 10
    assert await db.dump() == expected_rows(history)
    # The ack of the restarted projector's last batch covered the crashed batch as well.
    assert await unacked(events) == 0
