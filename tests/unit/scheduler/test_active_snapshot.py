"""The snapshot of the scheduler's unfinished executions: its encoding, what a damaged one does,
and the set rebuilt from it and the stream after it. No servers."""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nodedrop.scheduler.snapshot import (
    CHUNK_BYTES,
    SLOTS,
    Snapshot,
    SnapshotError,
    decode,
    encode,
    other_slot,
    parse_head,
    with_tail,
)

execution_ids = st.frozensets(st.from_regex(r"[A-Za-z0-9_-]{1,40}", fullmatch=True))


@given(execution_ids, st.integers(min_value=0, max_value=2**63), st.sampled_from(SLOTS))
def test_a_snapshot_reads_back_as_written(
    executions: frozenset[str], after_seq: int, slot: str
) -> None:
    head, head_bytes, chunks = encode(executions, after_seq, slot, chunk_bytes=64)
    assert parse_head(head_bytes) == head
    assert head.slot == slot
    assert decode(head, chunks) == Snapshot(executions, after_seq)


def test_a_hundred_thousand_executions_fit_in_chunks_nats_accepts() -> None:
    executions = {str(uuid.uuid4()) for _ in range(100_000)}
    head, _, chunks = encode(executions, 7, "a")
    assert head.chunks == len(chunks) > 1
    assert all(len(chunk) <= CHUNK_BYTES < 1024 * 1024 for chunk in chunks)
    assert decode(head, chunks).executions == executions


def test_consecutive_snapshots_alternate_slots() -> None:
    assert other_slot(None) == "a"
    assert other_slot("a") == "b"
    assert other_slot("b") == "a"


def test_chunks_that_do_not_match_their_head_are_refused() -> None:
    head, _, chunks = encode([f"ex-{i}" for i in range(5000)], 1, "a", chunk_bytes=1000)
    with pytest.raises(SnapshotError):
        decode(head, chunks[:-1])  # a chunk missing
    _, _, other_chunks = encode(["ex-x"], 1, "a", chunk_bytes=1000)
    with pytest.raises(SnapshotError):
        decode(head, other_chunks + chunks[1:])  # a chunk of another snapshot


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[]",
        json.dumps({"format": 2, "slot": "a"}).encode(),
        json.dumps({"format": 1, "slot": "c", "chunks": 0, "after_seq": 0}).encode(),
        json.dumps({"format": 1, "slot": "a"}).encode(),
    ],
)
def test_an_unreadable_head_is_refused(data: bytes) -> None:
    with pytest.raises(SnapshotError):
        parse_head(data)


def test_the_tail_adds_requests_and_removes_ends() -> None:
    snapshot = Snapshot(frozenset({"waiting", "ended-after"}), after_seq=10)
    requested = ["new-waiting", "new-ended"]
    finished = ["ended-after", "new-ended", "ended-before-the-snapshot"]
    assert with_tail(snapshot, requested, finished) == {"waiting", "new-waiting"}
