"""Concurrency limits: which executions may start now, across every scheduler.

A limit caps how many executions of one user (the scheduler's ``NODEDROP_MAX_CONCURRENT_PER_
USER``) or of one workflow (its ``settings.max_concurrent``, for executions from its
triggers) run at once. An execution takes a slot of each limit that applies before it starts;
one that finds a limit full is queued (``ExecutionQueued``) and tried again as executions end.
It gives its slots back when it ends.

The running set of each limit is one entry of the scheduler's key-value bucket, changed by
compare-and-swap, so schedulers owning different partitions share it. Taking a slot is
idempotent (an execution already in the set holds it), so a rebuilt scheduler that asks again
takes nothing twice. A set may keep an execution that ended if its scheduler stopped between
recording the end and giving the slot back: when a set is full, the members whose end is in
the log are dropped from it (see :class:`KvGate`), so a slot is never lost for good.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from nodedrop.contracts import subjects
from nodedrop.contracts.events import ConcurrencyScope, ExecutionRequested
from nodedrop.platform.key_values import KeyValueStore, RevisionMismatchError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Claim:
    """A slot an execution needs: one of ``limit`` for ``scope`` ``key``."""

    scope: ConcurrencyScope
    key: str
    limit: int


def claims_of(request: ExecutionRequested, *, per_user: int | None) -> list[Claim]:
    """The limits that apply to the execution ``request`` asks for, user's first. A child its
    parent waits for takes none: the parent holds its slots while it waits, and a child queued
    behind its own parent would wait forever."""
    if request.report_to_parent:
        return []
    claims = []
    if per_user:
        claims.append(Claim("user", request.requested_by, per_user))
    settings = request.workflow.get("settings")
    limit = settings.get("max_concurrent") if isinstance(settings, dict) else None
    if (
        request.mode == "trigger"
        and request.workflow_id is not None
        and isinstance(limit, int)
        and not isinstance(limit, bool)
        and limit >= 1
    ):
        claims.append(Claim("workflow", request.workflow_id, limit))
    return claims


class ConcurrencyGate(Protocol):
    async def acquire(self, execution_id: str, claims: Sequence[Claim]) -> Claim | None:
        """Take a slot of every claim for ``execution_id``; all or none. Returns ``None`` if
        taken (or held already), else the first claim whose limit is full."""

    async def release(self, execution_id: str, claims: Sequence[Claim]) -> None:
        """Give ``execution_id``'s slots back (those it does not hold are left alone)."""


class MemoryGate:
    """The gate of one process, in memory (tests; a scheduler that owns every partition)."""

    def __init__(self, finished: Callable[[str], Awaitable[bool]] | None = None) -> None:
        self._running: dict[tuple[str, str], set[str]] = {}
        self._finished = finished

    async def acquire(self, execution_id: str, claims: Sequence[Claim]) -> Claim | None:
        for claim in claims:
            running = self._running.get((claim.scope, claim.key), set())
            if execution_id not in running and len(running) >= claim.limit:
                running -= await _ended(running, self._finished)
            if execution_id not in running and len(running) >= claim.limit:
                return claim
        for claim in claims:
            self._running.setdefault((claim.scope, claim.key), set()).add(execution_id)
        return None

    async def release(self, execution_id: str, claims: Sequence[Claim]) -> None:
        for claim in claims:
            self._running.get((claim.scope, claim.key), set()).discard(execution_id)

    def running(self, claim: Claim) -> set[str]:
        return set(self._running.get((claim.scope, claim.key), set()))


class KvGate:
    """The gate shared by every scheduler: a running set per limit in a key-value bucket.

    ``finished(execution_id)`` says whether the execution's end is in the log: asked, for the
    members of a full set, at most once per set every ``prune_every_s``, to drop the ones a
    stopped scheduler never gave back."""

    def __init__(
        self,
        kv: KeyValueStore,
        finished: Callable[[str], Awaitable[bool]],
        *,
        prune_every_s: float = 5.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._kv = kv
        self._finished = finished
        self._prune_every_s = prune_every_s
        self._clock = clock or asyncio.get_running_loop().time
        self._pruned_at: dict[str, float] = {}

    async def acquire(self, execution_id: str, claims: Sequence[Claim]) -> Claim | None:
        taken: list[Claim] = []
        for claim in claims:
            if not await self._take(execution_id, claim):
                await self.release(execution_id, taken)
                return claim
            taken.append(claim)
        return None

    async def release(self, execution_id: str, claims: Sequence[Claim]) -> None:
        for claim in claims:
            key = subjects.running_key(claim.scope, claim.key)
            while True:
                running, revision = await self._read(key)
                if execution_id not in running or revision is None:
                    break
                running.discard(execution_id)
                if await self._write(key, claim, running, revision):
                    break

    async def _take(self, execution_id: str, claim: Claim) -> bool:
        key = subjects.running_key(claim.scope, claim.key)
        while True:
            running, revision = await self._read(key)
            if execution_id in running:
                return True
            if len(running) >= claim.limit:
                running -= await self._prune(key, running)
                if len(running) >= claim.limit:
                    return False
            running.add(execution_id)
            if await self._write(key, claim, running, revision):
                return True

    async def _prune(self, key: str, running: set[str]) -> set[str]:
        now = self._clock()
        if now - self._pruned_at.get(key, float("-inf")) < self._prune_every_s:
            return set()
        self._pruned_at[key] = now
        ended = await _ended(running, self._finished)
        if ended:
            log.warning("%d ended executions were still counted as running in %s: dropped",
                        len(ended), key)  # fmt: skip
        return ended

    async def _read(self, key: str) -> tuple[set[str], int | None]:
        entry = await self._kv.get(key)
        if entry is None:
            return set(), None
        if not entry.value:
            return set(), entry.revision
        return set(json.loads(entry.value).get("running", [])), entry.revision

    async def _write(self, key: str, claim: Claim, running: set[str], revision: int | None) -> bool:
        """Store ``running`` if the entry is still at ``revision``; False if it moved on."""
        value = json.dumps(
            {"scope": claim.scope, "key": claim.key, "running": sorted(running)}
        ).encode()
        try:
            if revision is None:
                await self._kv.create(key, value)
            else:
                await self._kv.update(key, value, last=revision)
        except RevisionMismatchError:
            return False
        return True


async def _ended(running: set[str], finished: Callable[[str], Awaitable[bool]] | None) -> set[str]:
    if finished is None:
        return set()
    ids = sorted(running)
    ended = await asyncio.gather(*(finished(i) for i in ids))
    return {i for i, done in zip(ids, ended, strict=True) if done}
