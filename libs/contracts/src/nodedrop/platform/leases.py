"""Sharing partitions among the processes of one service by lease, kept in a
:class:`~nodedrop.platform.lease_store.LeaseStore` (a NATS key-value bucket in the services).

Each process of a group (``scheduler``, ``notifier``) is a member: it puts
``<group>.member.<id>`` every third of the lease time, and holds the partitions it owns as keys
``<group>.<partition>`` whose value is its id. The bucket's ``max_age`` is the lease time: a key
not renewed in time disappears, and another member may create it. Renewal is a compare-and-swap
on the revision this member last wrote: once another member holds the key, it fails, and the
partition is given up at once.

Balance: with ``n`` live members, the member in position ``i`` (members sorted by id) aims for
``P // n`` partitions, one more if ``i < P % n``. Above its share it hands partitions back (the
service finishes with a partition first, then its key is deleted); below it, it creates the keys
of free partitions. Joining and leaving members thus move partitions within a few rounds; a
member stopping gracefully hands all of them back at once, and one that dies loses them when
its leases expire.

A lease says who should decide; it is not what keeps two owners apart. Clocks drift and a
process can be paused past its lease (a long GC, SIGSTOP, a VM migration), so each service also
fences what it writes: the scheduler through its partition's fence in the log
(:mod:`nodedrop.scheduler.partitions`), the notifier through its checkpoint row in PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nodedrop.platform.lease_store import LeaseGoneError, LeaseHeldError, LeaseStore
from nodedrop.platform.metrics import PARTITIONS_OWNED
from nodedrop.platform.ops import CheckResult

log = logging.getLogger(__name__)

#: How long a partition's lease lasts without renewal (seconds; renewed every third of it):
#: how long a dead owner's partitions wait for a new one.
LEASE_ENV = "NODEDROP_LEASE_S"
DEFAULT_LEASE_S = 10.0
Handler = Callable[[int], Awaitable[None]]


def share(partitions: int, members: list[str], member: str) -> int:
    """How many partitions ``member`` should own among ``members``."""
    ordered = sorted(set(members) | {member})
    base, extra = divmod(partitions, len(ordered))
    return base + (1 if ordered.index(member) < extra else 0)


@dataclass
class _Held:
    revision: int
    renewed_at: float


class PartitionLeases:
    """Holds this member's share of ``partitions`` and tells the service what to take and
    give up: ``take(p)`` once the lease is held (it returns when the partition is served),
    ``give_up(p)`` before a lease is handed back on purpose (it returns when the service is
    done with it), ``lost(p)`` when the lease was lost (stop at once)."""

    def __init__(
        self,
        store: LeaseStore,
        *,
        group: str,
        member: str,
        partitions: int,
        take: Handler,
        give_up: Handler,
        lost: Handler,
        lease_s: float = DEFAULT_LEASE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._group = group
        self.member = member
        self._partitions = partitions
        self._take, self._give_up, self._lost = take, give_up, lost
        self._lease_s = lease_s
        self._clock = clock
        self._held: dict[int, _Held] = {}
        self._stopping = asyncio.Event()
        #: Partitions taken or handed back right now (their handler is running).
        self._moving: set[int] = set()
        self._leaving = False
        #: When a balancing round last went through (None: not yet), and how many members it saw.
        self._balanced_at: float | None = None
        self._members_seen = 0

    @property
    def owned(self) -> list[int]:
        return sorted(self._held)

    def readiness(self) -> CheckResult:
        """Ready once a balancing round went through within the last two lease times: the
        process then holds its share, or is a standby holding none (all partitions are held by
        the others), or is waiting for a partition's lease to expire. Not ready before the
        first round, or when rounds keep failing (NATS away)."""
        if self._balanced_at is None:
            return CheckResult(False, "joining: no lease round yet")
        since = self._clock() - self._balanced_at
        if since > 2 * self._lease_s:
            return CheckResult(False, f"no lease round for {since:.0f} s")
        held = self.owned
        if not held:
            members = self._members_seen
            return CheckResult(
                True, f"standby: holds none of {self._partitions} ({members} members)"
            )
        listed = ", ".join(map(str, held))
        return CheckResult(True, f"holds {len(held)} of {self._partitions} partitions: {listed}")

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Hold a fair share until stopped; then hand every partition back. Renewing runs on
        its own, so that a long takeover never lets the other leases lapse."""
        renewing = asyncio.create_task(self._every_third(self.renew), name="lease renewals")
        try:
            await self._every_third(self.balance)
        finally:
            # Leave the members first: the others then count one member fewer and take what is
            # handed back at their next round, not once this member's announcement expires.
            # Renewals go on meanwhile (a hand-back finishes work first), unannounced.
            self._leaving = True
            with contextlib.suppress(Exception):
                await self._store.delete(self._member_key(self.member))
            for partition in list(self._held):
                await self._hand_back(partition)
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
            PARTITIONS_OWNED.labels(self._group).set(0)

    async def _every_third(self, step: Callable[[], Awaitable[None]]) -> None:
        while not self._stopping.is_set():
            try:
                await step()
            except Exception:  # NATS away: renewals fail, leases are lost in time
                log.warning("%s leases: %s failed", self._group, step.__name__, exc_info=True)
            PARTITIONS_OWNED.labels(self._group).set(len(self._held))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._lease_s / 3)

    async def renew(self) -> None:
        """Announce this member (unless it is leaving) and renew every lease it holds. An
        announcement that fails does not hold the renewals up: each lease is renewed, or
        found lost, on its own."""
        try:
            if not self._leaving:
                await self._store.put(self._member_key(self.member), self.member.encode())
        finally:
            await self._renew()

    async def balance(self) -> None:
        """Move towards this member's share: hand back above it, take free ones below it."""
        members = await self._members()
        self._members_seen = len(members)
        wanted = share(self._partitions, members, self.member)
        if len(self._held) > wanted:
            for partition in sorted(self._held, reverse=True)[: len(self._held) - wanted]:
                await self._hand_back(partition)
        elif len(self._held) < wanted:
            for partition in self._free_order():
                if len(self._held) >= wanted:
                    break
                await self._try_take(partition)
        self._balanced_at = self._clock()

    async def _renew(self) -> None:
        for partition, held in list(self._held.items()):
            started = self._clock()
            try:
                revision = await self._store.renew(
                    self._key(partition), self.member.encode(), held.revision
                )
            except LeaseGoneError:
                if self._held.get(partition) is held:  # not handed back meanwhile
                    await self._drop(partition)
                continue
            except Exception:
                # Not renewed this round: past the lease it is as good as lost.
                if self._clock() - held.renewed_at > self._lease_s * 2 / 3:
                    await self._drop(partition)
                continue
            if self._held.get(partition) is held:
                self._held[partition] = _Held(revision, started)

    async def _drop(self, partition: int) -> None:
        self._held.pop(partition, None)
        log.warning("%s lease of partition %d lost", self._group, partition)
        await self._lost(partition)

    async def _try_take(self, partition: int) -> None:
        started = self._clock()
        try:
            revision = await self._store.create(self._key(partition), self.member.encode())
        except LeaseHeldError:
            return  # someone holds it
        self._held[partition] = _Held(revision, started)
        self._moving.add(partition)
        try:
            await self._take(partition)
        except Exception:
            log.exception("%s: taking partition %d failed; handing it back", self._group,
                          partition)  # fmt: skip
            await self._hand_back(partition, served=False)
        finally:
            self._moving.discard(partition)

    async def _hand_back(self, partition: int, *, served: bool = True) -> None:
        held = self._held.pop(partition, None)
        if held is None:
            return
        self._moving.add(partition)
        try:
            if served:
                await self._give_up(partition)
            with contextlib.suppress(Exception):  # unreleased, it expires with its lease
                await self._store.release(self._key(partition), self.member.encode())
        finally:
            self._moving.discard(partition)

    async def _members(self) -> list[str]:
        """The members whose announcement has not expired, this one included."""
        announced = await self._store.live_suffixes(f"{self._group}.member", self._lease_s)
        return sorted(set(announced) | {self.member})

    def _free_order(self) -> list[int]:
        """Partitions not held here, from a place that differs between members, so that two
        joining at once do not race for the same ones."""
        start = zlib.crc32(self.member.encode()) % self._partitions
        order = [(start + i) % self._partitions for i in range(self._partitions)]
        return [p for p in order if p not in self._held]

    def _key(self, partition: int) -> str:
        return f"{self._group}.{partition:03d}"

    def _member_key(self, member: str) -> str:
        return f"{self._group}.member.{member}"
