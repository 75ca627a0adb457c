"""Where the scheduler's snapshot is kept: its key-value bucket, one key for the head and one per
chunk (:mod:`nodedrop.scheduler.snapshot`), and the keys of the former layout (one per
unfinished execution), read once on an upgrade and then purged.

Chunks past the count a head names (left by an earlier, larger snapshot in the same slot) are
never read and are overwritten when a snapshot grows again: the bucket holds at most twice the
largest snapshot. Each key keeps one revision (``history=1``)."""

from __future__ import annotations

import asyncio
import logging

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyNotFoundError
from nats.js.kv import KeyValue

from nodedrop.contracts import subjects
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

_LISTING_TIMEOUT_S = 10.0


class SnapshotStore:
    def __init__(self, js: JetStreamContext) -> None:
        self._js = js
        self._kv: KeyValue | None = None

    async def open(self) -> bool:
        """Open the bucket, creating it if missing. True if it existed (a deployment that ran
        before, perhaps with the former layout)."""
        try:
            self._kv = await self._js.key_value(subjects.SCHEDULER_STATE_BUCKET)
            return True
        except BucketNotFoundError:
            self._kv = await self._js.create_key_value(
                KeyValueConfig(
                    bucket=subjects.SCHEDULER_STATE_BUCKET,
                    history=1,
                    storage=StorageType.FILE,
                    description="nodedrop scheduler: snapshot of the unfinished executions",
                )
            )
            return False

    async def read(self) -> Snapshot | None:
        """The stored snapshot; None if none was written. Raises :class:`SnapshotError` if it
        cannot be read back."""
        head = await self._head()
        if head is None:
            return None
        kv = self._bucket()
        chunks = []
        for index in range(head.chunks):
            try:
                entry = await kv.get(subjects.snapshot_chunk_key(head.slot, index))
            except KeyNotFoundError as error:
                raise SnapshotError(f"chunk {index} of the snapshot is missing") from error
            chunks.append(entry.value or b"")
        return decode(head, chunks)

    async def write(self, executions: list[str], after_seq: int) -> Head:
        """Store a snapshot: its chunks in the slot the stored head does not name (read now, not
        remembered: a write that failed may have stored its head after all), then its head."""
        try:
            current = await self._head()
        except SnapshotError:
            current = None  # unreadable: nothing worth keeping
        slot = other_slot(current.slot if current is not None else None)
        head, head_bytes, chunks = await asyncio.to_thread(encode, executions, after_seq, slot)
        kv = self._bucket()
        for index, chunk in enumerate(chunks):
            await kv.put(subjects.snapshot_chunk_key(slot, index), chunk)
        await kv.put(subjects.SNAPSHOT_HEAD_KEY, head_bytes)
        return head

    async def former_keys(self) -> list[str]:
        """The executions listed in the former layout (one key each)."""
        watcher = await self._bucket().watch(
            subjects.ACTIVE_KEYS, ignore_deletes=True, meta_only=True
        )
        ids = []
        try:
            # None marks the end of what is stored (nats-py: untyped)
            while (entry := await watcher.updates(_LISTING_TIMEOUT_S)) is not None:  # type: ignore[no-untyped-call]
                ids.append(entry.key.rsplit(".", 1)[1])
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]  # nats-py: untyped
        return ids

    async def purge_former_keys(self) -> None:
        """Remove every key of the former layout, and the deletion markers it left (one per
        execution that ever finished), in one request."""
        stream = f"KV_{subjects.SCHEDULER_STATE_BUCKET}"
        await self._js.purge_stream(stream, subject=subjects.active_keys_subject())

    async def _head(self) -> Head | None:
        try:
            entry = await self._bucket().get(subjects.SNAPSHOT_HEAD_KEY)
        except KeyNotFoundError:
            return None
        return parse_head(entry.value or b"")

    def _bucket(self) -> KeyValue:
        if self._kv is None:
            raise RuntimeError("SnapshotStore.open() was not called")
        return self._kv
