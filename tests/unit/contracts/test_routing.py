"""Where an execution's events live (nodedrop.contracts.routing): a slot that never changes for
an execution id, partitions that each hold a contiguous range of slots (every slot in exactly
one), the partition streams' names and subjects, and ``NODEDROP_PARTITIONS``."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from nodedrop.contracts import routing, subjects
from nodedrop.contracts.events import ExecutionFinished
from nodedrop.contracts.routing import PARTITIONS_ENV, SLOTS, Layout
from nodedrop.platform.jetstream import (
    REPLICAS_ENV,
    StreamSettings,
    dead_letters_stream_config,
    events_stream_config,
)

PARTITION_COUNTS = [1, 3, 4, 7, 256]
SOME_IDS = ["exec-1", "ex", "a", "01JD3Z7Q8X9ABCDEF0123456", *(f"ex-{i}" for i in range(200))]


def matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` is one token, a final ``>`` one or more."""
    wanted, tokens = pattern.split("."), subject.split(".")
    for i, token in enumerate(wanted):
        if token == ">":
            return len(tokens) > i
        if i >= len(tokens) or token not in ("*", tokens[i]):
            return False
    return len(tokens) == len(wanted)


def finished(execution_id: str) -> ExecutionFinished:
    return ExecutionFinished(
        event_id=f"{execution_id}.finished",
        execution_id=execution_id,
        time=datetime(2026, 11, 26, 10, 0, tzinfo=UTC),
        status="succeeded",
    )


# ------------------------------------------------------------------------------ slots


@pytest.mark.parametrize(
    ("execution_id", "slot"),
    [("exec-1", 217), ("ex", 19), ("a", 67), ("01JD3Z7Q8X9ABCDEF0123456", 116)],
)
def test_a_slot_is_fixed_for_an_execution_id(execution_id: str, slot: int) -> None:
    # crc32, not hash(): the same in every process, on every machine, in every Python version.
    assert routing.slot_of(execution_id) == slot
    assert routing.execution_subject(execution_id).split(".")[2] == f"{slot:03d}"


def test_slots_are_three_digits_and_all_256_are_used() -> None:
    seen = {routing.slot_of(f"execution-{i}") for i in range(20_000)}
    assert seen == set(range(SLOTS))
    assert SLOTS == 256
    assert [routing.slot_token(s) for s in (0, 7, 255)] == ["000", "007", "255"]


# ------------------------------------------------------------------------------ partitions


@pytest.mark.parametrize("partitions", PARTITION_COUNTS)
def test_every_slot_belongs_to_exactly_one_partition(partitions: int) -> None:
    layout = Layout(partitions)
    owners: dict[int, list[int]] = {slot: [] for slot in range(SLOTS)}
    for partition in range(partitions):
        for slot in layout.slots(partition):
            owners[slot].append(partition)
    assert all(len(found) == 1 for found in owners.values()), owners
    for slot, (partition,) in owners.items():
        assert layout.partition_of_slot(slot) == partition


@pytest.mark.parametrize("partitions", PARTITION_COUNTS)
def test_partitions_hold_contiguous_slot_ranges_covering_all_slots(partitions: int) -> None:
    layout = Layout(partitions)
    ranges = [layout.slots(p) for p in range(partitions)]
    assert ranges[0].start == 0
    assert ranges[-1].stop == SLOTS
    for before, after in itertools.pairwise(ranges):
        assert before.stop == after.start  # contiguous, in partition order
    sizes = {len(r) for r in ranges}
    assert min(sizes) >= 1
    assert max(sizes) - min(sizes) <= 1  # as even as 256 slots allow
    assert all(r.step == 1 for r in ranges)


@pytest.mark.parametrize("partitions", PARTITION_COUNTS)
def test_an_execution_is_in_the_partition_of_its_slot(partitions: int) -> None:
    layout = Layout(partitions)
    for execution_id in SOME_IDS:
        partition = layout.partition_of(execution_id)
        assert routing.slot_of(execution_id) in layout.slots(partition)
        assert layout.stream_of(execution_id) == layout.stream(partition)
        assert layout.partition_of_stream(layout.stream_of(execution_id)) == partition


def test_one_partition_holds_everything() -> None:
    layout = Layout(1)
    assert layout.slots(0) == range(SLOTS)
    assert {layout.partition_of(i) for i in SOME_IDS} == {0}


def test_the_partition_of_a_fixed_id_is_fixed() -> None:
    # Slot 217 of 256: the last of 4 partitions (192-255), the sixth of 7 (183-219).
    assert [Layout(p).partition_of("exec-1") for p in (1, 3, 4, 7, 256)] == [0, 2, 3, 5, 217]


# ------------------------------------------------------------------------------ streams


def test_stream_names() -> None:
    assert Layout(4).streams == (
        "NODEDROP_EVENTS_000",
        "NODEDROP_EVENTS_001",
        "NODEDROP_EVENTS_002",
        "NODEDROP_EVENTS_003",
    )
    assert Layout(256).stream(255) == "NODEDROP_EVENTS_255"
    with pytest.raises(ValueError, match="not a stream"):
        Layout(4).partition_of_stream("NODEDROP_EVENTS_004")
    with pytest.raises(ValueError, match="not a stream"):
        Layout(4).partition_of_stream("NODEDROP_EVENTS")


def test_stream_subjects_are_its_slots_and_its_fence() -> None:
    layout = Layout(4)
    assert layout.stream_subjects(0) == [
        *(f"nodedrop.log.{s:03d}.>" for s in range(64)),
        "nodedrop.fence.000",
    ]
    assert layout.stream_subjects(3)[0] == "nodedrop.log.192.>"
    assert layout.stream_subjects(3)[-2:] == ["nodedrop.log.255.>", "nodedrop.fence.003"]
    assert layout.fence_subject(2) == "nodedrop.fence.002"


@pytest.mark.parametrize("partitions", PARTITION_COUNTS)
def test_each_event_subject_is_stored_by_exactly_its_partitions_stream(partitions: int) -> None:
    layout = Layout(partitions)
    for execution_id in SOME_IDS:
        subject = routing.event_subject(finished(execution_id))
        storing = [
            p
            for p in range(partitions)
            if any(matches(pattern, subject) for pattern in layout.stream_subjects(p))
        ]
        assert storing == [layout.partition_of(execution_id)], (execution_id, subject)


@pytest.mark.parametrize("partitions", PARTITION_COUNTS)
def test_no_two_streams_share_a_subject(partitions: int) -> None:
    layout = Layout(partitions)
    every = [s for p in range(partitions) for s in layout.stream_subjects(p)]
    assert len(every) == len(set(every)) == SLOTS + partitions


def test_subject_helpers() -> None:
    assert routing.all_events() == "nodedrop.log.>"
    assert routing.events_of_type("NodeReady") == "nodedrop.log.*.*.NodeReady"
    assert routing.execution_subject("exec-1") == "nodedrop.log.217.exec-1.>"
    subject = routing.event_subject(finished("exec-1"))
    assert subject == "nodedrop.log.217.exec-1.ExecutionFinished"
    assert routing.execution_id_of(subject) == "exec-1"
    assert routing.is_event_subject(subject)
    assert not routing.is_event_subject("nodedrop.log.000.exec-1.ExecutionFinished")  # wrong slot
    assert not routing.is_event_subject("nodedrop.fence.000")
    assert not routing.is_event_subject("nodedrop.events.09.exec-1.ExecutionFinished")  # former


# ------------------------------------------------------------------------------ the setting


def test_the_default_is_one_partition() -> None:
    assert Layout() == Layout.from_env({}) == Layout.from_env({PARTITIONS_ENV: " "}) == Layout(1)


@pytest.mark.parametrize("value", ["1", "7", " 16 ", "256"])
def test_the_partitions_come_from_the_environment(value: str) -> None:
    assert Layout.from_env({PARTITIONS_ENV: value}) == Layout(int(value))


@pytest.mark.parametrize("value", ["0", "257", "-1", "four", "2.5", "1e2"])
def test_a_bad_partition_count_is_refused_with_its_name(value: str) -> None:
    with pytest.raises(ValueError, match=PARTITIONS_ENV):
        Layout.from_env({PARTITIONS_ENV: value})


@pytest.mark.parametrize("partitions", [0, 257, -4])
def test_a_layout_out_of_range_is_refused_with_the_settings_name(partitions: int) -> None:
    with pytest.raises(ValueError, match=PARTITIONS_ENV):
        Layout(partitions)


def test_stream_settings_carry_the_layout_and_the_replicas() -> None:
    settings = StreamSettings.from_env({PARTITIONS_ENV: "3", REPLICAS_ENV: "3"})
    assert (settings.layout, settings.replicas) == (Layout(3), 3)
    assert StreamSettings.from_env({}).layout == Layout(1)
    assert StreamSettings.from_env({}).replicas == 1
    with pytest.raises(ValueError, match=PARTITIONS_ENV):
        StreamSettings.from_env({PARTITIONS_ENV: "0"})


def test_each_partitions_stream_configuration() -> None:
    settings = StreamSettings.from_env({PARTITIONS_ENV: "3", REPLICAS_ENV: "3"})
    for partition in range(3):
        config = events_stream_config(settings, partition)
        assert config.name == f"NODEDROP_EVENTS_{partition:03d}"
        assert config.subjects == settings.layout.stream_subjects(partition)
        assert config.num_replicas == 3
        assert config.allow_direct
        assert config.deny_delete
    dead = dead_letters_stream_config(settings)
    assert dead.subjects == subjects.dead_letter_subjects(settings.layout)
    assert len(dead.subjects or []) == 2 * 3
    assert {s.split(".")[5] for s in dead.subjects or []} == set(settings.layout.streams)
