"""The projectors of the partitions this notifier holds the lease of, started and stopped as
leases move (:class:`nodedrop.platform.leases.PartitionLeases`).

Two notifiers never project a partition at the same time by design, and it would be harmless
if they did for a moment (a lease lost while paused): a projector writes a batch and its
partition's checkpoint in one transaction that first locks the checkpoint row, and skips what
the checkpoint already covers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from nodedrop.notifier.consumer import Projector
from nodedrop.notifier.store import ProjectionStore, checkpoint_name
from nodedrop.platform.event_log import ProjectionLog
from nodedrop.platform.metrics import PROJECTION_LAG_EVENTS, PROJECTION_LAG_SECONDS

log = logging.getLogger(__name__)


class Projectors:
    def __init__(self, events: ProjectionLog, pool: Any, *, linger_s: float) -> None:
        self._events = events
        self._pool = pool
        self._linger_s = linger_s
        self._running: dict[int, tuple[asyncio.Event, asyncio.Task[None]]] = {}

    @property
    def partitions(self) -> list[int]:
        return sorted(self._running)

    def projector(self, partition: int) -> Projector:
        return Projector(
            self._events,
            ProjectionStore(self._pool, checkpoint_name(partition)),
            partition=partition,
            linger_s=self._linger_s,
            announce=True,
        )

    async def take(self, partition: int) -> None:
        if partition in self._running:
            return
        stop = asyncio.Event()
        task = asyncio.create_task(
            self.projector(partition).run(stop), name=f"projector {partition}"
        )
        self._running[partition] = (stop, task)
        log.info("projecting partition %d", partition)

    async def give_up(self, partition: int) -> None:
        running = self._running.pop(partition, None)
        if running is None:
            return
        stop, task = running
        stop.set()
        with contextlib.suppress(Exception):
            await task
        for gauge in (PROJECTION_LAG_EVENTS, PROJECTION_LAG_SECONDS):
            with contextlib.suppress(KeyError):  # another notifier reports it now
                gauge.remove(str(partition))
        log.info("stopped projecting partition %d", partition)

    async def stop(self) -> None:
        for partition in list(self._running):
            await self.give_up(partition)

    def failed(self) -> BaseException | None:
        """The failure of a projector that ended on its own, if any."""
        for _, task in self._running.values():
            if task.done() and not task.cancelled() and task.exception() is not None:
                return task.exception()
        return None
