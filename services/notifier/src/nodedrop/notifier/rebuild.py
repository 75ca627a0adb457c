"""Rebuild the projection from the stream beside the live one, and compare them.

The stream is the source of truth and the projection a fold of it (:mod:`projection`), so folding
the whole stream again into empty tables must give the live rows exactly. This is the check that
nothing in the projection came from elsewhere (the clock, arrival order, a manual edit, a bug):

1. A fresh schema ``rebuild_<time>_<random>`` gets empty copies of the projection tables.
2. Inside one repeatable-read snapshot of the live projection, its checkpoint ``C`` is read.
3. Every event of the stream up to ``C`` is replayed, in order, through the notifier's own
   :class:`ProjectionStore` (same fold, same SQL) into the fresh schema, whose checkpoint
   becomes ``C``.
4. The two are compared (:mod:`canonical`) against that same snapshot, so a notifier projecting
   meanwhile changes nothing in the comparison.
5. The fresh schema is dropped, unless asked to keep it.

The live projection is only read. Replay uses an ephemeral in-memory consumer with no acks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information

from nodedrop.contracts import codec
from nodedrop.contracts.events import AnyEvent
from nodedrop.notifier.canonical import PROJECTION_TABLES, Comparison, compare, ident
from nodedrop.notifier.consumer import Projection
from nodedrop.notifier.store import ProjectionStore, asyncpg_dsn, checkpoint_name
from nodedrop.platform.event_log import ProjectionLog, StoredMessage
from nodedrop.platform.history import IncompleteReadError

log = logging.getLogger(__name__)

SCHEMA_PREFIX = "rebuild_"


class IncompleteReplayError(RuntimeError):
    """The stream could not be read to the live checkpoint: nothing was compared (a comparison
    with a partial rebuild would name rows that are right as different)."""

    def __init__(self, stream: str, last_seq: int, through_seq: int, events: int, why: str):
        super().__init__(
            f"could not read all of {stream}: got to sequence {last_seq} of {through_seq} "
            f"({events} events replayed), then {why}; nothing was compared"
        )
        self.stream = stream
        self.last_seq = last_seq
        self.through_seq = through_seq
        self.events = events


@dataclass(frozen=True)
class RebuildReport:
    schema: str
    #: The live checkpoints the rebuild replayed up to, added over the partitions.
    through_seq: int
    events: int
    executions: int
    comparison: Comparison
    kept: bool


async def rebuild_and_compare(
    events_log: ProjectionLog,
    database_url: str,
    *,
    keep: bool = False,
    batch_size: int = 1000,
    max_differences: int = 20,
) -> RebuildReport:
    """Rebuild into a fresh schema and compare with the live projection (see the module), from
    the partitions of ``events_log``'s layout."""
    layout = events_log.layout
    dsn = asyncpg_dsn(database_url)
    live = await asyncpg.connect(dsn)
    schema = new_schema_name()
    created = False
    try:
        live_schema: str = await live.fetchval("SELECT current_schema()")
        await create_projection_schema(live, live_schema, schema)
        created = True
        rebuilt_pool = await asyncpg.create_pool(
            dsn, min_size=1, max_size=2, server_settings={"search_path": schema}
        )
        try:
            async with live.transaction(isolation="repeatable_read", readonly=True):
                events = 0
                checkpoints = 0
                for partition in range(layout.partitions):
                    name = checkpoint_name(partition)
                    checkpoint = await live.fetchval(
                        f"SELECT last_seq FROM {ident(live_schema)}.projection_checkpoints "
                        "WHERE name = $1",
                        name,
                    )
                    if checkpoint is None:
                        continue
                    checkpoints += checkpoint
                    store = ProjectionStore(rebuilt_pool, name)
                    events += await replay(
                        events_log,
                        store,
                        partition=partition,
                        through_seq=checkpoint,
                        batch_size=batch_size,
                    )
                    # Exactly the live checkpoint, even if its last events were pruned since.
                    await store.apply([], checkpoint)
                async with rebuilt_pool.acquire() as rebuilt, rebuilt.transaction():
                    comparison = await compare(
                        live, live_schema, rebuilt, schema, limit=max_differences
                    )
                executions = comparison.tables["executions"].rows_live
        finally:
            await rebuilt_pool.close()
    finally:
        if created and not keep:
            await live.execute(f"DROP SCHEMA IF EXISTS {ident(schema)} CASCADE")
        await live.close()
    return RebuildReport(
        schema=schema,
        through_seq=checkpoints,
        events=events,
        executions=executions,
        comparison=comparison,
        kept=created and keep,
    )


def new_schema_name() -> str:
    # The clock names the schema only; nothing in it comes from the clock.
    stamp = datetime.now(UTC).strftime("%Y%m%d_%H%M%S")
    return f"{SCHEMA_PREFIX}{stamp}_{secrets.token_hex(3)}"


async def create_projection_schema(conn: Any, live_schema: str, schema: str) -> None:
    """``schema`` with empty copies of the projection tables: same columns, constraints and
    indexes. A serial column gets an identity of its own, so the copy never draws numbers from
    the live table's sequence."""
    async with conn.transaction():
        await conn.execute(f"CREATE SCHEMA {ident(schema)}")
        for table in PROJECTION_TABLES:
            source = f"{ident(live_schema)}.{ident(table.name)}"
            target = f"{ident(schema)}.{ident(table.name)}"
            await conn.execute(f"CREATE TABLE {target} (LIKE {source} INCLUDING ALL)")
            serials = await conn.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 "
                "AND table_name = $2 AND column_default LIKE 'nextval(%'",
                schema,
                table.name,
            )
            for record in serials:
                column = ident(record["column_name"])
                await conn.execute(
                    f"ALTER TABLE {target} ALTER COLUMN {column} DROP DEFAULT, "
                    f"ALTER COLUMN {column} ADD GENERATED BY DEFAULT AS IDENTITY"
                )


async def drop_rebuilt_schemas(database_url: str) -> list[str]:
    """Drop every schema a kept rebuild left behind; returns their names."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        names: list[str] = [
            r["nspname"]
            for r in await conn.fetch(
                "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)", SCHEMA_PREFIX
            )
        ]
        for name in names:
            await conn.execute(f"DROP SCHEMA {ident(name)} CASCADE")
        return names
    finally:
        await conn.close()


async def replay(
    events_log: ProjectionLog,
    store: Projection,
    *,
    partition: int,
    through_seq: int,
    after_seq: int = 0,
    batch_size: int = 1000,
) -> int:
    """Project every event of ``partition`` in ``(after_seq, through_seq]`` into ``store``, in
    stream order and in batches, as the live projector does. Returns the events applied.

    Sequences missing from the stream (pruned executions, or aged out) are simply not there; a
    message that does not decode is skipped, as the live projector skips it. The next batch is
    read while one is written. A stream that cannot be read to ``through_seq`` (the connection
    lost for good, a server error) raises :class:`IncompleteReplayError`."""
    if through_seq <= after_seq:
        return 0
    # (events, last sequence) per batch; None when the stretch is read.
    batches: asyncio.Queue[tuple[list[tuple[int, AnyEvent]], int] | None] = asyncio.Queue(2)

    async def read() -> None:
        msgs = events_log.read_partition(partition, after_seq, batch_size)
        async with contextlib.aclosing(msgs):  # type: ignore[type-var]  # an async generator
            async for batch in msgs:
                events, last = _decoded(batch, through_seq)
                if last:
                    await batches.put((events, last))
                if batch[-1].seq >= through_seq:
                    break
        await batches.put(None)

    reader = asyncio.create_task(read())
    applied = 0
    last = after_seq
    try:
        while (item := await _next(batches, reader)) is not None:
            events, last = item
            applied += await store.apply(events, last)
    except (IncompleteReadError, TimeoutError, OSError) as error:
        why = str(error) or type(error).__name__
        stream = events_log.layout.stream(partition)
        raise IncompleteReplayError(stream, last, through_seq, applied, why) from error
    finally:
        reader.cancel()
        # Its failure, if any, was raised above (by _next).
        await asyncio.gather(reader, return_exceptions=True)
    return applied


async def _next(
    queue: asyncio.Queue[tuple[list[tuple[int, AnyEvent]], int] | None], reader: asyncio.Task[None]
) -> tuple[list[tuple[int, AnyEvent]], int] | None:
    """The next batch, or the reader's failure raised here."""
    getting = asyncio.ensure_future(queue.get())
    await asyncio.wait({getting, reader}, return_when=asyncio.FIRST_COMPLETED)
    if getting.done():
        return getting.result()
    getting.cancel()
    reader.result()  # raises what the reader raised
    raise RuntimeError("the stream reader stopped early")  # pragma: no cover


def _decoded(
    msgs: Sequence[StoredMessage], through_seq: int
) -> tuple[list[tuple[int, AnyEvent]], int]:
    """The decodable events of ``msgs`` up to ``through_seq``, and the last sequence taken."""
    events: list[tuple[int, AnyEvent]] = []
    last = 0
    for msg in msgs:
        seq = msg.seq
        if seq > through_seq:
            break
        last = seq
        try:
            events.append((seq, codec.decode(msg.data)))
        except codec.EventDecodeError as error:
            log.error("event %d on %s does not decode, skipped: %s", seq, msg.subject, error)
    return events, last
