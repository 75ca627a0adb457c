"""Reading an execution's recorded events from the stream, in order."""

from __future__ import annotations

import asyncio

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from nodedrop.contracts import codec, subjects
from nodedrop.contracts.events import AnyEvent


async def read_execution(
    js: JetStreamContext, execution_id: str, *, after_seq: int = 0, timeout_s: float = 5.0
) -> list[tuple[int, AnyEvent]]:
    """Every stored event of one execution with stream sequence > ``after_seq``."""
    config = ConsumerConfig(
        ack_policy=AckPolicy.NONE,
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE if after_seq else DeliverPolicy.ALL,
        opt_start_seq=after_seq + 1 if after_seq else None,
        filter_subject=subjects.execution_subject(execution_id),
        inactive_threshold=30.0,
        headers_only=False,
    )
    sub = await js.pull_subscribe(
        subjects.execution_subject(execution_id),
        durable=None,
        stream=subjects.EVENTS_STREAM,
        config=config,
    )
    events: list[tuple[int, AnyEvent]] = []
    try:
        info = await sub.consumer_info()
        remaining = info.num_pending or 0
        while remaining > 0:
            msgs = await asyncio.wait_for(
                sub.fetch(min(remaining, 1000), timeout=timeout_s), timeout_s + 1
            )
            for msg in msgs:
                events.append((msg.metadata.sequence.stream, codec.decode(msg.data)))
            remaining -= len(msgs)
    finally:
        await sub.unsubscribe()
    return events
