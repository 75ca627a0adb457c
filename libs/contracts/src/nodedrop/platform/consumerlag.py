"""Queue depth and lag of a service's durable consumers, sampled into the metrics.

One ``CONSUMER.INFO`` request per consumer every :data:`SAMPLE_INTERVAL_S`, never per message:
the cost is the same at any load. A consumer that cannot be read (NATS away, a scheduler
consumer replaced in a takeover) keeps its last value until the next sample that works; a
partition no longer sampled (its lease handed back) loses its series.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from nats.js import JetStreamContext

from nodedrop.platform.metrics import CONSUMER_ACK_PENDING, CONSUMER_PENDING, CONSUMER_REDELIVERED

log = logging.getLogger(__name__)

SAMPLE_INTERVAL_S = 10.0
_GAUGES = (CONSUMER_PENDING, CONSUMER_ACK_PENDING, CONSUMER_REDELIVERED)


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
        for labels in self._shown - now:
            for gauge in _GAUGES:
                with contextlib.suppress(KeyError):
                    gauge.remove(*labels)
        self._shown = now

    async def run(self, stop: asyncio.Event) -> None:
        """Sample every ``interval_s`` until ``stop`` is set."""
        while not stop.is_set():
            await self.sample()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval_s)
