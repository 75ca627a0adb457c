"""``rebuild_and_compare`` on a real stream and database: the stream folded again into a fresh
schema matches the live projection, and any row that differs is named."""

from __future__ import annotations

import random
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
import pytest
from nats.js import JetStreamContext

from nodedrop.contracts.events import AnyEvent, ErrorInfo
from nodedrop.contracts.routing import Layout
from nodedrop.notifier.rebuild import drop_rebuilt_schemas, rebuild_and_compare
from nodedrop.notifier.store import asyncpg_dsn
from nodedrop.notifier.testing import History
from nodedrop.platform.event_log import JetStreamEventLog
from nodedrop.platform.jetstream import StreamSettings

pytestmark = pytest.mark.integration


def mixed(count: int, seed: int = 7) -> list[AnyEvent]:
    """``count`` executions of several shapes, their events interleaved as concurrent
    executions interleave in the stream."""
    rng = random.Random(seed)
    histories = []
    for i in range(count):
        history = History(f"ex-{i:04d}", requested_by=f"user-{i % 3}", step_ms=rng.randint(1, 9))
        shape = i % 4
        if shape == 0:
            history.typical(rng.randint(2, 6))
        elif shape == 1:
            history.requested()
            history.started(["start", "fetch"])
            history.run_node("start")
            history.ready("fetch")
            history.node_started("fetch")
            history.failed("fetch", error_type="HttpClientError", message="404")
            history.finished("failed", ErrorInfo(type="HttpClientError", message="404"))
        elif shape == 2:
            history.requested()
            history.started(["start", "wait"])
            history.run_node("start")
            history.waiting("wait", ms=60_000)
            history.cancel_requested("enough")
            history.cancelled("wait")
            history.finished("cancelled")
        else:  # still running
            history.requested()
            history.started(["start", "slow"])
            history.run_node("start")
            history.ready("slow")
        histories.append(history.events)
    merged: list[AnyEvent] = []
    while any(histories):
        pick = rng.choice([h for h in histories if h])
        merged.append(pick.pop(0))
    return merged


async def test_the_rebuilt_projection_is_identical_and_its_schema_dropped(
    events: JetStreamContext, publish: Any, projector: Any, migrated_database_url: str
) -> None:
    await publish(mixed(60))
    async with projector(batch_size=37) as running:
        last = await running.caught_up(events)

    report = await rebuild_and_compare(
        JetStreamEventLog.of_context(events, StreamSettings(layout=Layout.from_env())),
        migrated_database_url,
        batch_size=50,
    )

    comparison = report.comparison
    assert comparison.identical, [d.describe() for d in comparison.differences]
    assert report.executions == 60
    assert report.through_seq == last
    assert report.events == last
    assert comparison.tables["node_executions"].rows_live > 60
    assert comparison.tables["execution_logs"].rows_live == last
    # A checkpoint per partition with events (each the partition's own).
    partitions = {Layout.from_env().partition_of(f"ex-{i:04d}") for i in range(60)}
    assert comparison.tables["projection_checkpoints"].rows_rebuilt == len(partitions)
    assert await _rebuild_schemas(migrated_database_url) == []


async def test_rows_changed_added_or_removed_in_the_live_projection_are_named(
    events: JetStreamContext, publish: Any, projector: Any, db: Any, migrated_database_url: str
) -> None:
    await publish(mixed(12))
    async with projector() as running:
        await running.caught_up(events)
    await db.execute("UPDATE executions SET status = 'succeeded' WHERE id = 'ex-0001'")
    first_log = await db.pool.fetchval(
        "SELECT min(seq) FROM execution_logs WHERE execution_id = 'ex-0002'"
    )
    await db.execute(
        f"DELETE FROM execution_logs WHERE execution_id = 'ex-0002' AND seq = {first_log}"
    )
    await db.execute(
        "INSERT INTO node_executions (execution_id, node, position, status, attempts, pinned, "
        "last_seq) VALUES ('ex-0000', 'extra', 9, 'succeeded', 1, false, 1)"
    )

    report = await rebuild_and_compare(
        JetStreamEventLog.of_context(events, StreamSettings(layout=Layout.from_env())),
        migrated_database_url,
    )

    comparison = report.comparison
    assert not comparison.identical
    assert comparison.differing_rows == 3
    described = sorted(d.describe() for d in comparison.differences)
    assert described == sorted(
        [
            "executions (ex-0001): status: live 'succeeded', rebuilt 'failed'",
            f"execution_logs (ex-0002, {first_log}, 0): only in the rebuilt projection",
            "node_executions (ex-0000, extra): only in the live projection",
        ]
    )


async def test_keep_leaves_the_rebuilt_schema_for_inspection(
    events: JetStreamContext, publish: Any, projector: Any, migrated_database_url: str
) -> None:
    await publish(History("ex1").typical(3).events)
    async with projector() as running:
        await running.caught_up(events)

    report = await rebuild_and_compare(
        JetStreamEventLog.of_context(events, StreamSettings(layout=Layout.from_env())),
        migrated_database_url,
        keep=True,
    )

    assert report.kept
    assert await _rebuild_schemas(migrated_database_url) == [report.schema]
    conn = await asyncpg.connect(asyncpg_dsn(migrated_database_url))
    try:
        status = await conn.fetchval(f'SELECT status FROM "{report.schema}".executions')
        # The live log sequence was not used by the copy: it has its own.
        live_ids = await conn.fetchval("SELECT max(id) FROM execution_logs")
    finally:
        await conn.close()
    assert status == "succeeded"
    assert live_ids == report.comparison.tables["execution_logs"].rows_live
    assert await drop_rebuilt_schemas(migrated_database_url) == [report.schema]
    assert await _rebuild_schemas(migrated_database_url) == []


async def test_an_empty_projection_rebuilds_identical(
    events: JetStreamContext, migrated_database_url: str
) -> None:
    report = await rebuild_and_compare(
        JetStreamEventLog.of_context(events, StreamSettings(layout=Layout.from_env())),
        migrated_database_url,
    )
    assert report.comparison.identical
    assert (report.executions, report.events, report.comparison.rows) == (0, 0, 0)


async def _rebuild_schemas(database_url: str) -> list[str]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await conn.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'rebuild%' ORDER BY 1"
        )
    finally:
        await conn.close()
    return [r["nspname"] for r in rows]
