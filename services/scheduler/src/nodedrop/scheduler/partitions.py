"""Taking a partition of the log over: the fence, and the owner's own consumer.

A scheduler decides for a partition only as its owner. Taking it over, in this order:

1. read the partition's last fence (who owned it, through which consumer, from where) and that
   consumer's ack floor: every input at or below it was decided and recorded;
2. write a new fence to the partition's stream. From then on the stream refuses every decision
   published under an older fence (``Nats-Expected-Last-Subject-Sequence``, checked by the
   stream's leader in stream order): a late writer, even one paused past any lease, is fenced
   by the stream itself and records nothing;
3. create this owner's consumer, starting just after that floor, and delete the predecessor's:
   a process that lost the partition can neither take nor acknowledge another input of it (its
   pull requests and acks name a consumer that is gone). Inputs between the floor and the
   takeover come again; deciding them again records nothing new (deterministic event ids), and
   the executions they belong to are rebuilt from the stream first. The consumers' names take
   turns (``scheduler-0`` ... ``scheduler-3``), so that NATS permissions can name every one;
   a name comes back only after three more takeovers of the partition.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.errors import APIError, NotFoundError

from nodedrop.contracts import subjects
from nodedrop.platform.bus import EventPublisher
from nodedrop.platform.jetstream import StreamSettings, scheduler_consumer_config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ownership:
    partition: int
    stream: str
    #: The sequence of this owner's fence: every decision is published under it.
    fence: int
    consumer: str
    #: Inputs at or below this sequence may have been decided by a predecessor: their
    #: executions are rebuilt from the stream before they are decided on.
    replayed_through: int


@dataclass(frozen=True)
class _Fence:
    owner: str
    consumer: str
    start_seq: int

    @property
    def turn(self) -> int:
        suffix = self.consumer.rsplit("-", 1)[-1]
        return int(suffix) if suffix.isdigit() else -1


async def take_over(
    js: JetStreamContext,
    publisher: EventPublisher,
    settings: StreamSettings,
    partition: int,
    *,
    owner: str,
) -> Ownership:
    layout = settings.layout
    stream = layout.stream(partition)
    previous = await _last_fence(js, stream, layout.fence_subject(partition))
    start_seq = await _resume_from(js, stream, previous)
    consumer = subjects.scheduler_consumer(previous.turn + 1 if previous else 0)
    with contextlib.suppress(NotFoundError):  # left by a takeover that stopped half-way
        await js.delete_consumer(stream, consumer)
    fence = await publisher.write_fence(
        partition, json.dumps({"owner": owner, "consumer": consumer, "start_seq": start_seq})
    )
    await js.add_consumer(stream, scheduler_consumer_config(settings, consumer, start_seq))
    if previous is not None and previous.consumer != consumer:
        with contextlib.suppress(NotFoundError):
            await js.delete_consumer(stream, previous.consumer)
    last_seq = (await js.stream_info(stream)).state.last_seq
    log.info(
        "took partition %d over (fence %d; inputs from seq %d; previous owner %s)",
        partition,
        fence,
        start_seq,
        previous.owner if previous else "none",
    )
    return Ownership(partition, stream, fence, consumer, replayed_through=last_seq)


async def fence_holds(js: JetStreamContext, ownership: Ownership, fence_subject: str) -> bool:
    """Whether ``ownership``'s fence is still the partition's last (a direct read)."""
    try:
        msg = await js.get_last_msg(ownership.stream, fence_subject, direct=True)
    except NotFoundError:
        return False
    return msg.seq == ownership.fence


async def _last_fence(js: JetStreamContext, stream: str, fence_subject: str) -> _Fence | None:
    try:
        msg = await js.get_last_msg(stream, fence_subject, direct=True)
    except NotFoundError:
        return None
    try:
        document = json.loads(msg.data or b"")
        return _Fence(
            owner=str(document["owner"]),
            consumer=str(document["consumer"]),
            start_seq=int(document["start_seq"]),
        )
    except (ValueError, KeyError, TypeError):
        log.error("the last fence of %s is unreadable; reading the partition from the start",
                  stream)  # fmt: skip
        return None


async def _resume_from(js: JetStreamContext, stream: str, previous: _Fence | None) -> int:
    """Where the new owner's consumer starts: after the predecessor's ack floor; if its
    consumer is gone (a takeover that stopped half-way), where that one would have started."""
    if previous is None:
        return 1  # the partition's first owner: every input from the start
    try:
        info = await js.consumer_info(stream, previous.consumer)
    except (NotFoundError, APIError):
        return previous.start_seq
    floor = info.ack_floor.stream_seq if info.ack_floor is not None else 0
    return floor + 1
