"""Pruning on a real stream, database and data bucket: what finished before the cutoff goes
everywhere, nothing unfinished ever goes, a dry run changes nothing, an interrupted run is
finished by the next one, and the projection still rebuilds identical from the pruned stream."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from nodedrop.contracts import subjects
from nodedrop.contracts.events import AnyEvent
from nodedrop.contracts.routing import Layout, execution_subject
from nodedrop.notifier.rebuild import rebuild_and_compare
from nodedrop.notifier.retention import (
    Pruner,
    PurgeDeniedError,
    RetentionSettings,
    prune,
)
from nodedrop.notifier.settings import NotifierSettings
from nodedrop.notifier.testing import History, running
from nodedrop.platform.datastore import DataStore
from nodedrop.platform.event_log import JetStreamEventLog
from nodedrop.platform.jetstream import StreamSettings, ensure_jetstream, events_stream_config

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=40)
CUTOFF = NOW - timedelta(days=30)


def old_finished(execution_id: str) -> History:
    return History(execution_id, start=OLD).typical(3)


def old_but_waiting(execution_id: str) -> History:
    """Started 40 days ago, still in a long wait: unfinished, so never pruned."""
    history = History(execution_id, start=OLD)
    history.requested()
    history.started(["start", "wait"])
    history.run_node("start")
    history.waiting("wait", ms=90 * 86_400_000)
    return history


def scenario() -> list[AnyEvent]:
    histories = [
        old_finished("old-1"),
        old_finished("old-2"),
        old_but_waiting("old-waiting"),
        History("recent", start=NOW - timedelta(hours=1)).typical(2),
    ]
    return sorted((e for h in histories for e in h.events), key=lambda e: e.time)


async def store_outputs(js: JetStreamContext, *execution_ids: str) -> None:
    """An offloaded output per execution, stored as the runners store them."""
    store = DataStore(js, threshold=0)
    for execution_id in execution_ids:
        await store.offload({"main": [{"n": 1}]}, f"{execution_id}/n1/1")


async def object_names(js: JetStreamContext) -> set[str]:
    bucket = await js.object_store(subjects.DATA_BUCKET)
    try:
        return {info.name for info in await bucket.list(ignore_deletes=True) if info.name}
    except NotFoundError:
        return set()


async def events_of(js: JetStreamContext, execution_id: str) -> int:
    info = await js.stream_info(
        Layout.from_env().stream_of(execution_id), subjects_filter=execution_subject(execution_id)
    )
    return sum((info.state.subjects or {}).values())


async def stream_states(js: JetStreamContext) -> list[tuple[int, int, int]]:
    """Messages, first and last sequence of every partition's stream."""
    states = [(await js.stream_info(stream)).state for stream in Layout.from_env().streams]
    return [(state.messages, state.first_seq, state.last_seq) for state in states]


async def executions_in(db: Any) -> list[str]:
    return [row["id"] for row in (await db.dump())["executions"]]


async def test_only_executions_finished_before_the_cutoff_go_from_everywhere(
    *,
    events: JetStreamContext,
    publish: Any,
    projector: Any,
    pool: Any,
    db: Any,
    migrated_database_url: str,
) -> None:
    await publish(scenario())
    await store_outputs(events, "old-1", "old-waiting", "recent")
    async with projector() as running:
        await running.caught_up(events)
    old_events = await events_of(events, "old-1") + await events_of(events, "old-2")
    rows_before = await db.dump()
    old_rows = sum(
        1
        for table in rows_before.values()
        for row in table
        if row.get("execution_id", row.get("id")) in {"old-1", "old-2"}
    )

    report = await prune(events, pool, CUTOFF, layout=Layout.from_env())

    assert sorted(report.executions) == ["old-1", "old-2"]
    assert (report.events, report.rows, report.objects) == (old_events, old_rows, 1)
    assert await events_of(events, "old-1") == await events_of(events, "old-2") == 0
    assert await events_of(events, "old-waiting") > 0
    assert await executions_in(db) == ["old-waiting", "recent"]
    assert await object_names(events) == {"old-waiting/n1/1/main", "recent/n1/1/main"}
    # Nothing anywhere still names a pruned execution (its log lines included).
    assert not any(
        row.get("execution_id", row.get("id")) in {"old-1", "old-2"}
        for table in (await db.dump()).values()
        for row in table
    )
    # The stream, with its holes, still folds into exactly the live projection...
    rebuilt = await rebuild_and_compare(
        JetStreamEventLog.of_context(events, StreamSettings(layout=Layout.from_env())),
        migrated_database_url,
    )
    assert rebuilt.comparison.identical, [d.describe() for d in rebuilt.comparison.differences]
    # ... and a second run finds nothing more to do.
    again = await prune(events, pool, CUTOFF, layout=Layout.from_env())
    assert (again.executions, again.events, again.rows, again.objects) == ([], 0, 0, 0)


async def test_a_dry_run_counts_and_changes_nothing(
    events: JetStreamContext, publish: Any, projector: Any, pool: Any, db: Any
) -> None:
    await publish(scenario())
    await store_outputs(events, "old-2")
    async with projector() as running:
        await running.caught_up(events)
    states = await stream_states(events)
    rows = await db.dump()

    report = await prune(events, pool, CUTOFF, dry_run=True, layout=Layout.from_env())

    assert sorted(report.executions) == ["old-1", "old-2"]
    assert report.events == await events_of(events, "old-1") + await events_of(events, "old-2")
    assert report.rows > 0
    assert report.objects == 1
    assert await stream_states(events) == states
    assert await db.dump() == rows
    assert await object_names(events) == {"old-2/n1/1/main"}


async def test_a_run_interrupted_before_the_purge_is_finished_by_the_next(
    *,
    events: JetStreamContext,
    publish: Any,
    projector: Any,
    pool: Any,
    db: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await publish(scenario())
    await store_outputs(events, "old-1")
    async with projector() as running:
        await running.caught_up(events)

    async def unreachable(*args: Any, **kwargs: Any) -> bool:
        raise ConnectionError("NATS went away")

    with monkeypatch.context() as patch:
        patch.setattr(events, "purge_stream", unreachable)
        with pytest.raises(ConnectionError):
            await prune(events, pool, CUTOFF, layout=Layout.from_env())
    # Rows went first; the stream still says what is left to do. (Partition by partition: the
    # run stopped at the first purge, that of old-1's partition; old-2 may be in a later one.)
    assert "old-1" not in await executions_in(db)
    assert await events_of(events, "old-1") > 0
    rows_left = sum(
        1
        for table in (await db.dump()).values()
        for row in table
        if row.get("execution_id", row.get("id")) in {"old-1", "old-2"}
    )
    if Layout.from_env().partition_of("old-2") == Layout.from_env().partition_of("old-1"):
        assert rows_left == 0

    report = await prune(events, pool, CUTOFF, layout=Layout.from_env())

    assert sorted(report.executions) == ["old-1", "old-2"]
    assert report.rows == rows_left  # the others were deleted by the interrupted run already
    assert await events_of(events, "old-1") == await events_of(events, "old-2") == 0
    assert await object_names(events) == set()


async def test_finished_executions_not_yet_projected_wait_for_the_projector(
    events: JetStreamContext, publish: Any, projector: Any, pool: Any, db: Any
) -> None:
    await publish(old_finished("old-1").events)
    async with projector() as running:
        await running.caught_up(events)
    await publish(old_finished("old-2").events)  # not projected: the projector is stopped

    report = await prune(events, pool, CUTOFF, layout=Layout.from_env())

    assert report.executions == ["old-1"]
    assert report.deferred == 1
    assert await events_of(events, "old-2") > 0
    async with projector() as running:
        await running.caught_up(events)
    assert (await prune(events, pool, CUTOFF, layout=Layout.from_env())).executions == ["old-2"]
    assert await executions_in(db) == []


async def test_a_fresh_projection_of_a_pruned_stream_skips_its_holes(
    events: JetStreamContext, publish: Any, projector: Any, pool: Any, db: Any
) -> None:
    # Interleaved, so pruning leaves holes in the middle of the stream, not only at its front.
    await publish(scenario())
    async with projector() as running:
        await running.caught_up(events)
    await prune(events, pool, CUTOFF, layout=Layout.from_env())
    kept = await db.dump()

    await db.execute("TRUNCATE executions, node_executions, execution_logs, projection_checkpoints")
    async with projector(batch_size=5) as running:
        await running.caught_up(events, within=10)
    assert await db.dump() == kept


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 5.0) -> None:
    for _ in range(int(within / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the condition did not become true")


async def test_the_notifiers_pruner_runs_periodically_with_its_settings(
    events: JetStreamContext, publish: Any, projector: Any, pool: Any, db: Any
) -> None:
    await publish(scenario())
    settings = NotifierSettings.from_env(
        {"NODEDROP_RETENTION_DAYS": "30", "NODEDROP_PRUNE_INTERVAL_S": "0.2"}
    ).retention
    now = [NOW]
    pruner = Pruner(events, pool, settings, clock=lambda: now[0], layout=Layout.from_env())

    def left(*expected: str) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return await executions_in(db) == list(expected)

        return check

    async with projector() as projecting, running(pruner.run, within=5):
        await projecting.caught_up(events)
        await eventually(left("old-waiting", "recent"))
        assert pruner.last is not None
        assert pruner.last.cutoff == CUTOFF
        # A month later, a later run takes what has finished since; the wait still waits.
        now[0] = NOW + timedelta(days=31)
        await eventually(left("old-waiting"))
    assert await events_of(events, "recent") == 0

    off = Pruner(events, pool, RetentionSettings(days=0), layout=Layout.from_env())
    async with running(off.run, within=5) as task:
        await asyncio.sleep(0.3)
        assert not task.done()  # waits for the stop, like the notifier's other tasks
    assert off.last is None


def test_retention_settings_are_checked() -> None:
    def retention(env: dict[str, str]) -> RetentionSettings:
        return NotifierSettings.from_env(env).retention

    assert retention({}) == RetentionSettings(days=30.0, interval_s=3600.0)
    assert not retention({"NODEDROP_RETENTION_DAYS": "0"}).enabled
    with pytest.raises(ValueError, match="NODEDROP_RETENTION_DAYS"):
        retention({"NODEDROP_RETENTION_DAYS": "a month"})
    with pytest.raises(ValueError, match="NODEDROP_PRUNE_INTERVAL_S"):
        retention({"NODEDROP_PRUNE_INTERVAL_S": "0"})


async def test_a_stream_created_with_purges_denied_keeps_working_but_cannot_be_pruned(
    jetstream: JetStreamContext, pool: Any
) -> None:
    # As every stream was created before retention existed: NATS never lifts deny_purge.
    legacy = events_stream_config(StreamSettings.from_env())
    legacy.deny_purge = True
    await jetstream.add_stream(legacy)
    await ensure_jetstream(jetstream, StreamSettings.from_env())  # services still start on it

    with pytest.raises(PurgeDeniedError, match="purges denied"):
        await prune(jetstream, pool, CUTOFF, layout=Layout.from_env())
    assert (
        await prune(jetstream, pool, CUTOFF, dry_run=True, layout=Layout.from_env())
    ).executions == []
