"""Where partition leases are kept: the port :class:`~nodedrop.platform.leases.PartitionLeases`
works through, and its adapter over a NATS key-value bucket.

A store keeps keys that expire ``ttl`` after they were last written. Taking a key is a create
that fails while someone holds it; renewing is a compare-and-swap on the revision the holder
last wrote, which fails once the key expired or someone else wrote it. An in-memory store with
the same behaviour, driven by a clock the test moves, is
:class:`nodedrop.platform.testing.leases.MemoryLeaseStore`.
"""

from __future__ import annotations

import contextlib
from typing import Protocol

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from nodedrop.contracts import subjects
from nodedrop.platform.buckets import open_key_value


class LeaseHeldError(Exception):
    """The key exists: another member holds the lease."""


class LeaseGoneError(Exception):
    """The key expired, or was written by someone else since the revision given."""


class LeaseStore(Protocol):
    async def put(self, key: str, value: bytes) -> int:
        """Write ``key`` whatever it holds (announcements); its new revision."""
        ...

    async def create(self, key: str, value: bytes) -> int:
        """Write ``key`` if it does not exist; its revision. :class:`LeaseHeldError` otherwise."""
        ...

    async def renew(self, key: str, value: bytes, revision: int) -> int:
        """Write ``key`` if ``revision`` is still its last one; the new revision.
        :class:`LeaseGoneError` otherwise."""
        ...

    async def release(self, key: str, value: bytes) -> None:
        """Delete ``key`` if it still holds ``value`` (a hand-back never deletes a lease that
        another member took meanwhile)."""
        ...

    async def delete(self, key: str) -> None: ...

    async def live_suffixes(self, prefix: str, wait_s: float) -> list[str]:
        """The last dot-separated part of every unexpired key under ``prefix.``, e.g. the
        member ids of ``scheduler.member``."""
        ...


class KeyValueLeaseStore:
    """:class:`LeaseStore` over a NATS key-value bucket whose ``max_age`` is the lease time."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def put(self, key: str, value: bytes) -> int:
        return await self.kv.put(key, value)

    async def create(self, key: str, value: bytes) -> int:
        try:
            return await self.kv.create(key, value)
        except KeyWrongLastSequenceError as held:
            raise LeaseHeldError(key) from held

    async def renew(self, key: str, value: bytes, revision: int) -> int:
        try:
            return await self.kv.update(key, value, last=revision)
        except (KeyWrongLastSequenceError, KeyNotFoundError) as gone:
            raise LeaseGoneError(key) from gone

    async def release(self, key: str, value: bytes) -> None:
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:
            return
        if entry.value == value and entry.revision is not None:
            # Taken meanwhile: it is the new holder's now.
            with contextlib.suppress(KeyWrongLastSequenceError):
                await self.kv.delete(key, last=entry.revision)

    async def delete(self, key: str) -> None:
        await self.kv.delete(key)

    async def live_suffixes(self, prefix: str, wait_s: float) -> list[str]:
        # nats-py's ``keys`` ignores a wildcard filter: a watch of the keys, up to what is stored.
        watcher = await self.kv.watch(f"{prefix}.*", ignore_deletes=True, meta_only=True)
        found: set[str] = set()
        try:
            # None marks the end of what is stored (nats-py: untyped)
            while (entry := await watcher.updates(wait_s)) is not None:  # type: ignore[no-untyped-call]
                found.add(entry.key.rsplit(".", 1)[1])
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]  # nats-py: untyped
        return sorted(found)


async def open_leases(
    js: JetStreamContext, lease_s: float, replicas: int = 1
) -> KeyValueLeaseStore:
    """The leases' bucket, created on first use with ``lease_s`` as every key's lifetime."""
    kv, _ = await open_key_value(
        js,
        KeyValueConfig(
            bucket=subjects.LEASES_BUCKET,
            history=1,
            ttl=lease_s,
            storage=StorageType.FILE,
            replicas=replicas,
            description="nodedrop: which process owns which partition",
        ),
    )
    return KeyValueLeaseStore(kv)
