"""Where an execution's events live: slot, partition, stream and subject, decided here only.

Every event of an execution goes to ``nodedrop.log.<slot>.<execution_id>.<EventType>``. The slot
(``000``-``255``) is a stable hash of the execution id and never changes. The log is split into
``partitions`` streams (``NODEDROP_EVENTS_000`` ...), each holding a fixed, contiguous range of
slots: its subjects are those slots' prefixes. A partition is the unit of ordering, of
replication, of fsync (a stream stores its messages one after another; several streams overlap
their writes) and of ownership (one scheduler and one projector at a time own a partition).

Because the slot is in the subject and not the partition, a partition can later be split or its
slots moved to another stream without rewriting a stored event. 256 slots allow as many
partitions. The subject format's version is in its prefix: ``nodedrop.events.<slot>`` with 16
slots was the first (one stream, ``NODEDROP_EVENTS``); ``nodedrop migrate-log`` copies such a
log into this layout.

Pure: no I/O. Services build one :class:`Layout` from ``NODEDROP_PARTITIONS`` at start; every
service of an installation must use the same value (a start against streams laid out for
another count stops with a message naming the setting).
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from nodedrop.contracts.events import Event, NodeReady, type_name

SLOTS = 256
#: The events' subjects, version 2 of the format (the slot is three digits, 256 of them).
EVENTS_PREFIX = "nodedrop.log"
STREAM_PREFIX = "NODEDROP_EVENTS_"
#: Where a partition's current owner records its fence (see :meth:`Layout.fence_subject`).
FENCE_PREFIX = "nodedrop.fence"
PARTITIONS_ENV = "NODEDROP_PARTITIONS"
#: Measured with the whole system on one 2-core machine (docs/benchmarks.md, "Partitions"): one
#: stream sustains the most there. More streams overlap their fsyncs, but every partition adds
#: consumers, pulls and projection transactions to the same two cores, which the overlap does
#: not pay for; partitions pay off where the services and servers have machines of their own.
DEFAULT_PARTITIONS = 1


def slot_of(execution_id: str) -> int:
    return zlib.crc32(execution_id.encode()) % SLOTS


def child_execution_id(parent_id: str, node: str, attempt: int, index: int) -> str:
    """The id of child ``index`` that attempt ``attempt`` of ``execute_workflow`` node ``node``
    starts: derived from those alone, so deciding it again names the same child, and chosen in
    the parent's slot, so parent and children share a partition and the scheduler records a
    child's start (or end) and the parent's note of it in one atomic, fenced batch.

    32 hex digits, like the api's ids free of dots: a hash of those, whose last 4 digits are
    counted up until the id falls in the slot (about 256 tries of crc32)."""
    slot = slot_of(parent_id)
    base = hashlib.sha256(f"{parent_id}/{node}/{attempt}/{index}".encode()).hexdigest()[:28]
    for suffix in range(1 << 16):
        candidate = f"{base}{suffix:04x}"
        if slot_of(candidate) == slot:
            return candidate
    raise AssertionError("no suffix of 4 hex digits reaches the slot")  # pragma: no cover


def slot_token(slot: int) -> str:
    return f"{slot:03d}"


def event_subject(event: Event) -> str:
    execution_id = event.execution_id
    return f"{EVENTS_PREFIX}.{slot_token(slot_of(execution_id))}.{execution_id}.{type_name(event)}"


def execution_subject(execution_id: str, event_type: str = ">") -> str:
    """All of one execution's events (or one type of them)."""
    return f"{EVENTS_PREFIX}.{slot_token(slot_of(execution_id))}.{execution_id}.{event_type}"


def all_events() -> str:
    return f"{EVENTS_PREFIX}.>"


def events_of_type(event_type: type[Event] | str) -> str:
    name = event_type if isinstance(event_type, str) else type_name(event_type)
    return f"{EVENTS_PREFIX}.*.*.{name}"


def node_ready_subjects() -> str:
    return events_of_type(NodeReady)


def execution_id_of(subject: str) -> str:
    return subject.split(".")[3]


def is_event_subject(subject: str) -> bool:
    """Whether ``subject`` has the shape of an event's (anything may be published there)."""
    parts = subject.split(".")
    return (
        len(parts) == 5
        and ".".join(parts[:2]) == EVENTS_PREFIX
        and parts[2] == slot_token(slot_of(parts[3]))
    )


@dataclass(frozen=True)
class Layout:
    """How many partitions the log has, and which slots each holds."""

    partitions: int = DEFAULT_PARTITIONS

    def __post_init__(self) -> None:
        if not 1 <= self.partitions <= SLOTS:
            raise ValueError(
                f"{PARTITIONS_ENV} must be a whole number from 1 to {SLOTS}, not {self.partitions}"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Layout:
        """The layout ``NODEDROP_PARTITIONS`` in ``env`` (default: the process's) names, for
        the operator commands and the tests; services take theirs from their settings."""
        env = os.environ if env is None else env
        value = env.get(PARTITIONS_ENV, "").strip()
        if not value:
            return cls()
        try:
            partitions = int(value)
        except ValueError:
            raise ValueError(
                f"{PARTITIONS_ENV} must be a whole number from 1 to {SLOTS}, not {value!r}"
            ) from None
        return cls(partitions=partitions)

    def partition_of_slot(self, slot: int) -> int:
        return slot * self.partitions // SLOTS

    def partition_of(self, execution_id: str) -> int:
        return self.partition_of_slot(slot_of(execution_id))

    def slots(self, partition: int) -> range:
        """The contiguous slots of ``partition`` (sizes differ by one at most)."""
        first = -(-partition * SLOTS // self.partitions)
        last = -(-(partition + 1) * SLOTS // self.partitions)
        return range(first, last)

    def stream(self, partition: int) -> str:
        return f"{STREAM_PREFIX}{partition:03d}"

    def stream_of(self, execution_id: str) -> str:
        return self.stream(self.partition_of(execution_id))

    @cached_property
    def streams(self) -> tuple[str, ...]:
        return tuple(self.stream(p) for p in range(self.partitions))

    def partition_of_stream(self, stream: str) -> int:
        """The partition a stream of this layout holds; ValueError for any other name."""
        if stream not in self.streams:
            raise ValueError(f"{stream} is not a stream of a {self.partitions}-partition log")
        return int(stream.removeprefix(STREAM_PREFIX))

    def stream_subjects(self, partition: int) -> list[str]:
        """What the partition's stream stores: its slots' events, and its fence."""
        return [
            *(f"{EVENTS_PREFIX}.{slot_token(s)}.>" for s in self.slots(partition)),
            self.fence_subject(partition),
        ]

    def fence_subject(self, partition: int) -> str:
        """The subject a partition's scheduler writes its fence to when it takes the partition
        over. Every decision it records afterwards says which fence it was made under
        (``Nats-Expected-Last-Subject-Sequence``), and the stream refuses it once a newer
        owner has written another: a late writer is fenced by the stream itself."""
        return f"{FENCE_PREFIX}.{partition:03d}"
