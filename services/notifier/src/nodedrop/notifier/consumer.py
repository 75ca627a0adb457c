"""The projector loop: the durable ``notifier`` pull consumer, folded into PostgreSQL in batches.

Order matters to a projection, and the checkpoint is the truth about what is projected: events at
or below it are skipped, so an event delivered *after* a later one would be lost. Two rules keep
delivery in order:

- A batch that fails to commit is retried as it is (its messages kept alive with
  ``in_progress``), never nak'ed: a nak lets later events overtake it, and once they move the
  checkpoint past it the redelivered batch would be skipped.
- Messages delivered but never committed (a crash, a pull answer lost in a reconnect) come back
  only after the ack wait, behind newer ones. So the consumer is rewound to the checkpoint at start
  when it has delivered beyond it, and whenever a batch does not continue the checkpoint.

Cost: a batch is one transaction whatever its size, so after its first event a batch keeps
collecting for a short linger (``NODEDROP_PROJECTION_LINGER_MS``) before it is applied; WebSocket
clients read the stream directly and never wait for the projection. Only the last message of a
committed batch is acknowledged: the consumer's ack policy is ``all``, and acking a message at or
below the checkpoint is all an ack ever means here (the checkpoint, not the ack, is the truth).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from nodedrop.contracts import codec
from nodedrop.contracts.events import AnyEvent, ExecutionFinished
from nodedrop.platform.event_log import Delivery, ProjectionFeed, ProjectionLog
from nodedrop.platform.metrics import PROJECTION_LAG_EVENTS, PROJECTION_LAG_SECONDS

log = logging.getLogger(__name__)

T = TypeVar("T")

#: At 200 one-node executions/s (1,200 events/s) a batch of 20 ms holds ~25 events instead of 1-3.
DEFAULT_LINGER_S = 0.02


class Projection(Protocol):
    """Where a projector writes: :class:`nodedrop.notifier.store.ProjectionStore` (PostgreSQL),
    or :class:`nodedrop.notifier.testing.MemoryProjection` in unit tests."""

    async def checkpoint(self) -> int:
        """The last stream sequence applied (0 before the first batch)."""
        ...

    async def apply(self, events: Sequence[tuple[int, AnyEvent]], through_seq: int) -> int:
        """Project ``events`` and move the checkpoint to ``through_seq``, in one commit,
        skipping what the checkpoint covers; how many events were applied."""
        ...


class _RewindError(Exception):
    """The batch does not continue the checkpoint: earlier events are still outstanding."""


class _StoppedError(Exception):
    """Stop was requested while an operation kept failing."""


class Projector:
    """Projects every event of one partition's stream, once, in stream order: one per partition
    and database (its checkpoint is the partition's row in ``projection_checkpoints``)."""

    def __init__(
        self,
        events: ProjectionLog,
        store: Projection,
        *,
        partition: int,
        batch_size: int = 500,
        linger_s: float = DEFAULT_LINGER_S,
        max_backoff: float = 5.0,
        announce: bool = False,
    ) -> None:
        self._events = events
        self._store = store
        self.partition = partition
        self.stream = events.layout.stream(partition)
        self._batch_size = batch_size
        #: How long a batch keeps collecting after its first event (fewer, larger transactions).
        self._linger_s = linger_s
        self._max_backoff = max_backoff
        #: Whether the ids of the executions a committed batch finished are announced, for the
        #: api's waiting requests.
        self._announce = announce
        self._advanced = asyncio.Condition()
        #: The last stream sequence committed to PostgreSQL.
        self.checkpoint = 0
        #: The ``partition`` label of the lag metrics.
        self._lag_label = str(partition)

    async def wait_for(self, seq: int) -> None:
        """Return once everything up to stream sequence ``seq`` is projected."""
        async with self._advanced:
            await self._advanced.wait_for(lambda: self.checkpoint >= seq)

    async def run(self, stop: asyncio.Event) -> None:
        """Project until ``stop`` is set. Failures are logged and retried, never raised."""
        consumer: ProjectionFeed | None = None
        stopping = asyncio.create_task(stop.wait())
        try:
            self.checkpoint = await self._until_done(self._store.checkpoint, stop)
            backoff = _Backoff(self._max_backoff)
            while not stop.is_set():
                try:
                    if consumer is None:
                        consumer = await self._bind()
                    msgs = await self._next_batch(consumer, stopping)
                except Exception:
                    log.warning("pulling events failed; retrying", exc_info=True)
                    if consumer is not None:
                        await consumer.stop()
                        consumer = None
                    await _sleep_unless(stop, backoff.next())
                    continue
                try:
                    await self._project(msgs, stop)
                    backoff.reset()
                except _RewindError:
                    await consumer.stop()
                    consumer = None
                except _StoppedError:
                    raise
                except Exception:
                    # The batch stays unacked; binding again rewinds the consumer to it.
                    log.warning("projecting a batch failed; starting over from the checkpoint",
                                exc_info=True)  # fmt: skip
                    await consumer.stop()
                    consumer = None
                    await _sleep_unless(stop, backoff.next())
        except _StoppedError:
            log.info("projector stopped with a batch uncommitted; the next start resumes there")
        finally:
            stopping.cancel()
            if consumer is not None:
                with contextlib.suppress(Exception):
                    await consumer.stop()

    async def _next_batch(
        self, consumer: ProjectionFeed, stopping: asyncio.Task[Any]
    ) -> list[Delivery]:
        """The next batch, or nothing once stop is requested (without waiting out the linger).
        Anything taken and not committed stays unacked; the next start rewinds to it."""
        collect = asyncio.ensure_future(self._collect(consumer))
        await asyncio.wait({collect, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if collect.done():
            return collect.result()
        collect.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await collect
        return []

    async def _collect(self, consumer: ProjectionFeed) -> list[Delivery]:
        batch = list(await consumer.next_batch(self._batch_size, None))
        if not batch or self._linger_s <= 0:
            return batch
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._linger_s
        while len(batch) < self._batch_size and (left := deadline - loop.time()) > 0:
            batch += await consumer.next_batch(self._batch_size - len(batch), left)
        return batch

    async def _bind(self) -> ProjectionFeed:
        return await self._events.open_projection(
            self.partition, self.checkpoint, capacity=2 * self._batch_size
        )

    async def _project(self, msgs: Sequence[Delivery], stop: asyncio.Event) -> None:
        fresh: dict[int, Delivery] = {}
        done: list[Delivery] = []
        broken: list[Delivery] = []
        for msg in msgs:
            seq = msg.metadata.sequence.stream
            if seq <= self.checkpoint:
                done.append(msg)  # Projected already: a redelivery whose ack got lost.
            else:
                fresh[seq] = msg
        if fresh:
            seqs = sorted(fresh)
            await self._check_continues(seqs)
            events: list[tuple[int, AnyEvent]] = []
            for seq in seqs:
                msg = fresh[seq]
                try:
                    events.append((seq, codec.decode(msg.data)))
                    done.append(msg)
                except codec.EventDecodeError as error:
                    # Never stalls the projection: the checkpoint moves past it all the same.
                    log.error("event %d on %s does not decode, skipped: %s",
                              seq, msg.subject, error)  # fmt: skip
                    broken.append(msg)
            through = seqs[-1]
            await self._until_done(
                lambda: self._store.apply(events, through), stop, keep_alive=fresh.values()
            )
            async with self._advanced:
                self.checkpoint = through
                self._advanced.notify_all()
            self._observe_lag(fresh[through])
            await self._announce_finished(events)
        await _settle(done=[*done, *broken], term=broken)

    def _observe_lag(self, newest: Delivery) -> None:
        """The projection's lag once a batch is committed: the events stored after its newest
        (the consumer's pending count, as the server gave it with that event) and how old that
        event then was. A stalled projector stops updating these: the sampled pending count of
        its consumer (nodedrop_consumer_pending_messages) keeps growing instead."""
        metadata = newest.metadata
        PROJECTION_LAG_EVENTS.labels(self._lag_label).set(metadata.num_pending)
        age = (datetime.now(UTC) - metadata.timestamp).total_seconds()
        PROJECTION_LAG_SECONDS.labels(self._lag_label).set(max(age, 0.0))

    async def _announce_finished(self, events: Sequence[tuple[int, AnyEvent]]) -> None:
        """Tell the api which executions the committed batch ended (their rows now say so)."""
        if not self._announce:
            return
        finished = [e.execution_id for _, e in events if isinstance(e, ExecutionFinished)]
        if not finished:
            return
        try:
            await self._events.announce_projected(self.partition, finished)
        except Exception:
            # Best effort: a waiting request then answers when its wait runs out.
            log.warning("announcing finished executions failed", exc_info=True)

    async def _check_continues(self, seqs: list[int]) -> None:
        # A gap in the sequences is either events still outstanding (delivered later, behind
        # newer ones: rewind) or a hole in the stream: pruned executions (retention purges
        # their subjects) or events aged out by max_age. The stream tells which.
        for start, end in itertools.pairwise([self.checkpoint, *seqs]):
            if end != start + 1 and await self._first_stored_from(start + 1) < end:
                log.warning("events from %d are outstanding (got %d on); rewinding",
                            start + 1, end)  # fmt: skip
                raise _RewindError

    async def _first_stored_from(self, seq: int) -> int:
        """The sequence of the first event still in the stream at or after ``seq``."""
        first = await self._events.first_event_from(self.partition, seq)
        return sys.maxsize if first is None else first  # None: the events went while we looked

    async def _until_done(
        self,
        attempt: Callable[[], Awaitable[T]],
        stop: asyncio.Event,
        keep_alive: Iterable[Delivery] = (),
    ) -> T:
        """Run ``attempt`` until it succeeds (the database may be restarting)."""
        backoff = _Backoff(self._max_backoff)
        while True:
            try:
                return await attempt()
            except Exception:
                log.exception("writing the projection failed; retrying the same batch")
            if stop.is_set():
                raise _StoppedError
            with contextlib.suppress(Exception):
                for msg in keep_alive:
                    await msg.in_progress()
            await _sleep_unless(stop, backoff.next())


class _Backoff:
    def __init__(self, maximum: float, first: float = 0.05) -> None:
        self._first = first
        self._maximum = maximum
        self._delay = first

    def next(self) -> float:
        delay = self._delay
        self._delay = min(self._delay * 2, self._maximum)
        return delay

    def reset(self) -> None:
        self._delay = self._first


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _settle(*, done: Sequence[Delivery], term: Sequence[Delivery] = ()) -> None:
    """Acknowledge a committed batch: ``term`` the messages that did not decode (an advisory
    names each), then ack the last of ``done``, which under the ``all`` ack policy acknowledges
    every message up to it."""
    # Acks follow the commit. One lost here is harmless: the messages come back after the ack
    # wait, at or below the checkpoint, and are acked then.
    try:
        for msg in term:
            await msg.term()
        if done:
            await max(done, key=lambda msg: msg.metadata.sequence.stream).ack()
    except Exception:
        log.warning("acknowledging events failed; they will be redelivered and skipped",
                    exc_info=True)  # fmt: skip
