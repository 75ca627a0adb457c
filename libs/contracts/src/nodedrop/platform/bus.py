"""Recording events in the log: batched, deduplicated, acknowledged, routed to partitions.

Every event is published with ``Nats-Msg-Id`` = its deterministic ``event_id``, so publishing the
same decision twice (a retry after a timeout, a redelivered input) stores it once. A batch is
sent without waiting between messages and then awaited as a whole: one round trip per batch,
not per event. Order within one connection is kept by the server; each event goes to its
execution's partition (:mod:`nodedrop.contracts.routing`), so a batch may span several streams.

A partition's owner publishes under its fence (:meth:`EventPublisher.publish` with ``fences``):
its events go to each partition as atomic batches (all stored or none, in order) whose first
message carries the sequence of the fence the owner wrote when it took the partition, and the
stream stores a batch only while that is still the partition's last fence. A late writer whose
partition was taken over gets :class:`FencedError` and nothing of that batch is stored.

Why batches, one at a time per partition: on a replicated stream the leader refuses a
conditional write while an earlier one on the same subject is still being replicated (error
10164, without comparing anything), so conditional messages sent back to back are refused but
for the first. One batch per partition in flight, a check on its first message, keeps the fence
on every event at one round trip per batch; what callers queue while a batch is on its way
goes in the next one (a group commit). 10164 still answers a batch sent just as the
previous one was acknowledged (the leader clears its mark a moment after): nothing of it was
stored, and it is sent again. A batch holding an event already stored (a retry after a lost
acknowledgement) is refused whole (10201): its events then go one by one, each fenced and
deduplicated by its ``Nats-Msg-Id`` as usual.

A batch of one event goes as one conditional message instead, on every stream: one message is
stored whole or not at all anyway, and a single server stages each atomic batch of a
file-backed stream in a store of its own on disk (directories made, renamed and removed, four
fsyncs: about 2 ms on an idle disk, tens of ms on a busy one) where a message costs one write
and one fsync. So do a few events of one execution (an execution's start and its first
``NodeReady``), one message after the other: if the writer dies between two, a prefix is
stored, which the scheduler reads as the lost tail of a failed publish and decides again; one
at a time, no message is stored after a refused one, and a replicated stream's leader has no
conditional write in flight to refuse them for. Batches of several executions (linked ones: a
child's start and its parent's note of it must be stored together) or of many events stay
atomic: under load their four fsyncs beat one per message (figures in docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.errors import APIError, NoStreamResponseError

from nodedrop.contracts import codec
from nodedrop.contracts.events import Event
from nodedrop.contracts.routing import Layout, event_subject
from nodedrop.platform.metrics import PUBLISH_SECONDS
from nodedrop.platform.retry import retry_unavailable

MSG_ID = "Nats-Msg-Id"
_EXPECTED_STREAM = "Nats-Expected-Stream"
_EXPECTED_FENCE = "Nats-Expected-Last-Subject-Sequence"
_FENCE_SUBJECT = "Nats-Expected-Last-Subject-Sequence-Subject"
_BATCH_ID = "Nats-Batch-Id"
_BATCH_SEQUENCE = "Nats-Batch-Sequence"
_BATCH_COMMIT = "Nats-Batch-Commit"
#: JetStream's error code for a failed ``Nats-Expected-Last-Subject-Sequence``.
_WRONG_LAST_SEQUENCE = 10071
#: A conditional write to the same subject is still in flight: nothing was compared or stored.
_CHECK_IN_FLIGHT = 10164
#: An atomic batch holds a message whose ``Nats-Msg-Id`` the stream already has.
_BATCH_DUPLICATE = 10201
#: Tries of a batch answered 10164 (about 10 s of pauses growing to 50 ms).
_IN_FLIGHT_TRIES = 200
#: At most this many events of one execution go as conditional messages, not an atomic batch.
_FEW_EVENTS = 4
#: Messages and bytes of one atomic batch (the server takes at most 1,000 messages).
_BATCH_MESSAGES = 500
_BATCH_BYTES = 8 * 1024 * 1024


class PublishError(RuntimeError):
    """The log did not acknowledge every event of a batch (nothing is known about which)."""


class FencedError(PublishError):
    """A partition's fence moved on: another process owns it now. Events of other partitions
    of the same batch may have been stored."""


class EventPublisher:
    def __init__(
        self, js: JetStreamContext, layout: Layout | None = None, *, timeout_s: float = 5.0
    ) -> None:
        self._js = js
        self._layout = layout or Layout()
        self._timeout_s = timeout_s
        self._acks = _Acks(js)
        # One fenced batch in flight per partition (see the module's docstring): callers queue
        # their events, one writer task per partition sends them.
        self._queued: defaultdict[int, list[_Queued]] = defaultdict(list)
        self._writers: dict[int, asyncio.Task[None]] = {}

    @property
    def layout(self) -> Layout:
        return self._layout

    async def publish(
        self,
        events: Sequence[Event],
        headers: dict[str, str] | None = None,
        *,
        fences: Mapping[int, int] | None = None,
    ) -> list[int]:
        """Record ``events`` in order; return their stream sequences (a duplicate's is the
        original's, in its partition's stream). With ``fences`` (partition -> the sequence of
        the caller's fence) each event is stored only under its partition's fence: raises
        :class:`FencedError` if one moved on, :class:`PublishError` for an event of a
        partition not in ``fences`` or anything else; retrying with the same events is safe."""
        if not events:
            return []
        with PUBLISH_SECONDS.time():  # (a failure counts too: it took that long to learn it)
            if fences is not None:
                return await self._publish_fenced(events, headers or {}, fences)
            return await self._publish_unfenced(events, headers or {})

    async def _publish_unfenced(
        self, events: Sequence[Event], headers: dict[str, str]
    ) -> list[int]:
        try:
            futures = [
                await self._acks.publish(
                    event_subject(event),
                    codec.encode(event),
                    {
                        _EXPECTED_STREAM: self._layout.stream_of(event.execution_id),
                        MSG_ID: event.event_id,
                        **headers,
                    },
                )
                for event in events
            ]
            acks = await asyncio.wait_for(asyncio.gather(*futures), self._timeout_s)
        except APIError as error:
            if error.err_code == _WRONG_LAST_SEQUENCE:
                raise FencedError(f"a partition was taken over: {error!r}") from error
            raise PublishError(f"events not acknowledged: {error!r}") from error
        except (TimeoutError, ConnectionError) as error:
            raise PublishError(f"events not acknowledged: {error!r}") from error
        return acks

    async def _publish_fenced(
        self, events: Sequence[Event], headers: dict[str, str], fences: Mapping[int, int]
    ) -> list[int]:
        by_partition: dict[int, list[int]] = defaultdict(list)
        for index, event in enumerate(events):
            by_partition[self._layout.partition_of(event.execution_id)].append(index)
        for partition in by_partition:
            if partition not in fences:
                raise FencedError(f"partition {partition} is not owned here")
        loop = asyncio.get_running_loop()
        waits: list[tuple[list[int], asyncio.Future[list[int]]]] = []
        for partition, indexes in by_partition.items():
            future: asyncio.Future[list[int]] = loop.create_future()
            self._queued[partition].append(
                _Queued([events[i] for i in indexes], headers, fences[partition], future)
            )
            waits.append((indexes, future))
            if partition not in self._writers:
                self._writers[partition] = asyncio.create_task(
                    self._write_partition(partition), name=f"fenced writes {partition}"
                )
        sequences = [0] * len(events)
        try:
            stored = await asyncio.wait_for(
                asyncio.gather(*(future for _, future in waits)), self._timeout_s
            )
        except (TimeoutError, ConnectionError) as error:
            raise PublishError(f"events not acknowledged: {error!r}") from error
        for (indexes, _), partition_sequences in zip(waits, stored, strict=True):
            for index, sequence in zip(indexes, partition_sequences, strict=True):
                sequences[index] = sequence
        return sequences

    async def _write_partition(self, partition: int) -> None:
        """Sends what callers queued for ``partition``, one batch at a time: everything queued
        meanwhile under the same fence goes in the next batch (a group commit), so concurrent
        callers share round trips instead of queueing for one each."""
        queued = self._queued[partition]
        try:
            while queued:
                first = queued[0]
                taken = [q for q in queued if q.fence == first.fence and q.headers == first.headers]
                for q in taken:
                    queued.remove(q)
                events = [event for q in taken for event in q.events]
                try:
                    stored: list[int] = []
                    if _as_messages(events):
                        stored = await self._fenced_one_by_one(
                            [(event, codec.encode(event)) for event in events],
                            first.headers,
                            self._conditions(partition, first.fence),
                        )
                    else:
                        for chunk in _chunks(events):
                            stored += await self._fenced_batch(
                                chunk, first.headers, partition, first.fence
                            )
                except Exception as error:  # every caller of the batch learns why
                    for q in taken:
                        if not q.future.done():
                            q.future.set_exception(error)
                    continue
                for q in taken:
                    mine, stored = stored[: len(q.events)], stored[len(q.events) :]
                    if not q.future.done():
                        q.future.set_result(mine)
        finally:
            del self._writers[partition]

    def _check(self, partition: int, fence: int) -> dict[str, str]:
        """The headers that make the stream store a message only under ``fence``."""
        return {_EXPECTED_FENCE: str(fence), _FENCE_SUBJECT: self._layout.fence_subject(partition)}

    def _conditions(self, partition: int, fence: int) -> dict[str, str]:
        """A lone message's headers: its partition's stream, under ``fence``."""
        return {_EXPECTED_STREAM: self._layout.stream(partition), **self._check(partition, fence)}

    async def _fenced_batch(
        self, events: list[tuple[Event, bytes]], headers: dict[str, str], partition: int, fence: int
    ) -> list[int]:
        """Stores ``events`` (one partition's, encoded) as one atomic batch under ``fence``."""
        check = self._check(partition, fence)
        stream = {_EXPECTED_STREAM: self._layout.stream(partition)}
        for attempt in range(_IN_FLIGHT_TRIES):
            batch = uuid.uuid4().hex
            last = len(events)
            future: asyncio.Future[int] | None = None
            for number, (event, payload) in enumerate(events, start=1):
                message_headers = {
                    **stream,
                    MSG_ID: event.event_id,
                    **headers,
                    **(check if number == 1 else {}),
                    _BATCH_ID: batch,
                    _BATCH_SEQUENCE: str(number),
                }
                subject = event_subject(event)
                if number < last:
                    await self._acks.publish_only(subject, payload, message_headers)
                else:
                    message_headers[_BATCH_COMMIT] = "1"
                    future = await self._acks.publish(subject, payload, message_headers)
            assert future is not None
            try:
                # Bounded: an answer lost with a connection never comes, and this partition's
                # writer must not wait for it (everything queued behind would wait too).
                final = await asyncio.wait_for(future, self._timeout_s)
            except TimeoutError as error:
                raise PublishError(f"batch not acknowledged in {self._timeout_s} s") from error
            except APIError as error:
                if error.err_code == _WRONG_LAST_SEQUENCE:
                    raise FencedError(f"partition {partition} was taken over: {error!r}") from error
                if error.err_code == _CHECK_IN_FLIGHT:
                    await _pause(attempt)
                    continue
                if error.err_code == _BATCH_DUPLICATE:
                    return await self._fenced_one_by_one(events, headers, {**stream, **check})
                raise PublishError(f"events not acknowledged: {error!r}") from error
            return list(range(final - last + 1, final + 1))
        raise PublishError(f"partition {partition}: a write in flight for {_IN_FLIGHT_TRIES} tries")

    async def _fenced_one_by_one(
        self, events: list[tuple[Event, bytes]], headers: dict[str, str], check: dict[str, str]
    ) -> list[int]:
        sequences = []
        for event, payload in events:
            message_headers = {**check, MSG_ID: event.event_id, **headers}
            for attempt in range(_IN_FLIGHT_TRIES):
                future = await self._acks.publish(event_subject(event), payload, message_headers)
                try:
                    sequences.append(await asyncio.wait_for(future, self._timeout_s))
                except TimeoutError as error:
                    raise PublishError(f"event not acknowledged in {self._timeout_s} s") from error
                except APIError as error:
                    if error.err_code == _WRONG_LAST_SEQUENCE:
                        raise FencedError(f"a partition was taken over: {error!r}") from error
                    if error.err_code == _CHECK_IN_FLIGHT:
                        await _pause(attempt)
                        continue
                    raise PublishError(f"event not acknowledged: {error!r}") from error
                break
            else:
                raise PublishError(f"a write in flight for {_IN_FLIGHT_TRIES} tries")
        return sequences

    async def publish_first(self, event: Event) -> bool:
        """Record one event and say whether this call stored it: False when the log already
        held an event with its id (within the duplicate window), i.e. someone recorded it
        first. Raises :class:`PublishError` when the log does not answer (then either may
        be true)."""
        try:
            with PUBLISH_SECONDS.time():
                ack = await self._js.publish(
                    event_subject(event),
                    codec.encode(event),
                    timeout=self._timeout_s,
                    stream=self._layout.stream_of(event.execution_id),
                    headers={MSG_ID: event.event_id},
                )
        except (TimeoutError, APIError, ConnectionError) as error:
            raise PublishError(f"event not acknowledged: {error!r}") from error
        return not ack.duplicate

    async def write_fence(self, partition: int, owner: str) -> int:
        """Take ``partition`` over: store a new fence and return its sequence. Every publish
        under an earlier fence of the partition is refused from then on.

        Tried again while the stream has no leader (a replicated stream just created, or
        electing one): a fence stored twice is harmless, the later one is the last and its
        sequence is the one returned."""
        try:
            ack = await retry_unavailable(
                lambda: self._js.publish(
                    self._layout.fence_subject(partition),
                    owner.encode(),
                    timeout=self._timeout_s,
                    stream=self._layout.stream(partition),
                ),
                what=f"fence of partition {partition}",
            )
        except (TimeoutError, APIError, ConnectionError, NoStreamResponseError) as error:
            raise PublishError(f"fence of partition {partition} not stored: {error!r}") from error
        return ack.seq


@dataclass(eq=False)
class _Queued:
    """One caller's events of one partition, waiting for the partition's writer."""

    events: list[Event]
    headers: dict[str, str]
    fence: int
    future: asyncio.Future[list[int]]


def _as_messages(events: list[Event]) -> bool:
    """Whether ``events`` go as conditional messages one by one rather than an atomic batch:
    a few of one execution, whose prefix the scheduler can read (the module's docstring)."""
    first = events[0].execution_id
    return len(events) <= _FEW_EVENTS and all(e.execution_id == first for e in events)


def _chunks(events: list[Event]) -> list[list[tuple[Event, bytes]]]:
    """``events``, encoded, in order, as batches within the server's limits."""
    chunks: list[list[tuple[Event, bytes]]] = [[]]
    size = 0
    for event in events:
        payload = codec.encode(event)
        current = chunks[-1]
        if current and (len(current) >= _BATCH_MESSAGES or size + len(payload) > _BATCH_BYTES):
            current = []
            chunks.append(current)
            size = 0
        current.append((event, payload))
        size += len(payload)
    return chunks


async def _pause(attempt: int) -> None:
    """A moment for the leader to clear its in-flight mark: 1 ms growing to 50 ms, jittered."""
    await asyncio.sleep(random.uniform(0.5, 1.0) * min(0.05, 0.001 * 2**attempt))


class _Acks:
    """Publishes whose acknowledgements are awaited together: one reply subscription, one
    future per message, resolved with its stream sequence or failed with the stream's error.
    (nats-py's ``publish_async`` leaves its future pending when the stream answers with an
    error, so a refused publish would look like a timeout.)"""

    def __init__(self, js: JetStreamContext) -> None:
        self._nc = js._nc  # the client the context publishes with (nats-py exposes no accessor)
        self._prefix = ""
        self._sub: Subscription | None = None
        self._tokens = itertools.count()
        self._waiting: dict[str, asyncio.Future[int]] = {}

    async def publish(
        self, subject: str, payload: bytes, headers: dict[str, str]
    ) -> asyncio.Future[int]:
        if self._sub is None or self._sub._closed:
            self._prefix = self._nc.new_inbox()
            self._sub = await self._nc.subscribe(f"{self._prefix}.*", cb=self._answered)
        token = str(next(self._tokens))
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting[token] = future
        future.add_done_callback(lambda _: self._waiting.pop(token, None))
        await self._nc.publish(subject, payload, reply=f"{self._prefix}.{token}", headers=headers)
        return future

    async def publish_only(self, subject: str, payload: bytes, headers: dict[str, str]) -> None:
        """A message whose answer nobody waits for (one inside an atomic batch)."""
        await self._nc.publish(subject, payload, headers=headers)

    async def _answered(self, msg: Msg) -> None:
        future = self._waiting.get(msg.subject.rsplit(".", 1)[-1])
        if future is None or future.done():
            return
        if msg.headers and msg.headers.get("Status") == "503":
            future.set_exception(ConnectionError("no stream answered (503)"))
            return
        try:
            answer = json.loads(msg.data)
        except ValueError as error:
            future.set_exception(PublishError(f"unreadable acknowledgement: {error}"))
            return
        if "error" in answer:
            refused = answer["error"]
            future.set_exception(
                APIError(
                    code=refused.get("code"),
                    err_code=refused.get("err_code"),
                    description=refused.get("description"),
                )
            )
            return
        future.set_result(int(answer["seq"]))
