"""Cron expressions: the rules, without a clock or a store (the scheduler core and the
workflow model check them; :mod:`nodedrop.platform.schedules` fires them).

Five fields (minute hour day-of-month month day-of-week), read in UTC; ticks are whole minutes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from croniter import CroniterBadDateError, CroniterError, croniter

CRON_FIELDS = 5
_MINUTE = timedelta(minutes=1)


def check_cron(cron: str) -> str:
    """``cron`` if it is a five-field expression that fires at least once; else ValueError."""
    fields = cron.split()
    if len(fields) != CRON_FIELDS:
        raise ValueError(
            f"a cron expression has five fields (minute hour day-of-month month day-of-week), "
            f"got {len(fields)}"
        )
    try:
        croniter(cron, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except CroniterBadDateError:
        raise ValueError(f"cron expression {cron!r} never fires") from None
    except (CroniterError, TypeError, ValueError) as error:
        raise ValueError(f"invalid cron expression {cron!r}: {error}") from None
    return cron


def utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("a timezone-aware datetime is needed")
    return moment.astimezone(UTC)


def _minute(moment: datetime) -> datetime:
    return utc(moment).replace(second=0, microsecond=0)


def next_fire_after(cron: str, after: datetime) -> datetime:
    """The first tick of ``cron`` strictly after ``after``, in UTC. Ticks are whole minutes."""
    result: datetime = croniter(cron, _minute(after)).get_next(datetime)
    return result.astimezone(UTC).replace(fold=0)


def last_fire_at_or_before(cron: str, moment: datetime) -> datetime:
    """The latest tick of ``cron`` at or before ``moment``, in UTC."""
    result: datetime = croniter(cron, _minute(moment) + _MINUTE).get_prev(datetime)
    return result.astimezone(UTC).replace(fold=0)
