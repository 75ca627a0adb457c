"""Reading the events stream in order: one execution's recorded events (the scheduler rebuilding
an execution, the API's events endpoint, runners checking an old task) and any stretch of the
stream in batches (the notifier's rebuild and retention, the chaos checks).

Both read through an ephemeral, in-memory pull consumer with no acks: reading changes nothing on
the server, and the consumer is deleted afterwards (or expires by itself if the reader dies).
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncGenerator

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from nodedrop.contracts import codec, subjects
from nodedrop.contracts.events import AnyEvent

log = logging.getLogger(__name__)

_FETCH_BATCH = 1000


async def read_batches(
    js: JetStreamContext,
    *,
    filter_subject: str,
    after_seq: int = 0,
    batch_size: int = _FETCH_BATCH,
    description: str = "nodedrop scan",
    timeout_s: float = 10.0,
    headers_only: bool = False,
) -> AsyncGenerator[list[Msg], None]:
    """Batches of the messages on ``filter_subject`` with stream sequence > ``after_seq``, in
    stream order, up to what is stored when the read starts. The caller may stop early by
    leaving the loop. With ``headers_only`` the messages come without their data (for readers
    that need only the subject, such as which executions were requested)."""
    config = ConsumerConfig(
        # Named here, not by the server: the name is then in the create request's subject,
        # which is how NATS permissions keep services from creating (changing) a durable
        # consumer under the same grant (nodedrop.contracts.natsauth).
        name=f"read-{uuid.uuid4().hex}",
        description=description,
        filter_subject=filter_subject,
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=after_seq + 1,
        ack_policy=AckPolicy.NONE,
        headers_only=headers_only or None,
        # Ephemeral and in memory: gone soon even if this process dies before deleting it.
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
                batch = await sub.fetch(min(batch_size, remaining), timeout=timeout_s)
                remaining = min(remaining - len(batch), batch[-1].metadata.num_pending)
                yield batch
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
    finally:
        with contextlib.suppress(NotFoundError):
            await js.delete_consumer(subjects.EVENTS_STREAM, info.name)


async def read_execution(
    js: JetStreamContext, execution_id: str, *, after_seq: int = 0, timeout_s: float = 5.0
) -> list[tuple[int, AnyEvent]]:
    """Every stored event of one execution with stream sequence > ``after_seq``, up to what is
    stored when the read starts. An event this version cannot decode (a newer writer's, or a
    malformed message) is skipped with a warning: one bad message must not make an execution
    unreadable."""
    events: list[tuple[int, AnyEvent]] = []
    batches = read_batches(
        js,
        filter_subject=subjects.execution_subject(execution_id),
        after_seq=after_seq,
        description=f"read events of {execution_id}",
        timeout_s=timeout_s,
    )
    async for batch in batches:
        for msg in batch:
            seq = msg.metadata.sequence.stream
            try:
                events.append((seq, codec.decode(msg.data)))
            except codec.EventDecodeError as error:
                log.warning("undecodable event at stream seq %s skipped: %s", seq, error)
    return events
