"""Cron schedules: validation, next fire time, tick ids, the entry format."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from nodedrop.contracts import cron as cron_rules
from nodedrop.contracts.nodetypes import NodeTypeRegistry, ScheduleTriggerParameters
from nodedrop.contracts.workflow import WorkflowInvalid, validate_workflow
from nodedrop.platform import schedules

T = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("cron", "after", "expected"),
    [
        ("* * * * *", T, T + timedelta(minutes=1)),
        ("* * * * *", T + timedelta(seconds=59, microseconds=999), T + timedelta(minutes=1)),
        ("* * * * *", T - timedelta(microseconds=1), T),
        ("*/15 * * * *", T + timedelta(minutes=1), T + timedelta(minutes=15)),
        (
            "0 9 * * mon-fri",
            datetime(2026, 11, 27, 9, 0, tzinfo=UTC),
            datetime(2026, 11, 30, 9, 0, tzinfo=UTC),
        ),
        ("0 0 1 1 *", T, datetime(2027, 1, 1, tzinfo=UTC)),
        ("0 0 29 2 *", T, datetime(2028, 2, 29, tzinfo=UTC)),
    ],
)
def test_next_fire_after(cron: str, after: datetime, expected: datetime) -> None:
    got = cron_rules.next_fire_after(cron, after)
    assert got == expected
    assert got.tzinfo == UTC


def test_next_fire_is_in_utc_whatever_the_input_zone() -> None:
    paris = timezone(timedelta(hours=1))
    after = datetime(2026, 11, 26, 11, 30, tzinfo=paris)  # 10:30 UTC
    assert cron_rules.next_fire_after("0 11 * * *", after) == datetime(
        2026, 11, 26, 11, 0, tzinfo=UTC
    )


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        cron_rules.next_fire_after("* * * * *", datetime(2026, 1, 1))


def test_last_fire_at_or_before() -> None:
    assert cron_rules.last_fire_at_or_before("* * * * *", T) == T
    assert cron_rules.last_fire_at_or_before("* * * * *", T + timedelta(seconds=59)) == T
    assert cron_rules.last_fire_at_or_before(
        "0 * * * *", T - timedelta(seconds=1)
    ) == T - timedelta(hours=1)


@pytest.mark.parametrize(
    "cron", ["* * * * *", "0 9 * * mon-fri", "*/5 0-6 1,15 * *", "0 0 L * *", "30 4 * jan sun"]
)
def test_valid_crons(cron: str) -> None:
    assert ScheduleTriggerParameters(cron=cron).cron == cron


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("* * * *  ", "five fields"),
        ("0 * * * * *", "five fields"),
        ("@daily   ", "five fields"),
        ("61 * * * *", "invalid cron"),
        ("* * * * monday", "invalid cron"),
        ("0 0 30 2 *", "never fires"),
        ("H * * * *", "invalid cron"),
    ],
)
def test_invalid_crons(cron: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cron_rules.check_cron(cron)


def test_invalid_cron_in_a_workflow_names_node_and_field() -> None:
    definition: dict[str, Any] = {
        "nodes": [
            {"id": "tick", "type": "schedule_trigger", "parameters": {"cron": "99 * * * *"}},
            {"id": "next", "type": "noop"},
        ],
        "connections": [{"from": "tick", "to": "next"}],
    }
    with pytest.raises(WorkflowInvalid) as caught:
        validate_workflow(definition, NodeTypeRegistry())
    [problem] = caught.value.problems
    assert problem["loc"] == ["nodes", 0, "parameters", "cron"]
    assert "tick" in problem["msg"]


def test_execution_id_is_deterministic_and_subject_safe() -> None:
    first = schedules.execution_id("wf-1", "tick", T)
    assert first == schedules.execution_id("wf-1", "tick", T)
    assert first == schedules.execution_id(
        "wf-1", "tick", T.astimezone(timezone(timedelta(hours=5)))
    )
    assert re.fullmatch(r"sched-[A-Za-z0-9_-]+", first)
    others = {
        schedules.execution_id("wf-2", "tick", T),
        schedules.execution_id("wf-1", "tock", T),
        schedules.execution_id("wf-1", "tick", T + timedelta(minutes=1)),
    }
    assert first not in others
    assert len(others) == 3


def test_tick_text_round_trips() -> None:
    assert schedules.tick_iso(T) == "2026-11-26T10:00:00Z"
    assert schedules.parse_tick(schedules.tick_iso(T)) == T


def test_entry_for_lists_schedule_triggers_and_round_trips() -> None:
    definition = {
        "name": "two schedules",
        "nodes": [
            {"id": "hourly", "type": "schedule_trigger", "parameters": {"cron": "0 * * * *"}},
            {"id": "manual", "type": "manual_trigger"},
            {"id": "daily", "type": "schedule_trigger", "parameters": {"cron": "0 6 * * *"}},
        ],
    }
    entry = schedules.entry_for(
        workflow_id="wf", version=3, owner="alice", workflow=definition, saved_at=T
    )
    assert entry is not None
    assert [(t.node_id, t.cron) for t in entry.triggers] == [
        ("hourly", "0 * * * *"),
        ("daily", "0 6 * * *"),
    ]
    assert schedules.decode_entry(schedules.encode_entry(entry)) == entry
    assert schedules.entry_key("wf") == "schedule.wf"
    assert schedules.workflow_id_of(schedules.entry_key("wf")) == "wf"
    assert schedules.fired_key("wf", "daily") == "fired.wf.daily"


def test_no_entry_without_schedule_triggers() -> None:
    definition = {"nodes": [{"id": "manual", "type": "manual_trigger"}]}
    assert (
        schedules.entry_for(workflow_id="wf", version=1, owner="a", workflow=definition, saved_at=T)
        is None
    )
