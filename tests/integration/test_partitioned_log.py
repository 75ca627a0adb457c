"""The partitioned log on a real nats-server: one stream per partition holding its slots' subjects,
each event stored in its execution's partition, an execution's events read back in order (also
past one batch of direct gets), starts refused when the streams were laid out otherwise, and
the fences a partition's owner publishes under, also on a replicated stream of a 3-node
cluster."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import nats
import pytest
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from nodedrop.contracts import ids, subjects
from nodedrop.contracts.events import Event, ExecutionRequested, NodeStarted
from nodedrop.contracts.routing import (
    PARTITIONS_ENV,
    Layout,
    execution_subject,
    is_event_subject,
)
from nodedrop.platform.bus import EventPublisher, FencedError, PublishError
from nodedrop.platform.history import read_execution
from nodedrop.platform.jetstream import (
    FORMER_EVENTS_STREAM,
    LayoutError,
    StreamSettings,
    ensure_jetstream,
)
from nodedrop.platform.retry import retry_unavailable

if TYPE_CHECKING:  # pytest gives the factory as a fixture (see tests/fixtures/nats_cluster.py)
    from tests.fixtures.nats_cluster import NatsClusterFactory

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def in_partition(layout: Layout, partition: int, name: str, count: int = 1) -> list[str]:
    """``count`` execution ids in ``partition``."""
    found = (f"{name}-{i}" for i in range(100_000))
    return [i for i in found if layout.partition_of(i) == partition][:count]


def requested(execution_id: str) -> ExecutionRequested:
    return ExecutionRequested(
        event_id=ids.execution_requested(execution_id),
        execution_id=execution_id,
        time=T0,
        workflow={"name": "w", "nodes": [], "connections": []},
        requested_by="test",
        trigger="start",
    )


def attempt(execution_id: str, n: int) -> NodeStarted:
    return NodeStarted(
        event_id=ids.node_started(execution_id, "n1", n),
        execution_id=execution_id,
        time=T0 + timedelta(milliseconds=n),
        node="n1",
        attempt=n,
    )


async def stream_names(js: JetStreamContext) -> set[str]:
    return {info.config.name for info in await js.streams_info() if info.config.name}


async def stored_on(js: JetStreamContext, stream: str, subject: str) -> int:
    """How many messages ``stream`` holds on ``subject``."""
    info = await js.stream_info(stream, subjects_filter=subject)
    return sum((info.state.subjects or {}).values())


# ------------------------------------------------------------------ the streams


@pytest.mark.parametrize("partitions", [1, 3, 4])
async def test_ensure_jetstream_creates_a_stream_per_partition_with_its_slots(
    jetstream: JetStreamContext, partitions: int
) -> None:
    layout = Layout(partitions)
    await ensure_jetstream(jetstream, StreamSettings(layout=layout))

    assert await stream_names(jetstream) == set(layout.streams)
    for partition, stream in enumerate(layout.streams):
        config = (await jetstream.stream_info(stream)).config
        assert sorted(config.subjects or []) == sorted(layout.stream_subjects(partition))
        consumers = {c.name for c in await jetstream.consumers_info(stream)}
        assert consumers == {subjects.RUNNER_CONSUMER, subjects.NOTIFIER_CONSUMER}
    # Idempotent: a second start changes nothing.
    await ensure_jetstream(jetstream, StreamSettings(layout=layout))
    assert await stream_names(jetstream) == set(layout.streams)


async def test_an_event_is_stored_in_its_executions_partition(jetstream: JetStreamContext) -> None:
    layout = Layout(4)
    await ensure_jetstream(jetstream, StreamSettings(layout=layout))
    executions = [in_partition(layout, p, "routed")[0] for p in range(layout.partitions)]
    # One batch spanning every partition: each event goes to its own partition's stream.
    seqs = await EventPublisher(jetstream, layout).publish([requested(e) for e in executions])

    assert seqs == [1, 1, 1, 1]  # each the first message of its stream
    for execution_id in executions:
        subject = execution_subject(execution_id, "ExecutionRequested")
        home = layout.stream_of(execution_id)
        stored = await jetstream.get_last_msg(home, subject)
        assert stored.seq == 1
        for other in set(layout.streams) - {home}:
            assert await stored_on(jetstream, other, subject) == 0
    for stream in layout.streams:
        assert (await jetstream.stream_info(stream)).state.messages == 1


async def test_a_duplicate_is_dropped_by_its_partitions_stream(
    jetstream: JetStreamContext,
) -> None:
    layout = Layout(4)
    await ensure_jetstream(jetstream, StreamSettings(layout=layout))
    (execution_id,) = in_partition(layout, 2, "twice")
    publisher = EventPublisher(jetstream, layout)
    assert await publisher.publish_first(requested(execution_id))
    assert not await publisher.publish_first(requested(execution_id))
    assert (await jetstream.stream_info(layout.stream(2))).state.messages == 1


# ------------------------------------------------------------------ reading an execution


async def test_read_execution_returns_its_events_in_order(jetstream: JetStreamContext) -> None:
    layout = Layout(4)
    await ensure_jetstream(jetstream, StreamSettings(layout=layout))
    mine, other = in_partition(layout, 1, "read", count=2)
    publisher = EventPublisher(jetstream, layout)
    # Interleaved with another execution of the same partition (so of the same stream).
    published = [requested(mine), requested(other), attempt(mine, 1), attempt(other, 1)]
    published += [attempt(mine, 2), attempt(mine, 3)]
    seqs = await publisher.publish(published)

    stored = await read_execution(jetstream, mine, layout=layout)
    expected = [(s, e) for s, e in zip(seqs, published, strict=True) if e.execution_id == mine]
    assert stored == expected
    assert [s for s, _ in stored] == [1, 3, 5, 6]

    later = await read_execution(jetstream, mine, layout=layout, after_seq=3)
    assert later == expected[2:]
    assert await read_execution(jetstream, mine, layout=layout, after_seq=6) == []
    assert await read_execution(jetstream, "never-requested", layout=layout) == []


@pytest.mark.parametrize("count", [255, 256, 257, 700])
async def test_read_execution_reads_past_one_batch_of_direct_gets(
    jetstream: JetStreamContext, count: int
) -> None:
    """A direct get answers at most 256 messages; the read asks again until none is left."""
    layout = Layout(4)
    await ensure_jetstream(jetstream, StreamSettings(layout=layout))
    mine, other = in_partition(layout, 3, "long", count=2)
    events = [requested(mine), *(attempt(mine, n) for n in range(1, count))]
    publisher = EventPublisher(jetstream, layout)
    await publisher.publish(events[: count // 2])
    await publisher.publish([requested(other)])  # a hole in the middle, for this execution
    await publisher.publish(events[count // 2 :])

    stored = await read_execution(jetstream, mine, layout=layout)
    assert [e for _, e in stored] == events
    seqs = [s for s, _ in stored]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == count

    cut = seqs[count - 10]
    assert [e for _, e in await read_execution(jetstream, mine, layout=layout, after_seq=cut)] == (
        events[count - 9 :]
    )
    cut = seqs[100]
    after = await read_execution(jetstream, mine, layout=layout, after_seq=cut)
    assert [e for _, e in after] == events[101:]


# ------------------------------------------------------------------ another layout


@pytest.mark.parametrize("started_with", ["3", "5"])
async def test_a_start_with_another_partition_count_is_refused(
    jetstream: JetStreamContext, monkeypatch: pytest.MonkeyPatch, started_with: str
) -> None:
    """The log was created with 4 partitions; a service started with fewer or more stops with a
    message naming the setting, and changes nothing."""
    layout = Layout(4)
    await ensure_jetstream(jetstream, StreamSettings(layout=layout))
    before = {s: (await jetstream.stream_info(s)).config.subjects for s in layout.streams}

    monkeypatch.setenv(PARTITIONS_ENV, started_with)
    with pytest.raises(LayoutError, match=PARTITIONS_ENV):
        await ensure_jetstream(jetstream, StreamSettings.from_env())

    assert await stream_names(jetstream) == set(layout.streams)
    after = {s: (await jetstream.stream_info(s)).config.subjects for s in layout.streams}
    assert after == before


async def test_a_former_single_stream_log_is_refused_naming_the_migration(
    jetstream: JetStreamContext,
) -> None:
    await jetstream.add_stream(name=FORMER_EVENTS_STREAM, subjects=["nodedrop.events.>"])
    await jetstream.publish("nodedrop.events.09.exec-1.ExecutionRequested", b"{}")

    with pytest.raises(LayoutError, match="nodedrop migrate-log"):
        await ensure_jetstream(jetstream, StreamSettings(layout=Layout(4)))

    assert await stream_names(jetstream) == {FORMER_EVENTS_STREAM}  # nothing created
    assert (await jetstream.stream_info(FORMER_EVENTS_STREAM)).state.messages == 1


# ------------------------------------------------------------------ fences


async def test_a_publish_under_a_superseded_fence_is_refused_and_stores_nothing(
    jetstream: JetStreamContext,
) -> None:
    layout = Layout(4)
    await ensure_jetstream(jetstream, StreamSettings(layout=layout))
    first_id, second_id, third_id = in_partition(layout, 2, "fenced", count=3)
    publisher = EventPublisher(jetstream, layout)

    old = await publisher.write_fence(2, "old-owner")
    assert await publisher.publish([requested(first_id)], fences={2: old}) == [old + 1]

    new = await publisher.write_fence(2, "new-owner")
    assert new > old
    fence = await jetstream.get_last_msg(layout.stream(2), layout.fence_subject(2))
    assert (fence.seq, fence.data) == (new, b"new-owner")

    messages = (await jetstream.stream_info(layout.stream(2))).state.messages
    with pytest.raises(FencedError):
        await publisher.publish([requested(second_id), attempt(second_id, 1)], fences={2: old})
    assert (await jetstream.stream_info(layout.stream(2))).state.messages == messages
    assert await read_execution(jetstream, second_id, layout=layout) == []
    with pytest.raises(NotFoundError):
        await jetstream.get_last_msg(layout.stream(2), execution_subject(second_id))

    # Under the new fence the same events are stored (nothing of the refused batch is a
    # duplicate of them).
    seqs = await publisher.publish([requested(second_id), attempt(second_id, 1)], fences={2: new})
    assert seqs == [new + 1, new + 2]
    assert [s for s, _ in await read_execution(jetstream, second_id, layout=layout)] == seqs

    # An event of a partition the caller holds no fence of is refused as well.
    with pytest.raises(FencedError):
        await publisher.publish([requested(third_id)], fences={0: 1})
    assert await read_execution(jetstream, third_id, layout=layout) == []


async def test_fences_are_per_partition(jetstream: JetStreamContext) -> None:
    layout = Layout(4)
    await ensure_jetstream(jetstream, StreamSettings(layout=layout))
    (in_one,) = in_partition(layout, 1, "fence-one")
    (in_three,) = in_partition(layout, 3, "fence-three")
    publisher = EventPublisher(jetstream, layout)
    one = await publisher.write_fence(1, "a")
    three = await publisher.write_fence(3, "a")
    await publisher.write_fence(3, "b")  # partition 3 taken over; partition 1 is not

    await publisher.publish([requested(in_one)], fences={1: one, 3: three})
    with pytest.raises(FencedError):
        await publisher.publish([requested(in_three)], fences={1: one, 3: three})
    assert len(await read_execution(jetstream, in_one, layout=layout)) == 1
    assert await read_execution(jetstream, in_three, layout=layout) == []
    # The fences are in the partitions' streams, not read as events.
    fence = await jetstream.get_last_msg(layout.stream(1), layout.fence_subject(1))
    assert not is_event_subject(fence.subject or "")


# ------------------------------------------------------------------ fences on one replica
# A single server stages an atomic batch of a file-backed stream on disk (several fsyncs and
# directory changes per batch), where one conditional message costs one fsync: a lone event, or
# a few of one execution, go as such messages; batches of several executions, or of many
# events, stay atomic.

BATCH_ID = "Nats-Batch-Id"


async def stored_headers(
    js: JetStreamContext, stream: str, seqs: Sequence[int]
) -> list[dict[str, str]]:
    return [dict((await js.get_msg(stream, seq)).headers or {}) for seq in seqs]


async def test_a_lone_fenced_event_goes_as_one_conditional_message(
    jetstream: JetStreamContext,
) -> None:
    layout = Layout(4)
    await ensure_jetstream(jetstream, StreamSettings(layout=layout))
    (mine,) = in_partition(layout, 2, "lone")
    publisher = EventPublisher(jetstream, layout)
    fence = await publisher.write_fence(2, "owner")

    (alone,) = await publisher.publish([attempt(mine, 1)], fences={2: fence})
    (together,) = [await publisher.publish([attempt(mine, 2), attempt(mine, 3)], fences={2: fence})]
    assert [alone, *together] == [fence + 1, fence + 2, fence + 3]
    headers = await stored_headers(jetstream, layout.stream(2), [alone, *together])
    assert [BATCH_ID in h for h in headers] == [False, False, False]
    # Sent again (a retry after a lost acknowledgement): stored once, the same sequence.
    assert await publisher.publish([attempt(mine, 1)], fences={2: fence}) == [alone]

    await publisher.write_fence(2, "new-owner")
    with pytest.raises(FencedError):
        await publisher.publish([attempt(mine, 4)], fences={2: fence})
    assert len(await read_execution(jetstream, mine, layout=layout)) == 3


async def test_which_batches_stay_atomic(jetstream: JetStreamContext) -> None:
    layout = Layout(4)
    await ensure_jetstream(jetstream, StreamSettings(layout=layout))
    mine, other = in_partition(layout, 2, "atomic", count=2)
    publisher = EventPublisher(jetstream, layout)
    fence = await publisher.write_fence(2, "owner")

    few = await publisher.publish([attempt(mine, n) for n in range(1, 5)], fences={2: fence})
    many = await publisher.publish([attempt(mine, n) for n in range(5, 10)], fences={2: fence})
    two = await publisher.publish([attempt(mine, 10), attempt(other, 1)], fences={2: fence})
    stream = layout.stream(2)
    assert [BATCH_ID in h for h in await stored_headers(jetstream, stream, few)] == [False] * 4
    assert all(BATCH_ID in h for h in await stored_headers(jetstream, stream, many))
    assert all(BATCH_ID in h for h in await stored_headers(jetstream, stream, two))
    assert few + many + two == list(range(fence + 1, fence + 12))


async def small_messages_only(js: JetStreamContext, partition: int) -> Layout:
    """Four partitions, ``partition``'s stream refusing messages over 4 KiB."""
    layout = Layout(4)
    await ensure_jetstream(js, StreamSettings(layout=layout))
    config = (await js.stream_info(layout.stream(partition))).config
    config.max_msg_size = 4096
    await js.update_stream(config)
    return layout


async def test_a_few_events_of_one_execution_are_stored_as_a_prefix_never_with_a_hole(
    jetstream: JetStreamContext,
) -> None:
    """Sent one after the other: the first is stored, the refused second stops the third,
    and what is stored is a prefix the scheduler decides again after (a lost tail)."""
    layout = await small_messages_only(jetstream, 3)
    (mine,) = in_partition(layout, 3, "prefix")
    publisher = EventPublisher(jetstream, layout)
    fence = await publisher.write_fence(3, "owner")

    events = [attempt(mine, 1), padded(attempt(mine, 2), "x" * 5000), attempt(mine, 3)]
    with pytest.raises(PublishError):
        await publisher.publish(events, fences={3: fence})
    stored = [e.event_id for _, e in await read_execution(jetstream, mine, layout=layout)]
    assert stored == [events[0].event_id]


async def test_on_one_replica_a_batch_is_stored_whole_or_not_at_all(
    jetstream: JetStreamContext,
) -> None:
    """A child's request and its parent's note of it: the second too big for the stream, so the
    stream refuses it, and the request with it (one atomic batch)."""
    layout = await small_messages_only(jetstream, 1)
    stream = layout.stream(1)
    parent, child = in_partition(layout, 1, "linked", count=2)
    publisher = EventPublisher(jetstream, layout)
    fence = await publisher.write_fence(1, "owner")

    oversized = padded(attempt(parent, 1), "x" * 5000)
    with pytest.raises(PublishError):
        await publisher.publish([requested(child), oversized], fences={1: fence})
    assert await read_execution(jetstream, child, layout=layout) == []
    assert await read_execution(jetstream, parent, layout=layout) == []

    seqs = await publisher.publish([requested(child), attempt(parent, 1)], fences={1: fence})
    assert all(BATCH_ID in h for h in await stored_headers(jetstream, stream, seqs))


def padded(event: NodeStarted, padding: str) -> NodeStarted:
    """``event`` made bigger by an id that no stream would take as it is."""
    return NodeStarted(
        event_id=event.event_id + padding,
        execution_id=event.execution_id,
        time=event.time,
        node=event.node,
        attempt=event.attempt,
    )


# ------------------------------------------------------------------ fences on a cluster
# The stream's leader refuses a conditional write while an earlier one on the same subject is
# still being replicated (10164): a scheduler publishing its decisions back to back under its
# fence had all but the first refused, and collapsed under load. Decisions now go as atomic
# batches, one in flight per partition.

CLUSTER_LAYOUT = Layout(2)
CALLS = 30
ATTEMPTS = 4


async def test_concurrent_fenced_publishes_are_all_stored_once_in_order(
    nats_cluster: NatsClusterFactory,
) -> None:
    async with nats_cluster() as cluster:
        nc = await nats.connect(cluster.urls, max_reconnect_attempts=-1)
        try:
            js = nc.jetstream(timeout=5)
            await retry_unavailable(
                lambda: ensure_jetstream(js, StreamSettings(layout=CLUSTER_LAYOUT, replicas=3)),
                what="create the streams",
                attempts=40,
                max_s=1.0,
            )
            publisher = EventPublisher(js, CLUSTER_LAYOUT, timeout_s=30)
            fences = {p: await publisher.write_fence(p, "owner") for p in range(2)}
            executions = in_partition(CLUSTER_LAYOUT, 0, "busy", CALLS // 2) + in_partition(
                CLUSTER_LAYOUT, 1, "busy", CALLS // 2
            )

            # Each call: one execution's request and attempts, all calls at once (as the
            # scheduler's pipeline sends its batches), on both partitions.
            def decisions(execution_id: str) -> Sequence[Event]:
                return [requested(execution_id)] + [
                    attempt(execution_id, n) for n in range(1, ATTEMPTS + 1)
                ]

            calls = [publisher.publish(decisions(e), fences=fences) for e in executions]
            sequences = await asyncio.gather(*calls)
            stored = [s for call in sequences for s in call]
            assert 0 not in stored
            for p in range(2):
                info = await js.stream_info(CLUSTER_LAYOUT.stream(p))
                assert info.state.messages == 1 + (CALLS // 2) * (1 + ATTEMPTS)
            for execution_id, call in zip(executions, sequences, strict=True):
                history = await read_execution(js, execution_id, layout=CLUSTER_LAYOUT)
                assert [s for s, _ in history] == call
                assert [type(e).__name__ for _, e in history] == ["ExecutionRequested"] + [
                    "NodeStarted"
                ] * ATTEMPTS
                attempts = [e.attempt for _, e in history if isinstance(e, NodeStarted)]
                assert attempts == list(range(1, ATTEMPTS + 1))

            # Sent again (a retry after a lost acknowledgement) together with one new event:
            # the stored ones are not stored twice, the new one is, all under the fence.
            again = [*decisions(executions[0]), attempt(executions[0], ATTEMPTS + 1)]
            resent = await publisher.publish(again, fences=fences)
            assert resent[:-1] == sequences[0]
            history = await read_execution(js, executions[0], layout=CLUSTER_LAYOUT)
            assert Counter(e.event_id for _, e in history).most_common(1)[0][1] == 1
            assert len(history) == ATTEMPTS + 2

            # A superseded fence stores nothing, on the replicated stream too.
            await publisher.write_fence(0, "next-owner")
            before = (await js.stream_info(CLUSTER_LAYOUT.stream(0))).state.messages
            (late,) = in_partition(CLUSTER_LAYOUT, 0, "late")
            with pytest.raises(FencedError):
                await publisher.publish(decisions(late), fences=fences)
            assert (await js.stream_info(CLUSTER_LAYOUT.stream(0))).state.messages == before
        finally:
            await nc.close()
