"""The runner's settings: how many node attempts at once, its worker processes, heartbeats,
and the sandbox of code nodes."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import field_validator

from nodedrop.platform.settings import (
    CommonSettings,
    DatabaseSettings,
    OpsSettings,
    SecretKeySettings,
    setting,
)
from nodedrop.runner.sandbox.settings import SandboxSettings
from nodedrop.runner.subworkflows import DEFAULT_MAX_DEPTH
from nodedrop.runner.worker import DEFAULT_GRACE_S

_PACKAGE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class RunnerSettings(CommonSettings, DatabaseSettings, SecretKeySettings, OpsSettings):
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
    max_workflow_depth: int = setting(
        DEFAULT_MAX_DEPTH,
        "How deep `execute_workflow` calls may nest: a call that would start an execution "
        "deeper fails with `WorkflowDepthExceeded`",
        ge=1,
        le=1000,
    )
    http_allow_private: bool = setting(
        False, "Let the `http_request` node reach private and loopback addresses"
    )

    code_sandbox: Literal["bwrap", "process"] = setting(
        "bwrap",
        "How `code` nodes run: `bwrap` (bubblewrap: namespaces, seccomp, rlimits; without it "
        "installed, code nodes fail with `CodeSandboxUnavailable`) or `process` (weaker: "
        "rlimits and an empty environment only, the code can read the runner's files and "
        'reach the network; docs/security.md, "Code nodes")',
    )
    code_allowed_packages: tuple[str, ...] = setting(
        (),
        "Comma-separated top-level packages of the runner's environment that code nodes may "
        "import; one that is not installed stops the runner at start",
        shown_default="none (the standard library only)",
    )
    code_memory_mb: int = setting(
        512, "Address space of one code node attempt, in MiB", ge=16, le=1_048_576
    )
    code_cpu_s: int = setting(
        30,
        "CPU seconds of one code node attempt (its wall time: at most three times this)",
        ge=1,
        le=86_400,
    )
    code_python: str | None = setting(
        None,
        "The interpreter code nodes run on; a runner run as root gives sandboxes the user "
        "`nobody` only if `nobody` can read it (docs/security.md)",
        shown_default="the runner's interpreter",
    )

    @field_validator("code_allowed_packages", mode="before")
    @classmethod
    def _package_names(cls, value: object) -> object:
        if isinstance(value, str):
            value = [name.strip() for name in value.split(",") if name.strip()]
        if isinstance(value, list | tuple):
            for name in value:
                if not isinstance(name, str) or not _PACKAGE_NAME.fullmatch(name):
                    raise ValueError(f"{name!r} is not a top-level package name")
            return tuple(value)
        return value

    @property
    def code_sandbox_settings(self) -> SandboxSettings:
        return SandboxSettings(
            mode=self.code_sandbox,
            allowed_packages=self.code_allowed_packages,
            memory_bytes=self.code_memory_mb * 1024 * 1024,
            cpu_s=self.code_cpu_s,
            python=self.code_python,
        )

    @property
    def process_memory_limit_bytes(self) -> int | None:
        mb = self.runner_process_memory_mb
        return None if mb is None else mb * 1024 * 1024
