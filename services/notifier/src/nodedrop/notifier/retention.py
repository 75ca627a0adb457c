"""Retention: removing executions that finished long ago, from the stream, the projection and
the data store (docs/operations.md, "Retention").

Only the stream decides what may go: an execution is pruned when its ``ExecutionFinished`` is in
the stream with a time before the cutoff. The projection is never trusted alone for "finished",
and an execution without ``ExecutionFinished`` (running, waiting, queued, or whose history is
incomplete) is never touched, however old.

For each batch of executions, in this order:

1. their projection rows (every projection table), in one transaction;
2. their objects in the data bucket (names start with ``<execution_id>/``);
3. their events, with one subject-filtered purge per execution (``ExecutionFinished`` goes with
   the rest, atomically).

The stream goes last because it is what tells a later run what is left to do: a run interrupted
anywhere is finished by the next one, and every step is idempotent. An execution is pruned only
once the projector has passed its ``ExecutionFinished`` (checkpoint), so the projector cannot
write its rows back after they were deleted, and a rebuild from the pruned stream still matches
the projection.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.object_store import ObjectStore

from nodedrop.contracts import codec, subjects
from nodedrop.contracts.events import ExecutionFinished
from nodedrop.contracts.routing import Layout, events_of_type, execution_subject
from nodedrop.notifier.store import checkpoint_name
from nodedrop.platform.history import read_batches

log = logging.getLogger(__name__)

#: How far out of time order ``ExecutionFinished`` events may be stored (clock skew between
#: scheduler hosts): the scan stops at the first one this much younger than the cutoff.
CLOCK_SKEW = timedelta(hours=1)
#: Executions per step: one transaction of row deletes, then their objects, then their purges.
CHUNK = 200

#: Every projection table (canonical.PROJECTION_TABLES but the checkpoint).
_PROJECTION_DELETES = (
    "DELETE FROM execution_logs WHERE execution_id = ANY($1::text[])",
    "DELETE FROM node_executions WHERE execution_id = ANY($1::text[])",
    "DELETE FROM executions WHERE id = ANY($1::text[])",
)
_PROJECTION_COUNTS = (
    "SELECT (SELECT count(*) FROM execution_logs WHERE execution_id = ANY($1::text[])) "
    "+ (SELECT count(*) FROM node_executions WHERE execution_id = ANY($1::text[])) "
    "+ (SELECT count(*) FROM executions WHERE id = ANY($1::text[]))"
)
# Taken like the projector takes it, so a prune and a projected batch never interleave.
_LOCK_CHECKPOINT = "SELECT last_seq FROM projection_checkpoints WHERE name = $1 FOR UPDATE"
_READ_CHECKPOINT = "SELECT last_seq FROM projection_checkpoints WHERE name = $1"


class PurgeDeniedError(RuntimeError):
    """The events stream was created with purges denied, which NATS can never lift."""


@dataclass(frozen=True)
class RetentionSettings:
    """How old a finished execution may get (days; 0 keeps everything forever) and how often
    the notifier prunes (``NODEDROP_RETENTION_DAYS``, ``NODEDROP_PRUNE_INTERVAL_S``)."""

    days: float = 30.0
    interval_s: float = 3600.0

    @property
    def enabled(self) -> bool:
        return self.days > 0


@dataclass(frozen=True)
class Finished:
    execution_id: str
    seq: int
    time: datetime


@dataclass
class PruneReport:
    cutoff: datetime
    dry_run: bool
    #: The executions removed (or, in a dry run, that would be).
    executions: list[str] = field(default_factory=list)
    events: int = 0
    rows: int = 0
    objects: int = 0
    #: Finished before the cutoff but not projected yet: left for a later run.
    deferred: int = 0


async def prune(
    js: JetStreamContext,
    pool: Any,
    cutoff: datetime,
    *,
    dry_run: bool = False,
    limit: int | None = None,
    layout: Layout | None = None,
    partitions: list[int] | None = None,
) -> PruneReport:
    """Remove every execution that finished before ``cutoff`` (at most ``limit`` of them), or
    in a dry run only count what would go. ``pool`` is an asyncpg pool on the projection.
    Partition by partition (``partitions``, by default all): an execution goes once its
    partition's projection is past its end."""
    layout = layout or Layout()
    report = PruneReport(cutoff=cutoff, dry_run=dry_run)
    if not dry_run:
        for stream in layout.streams:
            if (await js.stream_info(stream)).config.deny_purge:
                raise PurgeDeniedError(
                    f"stream {stream} was created with purges denied, and NATS cannot "
                    "lift that: nothing can be pruned (docs/operations.md, Retention)"
                )
    for partition, stream in enumerate(layout.streams):
        if partitions is not None and partition not in partitions:
            continue
        left = None if limit is None else limit - len(report.executions)
        if left is not None and left <= 0:
            break
        name = checkpoint_name(partition)
        async with pool.acquire() as conn:
            checkpoint: int = await conn.fetchval(_READ_CHECKPOINT, name) or 0
        found = await finished_before(js, cutoff, limit=left, stream=stream)
        ready = [f.execution_id for f in found if f.seq <= checkpoint]
        report.deferred += len(found) - len(ready)
        objects = await _objects_by_execution(js) if ready else {}
        for start in range(0, len(ready), CHUNK):
            chunk = ready[start : start + CHUNK]
            await _prune_chunk(js, pool, chunk, objects, report, stream=stream, checkpoint=name)
            report.executions.extend(chunk)
    return report


async def finished_before(
    js: JetStreamContext, cutoff: datetime, *, stream: str, limit: int | None = None
) -> list[Finished]:
    """The executions whose ``ExecutionFinished`` in ``stream`` has a time before ``cutoff``,
    oldest first."""
    found: list[Finished] = []
    stop_at = cutoff + CLOCK_SKEW
    batches = read_batches(
        js,
        stream=stream,
        filter_subject=events_of_type(ExecutionFinished),
        description="nodedrop retention: finished executions",
    )
    async with contextlib.aclosing(batches):
        async for msgs in batches:
            for msg in msgs:
                try:
                    event = codec.decode(msg.data)
                except codec.EventDecodeError:
                    continue  # Not a finish we can read: the execution is kept.
                if not isinstance(event, ExecutionFinished) or not _safe_id(event.execution_id):
                    continue
                if _utc(event.time) > stop_at:
                    return found  # Recorded in time order: all later ones finished later.
                if _utc(event.time) < cutoff:
                    seq = msg.metadata.sequence.stream
                    found.append(Finished(event.execution_id, seq, _utc(event.time)))
                    if limit is not None and len(found) >= limit:
                        return found
    return found


async def _prune_chunk(
    js: JetStreamContext,
    pool: Any,
    execution_ids: list[str],
    objects: dict[str, list[str]],
    report: PruneReport,
    *,
    stream: str,
    checkpoint: str,
) -> None:
    """Rows, then objects, then events: the stream last, so that an interrupted run is found
    again by the next. A dry run only counts."""
    names = [name for execution_id in execution_ids for name in objects.get(execution_id, [])]
    report.objects += len(names)
    if report.dry_run:
        async with pool.acquire() as conn:
            report.rows += int(await conn.fetchval(_PROJECTION_COUNTS, execution_ids))
        for execution_id in execution_ids:
            report.events += await _event_count(js, stream, execution_id)
        return
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(_LOCK_CHECKPOINT, checkpoint)
        for statement in _PROJECTION_DELETES:
            status: str = await conn.execute(statement, execution_ids)
            report.rows += int(status.rsplit(" ", 1)[1])
    if names:
        bucket = await js.object_store(subjects.DATA_BUCKET)
        for name in names:
            await _delete_object(js, bucket, name)
    for execution_id in execution_ids:
        report.events += await _event_count(js, stream, execution_id)
        await js.purge_stream(stream, subject=execution_subject(execution_id))


async def _event_count(js: JetStreamContext, stream: str, execution_id: str) -> int:
    info = await js.stream_info(stream, subjects_filter=execution_subject(execution_id))
    return sum((info.state.subjects or {}).values())


async def _objects_by_execution(js: JetStreamContext) -> dict[str, list[str]]:
    """The data bucket's object names, by the execution they belong to (the first part of a
    name is the execution id: ``<execution>/<node>/<attempt>/<port>``)."""
    try:
        bucket = await js.object_store(subjects.DATA_BUCKET)
        # Tombstones too: one left by an interrupted run is removed with the rest.
        infos = await bucket.list(ignore_deletes=False)
    except (BucketNotFoundError, NotFoundError):  # no bucket, or no object in it
        return {}
    by_execution: dict[str, list[str]] = {}
    for info in infos:
        if info.name:
            by_execution.setdefault(info.name.split("/", 1)[0], []).append(info.name)
    return by_execution


async def _delete_object(js: JetStreamContext, bucket: ObjectStore, name: str) -> None:
    with contextlib.suppress(NotFoundError):  # gone already (a run interrupted after it)
        await bucket.delete(name)
    # delete() leaves a tombstone naming the object (and so the execution): drop it too.
    meta = base64.urlsafe_b64encode(name.encode()).decode()
    await js.purge_stream(
        f"OBJ_{subjects.DATA_BUCKET}", subject=f"$O.{subjects.DATA_BUCKET}.M.{meta}"
    )


def _safe_id(execution_id: str) -> bool:
    # A subject token: a wildcard or a dot would widen the purge to other executions.
    return bool(execution_id) and not any(c in execution_id for c in ".*> \t\r\n")


def _utc(time: datetime) -> datetime:
    return time.replace(tzinfo=UTC) if time.tzinfo is None else time


class Pruner:
    """The notifier's periodic pruning job: every ``interval_s``, what finished more than
    ``days`` ago goes. Does nothing (but wait) when retention is off."""

    def __init__(
        self,
        js: JetStreamContext,
        pool: Any,
        settings: RetentionSettings,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        layout: Layout | None = None,
        partitions: Callable[[], list[int]] | None = None,
    ) -> None:
        self._js = js
        self._layout = layout
        #: The partitions to prune (those this notifier projects); None: all.
        self._partitions = partitions
        self._pool = pool
        self._settings = settings
        self._clock = clock
        #: The last completed run's report (for tests and logs).
        self.last: PruneReport | None = None

    async def run(self, stop: asyncio.Event) -> None:
        if not self._settings.enabled:
            log.info("retention is off (NODEDROP_RETENTION_DAYS=0): events are kept forever")
            await stop.wait()
            return
        log.info(
            "pruning executions finished more than %g days ago, every %g s",
            self._settings.days,
            self._settings.interval_s,
        )
        while not stop.is_set():
            await self.run_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._settings.interval_s)

    async def run_once(self) -> PruneReport | None:
        """One pruning pass; failures are logged (the next pass retries), never raised."""
        cutoff = self._clock() - timedelta(days=self._settings.days)
        try:
            report = await prune(
                self._js,
                self._pool,
                cutoff,
                layout=self._layout,
                partitions=None if self._partitions is None else self._partitions(),
            )
        except PurgeDeniedError as error:
            log.error("retention: %s", error)
            return None
        except Exception:
            log.exception("retention: pruning failed; the next run finishes the job")
            return None
        self.last = report
        if report.executions or report.deferred:
            log.info(
                "retention: pruned %d executions finished before %s (%d events, %d rows, "
                "%d objects); %d left until projected",
                len(report.executions),
                cutoff.isoformat(),
                report.events,
                report.rows,
                report.objects,
                report.deferred,
            )
        return report


def describe(report: PruneReport) -> str:
    """One line for operators, e.g. ``pruned 12 executions finished before ...``."""
    verb = "would prune" if report.dry_run else "pruned"
    text = (
        f"{verb} {len(report.executions)} executions finished before "
        f"{report.cutoff.isoformat(timespec='seconds')}: {report.events} events, "
        f"{report.rows} projection rows, {report.objects} stored objects"
    )
    if report.deferred:
        text += f" ({report.deferred} more finished but not projected yet: left for a later run)"
    return text
