"""The code sandbox's settings (docs/operations.md), read from the runner's environment."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

#: ``bwrap`` (the default): namespaces, seccomp and rlimits. ``process``: only a separate
#: process with rlimits and an empty environment; it can read files and reach the network
#: (docs/security.md, "Code nodes"). The operator must choose it explicitly.
SANDBOX_ENV = "NODEDROP_CODE_SANDBOX"
#: Comma-separated top-level packages of the runner's environment that code may import,
#: besides the standard library (e.g. ``dateutil,yaml``).
PACKAGES_ENV = "NODEDROP_CODE_ALLOWED_PACKAGES"
#: Address space of the sandboxed interpreter, in MiB (default 512).
MEMORY_ENV = "NODEDROP_CODE_MEMORY_MB"
#: CPU seconds per attempt (default 30); wall time is capped at three times this.
CPU_ENV = "NODEDROP_CODE_CPU_S"
#: The interpreter code runs with (default: the one the runner runs on). A runner run as root
#: runs sandboxes as the host's ``nobody`` only if it can read this interpreter.
PYTHON_ENV = "NODEDROP_CODE_PYTHON"

SandboxMode = Literal["bwrap", "process"]
_PACKAGE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class SandboxSettings:
    mode: SandboxMode = "bwrap"
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

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SandboxSettings:
        """ValueError naming the variable for a wrong value; empty counts as unset."""
        env = os.environ if env is None else env
        mode = env.get(SANDBOX_ENV, "").strip() or "bwrap"
        if mode not in ("bwrap", "process"):
            raise ValueError(f"{SANDBOX_ENV} must be bwrap or process, not {mode!r}")
        packages = tuple(p.strip() for p in env.get(PACKAGES_ENV, "").split(",") if p.strip())
        for package in packages:
            if not _PACKAGE_NAME.fullmatch(package):
                raise ValueError(f"{PACKAGES_ENV}: {package!r} is not a top-level package name")
        return cls(
            mode="process" if mode == "process" else "bwrap",
            allowed_packages=packages,
            memory_bytes=(_positive(env, MEMORY_ENV) or 512) * 1024 * 1024,
            cpu_s=_positive(env, CPU_ENV) or 30,
            python=env.get(PYTHON_ENV, "").strip() or None,
        )


def _positive(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
    return int(value)
