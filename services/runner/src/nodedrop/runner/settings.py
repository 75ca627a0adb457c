"""The runner's settings: how many node attempts at once, its worker processes, heartbeats."""

from __future__ import annotations

from nodedrop.platform.settings import (
    CommonSettings,
    DatabaseSettings,
    SecretKeySettings,
    setting,
)
from nodedrop.runner.worker import DEFAULT_GRACE_S


class RunnerSettings(CommonSettings, DatabaseSettings, SecretKeySettings):
    """``database_url`` and ``secret_key``: where the credentials nodes name are read, and
    the key they are decrypted with (docs/credentials.md); without them such nodes fail."""

    runner_concurrency: int = setting(
        64, "Node attempts at once per runner process", ge=1, le=100_000
    )
    runner_processes: int | None = setting(
        None,
        "Worker processes for custom node types",
        shown_default="min(4, NODEDROP_RUNNER_CONCURRENCY)",
        ge=1,
    )
    runner_process_memory_mb: int | None = setting(
        None,
        "Address space each worker process may use, in MiB",
        shown_default="no limit",
        ge=1,
    )
    runner_heartbeat_s: float | None = setting(
        None,
        "Seconds between heartbeats of running nodes (at most half the ack wait, or live nodes "
        "may be taken for lost)",
        shown_default="a third of the ack wait",
        gt=0,
        allow_inf_nan=False,
    )
    runner_grace_s: float = setting(
        DEFAULT_GRACE_S,
        "Seconds running nodes get to finish after SIGTERM before they are handed back "
        '(see Crash recovery, "Graceful stops")',
        gt=0,
        allow_inf_nan=False,
    )
    http_allow_private: bool = setting(
        False, "Let the `http_request` node reach private and loopback addresses"
    )

    @property
    def process_memory_limit_bytes(self) -> int | None:
        mb = self.runner_process_memory_mb
        return None if mb is None else mb * 1024 * 1024
