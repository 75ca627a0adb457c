"""A canonical dump of the projection, and the comparison of two of them.

The dump of one schema is every row of every projection table, in key order, each value in a
fixed form: JSON columns as PostgreSQL's ``jsonb`` text (keys sorted, spacing normalised), times
as aware UTC datetimes. Two projections folded from the same events have identical dumps.

Only the tables the notifier folds from events take part (:data:`PROJECTION_TABLES`): workflows,
users, keys and the like are written by the api and are no projection. Every column of those
tables is compared except the ones listed in :data:`NOT_FROM_EVENTS`, which PostgreSQL assigns in
arrival order; a new column added by a migration is compared without a change here.

Rows are streamed from server-side cursors on both sides and merge-joined by key, so a large
projection is compared in constant memory. Keys are sorted with ``COLLATE "C"`` (byte order),
which is the order Python compares the decoded strings in.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

#: A PostgreSQL connection from asyncpg (untyped: asyncpg ships no type information).
Connection = Any


@dataclass(frozen=True)
class ProjectionTable:
    name: str
    key: tuple[str, ...]
    #: Restricts the rows compared (a shared table holding other rows as well).
    where: str = ""


PROJECTION_TABLES: tuple[ProjectionTable, ...] = (
    ProjectionTable("executions", ("id",)),
    ProjectionTable("node_executions", ("execution_id", "node")),
    ProjectionTable("execution_logs", ("execution_id", "seq", "line")),
    # The notifier's checkpoints: how far into each partition's stream the projection is.
    ProjectionTable("projection_checkpoints", ("name",), where="name LIKE 'notifier.%'"),
)

#: Columns no event determines. ``execution_logs.id`` is a serial: the order lines arrived in.
NOT_FROM_EVENTS: dict[str, frozenset[str]] = {"execution_logs": frozenset({"id"})}


@dataclass(frozen=True)
class Difference:
    table: str
    key: tuple[Any, ...]
    #: None: the whole row is on one side only.
    column: str | None
    live: Any
    rebuilt: Any

    def describe(self) -> str:
        where = f"{self.table} {_key_text(self.key)}"
        if self.column is None:
            side = "live" if self.live is not None else "rebuilt"
            return f"{where}: only in the {side} projection"
        return f"{where}: {self.column}: live {_short(self.live)}, rebuilt {_short(self.rebuilt)}"


@dataclass
class TableSummary:
    rows_live: int = 0
    rows_rebuilt: int = 0
    digest_live: str = ""
    digest_rebuilt: str = ""


@dataclass
class Comparison:
    tables: dict[str, TableSummary] = field(default_factory=dict)
    #: The first differences found (at most the limit asked for).
    differences: list[Difference] = field(default_factory=list)
    #: Rows that differ (or exist on one side only), all of them.
    differing_rows: int = 0

    @property
    def identical(self) -> bool:
        return self.differing_rows == 0

    @property
    def rows(self) -> int:
        return sum(t.rows_live for t in self.tables.values())


async def compare(
    live: Connection,
    live_schema: str,
    rebuilt: Connection,
    rebuilt_schema: str,
    *,
    limit: int = 20,
) -> Comparison:
    """Compare the projection tables of two schemas. Both connections must be inside a
    transaction (cursors need one); the live one should be a repeatable-read snapshot."""
    result = Comparison()
    for table in PROJECTION_TABLES:
        columns = await table_columns(live, live_schema, table)
        summary = result.tables[table.name] = TableSummary()
        await compare_rows(
            table,
            columns,
            dump(live, live_schema, table, columns),
            dump(rebuilt, rebuilt_schema, table, columns),
            summary=summary,
            result=result,
            limit=limit,
        )
    return result


async def table_columns(conn: Connection, schema: str, table: ProjectionTable) -> list[str]:
    """The compared columns of ``table``, key first, then the others by name."""
    names: list[str] = [
        r["column_name"]
        for r in await conn.fetch(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = $1 AND table_name = $2",
            schema,
            table.name,
        )
    ]
    if not names:
        raise LookupError(f"table {schema}.{table.name} does not exist")
    skipped = NOT_FROM_EVENTS.get(table.name, frozenset()) | set(table.key)
    return [*table.key, *sorted(n for n in names if n not in skipped)]


async def dump(
    conn: Connection, schema: str, table: ProjectionTable, columns: Sequence[str]
) -> AsyncIterator[tuple[Any, ...]]:
    """The canonical rows of one table: ``columns`` in order, sorted by the key."""
    types = {
        r["column_name"]: r["data_type"]
        for r in await conn.fetch(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = $1 AND table_name = $2",
            schema,
            table.name,
        )
    }
    select = ", ".join(f"{ident(c)}::text" if types[c] == "jsonb" else ident(c) for c in columns)
    order = ", ".join(
        f'{ident(c)} COLLATE "C"' if types[c] in {"text", "character varying"} else ident(c)
        for c in table.key
    )
    where = f" WHERE {table.where}" if table.where else ""
    query = f"SELECT {select} FROM {ident(schema)}.{ident(table.name)}{where} ORDER BY {order}"
    async for record in conn.cursor(query, prefetch=2000):
        yield tuple(record)


async def compare_rows(
    table: ProjectionTable,
    columns: list[str],
    live_rows: AsyncIterator[tuple[Any, ...]],
    rebuilt_rows: AsyncIterator[tuple[Any, ...]],
    *,
    summary: TableSummary,
    result: Comparison,
    limit: int,
) -> None:
    """Merge-join two key-ordered row streams; a key on one side only is a missing row."""
    width = len(table.key)
    digests = hashlib.sha256(), hashlib.sha256()
    live = await anext(live_rows, None)
    rebuilt = await anext(rebuilt_rows, None)
    while live is not None or rebuilt is not None:
        found: list[Difference] = []
        take_live = rebuilt is None or (live is not None and live[:width] <= rebuilt[:width])
        take_rebuilt = live is None or (rebuilt is not None and rebuilt[:width] <= live[:width])
        if take_live and take_rebuilt and live is not None and rebuilt is not None:
            found.extend(
                Difference(table.name, live[:width], column, a, b)
                for column, a, b in zip(columns, live, rebuilt, strict=True)
                if a != b
            )
        elif take_live and live is not None:
            found.append(Difference(table.name, live[:width], None, live, None))
        elif rebuilt is not None:
            found.append(Difference(table.name, rebuilt[:width], None, None, rebuilt))
        if take_live and live is not None:
            summary.rows_live += 1
            digests[0].update(_canonical(live))
            live = await anext(live_rows, None)
        if take_rebuilt and rebuilt is not None:
            summary.rows_rebuilt += 1
            digests[1].update(_canonical(rebuilt))
            rebuilt = await anext(rebuilt_rows, None)
        if found:
            result.differing_rows += 1
            result.differences.extend(found[: max(0, limit - len(result.differences))])
    summary.digest_live, summary.digest_rebuilt = (d.hexdigest() for d in digests)


_encoder = msgspec.json.Encoder()


def _canonical(row: tuple[Any, ...]) -> bytes:
    # One JSON line per row; datetimes in ISO 8601 with their (UTC) offset.
    return _encoder.encode([v.isoformat() if isinstance(v, datetime) else v for v in row]) + b"\n"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _key_text(key: tuple[Any, ...]) -> str:
    return "(" + ", ".join(str(part) for part in key) + ")"


def _short(value: Any, width: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."
