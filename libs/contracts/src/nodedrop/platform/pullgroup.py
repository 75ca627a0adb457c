"""Several pull consumers read as one: a service's consumer on each partition it reads.

Runners read every partition's ``runners`` consumer; a scheduler reads the partitions it owns,
which change as leases move (:meth:`PullGroup.add`, :meth:`PullGroup.remove`). Messages are
handed over in batches taken in turn from each partition's queue, so a busy partition cannot
starve the others.

With ``shared=True`` the members share one capacity: a member whose last request delivered
something (busy) asks for what is free of it (what all hold, and busy members have asked for,
subtracted), so one execution's tasks, all in one partition, may use every slot; an idle member
listens with one message of credit beyond the capacity, so that no partition waits for another
to go quiet. A runner thus holds at most its slots plus one task per partition, and runs at
most its slots at once (it waits for a slot before it claims a task). Requests expire after a
few seconds, so credit left on a partition that went quiet comes back to the others.
"""

from __future__ import annotations

import asyncio
import contextlib

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from nodedrop.platform.pull import PullConsumer
from nodedrop.platform.waiting import event_set

#: Pull requests of members sharing a capacity expire after this: credit left on a partition
#: that went quiet comes back to the others within it.
_SHARED_EXPIRES_S = 5.0


class PullGroup:
    def __init__(
        self,
        nc: NatsClient,
        consumer: str,
        *,
        capacity: int,
        auto_release: bool = True,
        shared: bool = False,
    ) -> None:
        self._nc = nc
        self._consumer = consumer
        self._capacity = capacity
        self._auto_release = auto_release
        self._shared = shared

        self._arrived = asyncio.Event()
        self._members: dict[str, PullConsumer] = {}
        self._turn = 0

    @property
    def capacity(self) -> int:
        return self._capacity

    @capacity.setter
    def capacity(self, value: int) -> None:
        """Each member's credit from now on (0: no new pull request, as when stopping)."""
        self._capacity = value
        for member in self._members.values():
            member.capacity = value

    @property
    def streams(self) -> list[str]:
        return list(self._members)

    async def add(self, stream: str, consumer: str | None = None) -> None:
        """Read ``stream`` through ``consumer`` (by default the group's consumer name)."""
        if stream in self._members:
            return
        member = PullConsumer(
            self._nc,
            stream,
            consumer or self._consumer,
            capacity=self._capacity,
            arrived=self._arrived,
            allot=self._allot if self._shared else None,
            expires_s=_SHARED_EXPIRES_S if self._shared else 30.0,
        )
        member.auto_release = self._auto_release
        self._members[stream] = member
        await member.start()

    def _allot(self, member: PullConsumer, wanted: int) -> int:
        """How much of ``wanted`` ``member`` may ask for now (see the module)."""
        # Every member always listens with one message of credit, beyond the capacity: no
        # partition ever waits for credit to come back from another.
        listening = 1 if member.credit == 0 else 0
        if not member.busy:
            return listening
        members = self._members.values()
        free = self._capacity - sum(m.held + (m.credit if m.busy else 0) for m in members)
        return max(listening, min(wanted, free))

    async def remove(self, stream: str) -> list[Msg]:
        """Stop reading ``stream``; return what it delivered and nobody took yet."""
        member = self._members.pop(stream, None)
        if member is None:
            return []
        return await member.stop_and_drain()

    async def stop(self) -> None:
        members, self._members = self._members, {}
        for member in members.values():
            with contextlib.suppress(Exception):
                await member.stop()

    async def stop_and_drain(self, timeout_s: float = 2.0) -> list[Msg]:
        members, self._members = self._members, {}
        rest: list[Msg] = []
        for member in members.values():
            rest += await member.stop_and_drain(timeout_s)
        return rest

    async def next_batch(self, limit: int, wait_s: float | None) -> list[Msg]:
        """Up to ``limit`` messages from the members' queues, in turn: those waiting now, or
        the first to arrive within ``wait_s`` (``None``: as long as it takes)."""
        if not any(m.queued for m in self._members.values()):
            self._arrived.clear()
            if not await event_set(self._arrived, wait_s):
                return []
        members = list(self._members.values())
        if not members:
            return []
        batch: list[Msg] = []
        share = max(1, limit // len(members))
        while len(batch) < limit and any(m.queued for m in members):
            for i in range(len(members)):
                member = members[(self._turn + i) % len(members)]
                batch += member.take(min(share, limit - len(batch)))
                if len(batch) >= limit:
                    break
            self._turn = (self._turn + 1) % len(members)
        return batch

    def wake(self) -> None:
        self._arrived.set()

    def release(self, msg: Msg) -> None:
        """``msg``, handed over earlier, is done with: its member may ask for another."""
        self.release_from(msg.metadata.stream)

    def release_from(self, stream: str) -> None:
        """A message of ``stream``, handed over earlier, is done with."""
        member = self._members.get(stream)
        if member is not None:
            member.release()
