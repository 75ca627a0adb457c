"""An in-memory :class:`~nodedrop.platform.lease_store.LeaseStore`: keys expire ``ttl`` after
their last write on a clock the test moves, so lease expiry is tested without waiting."""

from __future__ import annotations

from dataclasses import dataclass

from nodedrop.platform.lease_store import LeaseGoneError, LeaseHeldError


class ManualClock:
    """Monotonic seconds that pass only when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class _Entry:
    value: bytes
    revision: int
    written_at: float


class MemoryLeaseStore:
    def __init__(self, ttl: float, clock: ManualClock) -> None:
        self.ttl = ttl
        self.clock = clock
        self._entries: dict[str, _Entry] = {}
        self._revision = 0

    def _live(self, key: str) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and self.clock() - entry.written_at >= self.ttl:
            del self._entries[key]
            return None
        return entry

    def _write(self, key: str, value: bytes) -> int:
        self._revision += 1
        self._entries[key] = _Entry(value, self._revision, self.clock())
        return self._revision

    async def put(self, key: str, value: bytes) -> int:
        return self._write(key, value)

    async def create(self, key: str, value: bytes) -> int:
        if self._live(key) is not None:
            raise LeaseHeldError(key)
        return self._write(key, value)

    async def renew(self, key: str, value: bytes, revision: int) -> int:
        entry = self._live(key)
        if entry is None or entry.revision != revision:
            raise LeaseGoneError(key)
        return self._write(key, value)

    async def release(self, key: str, value: bytes) -> None:
        entry = self._live(key)
        if entry is not None and entry.value == value:
            del self._entries[key]

    async def delete(self, key: str) -> None:
        self._entries.pop(key, None)

    async def live_suffixes(self, prefix: str, wait_s: float) -> list[str]:
        return sorted(
            key.rsplit(".", 1)[1]
            for key in list(self._entries)
            if key.startswith(f"{prefix}.")
            and key.count(".") == prefix.count(".") + 1
            and self._live(key) is not None
        )
