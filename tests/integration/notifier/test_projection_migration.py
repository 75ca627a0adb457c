"""Migrations 0004 and 0007 on a database that already holds a projection: the rows projected
before them keep their values (not ending; outcomes not recorded), the projector goes on folding
into them, and new executions read each failure's recorded outcome."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
import pytest
from alembic import command

from nodedrop.notifier.store import ProjectionStore, asyncpg_dsn, create_pool
from nodedrop.notifier.testing import History, numbered
from nodedrop.platform.db import migrate

pytestmark = pytest.mark.integration

NEW_COLUMNS = {
    ("executions", "ending"),
    ("executions", "node_policies"),
    ("node_executions", "runner_lost"),
    ("node_executions", "wait_until"),
}
#: 0007: node_policies goes; whether outcomes are recorded, and each node's, come.
COLUMNS_0007 = {("executions", "outcomes_recorded"), ("node_executions", "outcome")}


async def columns(conn: Any) -> set[tuple[str, str]]:
    rows = await conn.fetch(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() "
        "AND table_name IN ('executions', 'node_executions')"
    )
    return {(r["table_name"], r["column_name"]) for r in rows}


async def test_0004_applies_on_an_existing_projection_and_reverts(database_url: str) -> None:
    await asyncio.to_thread(migrate.upgrade, database_url, "0003")
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        # A projection written before 0004, as the notifier of that version wrote it.
        await conn.execute(
            "INSERT INTO executions (id, mode, status, requested_by, created_at, last_seq) "
            "VALUES ('old', 'trigger', 'running', 'user-1', now(), 3)"
        )
        await conn.execute(
            "INSERT INTO node_executions (execution_id, node, position, status, attempts, "
            "pinned, last_seq) VALUES ('old', 'fetch', 1, 'queued', 1, false, 3)"
        )
        assert not NEW_COLUMNS & await columns(conn)

        await asyncio.to_thread(migrate.upgrade, database_url, "0004")

        assert await columns(conn) >= NEW_COLUMNS
        execution = await conn.fetchrow("SELECT ending, node_policies FROM executions")
        node = await conn.fetchrow("SELECT runner_lost, wait_until FROM node_executions")
        assert (execution["ending"], execution["node_policies"]) == (False, None)
        assert (node["runner_lost"], node["wait_until"]) == (0, None)

        await asyncio.to_thread(migrate.upgrade, database_url)
        found = await columns(conn)
        assert found >= COLUMNS_0007
        assert ("executions", "node_policies") not in found
        execution = await conn.fetchrow("SELECT outcomes_recorded FROM executions")
        assert execution["outcomes_recorded"] is False

        await asyncio.to_thread(command.downgrade, migrate.alembic_config(database_url), "0006")
        found = await columns(conn)
        assert ("executions", "node_policies") in found
        assert not COLUMNS_0007 & found

        await asyncio.to_thread(command.downgrade, migrate.alembic_config(database_url), "0003")
        assert not NEW_COLUMNS & await columns(conn)
        assert await conn.fetchval("SELECT count(*) FROM node_executions") == 1
    finally:
        await conn.close()


async def test_rows_projected_before_0004_keep_being_projected(database_url: str) -> None:
    """The old row's execution started before outcomes were recorded: its failure is
    ``failed``, as before; a new execution's result after its cancel request is ignored."""
    await asyncio.to_thread(migrate.upgrade, database_url, "0003")
    old = History("old")
    old.requested()
    old.started(["start", "fetch"], outcomes_recorded=False)
    old.ready("fetch")
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.execute(
            "INSERT INTO executions (id, mode, status, requested_by, created_at, started_at, "
            "last_seq) VALUES ('old', 'trigger', 'running', 'user-1', $1, $1, 3)",
            old.events[0].time,
        )
        await conn.execute(
            "INSERT INTO node_executions (execution_id, node, position, status, attempts, "
            "pinned, last_seq) VALUES ('old', 'start', 0, 'pending', 0, false, 2), "
            "('old', 'fetch', 1, 'queued', 1, false, 3)"
        )
        await conn.execute(
            "INSERT INTO projection_checkpoints (name, last_seq) VALUES ('notifier', 3)"
        )
    finally:
        await conn.close()
    await asyncio.to_thread(migrate.upgrade, database_url)

    new = History("new")
    new.requested()
    new.started(["start", "fetch"])
    new.ready("fetch")
    new.cancel_requested()
    new.succeeded("fetch")
    old.failed("fetch")
    later = [*new.events, old.events[-1]]
    pool = await create_pool(database_url)
    try:
        store = ProjectionStore(pool)
        await store.apply(numbered(later, start=4), through_seq=3 + len(later))
        async with pool.acquire() as conn:
            rows = {
                (r["execution_id"], r["node"]): r["status"]
                for r in await conn.fetch("SELECT execution_id, node, status FROM node_executions")
            }
            executions = {
                r["id"]: (r["ending"], r["outcomes_recorded"])
                for r in await conn.fetch("SELECT id, ending, outcomes_recorded FROM executions")
            }
    finally:
        await pool.close()
    assert rows[("old", "fetch")] == "failed"
    assert rows[("new", "fetch")] == "queued"  # the success after the cancel request is ignored
    assert executions == {"old": (False, False), "new": (True, True)}
