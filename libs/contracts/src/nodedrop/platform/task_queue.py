"""The runners' work: the port :class:`TaskQueue` (every partition's ``NodeReady`` tasks, shared
by every runner process, each acknowledged once its result is recorded) and its adapter over
the partitions' durable ``runners`` consumers, :class:`RunnerTasks`.

A task not settled within the consumer's ack wait (``NODEDROP_RUNNER_ACK_WAIT_S``) goes to
another runner: a runner holding one for long says it is still working on it
(``in_progress``). An in-memory queue with the same behaviour is
:class:`nodedrop.platform.testing.task_queue.MemoryTaskQueue`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from nats.aio.client import Client as NatsClient

from nodedrop.contracts import subjects
from nodedrop.contracts.routing import Layout
from nodedrop.platform.event_log import Delivery
from nodedrop.platform.pullgroup import PullGroup


class TaskQueue(Protocol):
    @property
    def capacity(self) -> int:
        """How many tasks this runner holds at most (0: it takes no new one)."""
        ...

    @capacity.setter
    def capacity(self, value: int) -> None: ...

    async def start(self) -> None:
        """Take tasks from every partition from now on."""
        ...

    async def next_batch(self, limit: int, wait_s: float | None) -> Sequence[Delivery]:
        """Up to ``limit`` tasks waiting now, or the first to come within ``wait_s`` (None: as
        long as it takes)."""
        ...

    def release(self, task: Delivery) -> None:
        """``task``, handed over earlier, is done with: its place may take another."""
        ...

    async def stop_and_drain(self) -> Sequence[Delivery]:
        """Stop taking tasks; those delivered here and not handed over yet (to give back)."""
        ...


class RunnerTasks:
    """:class:`TaskQueue` over every partition's ``runners`` consumer, read as one
    (:class:`~nodedrop.platform.pullgroup.PullGroup` sharing the runner's slots)."""

    def __init__(self, nc: NatsClient, layout: Layout, capacity: int) -> None:
        self._layout = layout
        self._group = PullGroup(
            nc, subjects.RUNNER_CONSUMER, capacity=capacity, auto_release=False, shared=True
        )

    @property
    def capacity(self) -> int:
        return self._group.capacity

    @capacity.setter
    def capacity(self, value: int) -> None:
        self._group.capacity = value

    async def start(self) -> None:
        for stream in self._layout.streams:
            await self._group.add(stream)

    async def next_batch(self, limit: int, wait_s: float | None) -> Sequence[Delivery]:
        return await self._group.next_batch(limit, wait_s)

    def release(self, task: Delivery) -> None:
        self._group.release_from(task.metadata.stream)

    async def stop_and_drain(self) -> Sequence[Delivery]:
        return await self._group.stop_and_drain()
