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
import functools
import json
import logging
import uuid
import weakref
from collections.abc import AsyncGenerator

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import ServiceUnavailableError

from nodedrop.contracts import codec
from nodedrop.contracts.events import AnyEvent
from nodedrop.contracts.routing import Layout, execution_subject
from nodedrop.platform.retry import retry_unavailable

log = logging.getLogger(__name__)

_FETCH_BATCH = 1000

#: Flow control of bulk reads (history, stretches of a stream, a WebSocket's stored events):
#: each request asks for at most about this many bytes, and at most :data:`_BULK_REQUESTS` are
#: in flight at once on one connection, however many readers share it (they take turns). The
#: server then never holds more than one such answer for the connection (4 MiB and the message
#: that crosses the line: 12 MB at most with 8 MB messages, where it drops a client as a slow
#: consumer once 64 MiB wait for it), and a reader that is slow to take its messages asks for
#: no more until it has: what it has not taken yet is in its own memory, not on the wire.
_BATCH_BYTES = 4 * 1024 * 1024
_BULK_REQUESTS = 1
#: What a message adds to its payload in a pull's byte count (subject, reply and headers).
_MESSAGE_OVERHEAD = 64 * 1024
#: A bulk read that loses messages on the way (a reconnect) starts again after the last one it
#: has (or after an empty answer while messages are pending), this many times in a row at most.
_RESUMES = 8
#: The longest pause before reading again (0.1 s doubling): the reads of one take over 7 s, as
#: long as a stream's leader election takes at worst on a loaded cluster.
_RESUME_PAUSE_MAX_S = 2.0

_requests: weakref.WeakKeyDictionary[Client, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def _bulk_requests(nc: Client) -> asyncio.Semaphore:
    """The bulk requests in flight on ``nc`` (see :data:`_BULK_REQUESTS`)."""
    slots = _requests.get(nc)
    if slots is None:
        slots = _requests[nc] = asyncio.Semaphore(_BULK_REQUESTS)
    return slots


class IncompleteReadError(RuntimeError):
    """A bulk read could not read everything it was asked for: ``last_seq`` is the stream
    sequence of the last message it did read (``after_seq`` if none)."""

    def __init__(self, stream: str, last_seq: int, reason: str) -> None:
        super().__init__(f"reading {stream} stopped after sequence {last_seq}: {reason}")
        self.stream = stream
        self.last_seq = last_seq
        self.reason = reason


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
    that need only the subject, such as which executions were requested).

    A batch is at most ``batch_size`` messages and about :data:`_BATCH_BYTES` (flow control:
    the next is asked for when the caller takes more). Nothing is skipped: messages lost on the
    way (the connection dropped and re-established) are read again from a new consumer, and a
    read that still cannot go on raises :class:`IncompleteReadError` saying how far it got."""
    nc = js._nc  # the client the context publishes with (nats-py exposes no accessor)
    max_bytes = max(_BATCH_BYTES, nc.max_payload + _MESSAGE_OVERHEAD)
    last_seq = after_seq
    remaining: int | None = None  # how many are left to read, known once the consumer exists
    why = ""
    for attempt in range(_RESUMES + 1):
        config = _scan_config(filter_subject, last_seq, description, headers_only)
        info = await retry_unavailable(
            functools.partial(js.add_consumer, stream, config), what=f"reading {stream}"
        )
        assert info.name is not None
        try:
            pending = info.num_pending or 0
            remaining = pending if remaining is None else min(remaining, pending)
            delivered = 0  # the consumer sequence of the last message taken
            while remaining > 0:
                # Never ask for more than is pending: a pull waits for its whole count.
                request = {"batch": min(batch_size, remaining), "max_bytes": max_bytes}
                batch, ended = await _pull(
                    nc, stream=stream, consumer=info.name, request=request, timeout_s=timeout_s
                )
                lost = any(
                    msg.metadata.sequence.consumer != delivered + 1 + i
                    for i, msg in enumerate(batch)
                )
                if not batch and ended is not None and ended.startswith("404"):
                    return  # deleted since the read started: nothing more to read
                if lost or not batch:
                    # Lost on the way, or an empty answer while messages are pending: on a
                    # replicated stream a 503 while the consumer's leader is elected, or a 409
                    # "Batch Completed" from a member still catching up after a leader change.
                    # Read again from a new consumer, after a pause.
                    why = "lost on the way" if lost else f"the server answered {ended}"
                    break
                delivered += len(batch)
                last_seq = batch[-1].metadata.sequence.stream
                remaining = min(remaining - len(batch), batch[-1].metadata.num_pending)
                yield batch
            else:
                return
        finally:
            with contextlib.suppress(Exception):
                await js.delete_consumer(stream, info.name)
        if attempt < _RESUMES:
            log.warning("reading %s after sequence %d: %s; reading again", stream, last_seq, why)
            await asyncio.sleep(min(_RESUME_PAUSE_MAX_S, 0.1 * 2**attempt))
    raise IncompleteReadError(
        stream, last_seq, f"{why}, {_RESUMES + 1} times (a reconnect, a leader election?)"
    )


def _scan_config(
    filter_subject: str, after_seq: int, description: str, headers_only: bool
) -> ConsumerConfig:
    return ConsumerConfig(
        # Named here, not by the server: the name is then in the create request's subject,
        # which is how NATS permissions keep services from creating (changing) a durable
        # consumer under the same grant (nodedrop.platform.natsauth).
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


async def _pull(
    nc: Client,
    *,
    stream: str,
    consumer: str,
    request: dict[str, int],
    timeout_s: float,
) -> tuple[list[Msg], str | None]:
    """One pull request's messages, and the status that ended it early ("" if none did; None:
    no answer came for ``timeout_s``). Each request has its own inbox: a late answer to an
    earlier one is never taken for this one's."""
    batch: list[Msg] = []
    answers: asyncio.Queue[Msg] = asyncio.Queue()
    inbox = nc.new_inbox()
    async with _bulk_requests(nc):
        sub = await nc.subscribe(inbox, cb=answers.put)
        try:
            await nc.publish(
                f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}",
                json.dumps({**request, "no_wait": True}).encode(),
                reply=inbox,
            )
            while len(batch) < request["batch"]:
                try:
                    msg = await asyncio.wait_for(answers.get(), timeout_s)
                except TimeoutError:
                    return batch, None
                status = msg.headers.get("Status") if msg.headers else None
                if status is None:
                    batch.append(msg)
                    continue
                # 409 "Message Size Exceeds MaxBytes" after messages: the bytes asked for are there.
                description = (msg.headers or {}).get("Description", "")
                return batch, f"{status} {description}".strip()
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
    return batch, ""


#: Messages one direct get answers at most (and bytes, give or take the message that crosses
#: the line: the server sends it whole): bounds what one answer buffers.
_DIRECT_BATCH = 256
_DIRECT_MAX_BYTES = _BATCH_BYTES


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
    layout = layout or Layout()

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
    ``_DIRECT_BATCH`` messages and ends with an end-of-batch status saying how many more match.

    Flow control as in :func:`read_batches`: a request's answer is taken whole (with at most
    :data:`_BULK_REQUESTS` requests in flight on the connection) before its messages are handed
    over, and the next request is sent only once the caller has taken them all."""
    nc = js._nc  # the client the context publishes with (nats-py exposes no accessor)
    inbox = nc.new_inbox()
    answers: asyncio.Queue[Msg] = asyncio.Queue()

    async def arrived(msg: Msg) -> None:
        await answers.put(msg)

    sub = await nc.subscribe(inbox, cb=arrived)
    try:
        start = after_seq + 1
        more = True
        while more:
            request = {
                "seq": start,
                "next_by_subj": subject,
                "batch": _DIRECT_BATCH,
                "max_bytes": _DIRECT_MAX_BYTES,
            }
            batch: list[tuple[int, bytes]] = []
            async with _bulk_requests(nc):
                await nc.publish(
                    f"{js._prefix}.DIRECT.GET.{stream}", json.dumps(request).encode(), reply=inbox
                )
                while True:
                    msg = await asyncio.wait_for(answers.get(), timeout_s)
                    headers = msg.headers or {}
                    status = headers.get("Status")
                    if status is None:
                        seq = int(headers["Nats-Sequence"])
                        start = seq + 1
                        batch.append((seq, msg.data))
                        continue
                    if status == "204":  # end of this batch: more may match
                        more = headers.get("Nats-Num-Pending", "0") not in ("", "0")
                        break
                    if status == "404":  # nothing (more) matches
                        more = False
                        break
                    if status == "503":
                        raise ServiceUnavailableError(description=f"direct get on {stream}: 503")
                    raise DirectReadError(
                        f"direct get on {stream} answered {status} {headers.get('Description', '')}"
                    )
            for item in batch:
                yield item
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
