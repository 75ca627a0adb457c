"""Keys with revisions, written by compare-and-swap: the port the scheduler's snapshots and
concurrency slots are kept through, and its adapter over a NATS key-value bucket.

Every write gives the key a new revision; ``create`` fails if the key exists and ``update`` if
its last revision is not the one given, so two writers never both win. An in-memory store with
the same behaviour is :class:`nodedrop.platform.testing.key_values.MemoryKeyValues`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue


class RevisionMismatchError(Exception):
    """``create`` of a key that exists, or ``update`` at a revision that is not its last."""


@dataclass(frozen=True)
class Entry:
    value: bytes
    revision: int


class KeyValueStore(Protocol):
    async def get(self, key: str) -> Entry | None:
        """The key's value and revision; None if it does not exist (or was deleted)."""
        ...

    async def put(self, key: str, value: bytes) -> int:
        """Write ``key`` whatever it holds; its new revision."""
        ...

    async def create(self, key: str, value: bytes) -> int:
        """Write ``key`` if it does not exist; :class:`RevisionMismatchError` otherwise."""
        ...

    async def update(self, key: str, value: bytes, last: int) -> int:
        """Write ``key`` if ``last`` is its last revision; :class:`RevisionMismatchError`
        otherwise."""
        ...


class NatsKeyValues:
    """:class:`KeyValueStore` over a NATS key-value bucket."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def get(self, key: str) -> Entry | None:
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:
            return None
        assert entry.revision is not None
        return Entry(entry.value or b"", entry.revision)

    async def put(self, key: str, value: bytes) -> int:
        return await self.kv.put(key, value)

    async def create(self, key: str, value: bytes) -> int:
        try:
            return await self.kv.create(key, value)
        except KeyWrongLastSequenceError as exists:
            raise RevisionMismatchError(key) from exists

    async def update(self, key: str, value: bytes, last: int) -> int:
        try:
            return await self.kv.update(key, value, last=last)
        except KeyWrongLastSequenceError as moved:
            raise RevisionMismatchError(key) from moved
