"""A snapshot of the scheduler's set of unfinished executions, and its encoding (pure: no I/O).

A snapshot is the set together with the stream sequence it is complete up to: every execution
whose ``ExecutionRequested`` is stored at or below ``after_seq`` and that had not finished when
the snapshot was taken is in it (it may also hold executions that finished since, or requested
above ``after_seq``: a restart rebuilds those and finds them finished or running, which costs a
read and loses nothing). The executions requested or finished after ``after_seq`` are read from
the stream (:func:`with_tail`).

Encoded as the ids, one per line, compressed, cut into chunks that each fit in a NATS message
(100,000 unfinished executions take about 2 MB), and a small head naming the chunks (their slot,
count, and the digest of the whole) and ``after_seq``. The chunks of two snapshots in a row go
to two different slots, and the head is written last: a write that stops half-way leaves the
previous head and the chunks it names untouched.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

SLOTS = ("a", "b")
FORMAT = 1
#: Half of NATS's default maximum payload (1 MB): room for the headers, on any server.
CHUNK_BYTES = 512 * 1024
#: zlib's fastest level: for ids it compresses as well as the default (uuid7 ids: ~22 bytes
#: each), in a third of the time.
_COMPRESSION_LEVEL = 1


class SnapshotError(ValueError):
    """A stored snapshot that cannot be read back (damaged, or of an unknown format)."""


@dataclass(frozen=True)
class Snapshot:
    executions: frozenset[str]
    #: The stream sequence the set is complete up to.
    after_seq: int


@dataclass(frozen=True)
class Head:
    slot: str
    chunks: int
    after_seq: int
    executions: int
    sha256: str


def other_slot(slot: str | None, owner: str = "") -> str:
    """Where the next snapshot's chunks go: never the slot the current head names, and always
    among ``owner``'s own (``<owner>-a``, ``<owner>-b``), so a writer that lost the partition
    can never overwrite the chunks its successor's head names."""
    prefix = f"{owner}-" if owner else ""
    return prefix + (SLOTS[1] if slot == prefix + SLOTS[0] else SLOTS[0])


def encode(
    executions: Iterable[str], after_seq: int, slot: str, chunk_bytes: int = CHUNK_BYTES
) -> tuple[Head, bytes, list[bytes]]:
    """The head (and its bytes) and the chunks of a snapshot. CPU-bound for a large set: run it
    off the event loop (zlib and hashlib release the GIL)."""
    ids = list(executions)
    data = zlib.compress("\n".join(ids).encode(), _COMPRESSION_LEVEL)
    chunks = [data[i : i + chunk_bytes] for i in range(0, len(data), chunk_bytes)]
    head = Head(
        slot=slot,
        chunks=len(chunks),
        after_seq=after_seq,
        executions=len(ids),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    document = {"format": FORMAT, **head.__dict__}
    return head, json.dumps(document, sort_keys=True).encode(), chunks


def parse_head(data: bytes) -> Head:
    try:
        document = json.loads(data)
        if document.get("format") != FORMAT:
            raise SnapshotError(f"unknown snapshot format {document.get('format')!r}")
        head = Head(
            slot=str(document["slot"]),
            chunks=int(document["chunks"]),
            after_seq=int(document["after_seq"]),
            executions=int(document["executions"]),
            sha256=str(document["sha256"]),
        )
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise SnapshotError(f"unreadable snapshot head: {error}") from error
    if head.slot.rsplit("-", 1)[-1] not in SLOTS or head.chunks < 0 or head.after_seq < 0:
        raise SnapshotError(f"invalid snapshot head: {head}")
    return head


def decode(head: Head, chunks: list[bytes]) -> Snapshot:
    data = b"".join(chunks)
    if len(chunks) != head.chunks or hashlib.sha256(data).hexdigest() != head.sha256:
        raise SnapshotError("the snapshot's chunks do not match its head")
    try:
        text = zlib.decompress(data).decode()
    except (zlib.error, UnicodeDecodeError) as error:
        raise SnapshotError(f"undecodable snapshot: {error}") from error
    executions = frozenset(text.split("\n")) if text else frozenset()
    if len(executions) != head.executions:
        raise SnapshotError("the snapshot holds a different number of executions than its head")
    return Snapshot(executions, head.after_seq)


def with_tail(
    snapshot: Snapshot, requested: Iterable[str], finished: Iterable[str]
) -> frozenset[str]:
    """The unfinished executions: the snapshot's, and those requested after it, less those that
    finished after it. An execution has one request and its end comes after it, so the order
    of the two reads does not matter."""
    return (snapshot.executions | frozenset(requested)) - frozenset(finished)
