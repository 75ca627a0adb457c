"""Reading the log in order: one execution's recorded events (the scheduler rebuilding an
execution, the API's events endpoint, runners checking an old task) and any stretch of one
partition's stream in batches (the notifier's rebuild and retention, the chaos checks).

One execution's events are read with batch direct gets (``$JS.API.DIRECT.GET``, answered by any
replica of the stream, no consumer created): the hot path of rebuilds. Stretches of a stream
are read through an ephemeral, in-memory pull consumer with no acks: reading changes nothing on
the server, and the consumer is deleted afterwards (or expires by itself if the reader dies).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncGenerator

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError, ServiceUnavailableError

from nodedrop.contracts import codec
from nodedrop.contracts.events import AnyEvent
from nodedrop.contracts.retry import retry_unavailable
from nodedrop.contracts.routing import Layout, execution_subject

log = logging.getLogger(__name__)

_FETCH_BATCH = 1000


async def read_batches(
    js: JetStreamContext,
    *,
    stream: str,
    filter_subject: str,
    after_seq: int = 0,
    batch_size: int = _FETCH_BATCH,
    description: str = "nodedrop scan",
    timeout_s: float = 10.0,
    headers_only: bool = False,
) -> AsyncGenerator[list[Msg], None]:
    """Batches of the messages of ``stream`` on ``filter_subject`` with sequence > ``after_seq``, in
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
    info = await js.add_consumer(stream, config)
    assert info.name is not None
    try:
        remaining = info.num_pending or 0
        if remaining == 0:
            return
        sub = await js.pull_subscribe_bind(consumer=info.name, stream=stream)
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
            await js.delete_consumer(stream, info.name)


#: Messages one direct get answers at most (and bytes): bounds what one answer buffers.
_DIRECT_BATCH = 256
_DIRECT_MAX_BYTES = 16 * 1024 * 1024


async def read_execution(
    js: JetStreamContext,
    execution_id: str,
    *,
    layout: Layout | None = None,
    after_seq: int = 0,
    timeout_s: float = 5.0,
) -> list[tuple[int, AnyEvent]]:
    """Every stored event of one execution with stream sequence > ``after_seq``, in order. An
    event this version cannot decode (a newer writer's, or a malformed message) is skipped
    with a warning: one bad message must not make an execution unreadable."""
    layout = layout or Layout.from_env()

    async def once() -> list[tuple[int, AnyEvent]]:
        events: list[tuple[int, AnyEvent]] = []
        async for seq, data in direct_read(
            js,
            layout.stream_of(execution_id),
            execution_subject(execution_id),
            after_seq=after_seq,
            timeout_s=timeout_s,
        ):
            try:
                events.append((seq, codec.decode(data)))
            except codec.EventDecodeError as error:
                log.warning("undecodable event at stream seq %s skipped: %s", seq, error)
        return events

    # A replicated stream answers 503 for a moment while it elects a leader.
    return await retry_unavailable(
        once, what=f"reading the events of {execution_id}", attempts=3, max_s=1.0
    )


class DirectReadError(RuntimeError):
    """A direct get was answered with an error status."""


async def direct_read(
    js: JetStreamContext,
    stream: str,
    subject: str,
    *,
    after_seq: int = 0,
    timeout_s: float = 5.0,
) -> AsyncGenerator[tuple[int, bytes], None]:
    """``(sequence, data)`` of every message of ``stream`` on ``subject`` (wildcards allowed)
    after ``after_seq``, in order, by batch direct gets: each request answers up to
    ``_DIRECT_BATCH`` messages and ends with an end-of-batch status saying how many more match."""
    nc = js._nc  # the client the context publishes with (nats-py exposes no accessor)
    inbox = nc.new_inbox()
    answers: asyncio.Queue[Msg] = asyncio.Queue()

    async def arrived(msg: Msg) -> None:
        await answers.put(msg)

    sub = await nc.subscribe(inbox, cb=arrived)
    try:
        start = after_seq + 1
        while True:
            request = {
                "seq": start,
                "next_by_subj": subject,
                "batch": _DIRECT_BATCH,
                "max_bytes": _DIRECT_MAX_BYTES,
            }
            await nc.publish(
                f"{js._prefix}.DIRECT.GET.{stream}", json.dumps(request).encode(), reply=inbox
            )
            more = False
            while True:
                msg = await asyncio.wait_for(answers.get(), timeout_s)
                headers = msg.headers or {}
                status = headers.get("Status")
                if status is None:
                    seq = int(headers["Nats-Sequence"])
                    start = seq + 1
                    yield seq, msg.data
                    continue
                if status == "204":  # end of this batch: more may match
                    more = headers.get("Nats-Num-Pending", "0") not in ("", "0")
                    break
                if status == "404":  # nothing (more) matches
                    break
                if status == "503":
                    raise ServiceUnavailableError(description=f"direct get on {stream}: 503")
                raise DirectReadError(
                    f"direct get on {stream} answered {status} {headers.get('Description', '')}"
                )
            if not more:
                return
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
