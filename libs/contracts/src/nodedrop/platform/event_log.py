"""The event log as the scheduler sees it: the port :class:`EventLog` and its adapter over the
JetStream partitions, :class:`JetStreamEventLog`.

A log records events (each id once), under a partition's fence when asked; reads one
execution's history; scans a partition for the executions with an event of a type; and serves
a partition's inputs through named consumers, whose deliveries are acknowledged one by one
(:class:`Delivery`, shaped as nats-py's ``Msg`` so the adapter hands those over unwrapped).
The notifier's projectors read a partition through the narrower :class:`ProjectionLog`, which
the same classes implement.
An in-memory log with the same behaviour is
:class:`nodedrop.platform.testing.event_log.MemoryEventLog`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.errors import APIError, NotFoundError

from nodedrop.contracts import subjects
from nodedrop.contracts.events import AnyEvent, Event
from nodedrop.contracts.routing import (
    Layout,
    all_events,
    events_of_type,
    execution_id_of,
    execution_subject,
)
from nodedrop.platform.bus import EventPublisher
from nodedrop.platform.history import IncompleteReadError, read_batches, read_execution
from nodedrop.platform.jetstream import StreamSettings, scheduler_consumer_config
from nodedrop.platform.notifier_consumer import PULL_MAX_BYTES, rewind_consumer
from nodedrop.platform.pull import PullConsumer
from nodedrop.platform.pullgroup import PullGroup


class SequencePosition(Protocol):
    @property
    def stream(self) -> int: ...


class DeliveryInfo(Protocol):
    @property
    def sequence(self) -> SequencePosition: ...

    @property
    def num_delivered(self) -> int: ...

    @property
    def stream(self) -> str: ...

    @property
    def num_pending(self) -> int:
        """How many messages the consumer had still to deliver after this one."""
        ...

    @property
    def timestamp(self) -> datetime:
        """When the message was stored."""
        ...


class Delivery(Protocol):
    """One message handed over by a consumer: settled by exactly one of ack, nak or term."""

    @property
    def data(self) -> bytes: ...

    @property
    def subject(self) -> str: ...

    @property
    def metadata(self) -> DeliveryInfo: ...

    async def ack(self) -> None: ...

    async def nak(self, delay: float | None = None) -> None:
        """Deliver it again, after ``delay`` seconds."""

    async def term(self) -> None:
        """Never deliver it again."""

    async def in_progress(self) -> None:
        """Still being worked on: not redelivered for another ack wait."""


class InputFeed(Protocol):
    """Several consumers read as one (:class:`~nodedrop.platform.pullgroup.PullGroup`)."""

    async def add(self, stream: str, consumer: str | None = None) -> None: ...

    async def remove(self, stream: str) -> Sequence[Delivery]:
        """Stop reading ``stream``; what it delivered and nobody took yet."""
        ...

    async def next_batch(self, limit: int, wait_s: float | None) -> Sequence[Delivery]:
        """Up to ``limit`` deliveries waiting now, or the first to come within ``wait_s``."""
        ...

    def wake(self) -> None:
        """End a :meth:`next_batch` waiting now, with what is there (maybe nothing)."""

    async def stop(self) -> None: ...


class ProjectionFeed(Protocol):
    """A partition's events as the notifier's consumer delivers them, in stream order."""

    async def next_batch(self, limit: int, wait_s: float | None) -> Sequence[Delivery]:
        """Up to ``limit`` deliveries waiting now, or the first to come within ``wait_s``
        (None: as long as it takes); maybe none."""
        ...

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class StoredMessage:
    """A message as stored in a partition, read without a consumer's state."""

    seq: int
    subject: str
    data: bytes


class ProjectionLog(Protocol):
    """What a projector reads a partition through: the notifier's consumer (ack policy
    ``all``: acknowledging a delivery acknowledges every one before it), placed at its
    checkpoint; the holes in the stream; and where a committed batch's finished executions are
    announced."""

    @property
    def layout(self) -> Layout: ...

    async def open_projection(
        self, partition: int, after_seq: int, capacity: int
    ) -> ProjectionFeed:
        """Read ``partition``'s events from ``after_seq + 1`` on, with ``capacity`` deliveries
        of credit (the consumer is moved there unless it stands there already)."""
        ...

    async def first_event_from(self, partition: int, seq: int) -> int | None:
        """The sequence of the first event still stored at or after ``seq`` (pruned executions
        and aged-out events leave holes); None if there is none."""
        ...

    async def announce_projected(self, partition: int, execution_ids: Sequence[str]) -> None:
        """Tell whoever waits (the api's requests) that these executions' ends are projected."""
        ...

    def read_partition(
        self, partition: int, after_seq: int, batch_size: int
    ) -> AsyncIterator[Sequence[StoredMessage]]:
        """Batches of ``partition``'s events stored after ``after_seq``, in stream order, up to
        what is stored when the read starts (a rebuild's read: nothing acknowledged). Raises
        :class:`~nodedrop.platform.history.IncompleteReadError` when it cannot read on."""
        ...


class Watching(Protocol):
    async def stop(self) -> None: ...


#: Called with a watched event's subject and encoded event.
OnEvent = Callable[[str, bytes], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class Fence:
    sequence: int
    body: bytes


class EventLog(Protocol):
    @property
    def layout(self) -> Layout: ...

    async def publish(
        self, events: Sequence[Event], *, fences: Mapping[int, int] | None = None
    ) -> None:
        """Record ``events`` in order, each id once. With ``fences`` (partition -> the
        sequence of the caller's fence): :class:`~nodedrop.platform.bus.FencedError` if a
        partition's fence moved on (nothing of it stored); any other
        :class:`~nodedrop.platform.bus.PublishError`: it is unknown what was stored."""
        ...

    async def publish_first(self, event: Event) -> bool:
        """Record one event; whether this call stored it (False: its id was there already,
        someone recorded it first). :class:`~nodedrop.platform.bus.PublishError` when the
        log does not answer."""
        ...

    async def watch(self, event_types: Sequence[type[Event]], on_event: OnEvent) -> Watching:
        """Call ``on_event`` for every event of ``event_types`` stored from now on (at most
        once each, none if this process is away: a hint, not a consumer)."""
        ...

    async def flush(self) -> None:
        """Wait until what was sent so far (acks and naks included) has reached the log."""
        ...

    async def write_fence(self, partition: int, body: str) -> int:
        """Store a new fence of ``partition``; its sequence."""
        ...

    async def last_fence(self, partition: int) -> Fence | None: ...

    async def last_sequence(self, partition: int) -> int:
        """The sequence of the last message stored in ``partition`` (0: none)."""
        ...

    async def history(self, execution_id: str) -> list[tuple[int, AnyEvent]]:
        """Every stored event of the execution, with its sequence, in order."""
        ...

    async def has_event(self, execution_id: str, event_type: type[Event]) -> bool: ...

    async def executions_with(
        self, partition: int, event_type: type[Event], after_seq: int
    ) -> set[str]:
        """The executions of ``partition`` with an ``event_type`` stored after ``after_seq``."""
        ...

    async def open_inputs(self, partition: int, consumer: str, start_seq: int) -> None:
        """Create the scheduler consumer ``consumer`` of ``partition``: every input event
        (``INPUT_EVENT_TYPES``) from ``start_seq`` on. One of that name is to be deleted
        first."""
        ...

    async def delete_inputs(self, partition: int, consumer: str) -> None:
        """Delete the consumer if it exists: its deliveries can no longer be settled."""
        ...

    async def ack_floor(self, partition: int, consumer: str) -> int | None:
        """The sequence up to which the consumer's inputs are all acknowledged; None if the
        consumer does not exist."""
        ...

    def input_feed(self, capacity: int) -> InputFeed:
        """A feed that reads the consumers it is given, with ``capacity`` inputs of credit."""
        ...


class JetStreamEventLog:
    """:class:`EventLog` over the partition streams."""

    def __init__(
        self, nc: NatsClient, js: JetStreamContext, settings: StreamSettings | None = None
    ) -> None:
        self._nc = nc
        self._js = js
        self._settings = settings or StreamSettings()
        self._layout = self._settings.layout
        self.publisher = EventPublisher(js, self._layout)

    @classmethod
    def of_context(
        cls, js: JetStreamContext, settings: StreamSettings | None = None
    ) -> JetStreamEventLog:
        """The log over ``js`` and the connection it publishes with."""
        return cls(js._nc, js, settings)  # nats-py exposes no accessor for it

    @property
    def layout(self) -> Layout:
        return self._layout

    async def publish(
        self, events: Sequence[Event], *, fences: Mapping[int, int] | None = None
    ) -> None:
        await self.publisher.publish(events, fences=fences)

    async def publish_first(self, event: Event) -> bool:
        return await self.publisher.publish_first(event)

    async def watch(self, event_types: Sequence[type[Event]], on_event: OnEvent) -> Watching:
        async def deliver(msg: Msg) -> None:
            await on_event(msg.subject, msg.data)

        subscriptions = [
            await self._nc.subscribe(events_of_type(t), cb=deliver) for t in event_types
        ]
        # Listening once this returns. Twice: nats-py 2.16 writes flush()'s PING straight to
        # the socket, ahead of the SUBs still buffered for its flusher task, so the first PONG
        # proves nothing about them; by the second round trip the buffer has been written.
        await self._nc.flush()
        await self._nc.flush()
        return _Subscriptions(subscriptions)

    async def flush(self) -> None:
        await self._nc.flush()

    async def write_fence(self, partition: int, body: str) -> int:
        return await self.publisher.write_fence(partition, body)

    async def last_fence(self, partition: int) -> Fence | None:
        stream, subject = self._layout.stream(partition), self._layout.fence_subject(partition)
        try:
            msg = await self._js.get_last_msg(stream, subject, direct=True)
        except NotFoundError:
            return None
        assert msg.seq is not None  # a stored message has one
        return Fence(msg.seq, msg.data or b"")

    async def last_sequence(self, partition: int) -> int:
        return (await self._js.stream_info(self._layout.stream(partition))).state.last_seq

    async def history(self, execution_id: str) -> list[tuple[int, AnyEvent]]:
        return await read_execution(self._js, execution_id, layout=self._layout)

    async def has_event(self, execution_id: str, event_type: type[Event]) -> bool:
        subject = execution_subject(execution_id, event_type.__name__)
        try:
            await self._js.get_last_msg(self._layout.stream_of(execution_id), subject, direct=True)
        except NotFoundError:
            return False
        return True

    async def executions_with(
        self, partition: int, event_type: type[Event], after_seq: int
    ) -> set[str]:
        found: set[str] = set()
        batches = read_batches(
            self._js,
            stream=self._layout.stream(partition),
            filter_subject=events_of_type(event_type),
            after_seq=after_seq,
            description=f"executions with {event_type.__name__} after seq {after_seq}",
            headers_only=True,
        )
        async for batch in batches:
            found.update(execution_id_of(msg.subject) for msg in batch)
        return found

    async def open_inputs(self, partition: int, consumer: str, start_seq: int) -> None:
        await self._js.add_consumer(
            self._layout.stream(partition),
            scheduler_consumer_config(self._settings, consumer, start_seq),
        )

    async def delete_inputs(self, partition: int, consumer: str) -> None:
        with contextlib.suppress(NotFoundError):
            await self._js.delete_consumer(self._layout.stream(partition), consumer)

    async def ack_floor(self, partition: int, consumer: str) -> int | None:
        try:
            info = await self._js.consumer_info(self._layout.stream(partition), consumer)
        except (NotFoundError, APIError):
            return None
        return info.ack_floor.stream_seq if info.ack_floor is not None else 0

    def input_feed(self, capacity: int) -> InputFeed:
        return PullGroup(self._nc, "", capacity=capacity)

    async def open_projection(
        self, partition: int, after_seq: int, capacity: int
    ) -> ProjectionFeed:
        stream = self._layout.stream(partition)
        # The consumer's info and the pulls go over the same connection: the server then sees
        # an earlier feed's inbox unsubscribed before the info a rewind decides on.
        await rewind_consumer(self._js, stream, after_seq, self._settings)
        consumer = PullConsumer(
            self._nc,
            stream,
            subjects.NOTIFIER_CONSUMER,
            capacity=capacity,
            max_bytes=PULL_MAX_BYTES,
        )
        await consumer.start()
        return consumer

    async def first_event_from(self, partition: int, seq: int) -> int | None:
        stream = self._layout.stream(partition)
        try:
            msg = await self._js.get_msg(stream, seq=seq, subject=all_events(), next=True)
        except NotFoundError:
            return None
        return msg.seq

    async def announce_projected(self, partition: int, execution_ids: Sequence[str]) -> None:
        subject = subjects.projected_finished_subject(partition)
        await self._nc.publish(subject, json.dumps(list(execution_ids)).encode())

    async def read_partition(
        self, partition: int, after_seq: int, batch_size: int
    ) -> AsyncIterator[Sequence[StoredMessage]]:
        stream = self._layout.stream(partition)
        last = after_seq
        batches = read_batches(
            self._js,
            stream=stream,
            filter_subject=all_events(),
            after_seq=after_seq,
            batch_size=batch_size,
            description=f"read of partition {partition} after seq {after_seq}",
        )
        try:
            async with contextlib.aclosing(batches):
                async for batch in batches:
                    yield [
                        StoredMessage(m.metadata.sequence.stream, m.subject, m.data) for m in batch
                    ]
                    last = batch[-1].metadata.sequence.stream
        except (nats.errors.Error, TimeoutError, OSError) as error:
            # The connection lost for good, the server not answering: how far the read got.
            raise IncompleteReadError(stream, last, str(error) or type(error).__name__) from error


class _Subscriptions:
    def __init__(self, subscriptions: list[Subscription]) -> None:
        self._subscriptions = subscriptions

    async def stop(self) -> None:
        for subscription in self._subscriptions:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
