"""Event times as the services stamp them, read live off the bus by the harness.

A plain (core) NATS subscription on ``nodedrop.log.*.*.<Type>`` for the types a scenario needs
sees every event as it is published into the stream, without creating a consumer or adding any
load on JetStream. Only a few fields are decoded. A duplicate publish (same ``event_id``) is
stored once by the stream but seen twice here: the first one counts.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

import msgspec
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from nodedrop.contracts import routing


class Stamp(msgspec.Struct, frozen=True):
    """The few fields of an event the benchmarks read (``time`` as seconds since the epoch)."""

    type: str
    event_id: str
    execution_id: str
    time: datetime
    node: str | None = None
    status: str | None = None

    @property
    def t(self) -> float:
        return self.time.timestamp()


_decoder = msgspec.json.Decoder(Stamp)


class EventTap:
    """Collects the stamps of some event types per execution; waits for ``ExecutionFinished``."""

    def __init__(self, nc: NatsClient, types: Iterable[str]) -> None:
        self._nc = nc
        self._types = {*types, "ExecutionFinished"}
        self._subs: list[Subscription] = []
        self._seen: set[str] = set()
        self.events: defaultdict[str, list[Stamp]] = defaultdict(list)
        self._finished: dict[str, asyncio.Future[Stamp]] = {}
        self.count = 0

    async def start(self) -> None:
        for event_type in sorted(self._types):
            self._subs.append(
                await self._nc.subscribe(
                    routing.events_of_type(event_type),
                    cb=self._on_message,
                    pending_msgs_limit=1_000_000,
                    pending_bytes_limit=1 << 30,
                )
            )
        await self._nc.flush()

    async def stop(self) -> None:
        for sub in self._subs:
            await sub.unsubscribe()
        self._subs.clear()

    async def __aenter__(self) -> EventTap:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def _on_message(self, msg: Msg) -> None:
        stamp = _decoder.decode(msg.data)
        if stamp.event_id in self._seen:
            return
        self._seen.add(stamp.event_id)
        self.count += 1
        self.events[stamp.execution_id].append(stamp)
        if stamp.type == "ExecutionFinished":
            self._future(stamp.execution_id).set_result(stamp)

    def _future(self, execution_id: str) -> asyncio.Future[Stamp]:
        future = self._finished.get(execution_id)
        if future is None:
            future = self._finished[execution_id] = asyncio.get_running_loop().create_future()
        return future

    async def finished(self, execution_id: str, timeout_s: float = 60.0) -> Stamp:
        """The execution's ``ExecutionFinished`` (already seen or still to come)."""
        return await asyncio.wait_for(asyncio.shield(self._future(execution_id)), timeout_s)

    def done(self, execution_id: str) -> Stamp | None:
        future = self._finished.get(execution_id)
        return future.result() if future is not None and future.done() else None

    def of(self, execution_id: str, event_type: str) -> list[Stamp]:
        return [s for s in self.events.get(execution_id, ()) if s.type == event_type]

    def first(self, execution_id: str, event_type: str) -> Stamp:
        found = self.of(execution_id, event_type)
        if not found:
            raise LookupError(f"no {event_type} seen for execution {execution_id}")
        return found[0]

    def forget(self, execution_id: str) -> None:
        """Drop what was collected for one execution (keeps memory flat in long scenarios)."""
        self.events.pop(execution_id, None)
        self._finished.pop(execution_id, None)

    def finished_count(self) -> int:
        return sum(1 for f in self._finished.values() if f.done())
