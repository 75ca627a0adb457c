"""The scheduler's settings: cron grace, snapshots, per-user limits, and the partition leases."""

from __future__ import annotations

from pydantic import field_validator

from nodedrop.contracts.settings import CommonSettings, LeaseSettings, setting


class SchedulerSettings(CommonSettings, LeaseSettings):
    schedule_grace_s: float = setting(
        300.0,
        "Seconds a missed cron tick may be old and still fire, once (see Schedules)",
        ge=0,
        allow_inf_nan=False,
    )
    scheduler_snapshot_interval_s: float = setting(
        5.0,
        "Seconds between snapshots of the unfinished executions (only when changed); a start "
        "reads what the stream stored since the last one",
        gt=0,
        allow_inf_nan=False,
    )
    max_concurrent_per_user: int | None = setting(
        None,
        "Executions of one user running at once; more wait, queued (0 or unset: no limit; "
        'the same for every scheduler; docs/architecture.md, "Concurrency limits")',
        shown_default="unset (no limit)",
        ge=0,
    )

    @field_validator("max_concurrent_per_user")
    @classmethod
    def _zero_is_no_limit(cls, value: int | None) -> int | None:
        return value or None
