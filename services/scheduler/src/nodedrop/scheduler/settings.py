"""The scheduler's settings: cron grace, snapshots, per-user limits, and the partition leases."""

from __future__ import annotations

from pydantic import field_validator

from nodedrop.platform.settings import CommonSettings, LeaseSettings, OpsSettings, setting


class SchedulerSettings(CommonSettings, LeaseSettings, OpsSettings):
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

    max_running_nodes_per_user: int | None = setting(
        None,
        "Node attempts of one user queued for or running on the runners at once, per "
        "scheduler; more are deferred (`NodeDeferred`) and made ready as the user's attempts "
        "end, so other users' work passes them (0 or unset: no share; docs/architecture.md, "
        '"Shares of the runners")',
        shown_default="unset (no share)",
        ge=0,
    )

    @field_validator("max_concurrent_per_user", "max_running_nodes_per_user")
    @classmethod
    def _zero_is_no_limit(cls, value: int | None) -> int | None:
        return value or None
