"""One partition's set of unfinished executions: kept in memory, snapshotted now and then,
rebuilt when the partition is taken over, from the snapshot and the stream stored after it.

A new owner of a partition must rebuild every unfinished execution of it, including those that
will get no new event on their own (waiting for a retry timer, or for a runner that died). This
set says which they are; their state is then folded from the stream. An execution is added
before its request is acknowledged, and removed after its end is recorded: both in memory only,
so the batch loop never waits on them.

Every ``snapshot_interval_s``, if the set changed, a background task stores a snapshot
(:mod:`nodedrop.scheduler.snapshot`): it FIRST reads the ack floor of the partition's scheduler
consumer, THEN copies the set. Every request at or below the floor was acknowledged, hence added
before (and is in the copy unless it finished); the requests above it are found at the next
takeover in the stream. Read the other way round, a request added and acknowledged between the
copy and the read of the floor would be in neither. A snapshot that fails to be stored is logged
and tried again at the next interval; the one before stays valid. One that finds the snapshot
written by another process means the partition was taken over: ``on_lost`` is called.

At takeover (:meth:`ActiveExecutions.open`): the snapshot, then every ``ExecutionRequested`` and
``ExecutionFinished`` of the partition stored after its floor (subjects only: the execution id
is in them) adds or removes executions. A crash loses nothing: what the snapshot lacks is in
that tail, and a request never processed is also redelivered by the consumer. Finished
executions still listed (their end recorded, the snapshot taken before they were removed) are
rebuilt, found finished, and removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from nodedrop.contracts.events import ExecutionFinished, ExecutionRequested
from nodedrop.platform.event_log import EventLog
from nodedrop.scheduler.snapshot import Snapshot, SnapshotError, with_tail
from nodedrop.scheduler.snapshot_store import SnapshotFencedError, SnapshotStore

log = logging.getLogger(__name__)

DEFAULT_SNAPSHOT_INTERVAL_S = 5.0
#: Between attempts to store the first snapshot of an upgraded (or damaged) store.
_FIRST_SNAPSHOT_RETRY_S = 1.0


class ActiveExecutions:
    def __init__(
        self,
        event_log: EventLog,
        store: SnapshotStore,
        *,
        partition: int,
        consumer: str,
        snapshot_interval_s: float = DEFAULT_SNAPSHOT_INTERVAL_S,
        on_lost: Callable[[], None] = lambda: None,
    ) -> None:
        self._log = event_log
        self._store = store
        self._partition = partition
        self._stream = event_log.layout.stream(partition)
        self._consumer = consumer
        self._interval_s = snapshot_interval_s
        self._on_lost = on_lost
        self._ids: set[str] = set()
        #: Counts changes to the set: a snapshot is written only if it moved since the last.
        self._version = 0
        self._stored_version = -1
        self._snapshots: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle
    async def open(self) -> None:
        """Rebuild the set from the stored snapshot and the stream after it, store a snapshot
        of it, and start storing one every ``snapshot_interval_s``. Raises
        :class:`SnapshotFencedError` if another process took the partition meanwhile."""
        floor = await self._ack_floor()
        base, stored = await self._stored_snapshot()
        requested = await self._log.executions_with(
            self._partition, ExecutionRequested, base.after_seq
        )
        finished = await self._log.executions_with(
            self._partition, ExecutionFinished, base.after_seq
        )
        self._ids = set(with_tail(base, requested, finished))
        log.info(
            "%s: unfinished executions: %d in the snapshot up to seq %d, %d requested and %d "
            "finished after it: %d",
            self._stream,
            len(base.executions),
            base.after_seq,
            len(requested),
            len(finished),
            len(self._ids),
        )
        # Complete up to the floor read before the tail: the floor now may count requests
        # that the previous owner, still stopping, acknowledged since.
        while not await self.snapshot(floor):
            if stored:
                break  # the stored one stays valid; the next interval tries again
            await asyncio.sleep(_FIRST_SNAPSHOT_RETRY_S)
        self._snapshots = asyncio.create_task(self._keep_snapshots(), name="active snapshots")

    async def close(self) -> None:
        """Stop storing snapshots. None is written here: the next start reads the tail after
        the last one, as after a crash. Stopping in the middle of a write is harmless (the head
        is written last)."""
        if self._snapshots is not None:
            self._snapshots.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._snapshots
            self._snapshots = None

    # ------------------------------------------------------------------ the set
    async def ids(self) -> list[str]:
        return list(self._ids)

    def add(self, execution_id: str) -> None:
        """Record ``execution_id`` as unfinished (in memory: call before acknowledging its
        request, so that a snapshot holds every request at or below the ack floor)."""
        if execution_id not in self._ids:
            self._ids.add(execution_id)
            self._version += 1

    def remove(self, execution_id: str) -> None:
        if execution_id in self._ids:
            self._ids.discard(execution_id)
            self._version += 1

    # ------------------------------------------------------------------ snapshots
    async def snapshot(self, floor: int | None = None) -> bool:
        """Store a snapshot of the set now (complete up to ``floor``, by default the ack floor
        read now); False (logged) if that failed. Raises :class:`SnapshotFencedError`."""
        try:
            if floor is None:
                floor = await self._ack_floor()  # before the copy: see the module's docstring
            version, executions = self._version, list(self._ids)
            await self._store.write(executions, floor)
        except SnapshotFencedError:
            raise
        except Exception:  # NATS away, a timeout: the previous snapshot stays valid
            log.warning(
                "storing the snapshot of %d unfinished executions failed; trying again in %.0f s",
                len(self._ids),
                self._interval_s,
                exc_info=True,
            )
            return False
        self._stored_version = version
        return True

    async def _keep_snapshots(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            if self._version != self._stored_version:
                try:
                    await self.snapshot()
                except SnapshotFencedError:
                    log.error("%s: snapshot written by another process: partition lost",
                              self._stream)  # fmt: skip
                    self._on_lost()
                    return

    async def _stored_snapshot(self) -> tuple[Snapshot, bool]:
        """The stored snapshot, and whether there was one (none: the whole partition is read)."""
        try:
            stored = await self._store.read()
        except SnapshotError:
            log.exception("the stored snapshot is unreadable: reading the whole stream instead")
            return Snapshot(frozenset(), 0), False
        if stored is None:
            return Snapshot(frozenset(), 0), False
        return stored, True

    async def _ack_floor(self) -> int:
        floor = await self._log.ack_floor(self._partition, self._consumer)
        if floor is None:
            raise LookupError(f"the consumer {self._consumer} of {self._stream} is gone")
        return floor
