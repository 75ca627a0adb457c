"""An in-memory :class:`~nodedrop.platform.task_queue.TaskQueue` over a
:class:`~nodedrop.platform.testing.event_log.MemoryEventLog`: every partition's ``NodeReady``
tasks, redelivered when given back or when the ack wait (on the log's clock) runs out."""

from __future__ import annotations

import asyncio

from nodedrop.contracts import subjects
from nodedrop.contracts.events import NodeReady
from nodedrop.platform.event_log import Delivery
from nodedrop.platform.jetstream import StreamSettings
from nodedrop.platform.testing.event_log import (
    MemoryConsumer,
    MemoryDelivery,
    MemoryEventLog,
    MemoryFeed,
)

_FULL_PAUSE_S = 0.01


class MemoryTaskQueue:
    def __init__(
        self, log: MemoryEventLog, capacity: int, settings: StreamSettings | None = None
    ) -> None:
        self._log = log
        self._settings = settings or StreamSettings(layout=log.layout)
        self._feed = MemoryFeed(log)
        self.capacity = capacity
        #: Tasks handed over and not released yet.
        self.held = 0

    async def start(self) -> None:
        for partition, stream in enumerate(self._log.layout.streams):
            if self._log.consumer(partition, subjects.RUNNER_CONSUMER) is None:
                self._log.open_consumer(
                    partition,
                    MemoryConsumer(
                        self._log,
                        partition,
                        subjects.RUNNER_CONSUMER,
                        1,
                        kinds=[NodeReady],
                        ack_wait_s=self._settings.runner_ack_wait_s,
                        max_deliver=self._settings.runner_max_deliver,
                    ),
                )
            await self._feed.add(stream, subjects.RUNNER_CONSUMER)

    async def next_batch(self, limit: int, wait_s: float | None) -> list[MemoryDelivery]:
        room = max(min(limit, self.capacity - self.held), 0)
        if not room:  # every slot taken: look again in a moment, as a pull without credit
            await asyncio.sleep(_FULL_PAUSE_S if wait_s is None else min(wait_s, _FULL_PAUSE_S))
            return []
        batch = await self._feed.next_batch(room, wait_s)
        self.held += len(batch)
        return batch

    def release(self, task: Delivery) -> None:
        self.held = max(self.held - 1, 0)

    async def stop_and_drain(self) -> list[MemoryDelivery]:
        self.capacity = 0
        await self._feed.stop()
        return []
