"""An in-memory :class:`~nodedrop.platform.event_log.EventLog`: partitions as lists, each event
id stored once, fences that refuse a batch published under an older one, and scheduler
consumers whose deliveries are acknowledged, given back (after their delay, on the log's clock)
or ended, with an ack floor as JetStream reports it.

A test may also make the next publish go wrong as a publish sent event by event can: store only
its first ``keep`` events and fail, and let other writers' events land amid it
(:meth:`MemoryEventLog.disturb_next_publish`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from nodedrop.contracts import codec, subjects
from nodedrop.contracts.events import EVENT_TYPES, INPUT_EVENT_TYPES, AnyEvent, Event
from nodedrop.contracts.routing import Layout, event_subject, execution_id_of
from nodedrop.platform.bus import FencedError, PublishError
from nodedrop.platform.event_log import Fence, OnEvent, StoredMessage, Watching
from nodedrop.platform.waiting import event_set

#: JetStream's ``max_deliver`` and ack wait of the scheduler consumers by default.
MAX_DELIVER = 10
SCHEDULER_ACK_WAIT_S = 30.0
#: The notifier consumer's ack wait (it has no ``max_deliver``).
NOTIFIER_ACK_WAIT_S = 60.0


@dataclass(frozen=True)
class _Stored:
    seq: int
    subject: str
    data: bytes
    #: The event's type name; None for a fence.
    kind: str | None
    execution_id: str | None
    #: The event as it was stored (what a test reads; readers through the port decode).
    event: Event | None
    stored_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class _Partition:
    stream: str
    messages: list[_Stored] = field(default_factory=list)
    fence: Fence | None = None

    @property
    def last_seq(self) -> int:
        return self.messages[-1].seq if self.messages else 0


@dataclass(frozen=True)
class _Sequence:
    stream: int
    consumer: int = 0


@dataclass(frozen=True)
class _Info:
    sequence: _Sequence
    num_delivered: int
    stream: str
    num_pending: int
    timestamp: datetime


class MemoryDelivery:
    def __init__(self, consumer: MemoryConsumer, stored: _Stored, delivered: int) -> None:
        self._consumer = consumer
        self.data = stored.data
        self.subject = stored.subject
        self.metadata = _Info(
            _Sequence(stored.seq),
            delivered,
            consumer.stream,
            consumer.undelivered_after(stored.seq),
            stored.stored_at,
        )
        self.seq = stored.seq

    async def ack(self) -> None:
        self._consumer.acknowledge(self.seq)

    async def term(self) -> None:
        self._consumer.settle(self.seq)

    async def nak(self, delay: float | None = None) -> None:
        self._consumer.give_back(self.seq, delay or 0.0)

    async def in_progress(self) -> None:
        self._consumer.touch(self.seq)


class MemoryConsumer:
    """A durable consumer of one partition: the events of ``kinds`` from ``start_seq`` on, each
    redelivered if given back, or not settled within ``ack_wait_s``, up to ``max_deliver``
    deliveries."""

    def __init__(
        self,
        log: MemoryEventLog,
        partition: int,
        name: str,
        start_seq: int,
        *,
        kinds: Iterable[type[Event]] = INPUT_EVENT_TYPES,
        ack_wait_s: float = SCHEDULER_ACK_WAIT_S,
        max_deliver: int | None = MAX_DELIVER,
        ack_all: bool = False,
    ) -> None:
        self.log = log
        self.partition = partition
        self.stream = log.layout.stream(partition)
        self.name = name
        self.kinds = {t.__name__ for t in kinds}
        self.ack_wait_s = ack_wait_s
        self.max_deliver = max_deliver
        #: Ack policy ``all``: an ack settles every delivery up to it (the notifier's).
        self.ack_all = ack_all
        #: When each delivery not settled yet goes to someone else.
        self.deadlines: dict[int, float] = {}
        #: Just after the last input delivered (or where the consumer starts).
        self.cursor = max(start_seq, 1)
        self.pending: dict[int, _Stored] = {}
        #: Given back: (due on the log's clock, seq).
        self.again: dict[int, float] = {}
        self.deliveries: dict[int, int] = {}
        self.deleted = False

    def settle(self, seq: int) -> None:
        if not self.deleted:
            self.pending.pop(seq, None)
            self.again.pop(seq, None)
            self.deadlines.pop(seq, None)

    def acknowledge(self, seq: int) -> None:
        for settled in [s for s in self.pending if s <= seq] if self.ack_all else [seq]:
            self.settle(settled)

    def undelivered_after(self, seq: int) -> int:
        messages = self.log.partition(self.partition).messages
        return sum(1 for m in messages[seq:] if m.kind in self.kinds)

    def touch(self, seq: int) -> None:
        if not self.deleted and seq in self.deadlines:
            self.deadlines[seq] = self.log.clock() + self.ack_wait_s

    def give_back(self, seq: int, delay: float) -> None:
        if self.deleted or seq not in self.pending:
            return
        self.deadlines.pop(seq, None)
        self.again[seq] = self.log.clock() + delay
        self.log.changed.set()

    def ack_floor(self) -> int:
        """Just below the first input not settled yet; with none, the last one delivered (as
        JetStream reports it: messages of other types between count as below the floor)."""
        if self.pending:
            return min(self.pending) - 1
        return self.cursor - 1

    def take(self, limit: int) -> list[MemoryDelivery]:
        taken: list[MemoryDelivery] = []
        now = self.log.clock()
        for seq, deadline in list(self.deadlines.items()):
            if deadline <= now:  # the ack wait ran out: someone else's now
                del self.deadlines[seq]
                self.again[seq] = now
        for seq in sorted(s for s, due in self.again.items() if due <= now):
            if len(taken) >= limit:
                break
            del self.again[seq]
            if self.max_deliver is not None and self.deliveries[seq] >= self.max_deliver:
                self.pending.pop(seq)  # JetStream stops there (and advises a dead letter)
                continue
            taken.append(self._deliver(self.pending[seq]))
        messages = self.log.partition(self.partition).messages
        for stored in messages[self.cursor - 1 :]:
            if len(taken) >= limit:
                break
            if stored.kind in self.kinds:
                # Past it only once delivered, as JetStream counts: messages of other types
                # after the last input delivered do not raise the ack floor.
                self.cursor = stored.seq + 1
                self.pending[stored.seq] = stored
                taken.append(self._deliver(stored))
        return taken

    def _deliver(self, stored: _Stored) -> MemoryDelivery:
        self.deliveries[stored.seq] = self.deliveries.get(stored.seq, 0) + 1
        self.deadlines[stored.seq] = self.log.clock() + self.ack_wait_s
        return MemoryDelivery(self, stored, self.deliveries[stored.seq])

    def waiting(self) -> bool:
        """Whether an input is there to deliver now."""
        now = self.log.clock()
        if any(due <= now for due in [*self.again.values(), *self.deadlines.values()]):
            return True
        messages = self.log.partition(self.partition).messages
        return any(m.kind in self.kinds for m in messages[self.cursor - 1 :])

    def next_due(self) -> float | None:
        return min([*self.again.values(), *self.deadlines.values()], default=None)


class MemoryFeed:
    """:class:`~nodedrop.platform.event_log.InputFeed` over a memory log's consumers (and a
    :class:`~nodedrop.platform.event_log.ProjectionFeed` over one)."""

    def __init__(self, log: MemoryEventLog, members: Mapping[str, str] | None = None) -> None:
        self._log = log
        self._members: dict[str, str] = dict(members or {})
        self._woken = False

    async def add(self, stream: str, consumer: str | None = None) -> None:
        assert consumer is not None, "the scheduler names its consumer"
        self._members.setdefault(stream, consumer)

    async def remove(self, stream: str) -> list[MemoryDelivery]:
        self._members.pop(stream, None)
        return []

    def _take(self, limit: int) -> list[MemoryDelivery]:
        batch: list[MemoryDelivery] = []
        for stream, name in list(self._members.items()):
            consumer = self._log.consumer(self._log.layout.partition_of_stream(stream), name)
            if consumer is not None:
                batch += consumer.take(limit - len(batch))
        return batch

    async def next_batch(self, limit: int, wait_s: float | None) -> list[MemoryDelivery]:
        batch = self._take(limit)
        if batch or self._woken:
            self._woken = False
            return batch
        self._log.changed.clear()
        due = [c.next_due() for c in self._log.consumers() if c.stream in self._members]
        soonest = min((d for d in due if d is not None), default=None)
        if soonest is not None:
            until_due = max(soonest - self._log.clock(), 0.0)
            wait_s = until_due if wait_s is None else min(wait_s, until_due)
        await event_set(self._log.changed, wait_s)
        self._woken = False
        return self._take(limit)

    def wake(self) -> None:
        self._woken = True
        self._log.changed.set()

    async def stop(self) -> None:
        self._members.clear()


class _Watch:
    def __init__(self, log: MemoryEventLog, kinds: set[str], on_event: OnEvent) -> None:
        self._log = log
        self._kinds = kinds
        self._on_event = on_event
        self._calls: set[asyncio.Task[None]] = set()

    def offer(self, stored: _Stored) -> None:
        if stored.kind in self._kinds:
            call = asyncio.get_running_loop().create_task(
                self._on_event(stored.subject, stored.data)
            )
            self._calls.add(call)
            call.add_done_callback(self._calls.discard)

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self._log._watches.remove(self)


@dataclass
class _Disturbance:
    keep: int | None
    amid: list[Event]


class MemoryEventLog:
    def __init__(
        self, layout: Layout | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._layout = layout or Layout()
        #: Seconds, for redelivery delays (a test may pass one it moves).
        self.clock = clock
        self._partitions = [
            _Partition(self._layout.stream(p)) for p in range(self._layout.partitions)
        ]
        self._ids: set[str] = set()
        self._consumers: dict[tuple[int, str], MemoryConsumer] = {}
        self._disturbance: _Disturbance | None = None
        self._watches: list[_Watch] = []
        #: What projectors announced: (partition, the executions a committed batch finished).
        self.announced: list[tuple[int, list[str]]] = []
        #: How many publishes a disturbance cut short.
        self.cut_short = 0
        #: Set whenever something a consumer may deliver arrives.
        self.changed = asyncio.Event()
        #: How many publishes were refused under a fence that moved on.
        self.fenced = 0

    @property
    def layout(self) -> Layout:
        return self._layout

    def partition(self, partition: int) -> _Partition:
        return self._partitions[partition]

    def consumer(self, partition: int, name: str) -> MemoryConsumer | None:
        return self._consumers.get((partition, name))

    def consumers(self) -> list[MemoryConsumer]:
        return list(self._consumers.values())

    # ------------------------------------------------------------------ what a test reads
    def events(self, partition: int | None = None) -> list[Event]:
        """Every stored event (of ``partition``, or of all of them, partition by partition)."""
        partitions = self._partitions if partition is None else [self._partitions[partition]]
        return [m.event for p in partitions for m in p.messages if m.event is not None]

    def record(self, event: Event) -> bool:
        """Store ``event`` as another writer (a runner, the api) would; False if its id was
        stored already."""
        return self._store(event)

    def record_bytes(self, subject: str, data: bytes) -> None:
        """Store ``data`` on an event's ``subject`` as is (bytes that may not decode)."""
        execution_id = execution_id_of(subject)
        partition = self._partitions[self._layout.partition_of(execution_id)]
        kind = subject.rsplit(".", 1)[-1]
        stored = _Stored(partition.last_seq + 1, subject, data, kind, execution_id, None)
        partition.messages.append(stored)
        self.changed.set()

    def disturb_next_publish(self, *, keep: int | None = None, amid: Iterable[Event] = ()) -> None:
        """The next publish of events stores only its first ``keep`` events, then fails with
        :class:`PublishError` (if it had more); ``amid`` are stored half-way through it."""
        self._disturbance = _Disturbance(keep, list(amid))

    def take_disturbance(self) -> list[Event]:
        """Disarm a disturbance no publish met; the events it was to store amid one."""
        disturbance, self._disturbance = self._disturbance, None
        return [] if disturbance is None else disturbance.amid

    # ------------------------------------------------------------------ the port
    def _store(self, event: Event) -> bool:
        if event.event_id in self._ids:
            return False
        self._ids.add(event.event_id)
        partition = self._partitions[self._layout.partition_of(event.execution_id)]
        partition.messages.append(
            _Stored(
                partition.last_seq + 1,
                event_subject(event),
                codec.encode(event),
                type(event).__name__,
                event.execution_id,
                event,
            )
        )
        self.changed.set()
        stored = partition.messages[-1]
        for watch in self._watches:
            watch.offer(stored)
        return True

    async def publish(
        self, events: Sequence[Event], *, fences: Mapping[int, int] | None = None
    ) -> None:
        if not events:
            return  # (nothing is sent: a disturbance waits for a publish of something)
        if fences is not None:
            for partition in {self._layout.partition_of(e.execution_id) for e in events}:
                fence = self._partitions[partition].fence
                if partition not in fences or fence is None or fence.sequence != fences[partition]:
                    self.fenced += 1
                    raise FencedError(f"partition {partition} is fenced by another owner")
        disturbance, self._disturbance = self._disturbance, None
        if disturbance is None:
            for event in events:
                self._store(event)
            return
        kept = list(events if disturbance.keep is None else events[: disturbance.keep])
        middle = len(kept) // 2
        for position, event in enumerate(kept):
            if position == middle:
                for other in disturbance.amid:
                    self._store(other)
            self._store(event)
        if not kept:
            for other in disturbance.amid:
                self._store(other)
        if len(kept) < len(events):
            self.cut_short += 1
            raise PublishError(f"{len(events) - len(kept)} of {len(events)} events not stored")

    async def publish_first(self, event: Event) -> bool:
        return self._store(event)

    async def watch(self, event_types: Sequence[type[Event]], on_event: OnEvent) -> Watching:
        watch = _Watch(self, {t.__name__ for t in event_types}, on_event)
        self._watches.append(watch)
        return watch

    async def flush(self) -> None:
        return None

    async def write_fence(self, partition: int, body: str) -> int:
        stored = self._partitions[partition]
        seq = stored.last_seq + 1
        fence_subject = self._layout.fence_subject(partition)
        stored.messages.append(_Stored(seq, fence_subject, body.encode(), None, None, None))
        stored.fence = Fence(seq, body.encode())
        return seq

    async def last_fence(self, partition: int) -> Fence | None:
        return self._partitions[partition].fence

    async def last_sequence(self, partition: int) -> int:
        return self._partitions[partition].last_seq

    async def history(self, execution_id: str) -> list[tuple[int, AnyEvent]]:
        partition = self._partitions[self._layout.partition_of(execution_id)]
        return [
            (m.seq, codec.decode(m.data))
            for m in partition.messages
            if m.execution_id == execution_id
        ]

    async def has_event(self, execution_id: str, event_type: type[Event]) -> bool:
        partition = self._partitions[self._layout.partition_of(execution_id)]
        return any(
            m.execution_id == execution_id and m.kind == event_type.__name__
            for m in partition.messages
        )

    async def executions_with(
        self, partition: int, event_type: type[Event], after_seq: int
    ) -> set[str]:
        return {
            execution_id_of(m.subject)
            for m in self._partitions[partition].messages
            if m.seq > after_seq and m.kind == event_type.__name__
        }

    async def open_inputs(self, partition: int, consumer: str, start_seq: int) -> None:
        self.open_consumer(partition, MemoryConsumer(self, partition, consumer, start_seq))

    def open_consumer(self, partition: int, consumer: MemoryConsumer) -> None:
        """Make ``consumer`` (replacing one of its name) deliver from now on."""
        gone = self._consumers.pop((partition, consumer.name), None)
        if gone is not None:
            gone.deleted = True
        self._consumers[(partition, consumer.name)] = consumer
        self.changed.set()

    async def delete_inputs(self, partition: int, consumer: str) -> None:
        gone = self._consumers.pop((partition, consumer), None)
        if gone is not None:
            gone.deleted = True

    async def ack_floor(self, partition: int, consumer: str) -> int | None:
        found = self._consumers.get((partition, consumer))
        return None if found is None else found.ack_floor()

    def input_feed(self, capacity: int) -> MemoryFeed:
        return MemoryFeed(self)

    # ------------------------------------------------------------------ the projection port
    async def open_projection(self, partition: int, after_seq: int, capacity: int) -> MemoryFeed:
        name = subjects.NOTIFIER_CONSUMER
        consumer = self.consumer(partition, name)
        # As on JetStream: moved (created anew) unless it delivered exactly that far.
        if consumer is None or consumer.cursor - 1 != after_seq:
            consumer = MemoryConsumer(
                self,
                partition,
                name,
                after_seq + 1,
                kinds=EVENT_TYPES,
                ack_wait_s=NOTIFIER_ACK_WAIT_S,
                max_deliver=None,
                ack_all=True,
            )
            self.open_consumer(partition, consumer)
        return MemoryFeed(self, {consumer.stream: name})

    async def first_event_from(self, partition: int, seq: int) -> int | None:
        messages = self._partitions[partition].messages
        return next((m.seq for m in messages[max(seq, 1) - 1 :] if m.kind is not None), None)

    async def announce_projected(self, partition: int, execution_ids: Sequence[str]) -> None:
        self.announced.append((partition, list(execution_ids)))

    async def read_partition(
        self, partition: int, after_seq: int, batch_size: int
    ) -> AsyncIterator[list[StoredMessage]]:
        events = [m for m in self._partitions[partition].messages[after_seq:] if m.kind]
        for start in range(0, len(events), batch_size):
            yield [
                StoredMessage(m.seq, m.subject, m.data) for m in events[start : start + batch_size]
            ]
