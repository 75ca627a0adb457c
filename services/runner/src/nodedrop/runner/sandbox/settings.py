"""What one code sandbox may use, and how it is built (the runner's ``NODEDROP_CODE_*``
settings, :class:`nodedrop.runner.settings.RunnerSettings`, fill it in)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: ``bwrap`` (the default): namespaces, seccomp and rlimits. ``process``: only a separate
#: process with rlimits and an empty environment; it can read files and reach the network
#: (docs/security.md, "Code nodes"). The operator must choose it explicitly.
SandboxMode = Literal["bwrap", "process"]


@dataclass(frozen=True)
class SandboxSettings:
    mode: SandboxMode = "bwrap"
    #: Top-level packages of the runner's environment code may import (besides the stdlib).
    allowed_packages: tuple[str, ...] = ()
    memory_bytes: int = 512 * 1024 * 1024
    cpu_s: int = 30
    #: None: the runner's own interpreter (its base, outside any venv).
    python: str | None = None
    #: Size of the private /tmp (tmpfs, held in the host's memory) and of any one file written.
    tmp_bytes: int = 64 * 1024 * 1024
    #: The most a reply (output and logs, as JSON) may take; more kills the sandbox.
    max_reply_bytes: int = 64 * 1024 * 1024

    @property
    def wall_s(self) -> float:
        """How long an attempt may take at most, whatever its ``timeout_ms``: a program that
        sleeps or waits uses no CPU time."""
        return 3.0 * self.cpu_s
