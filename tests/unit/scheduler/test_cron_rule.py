"""The missed-tick rule: which tick of a schedule fires, given the last fired one, now, grace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from nodedrop.scheduler.cron import TickPlan, plan_ticks

T = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
GRACE = timedelta(minutes=5)
EVERY_MINUTE = "* * * * *"


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def test_nothing_due_before_the_next_tick() -> None:
    plan = plan_ticks(EVERY_MINUTE, T, T + timedelta(seconds=59), GRACE)
    assert plan == TickPlan(fire=None, skipped=None, next_due=T + minutes(1))


def test_a_due_tick_fires_on_time_and_a_little_late() -> None:
    hourly = "0 * * * *"
    for late in (timedelta(0), timedelta(milliseconds=30), minutes(4)):
        plan = plan_ticks(hourly, T, T + minutes(60) + late, GRACE)
        assert plan.fire == T + minutes(60)
        assert plan.skipped is None
        assert plan.next_due == T + minutes(120)


def test_after_downtime_only_the_latest_missed_tick_fires() -> None:
    # Last fired 10:00, back at 10:03:30: 10:03 fires, 10:01 and 10:02 are skipped.
    plan = plan_ticks(EVERY_MINUTE, T, T + minutes(3.5), GRACE)
    assert plan.fire == T + minutes(3)
    assert plan.skipped == (T + minutes(1), T + minutes(2))
    assert plan.next_due == T + minutes(4)


def test_a_tick_older_than_grace_is_skipped() -> None:
    hourly = "0 * * * *"
    # Last fired at 10:00; down until 11:06: 11:00 is 6 minutes old.
    plan = plan_ticks(hourly, T, T + minutes(66), GRACE)
    assert plan.fire is None
    assert plan.skipped == (T + minutes(60), T + minutes(60))
    assert plan.next_due == T + minutes(120)
    # ... but within a longer grace it fires.
    assert plan_ticks(hourly, T, T + minutes(66), minutes(10)).fire == T + minutes(60)


def test_grace_is_inclusive() -> None:
    assert plan_ticks("0 * * * *", T, T + minutes(60) + GRACE, GRACE).fire == T + minutes(60)
    late = T + minutes(60) + GRACE + timedelta(seconds=1)
    assert plan_ticks("0 * * * *", T, late, GRACE).fire is None


def test_long_downtime_skips_everything_but_a_recent_tick() -> None:
    plan = plan_ticks(EVERY_MINUTE, T, T + timedelta(days=3, seconds=10), GRACE)
    assert plan.fire == T + timedelta(days=3)
    assert plan.skipped == (T + minutes(1), T + timedelta(days=3) - minutes(1))


def test_ticks_at_or_before_after_never_fire() -> None:
    # "after" is when the schedule was saved (or its last fired tick): 10:00:30.
    saved = T + timedelta(seconds=30)
    plan = plan_ticks(EVERY_MINUTE, saved, saved + timedelta(seconds=10), GRACE)
    assert plan.fire is None
    assert plan.skipped is None
    assert plan.next_due == T + minutes(1)
