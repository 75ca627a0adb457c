"""Writes folded batches to PostgreSQL: rows, log lines and the checkpoint in one transaction.

asyncpg directly, no ORM: a batch costs a fixed handful of round trips whatever its size. Rows go
in as column arrays through ``unnest`` (one statement per table), which PostgreSQL turns into a
single bulk insert; that is several times faster than ``executemany``.

Idempotence (delivery is at least once, so a batch may come again): the checkpoint row is locked
first, events at or below it are skipped, rows are upserts of deterministic values, and log lines
are unique on ``(execution_id, seq)``. Replaying a batch therefore changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
import msgspec

from nodedrop.contracts.events import AnyEvent, ExecutionStarted
from nodedrop.notifier.projection import (
    Changes,
    ExecutionRecord,
    NodeKey,
    NodeRecord,
    fold,
)

CHECKPOINT_NAME = "notifier"


def checkpoint_name(partition: int) -> str:
    """The row of ``projection_checkpoints`` that holds a partition's last projected sequence
    (in that partition's stream)."""
    return f"{CHECKPOINT_NAME}.{partition:03d}"


_EXECUTION_COLUMNS = (
    "id", "workflow_id", "workflow_version", "mode", "trigger", "node", "status", "requested_by",
    "rerun_of", "created_at", "started_at", "finished_at", "error", "last_seq", "ending",
    "parent_execution_id", "parent_node", "outcomes_recorded",
)  # fmt: skip
_NODE_COLUMNS = (
    "execution_id", "node", "position", "status", "attempts", "started_at", "finished_at",
    "input", "output", "error", "skip_reason", "pinned", "last_seq", "runner_lost", "wait_until",
    "children", "outcome",
)  # fmt: skip
_EXECUTION_TYPES = (
    "text", "text", "int", "text", "text", "text", "text", "text",
    "text", "timestamptz", "timestamptz", "timestamptz", "jsonb", "bigint", "bool",
    "text", "text", "bool",
)  # fmt: skip
_NODE_TYPES = (
    "text", "text", "int", "text", "int", "timestamptz", "timestamptz",
    "jsonb", "jsonb", "jsonb", "text", "bool", "bigint", "int", "timestamptz",
    "jsonb", "text",
)  # fmt: skip
_JSON_COLUMNS = frozenset({"error", "input", "output", "children"})


def _unnest_upsert(
    table: str, columns: Sequence[str], types: Sequence[str], key: Sequence[str]
) -> str:
    # JSON travels as text[] and is cast per element: asyncpg has no binary codec for jsonb[].
    params = ", ".join(
        f"${i}::text[]" if t == "jsonb" else f"${i}::{t}[]" for i, t in enumerate(types, start=1)
    )
    select = ", ".join(f"{c}::jsonb" if c in _JSON_COLUMNS else c for c in columns)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in key)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) "
        f"SELECT {select} FROM unnest({params}) AS u({', '.join(columns)}) "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates} "
        # A stale writer (or a replay of an older batch) never moves a row backwards.
        f"WHERE {table}.last_seq <= EXCLUDED.last_seq"
    )


_UPSERT_EXECUTIONS = _unnest_upsert("executions", _EXECUTION_COLUMNS, _EXECUTION_TYPES, ("id",))
_UPSERT_NODES = _unnest_upsert(
    "node_executions", _NODE_COLUMNS, _NODE_TYPES, ("execution_id", "node")
)
_INSERT_LOGS = (
    "INSERT INTO execution_logs (execution_id, seq, line, time, level, node, message) "
    "SELECT * FROM unnest($1::text[], $2::bigint[], $3::int[], $4::timestamptz[], $5::text[], "
    "$6::text[], $7::text[]) ON CONFLICT (execution_id, seq, line) DO NOTHING"
)
# The no-op update makes the statement lock the row and return it: one round trip that serialises
# concurrent projectors and reads where this one left off.
_LOCK_CHECKPOINT = (
    "INSERT INTO projection_checkpoints (name, last_seq) VALUES ($1, 0) "
    "ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING last_seq"
)
_SAVE_CHECKPOINT = "UPDATE projection_checkpoints SET last_seq = $2 WHERE name = $1"
_READ_CHECKPOINT = "SELECT last_seq FROM projection_checkpoints WHERE name = $1"
_SELECT_EXECUTIONS = (
    f"SELECT {', '.join(_EXECUTION_COLUMNS)} FROM executions WHERE id = ANY($1::text[])"
)
#: Only the node rows a batch's events name, not every row of its executions: an execution of n
#: nodes would otherwise read and decode n rows for each of its batches. Both columns of the
#: primary key are matched against lists (an index scan; the few extra rows it may return, a
#: named node of another execution of the batch, are harmless), which PostgreSQL plans faster
#: than a join on exact (execution, node) pairs.
_SELECT_NODES = (
    f"SELECT {', '.join(_NODE_COLUMNS)} FROM node_executions "
    "WHERE execution_id = ANY($1::text[]) AND node = ANY($2::text[])"
)

#: A pooled asyncpg connection (untyped: asyncpg ships no type information).
_Connection: TypeAlias = Any
_json_encoder = msgspec.json.Encoder()


def _to_json(value: Any) -> str | None:
    if value is None:
        return None
    text = _json_encoder.encode(value).decode()
    # PostgreSQL refuses NUL in jsonb; one in a node's output must not stall the projection.
    return _json_encoder.encode(_without_nul(value)).decode() if "\\u0000" in text else text


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def _from_json(value: str | None) -> Any:
    return None if value is None else msgspec.json.decode(value)


def asyncpg_dsn(database_url: str) -> str:
    """``postgresql+asyncpg://...`` (SQLAlchemy's spelling, used in the config) to asyncpg's."""
    scheme, sep, rest = database_url.partition("://")
    return f"{scheme.split('+', 1)[0]}{sep}{rest}" if sep else database_url


async def create_pool(database_url: str, *, max_size: int = 4) -> asyncpg.Pool:
    return await asyncpg.create_pool(asyncpg_dsn(database_url), min_size=1, max_size=max_size)


class ProjectionStore:
    """The notifier's projection tables, written batch by batch."""

    def __init__(self, pool: asyncpg.Pool, name: str = checkpoint_name(0)) -> None:
        self._pool = pool
        self._name = name

    async def checkpoint(self) -> int:
        """The last stream sequence applied (0 before the first batch)."""
        async with self._pool.acquire() as conn:
            value: int | None = await conn.fetchval(_READ_CHECKPOINT, self._name)
        return value or 0

    async def apply(self, events: Sequence[tuple[int, AnyEvent]], through_seq: int) -> int:
        """Project ``events`` (stream order) and move the checkpoint to ``through_seq``, which may
        lie beyond the last event (a message that did not decode still counts as consumed).
        Returns the number of events applied; those at or below the checkpoint are skipped."""
        async with self._pool.acquire() as conn, conn.transaction():
            checkpoint: int = await conn.fetchval(_LOCK_CHECKPOINT, self._name)
            if through_seq <= checkpoint:
                return 0
            fresh = [(seq, event) for seq, event in events if seq > checkpoint]
            if fresh:
                executions, nodes = await _read_rows(conn, fresh)
                await _write(conn, fold(fresh, executions, nodes))
            await conn.execute(_SAVE_CHECKPOINT, self._name, through_seq)
        return len(fresh)


def _node_keys(events: Sequence[tuple[int, AnyEvent]]) -> set[NodeKey]:
    """The node rows ``fold`` may read for ``events``: the node each event names, and every
    node of a plan (``ExecutionStarted`` creates the rows that do not exist yet)."""
    keys: set[NodeKey] = set()
    for _, event in events:
        if isinstance(event, ExecutionStarted):
            keys.update((event.execution_id, node) for node in event.plan)
        elif isinstance(node := getattr(event, "node", None), str):
            keys.add((event.execution_id, node))
    return keys


async def _read_rows(
    conn: _Connection, events: Sequence[tuple[int, AnyEvent]]
) -> tuple[dict[str, ExecutionRecord], dict[NodeKey, NodeRecord]]:
    """The current rows the batch's events touch, which fencing decides against."""
    executions: dict[str, ExecutionRecord] = {}
    execution_ids = list({event.execution_id for _, event in events})
    for record in await conn.fetch(_SELECT_EXECUTIONS, execution_ids):
        row = dict(record)
        row["error"] = _from_json(row["error"])
        executions[row["id"]] = ExecutionRecord(**row)
    nodes: dict[NodeKey, NodeRecord] = {}
    keys = [key for key in _node_keys(events) if key[0] in executions]
    if keys:
        ids, names = list({key[0] for key in keys}), list({key[1] for key in keys})
        for record in await conn.fetch(_SELECT_NODES, ids, names):
            row = dict(record)
            for column in ("input", "output", "error", "children"):
                row[column] = _from_json(row[column])
            nodes[(row["execution_id"], row["node"])] = NodeRecord(**row)
    return executions, nodes


def _columns(rows: Sequence[object], names: Sequence[str]) -> list[list[Any]]:
    """Row objects to one list per column, JSON columns encoded to text."""
    columns: list[list[Any]] = []
    for name in names:
        values = [getattr(row, name) for row in rows]
        columns.append([_to_json(v) for v in values] if name in _JSON_COLUMNS else values)
    return columns


async def _write(conn: _Connection, changes: Changes) -> None:
    if changes.executions:
        rows = list(changes.executions.values())
        await conn.execute(_UPSERT_EXECUTIONS, *_columns(rows, _EXECUTION_COLUMNS))
    if changes.nodes:
        node_rows = list(changes.nodes.values())
        await conn.execute(_UPSERT_NODES, *_columns(node_rows, _NODE_COLUMNS))
    if changes.logs:
        logs = changes.logs
        await conn.execute(
            _INSERT_LOGS,
            [line.execution_id for line in logs],
            [line.seq for line in logs],
            [line.line for line in logs],
            [line.time for line in logs],
            [line.level for line in logs],
            [line.node for line in logs],
            [line.message.replace("\x00", "\ufffd") for line in logs],
        )
