"""An in-memory :class:`~nodedrop.platform.key_values.KeyValueStore`."""

from __future__ import annotations

from nodedrop.platform.key_values import Entry, RevisionMismatchError


class MemoryKeyValues:
    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}
        #: One sequence for the whole store, as a bucket's stream numbers its writes.
        self._revision = 0

    def _write(self, key: str, value: bytes) -> int:
        self._revision += 1
        self._entries[key] = Entry(value, self._revision)
        return self._revision

    async def get(self, key: str) -> Entry | None:
        return self._entries.get(key)

    async def put(self, key: str, value: bytes) -> int:
        return self._write(key, value)

    async def create(self, key: str, value: bytes) -> int:
        if key in self._entries:
            raise RevisionMismatchError(key)
        return self._write(key, value)

    async def update(self, key: str, value: bytes, last: int) -> int:
        entry = self._entries.get(key)
        if entry is None or entry.revision != last:
            raise RevisionMismatchError(key)
        return self._write(key, value)

    def keys(self) -> list[str]:
        return sorted(self._entries)
