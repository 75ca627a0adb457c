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

import json
import logging
from dataclasses import dataclass

from nodedrop.contracts import subjects
from nodedrop.platform.event_log import EventLog, Fence

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


async def take_over(event_log: EventLog, partition: int, *, owner: str) -> Ownership:
    stream = event_log.layout.stream(partition)
    previous = _parse_fence(await event_log.last_fence(partition), stream)
    start_seq = await _resume_from(event_log, partition, previous)
    consumer = subjects.scheduler_consumer(previous.turn + 1 if previous else 0)
    await event_log.delete_inputs(partition, consumer)  # left by a takeover that stopped half-way
    fence = await event_log.write_fence(
        partition, json.dumps({"owner": owner, "consumer": consumer, "start_seq": start_seq})
    )
    await event_log.open_inputs(partition, consumer, start_seq)
    if previous is not None and previous.consumer != consumer:
        await event_log.delete_inputs(partition, previous.consumer)
    last_seq = await event_log.last_sequence(partition)
    log.info(
        "took partition %d over (fence %d; inputs from seq %d; previous owner %s)",
        partition,
        fence,
        start_seq,
        previous.owner if previous else "none",
    )
    return Ownership(partition, stream, fence, consumer, replayed_through=last_seq)


async def fence_holds(event_log: EventLog, ownership: Ownership) -> bool:
    """Whether ``ownership``'s fence is still the partition's last (a direct read)."""
    fence = await event_log.last_fence(ownership.partition)
    return fence is not None and fence.sequence == ownership.fence


def _parse_fence(fence: Fence | None, stream: str) -> _Fence | None:
    if fence is None:
        return None
    try:
        document = json.loads(fence.body)
        return _Fence(
            owner=str(document["owner"]),
            consumer=str(document["consumer"]),
            start_seq=int(document["start_seq"]),
        )
    except (ValueError, KeyError, TypeError):
        log.error("the last fence of %s is unreadable; reading the partition from the start",
                   stream)  # fmt: skip
        return None


async def _resume_from(event_log: EventLog, partition: int, previous: _Fence | None) -> int:
    """Where the new owner's consumer starts: after the predecessor's ack floor; if its
    consumer is gone (a takeover that stopped half-way), where that one would have started."""
    if previous is None:
        return 1  # the partition's first owner: every input from the start
    floor = await event_log.ack_floor(partition, previous.consumer)
    return previous.start_seq if floor is None else floor + 1
