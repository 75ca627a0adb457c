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
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from nodedrop.contracts import codec, subjects
from nodedrop.contracts.events import AnyEvent
from nodedrop.contracts.jetstream import StreamSettings, consumer_configs
from nodedrop.notifier.store import ProjectionStore

log = logging.getLogger(__name__)

T = TypeVar("T")


class _RewindError(Exception):
    """The batch does not continue the checkpoint: earlier events are still outstanding."""


class _StoppedError(Exception):
    """Stop was requested while an operation kept failing."""


class Projector:
    """Projects every event of the stream, once, in stream order. Run one per database."""

    def __init__(
        self,
        js: JetStreamContext,
        store: ProjectionStore,
        *,
        batch_size: int = 500,
        fetch_timeout: float = 1.0,
        max_backoff: float = 5.0,
    ) -> None:
        self._js = js
        self._store = store
        self._batch_size = batch_size
        # A fetch returns as soon as one event is there; the timeout only bounds an idle wait, so
        # the loop notices a stop request.
        self._fetch_timeout = fetch_timeout
        self._max_backoff = max_backoff
        self._advanced = asyncio.Condition()
        #: The last stream sequence committed to PostgreSQL.
        self.checkpoint = 0

    async def wait_for(self, seq: int) -> None:
        """Return once everything up to stream sequence ``seq`` is projected."""
        async with self._advanced:
            await self._advanced.wait_for(lambda: self.checkpoint >= seq)

    async def run(self, stop: asyncio.Event) -> None:
        """Project until ``stop`` is set. Failures are logged and retried, never raised."""
        sub: JetStreamContext.PullSubscription | None = None
        stopping = asyncio.create_task(stop.wait())
        try:
            self.checkpoint = await self._until_done(self._store.checkpoint, stop)
            backoff = _Backoff(self._max_backoff)
            while not stop.is_set():
                try:
                    if sub is None:
                        sub = await self._bind()
                    msgs = await self._fetch(sub, stopping)
                except TimeoutError:
                    continue  # Nothing new.
                except Exception:
                    log.warning("fetching events failed; retrying", exc_info=True)
                    await _sleep_unless(stop, backoff.next())
                    continue
                try:
                    await self._project(msgs, stop)
                    backoff.reset()
                except _RewindError:
                    await _unsubscribe(sub)
                    sub = None
                except _StoppedError:
                    raise
                except Exception:
                    # The batch stays unacked; binding again rewinds the consumer to it.
                    log.warning("projecting a batch failed; starting over from the checkpoint",
                                exc_info=True)  # fmt: skip
                    await _unsubscribe(sub)
                    sub = None
                    await _sleep_unless(stop, backoff.next())
        except _StoppedError:
            log.info("projector stopped with a batch uncommitted; the next start resumes there")
        finally:
            stopping.cancel()
            if sub is not None:
                await _unsubscribe(sub)

    async def _fetch(
        self, sub: JetStreamContext.PullSubscription, stopping: asyncio.Task[Any]
    ) -> list[Msg]:
        """The next batch, or nothing once stop is requested (without waiting out the pull)."""
        fetch = asyncio.ensure_future(sub.fetch(self._batch_size, timeout=self._fetch_timeout))
        await asyncio.wait({fetch, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if fetch.done():
            return fetch.result()
        # Anything this pull still delivers stays unacked; the next start rewinds to it.
        fetch.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await fetch
        return []

    async def _bind(self) -> JetStreamContext.PullSubscription:
        await rewind_consumer(self._js, self.checkpoint)
        return await self._js.pull_subscribe_bind(
            subjects.NOTIFIER_CONSUMER, stream=subjects.EVENTS_STREAM
        )

    async def _project(self, msgs: Sequence[Msg], stop: asyncio.Event) -> None:
        fresh: dict[int, Msg] = {}
        done: list[Msg] = []
        broken: list[Msg] = []
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
        await _settle(ack=done, term=broken)

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
        try:
            msg = await self._js.get_msg(
                subjects.EVENTS_STREAM, seq=seq, subject=subjects.all_events(), next=True
            )
        except NotFoundError:
            return sys.maxsize  # Nothing from there on: the events went while we looked.
        return msg.seq or sys.maxsize

    async def _until_done(
        self,
        attempt: Callable[[], Awaitable[T]],
        stop: asyncio.Event,
        keep_alive: Iterable[Msg] = (),
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


async def rewind_consumer(js: JetStreamContext, checkpoint: int) -> None:
    """Make the durable consumer deliver from ``checkpoint + 1`` unless it stands there already.

    A consumer's start cannot be changed in place: it is deleted and created again with the
    canonical configuration, starting at the checkpoint.
    """
    try:
        info = await js.consumer_info(subjects.EVENTS_STREAM, subjects.NOTIFIER_CONSUMER)
    except NotFoundError:
        info = None
    if info is not None and info.delivered is not None:
        if info.delivered.stream_seq == checkpoint:
            return
        log.info("rewinding consumer %s from %d to the checkpoint %d",
                 subjects.NOTIFIER_CONSUMER, info.delivered.stream_seq, checkpoint)  # fmt: skip
    config = _notifier_consumer_config(checkpoint + 1)
    for attempt in range(3):
        with contextlib.suppress(NotFoundError):
            await js.delete_consumer(subjects.EVENTS_STREAM, subjects.NOTIFIER_CONSUMER)
        try:
            await js.add_consumer(subjects.EVENTS_STREAM, config)
            return
        except Exception:
            # Another service's ensure_jetstream may have recreated it in between: go again.
            if attempt == 2:
                raise


def _notifier_consumer_config(start_seq: int) -> ConsumerConfig:
    settings = StreamSettings()
    (config,) = [
        c
        for c in consumer_configs(settings, fresh_stream=True)
        if c.durable_name == subjects.NOTIFIER_CONSUMER
    ]
    config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
    config.opt_start_seq = start_seq
    return config


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


async def _settle(*, ack: Sequence[Msg] = (), term: Sequence[Msg] = ()) -> None:
    # Acks follow the commit. One lost here is harmless: the message comes back after the ack
    # wait, at or below the checkpoint, and is acked then.
    try:
        for msg in ack:
            await msg.ack()
        for msg in term:
            await msg.term()
    except Exception:
        log.warning("acknowledging events failed; they will be redelivered and skipped",
                    exc_info=True)  # fmt: skip


async def _unsubscribe(sub: JetStreamContext.PullSubscription) -> None:
    with contextlib.suppress(Exception):
        await sub.unsubscribe()
