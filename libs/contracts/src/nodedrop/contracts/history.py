"""Reading an execution's recorded events from the stream, in order (the one implementation,
used by the scheduler to rebuild an execution and by the API's events endpoint)."""

from __future__ import annotations

import contextlib
import logging
import uuid

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from nodedrop.contracts import codec, subjects
from nodedrop.contracts.events import AnyEvent

log = logging.getLogger(__name__)

_FETCH_BATCH = 1000


async def read_execution(
    js: JetStreamContext, execution_id: str, *, after_seq: int = 0, timeout_s: float = 5.0
) -> list[tuple[int, AnyEvent]]:
    """Every stored event of one execution with stream sequence > ``after_seq``, up to what is
    stored when the read starts. An event this version cannot decode (a newer writer's, or a
    malformed message) is skipped with a warning: one bad message must not make an execution
    unreadable."""
    config = ConsumerConfig(
        # Named here, not by the server: the name is then in the create request's subject,
        # which is how NATS permissions keep services from creating (changing) a durable
        # consumer under the same grant (nodedrop.contracts.natsauth).
        name=f"read-{uuid.uuid4().hex}",
        description=f"read events of {execution_id}",
        filter_subject=subjects.execution_subject(execution_id),
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=after_seq + 1,
        ack_policy=AckPolicy.NONE,
        # Ephemeral and in memory: gone soon even if this process dies before deleting it.
        inactive_threshold=30.0,
        mem_storage=True,
        num_replicas=1,
    )
    info = await js.add_consumer(subjects.EVENTS_STREAM, config)
    assert info.name is not None
    try:
        remaining = info.num_pending or 0
        if remaining == 0:
            return []
        sub = await js.pull_subscribe_bind(consumer=info.name, stream=subjects.EVENTS_STREAM)
        events: list[tuple[int, AnyEvent]] = []
        try:
            while remaining > 0:
                for msg in await sub.fetch(min(_FETCH_BATCH, remaining), timeout=timeout_s):
                    seq = msg.metadata.sequence.stream
                    remaining = min(remaining - 1, msg.metadata.num_pending)
                    try:
                        events.append((seq, codec.decode(msg.data)))
                    except codec.EventDecodeError as error:
                        log.warning("undecodable event at stream seq %s skipped: %s", seq, error)
        finally:
            await sub.unsubscribe()
        return events
    finally:
        with contextlib.suppress(NotFoundError):
            await js.delete_consumer(subjects.EVENTS_STREAM, info.name)
