"""Queue depth and lag of a service's durable consumers, sampled into the metrics.

One ``CONSUMER.INFO`` request per consumer every :data:`SAMPLE_INTERVAL_S`, never per message:
the cost is the same at any load. When the consumer has messages it has not acknowledged, the
first of them (the first stored after its ack floor on one of its filter subjects, one
``STREAM.MSG.GET`` per filter subject) gives the lag in seconds: how long ago it was stored.
A consumer that cannot be read (NATS away, a scheduler consumer replaced in a takeover) keeps
its last value until the next sample that works; a partition no longer sampled (its lease
handed back) loses its series.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo
from nats.js.errors import NotFoundError

from nodedrop.platform.metrics import (
    CONSUMER_ACK_PENDING,
    CONSUMER_LAG_SECONDS,
    CONSUMER_PENDING,
    CONSUMER_REDELIVERED,
)

log = logging.getLogger(__name__)

SAMPLE_INTERVAL_S = 10.0
_GAUGES = (CONSUMER_PENDING, CONSUMER_ACK_PENDING, CONSUMER_REDELIVERED, CONSUMER_LAG_SECONDS)


@dataclass(frozen=True)
class Sampled:
    """One durable consumer to sample: ``role`` is the metric's ``consumer`` label (bounded:
    ``scheduler``, ``runners``, ``notifier``), ``name`` the consumer's name on ``stream``."""

    role: str
    partition: int
    stream: str
    name: str


class ConsumerLag:
    def __init__(
        self,
        js: JetStreamContext,
        targets: Callable[[], Iterable[Sampled]],
        interval_s: float = SAMPLE_INTERVAL_S,
    ) -> None:
        self._js = js
        self._targets = targets
        self._interval_s = interval_s
        self._shown: set[tuple[str, str]] = set()

    async def sample(self) -> None:
        """Read every target's consumer info once and set the gauges."""
        now: set[tuple[str, str]] = set()
        for target in self._targets():
            labels = (target.role, str(target.partition))
            now.add(labels)
            try:
                info = await self._js.consumer_info(target.stream, target.name)
            except Exception as error:  # NATS away, or the consumer replaced meanwhile
                log.debug("consumer %s on %s not sampled: %r", target.name, target.stream, error)
                continue
            CONSUMER_PENDING.labels(*labels).set(info.num_pending or 0)
            CONSUMER_ACK_PENDING.labels(*labels).set(info.num_ack_pending or 0)
            CONSUMER_REDELIVERED.labels(*labels).set(info.num_redelivered or 0)
            try:
                lag = await self._lag_seconds(target.stream, info)
            except Exception as error:  # as above; the counts are set already
                log.debug("lag of %s on %s not sampled: %r", target.name, target.stream, error)
            else:
                CONSUMER_LAG_SECONDS.labels(*labels).set(lag)
        for labels in self._shown - now:
            for gauge in _GAUGES:
                with contextlib.suppress(KeyError):
                    gauge.remove(*labels)
        self._shown = now

    async def _lag_seconds(self, stream: str, info: ConsumerInfo) -> float:
        """Seconds since the consumer's oldest unacknowledged message was stored (0: none)."""
        if not (info.num_pending or info.num_ack_pending):
            return 0.0
        floor = info.ack_floor.stream_seq if info.ack_floor else 0
        config = info.config
        subjects: list[str | None] = list(config.filter_subjects or []) or [config.filter_subject]
        stored: list[datetime] = []
        for subject in subjects:
            try:
                message = await self._js.get_msg(
                    stream, seq=(floor or 0) + 1, subject=subject or ">", next=True
                )
            except NotFoundError:
                continue
            if message.time is not None:
                stored.append(message.time)
        if not stored:
            return 0.0
        return max(0.0, (datetime.now(UTC) - min(stored)).total_seconds())

    async def run(self, stop: asyncio.Event) -> None:
        """Sample every ``interval_s`` until ``stop`` is set."""
        while not stop.is_set():
            await self.sample()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval_s)
