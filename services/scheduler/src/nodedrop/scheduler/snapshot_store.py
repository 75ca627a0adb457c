"""Where a partition's snapshot is kept: the scheduler's key-value bucket, one key for the head
and one per chunk (:mod:`nodedrop.scheduler.snapshot`).

Only the partition's owner writes its snapshot. Chunks go to keys of the writer's own
(``<owner>-a`` / ``<owner>-b``), and the head is replaced only at the revision this writer read
or wrote last: a writer that lost the partition finds the head moved on and gets
:class:`SnapshotFencedError`, and nothing it wrote is named by any head. Chunks past the count a
head names (left by an earlier, larger snapshot) are never read. Each key keeps one revision
(``history=1``)."""

from __future__ import annotations

import asyncio
import logging

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType

from nodedrop.contracts import subjects
from nodedrop.platform.buckets import open_key_value
from nodedrop.platform.key_values import KeyValueStore, NatsKeyValues, RevisionMismatchError
from nodedrop.scheduler.snapshot import (
    Head,
    Snapshot,
    SnapshotError,
    decode,
    encode,
    other_slot,
    parse_head,
)

log = logging.getLogger(__name__)


class SnapshotFencedError(RuntimeError):
    """Another process wrote the partition's snapshot since this one last did."""


async def open_bucket(js: JetStreamContext, replicas: int = 1) -> tuple[NatsKeyValues, bool]:
    """The scheduler's bucket, created if missing; and whether it existed."""
    kv, existed = await open_key_value(
        js,
        KeyValueConfig(
            bucket=subjects.SCHEDULER_STATE_BUCKET,
            history=1,
            storage=StorageType.FILE,
            replicas=replicas,
            description="nodedrop scheduler: snapshots of the unfinished executions",
        ),
    )
    return NatsKeyValues(kv), existed


class SnapshotStore:
    def __init__(self, kv: KeyValueStore, partition: int, owner: str) -> None:
        self._kv = kv
        self._partition = partition
        self._owner = owner
        self._head_key = subjects.snapshot_head_key(partition)
        #: The head's revision as this writer last read or wrote it (0: no head).
        self._revision = 0
        self._slot: str | None = None

    async def read(self) -> Snapshot | None:
        """The stored snapshot; None if none was written. Raises :class:`SnapshotError` if it
        cannot be read back. Remembers the head's revision: the next write replaces only it."""
        head = await self._head()
        if head is None:
            return None
        chunks = []
        for index in range(head.chunks):
            key = subjects.snapshot_chunk_key(self._partition, head.slot, index)
            entry = await self._kv.get(key)
            if entry is None:
                raise SnapshotError(f"chunk {index} of the snapshot is missing")
            chunks.append(entry.value)
        return decode(head, chunks)

    async def write(self, executions: list[str], after_seq: int) -> Head:
        """Store a snapshot: its chunks in this writer's slot that its head does not name,
        then the head, at the revision this writer knows. Raises :class:`SnapshotFencedError`
        if another writer replaced the head since."""
        slot = other_slot(self._slot, self._owner)
        head, head_bytes, chunks = await asyncio.to_thread(encode, executions, after_seq, slot)
        for index, chunk in enumerate(chunks):
            await self._kv.put(subjects.snapshot_chunk_key(self._partition, slot, index), chunk)
        try:
            if self._revision:
                revision = await self._kv.update(self._head_key, head_bytes, last=self._revision)
            else:
                revision = await self._kv.create(self._head_key, head_bytes)
        except RevisionMismatchError as error:
            # Our own earlier write may have landed unacknowledged: then the head is ours.
            current = await self._head_entry()
            if current is None or not self._is_mine(current[0]):
                raise SnapshotFencedError(
                    f"the snapshot of partition {self._partition} was written by another process"
                ) from error
            self._revision = current[1]
            return await self.write(executions, after_seq)
        self._revision, self._slot = revision, slot
        return head

    def _is_mine(self, head: Head) -> bool:
        return head.slot.startswith(f"{self._owner}-")

    async def _head(self) -> Head | None:
        entry = await self._head_entry()
        if entry is None:
            self._revision, self._slot = 0, None
            return None
        head, self._revision = entry
        self._slot = head.slot
        return head

    async def _head_entry(self) -> tuple[Head, int] | None:
        entry = await self._kv.get(self._head_key)
        if entry is None:
            return None
        try:
            return parse_head(entry.value), entry.revision
        except SnapshotError:
            self._revision = entry.revision  # unreadable: replaced by the next write
            raise
