"""The projector itself (``Projector.run``: its feed, batches, commits, acks and rewinds) over
the in-memory event log and a projection kept in memory, folded with the real fold."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from nodedrop.contracts import subjects
from nodedrop.contracts.events import AnyEvent
from nodedrop.contracts.routing import execution_subject
from nodedrop.notifier.consumer import Projector
from nodedrop.notifier.rebuild import replay
from nodedrop.notifier.testing import History, MemoryProjection, running
from nodedrop.platform.testing.event_log import MemoryEventLog


class Crash(BaseException):
    """The process dies (not an error the projector handles)."""


class DiesAfterCommit(MemoryProjection):
    async def apply(self, events: Any, through_seq: int) -> int:
        await super().apply(events, through_seq)
        raise Crash


def with_undecodable_third() -> MemoryEventLog:
    """A whole one-node execution (seqs 1-2, 4-7) with bytes that are no event at seq 3."""
    log = MemoryEventLog()
    history = History.one_node_succeeded()
    record(log, history.events[:2])
    log.record_bytes(execution_subject("ex1", "NodeReady"), b"not an event")
    record(log, history.events[2:])
    return log


def record(log: MemoryEventLog, events: list[AnyEvent]) -> None:
    for event in events:
        assert log.record(event)


async def until(condition: Callable[[], bool]) -> None:
    """Wait for ``condition`` (the test's timeout is the bound)."""
    while True:
        if condition():
            return
        await asyncio.sleep(0.001)  # the projector runs meanwhile


def delivered(log: MemoryEventLog) -> list[int]:
    """What the notifier consumer delivered and has not had acknowledged."""
    consumer = log.consumer(0, subjects.NOTIFIER_CONSUMER)
    return [] if consumer is None else sorted(consumer.pending)


def acknowledged(log: MemoryEventLog) -> bool:
    consumer = log.consumer(0, subjects.NOTIFIER_CONSUMER)
    return consumer is not None and not consumer.pending


async def test_events_become_rows_and_the_finished_execution_is_announced() -> None:
    log, store = MemoryEventLog(), MemoryProjection()
    history = History.one_node_succeeded()
    record(log, history.events)
    projector = Projector(log, store, partition=0, linger_s=0, announce=True)
    async with running(projector.run):
        await asyncio.wait_for(projector.wait_for(len(history.events)), 10)
        await until(lambda: acknowledged(log))
    assert store.executions["ex1"].status == "succeeded"
    assert store.nodes[("ex1", "start")].status == "succeeded"
    assert store.last_seq == len(history.events)
    assert sorted(seq for commit in store.commits for seq in commit) == list(range(1, 7))
    assert log.announced == [(0, ["ex1"])]


async def test_a_batch_that_fails_to_commit_is_retried_and_nothing_is_lost() -> None:
    log, store = MemoryEventLog(), MemoryProjection()
    store.failures = 3
    history = History.one_node_succeeded()
    record(log, history.events)
    projector = Projector(log, store, partition=0, linger_s=0, max_backoff=0.01)
    async with running(projector.run):
        await asyncio.wait_for(projector.wait_for(len(history.events)), 10)
    assert store.failures == 0
    assert [seq for commit in store.commits for seq in commit] == list(range(1, 7))
    assert store.executions["ex1"].status == "succeeded"


async def test_events_delivered_but_never_committed_are_projected_after_a_restart() -> None:
    log, store = MemoryEventLog(), MemoryProjection()
    history = History.one_node_succeeded()
    record(log, history.events[:3])
    store.failures = 1_000_000  # the database is gone: the first projector commits nothing
    first = Projector(log, store, partition=0, linger_s=0, max_backoff=0.01)
    async with running(first.run):
        await until(lambda: len(delivered(log)) == 3)
    assert store.commits == []

    # The delivered events would only come back after the ack wait: a restart rewinds to them.
    store.failures = 0
    record(log, history.events[3:])
    second = Projector(log, store, partition=0, linger_s=0)
    async with running(second.run):
        await asyncio.wait_for(second.wait_for(len(history.events)), 10)
    assert [seq for commit in store.commits for seq in commit] == list(range(1, 7))
    assert store.executions["ex1"].status == "succeeded"


async def test_a_crash_between_commit_and_ack_applies_nothing_twice() -> None:
    log = MemoryEventLog()
    history = History.one_node_succeeded()
    record(log, history.events[:3])
    first = DiesAfterCommit()
    crashed = Projector(log, first, partition=0, linger_s=0)
    with pytest.raises(Crash):
        await asyncio.wait_for(crashed.run(asyncio.Event()), 10)
    assert first.last_seq == 3
    assert not acknowledged(log)  # committed, never acked

    store = MemoryProjection()
    store.last_seq, store.executions, store.nodes = 3, first.executions, first.nodes
    record(log, history.events[3:])
    second = Projector(log, store, partition=0, linger_s=0)
    async with running(second.run):
        await asyncio.wait_for(second.wait_for(len(history.events)), 10)
        await until(lambda: acknowledged(log))  # its ack covers the crashed batch too
    assert [seq for commit in store.commits for seq in commit] == [4, 5, 6]
    assert store.executions["ex1"].status == "succeeded"


async def test_an_event_that_does_not_decode_is_passed_over() -> None:
    log, store = with_undecodable_third(), MemoryProjection()
    projector = Projector(log, store, partition=0, linger_s=0)
    async with running(projector.run):
        await asyncio.wait_for(projector.wait_for(7), 10)
        await until(lambda: acknowledged(log))
    assert sorted(seq for commit in store.commits for seq in commit) == [1, 2, 4, 5, 6, 7]
    assert store.executions["ex1"].status == "succeeded"


async def test_a_replay_folds_a_stretch_of_the_partition_as_the_projector_does() -> None:
    log, store = with_undecodable_third(), MemoryProjection()
    await log.write_fence(0, "{}")  # no event: never read

    applied = await replay(log, store, partition=0, through_seq=6, batch_size=2)

    # Up to the sequence asked for, the undecodable message passed over, in batches.
    assert applied == 5
    assert [seq for commit in store.commits for seq in commit] == [1, 2, 4, 5, 6]
    assert store.last_seq == 6
    assert store.nodes[("ex1", "start")].status == "succeeded"
    assert store.executions["ex1"].status == "running"  # its end (7) not replayed yet
    assert await replay(log, store, partition=0, through_seq=7, after_seq=6) == 1
    assert store.executions["ex1"].status == "succeeded"
