"""Reading a stretch of the events stream in order, in batches (for rebuild and retention).

An ephemeral, in-memory pull consumer with no acks: reading changes nothing on the server, and
the consumer is deleted afterwards (or expires by itself if this process dies first).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncGenerator

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from nodedrop.contracts import subjects


async def read_batches(
    js: JetStreamContext,
    *,
    filter_subject: str,
    after_seq: int = 0,
    batch_size: int = 1000,
    description: str = "nodedrop scan",
) -> AsyncGenerator[list[Msg], None]:
    """Batches of the messages on ``filter_subject`` after ``after_seq``, in stream order, until
    none is pending. The caller may stop early by leaving the loop."""
    config = ConsumerConfig(
        # Named here, as contracts.history names its readers: the name is then in the create
        # request's subject, which NATS permissions match (nodedrop.contracts.natsauth).
        name=f"scan-{uuid.uuid4().hex}",
        description=description,
        filter_subject=filter_subject,
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=after_seq + 1,
        ack_policy=AckPolicy.NONE,
        inactive_threshold=60.0,
        mem_storage=True,
        num_replicas=1,
    )
    info = await js.add_consumer(subjects.EVENTS_STREAM, config)
    assert info.name is not None
    try:
        remaining = info.num_pending or 0
        if remaining == 0:
            return
        sub = await js.pull_subscribe_bind(consumer=info.name, stream=subjects.EVENTS_STREAM)
        try:
            while remaining > 0:
                # Never ask for more than is pending: a pull waits for its whole count.
                batch = await sub.fetch(min(batch_size, remaining), timeout=10.0)
                remaining = batch[-1].metadata.num_pending
                yield batch
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
    finally:
        with contextlib.suppress(NotFoundError):
            await js.delete_consumer(subjects.EVENTS_STREAM, info.name)
