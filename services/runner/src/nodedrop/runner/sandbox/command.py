"""The command line that starts one sandbox: ``prlimit`` sets the rlimits on itself and executes
``bwrap``, which makes the namespaces and mounts, loads the seccomp filter and executes the
interpreter on the bootstrap. Both are started with an empty environment, so nothing of the
runner's (credentials, NATS settings) is in any process of the sandbox, not even bwrap's own."""

from __future__ import annotations

import shutil
from importlib.resources import files
from pathlib import Path

from nodedrop.runner.sandbox.mounts import PACKAGE_DIR, Mounts
from nodedrop.runner.sandbox.settings import SandboxSettings

#: A backstop only: seccomp already refuses new processes inside the sandbox. RLIMIT_NPROC
#: counts every process and thread of the sandbox's user (the runner's own, when it does not
#: run as root, which the limit does not bind at all), so it is set well above those.
MAX_USER_PROCESSES = 4096
MAX_OPEN_FILES = 256
#: Where the sandbox starts (a private tmpfs) and what ``import`` finds first.
WORK_DIR = "/tmp"
_INTERPRETER_FLAGS = ("-I", "-S", "-X", "utf8", "-B")


def bootstrap_source() -> str:
    """The text of :mod:`nodedrop.runner.sandbox.bootstrap`, run with ``-c``: no file of the
    runner needs to be visible in the sandbox."""
    return files("nodedrop.runner.sandbox").joinpath("bootstrap.py").read_text("utf-8")


#: The host user a runner run as root gives its sandboxes (``nobody``): then nothing in a
#: sandbox is the host's root, even without capabilities (sysctls, files owned by root).
UNPRIVILEGED_ID = 65534


def tools_missing(settings: SandboxSettings) -> list[str]:
    needed = ["prlimit"] + (["bwrap", "setpriv"] if settings.mode == "bwrap" else [])
    return [tool for tool in needed if shutil.which(tool) is None]


def as_nobody() -> list[str]:
    """Executes the rest of the command as the host's ``nobody``, with no other groups."""
    return [
        shutil.which("setpriv") or "setpriv",
        f"--reuid={UNPRIVILEGED_ID}",
        f"--regid={UNPRIVILEGED_ID}",
        "--clear-groups",
    ]


def rlimits(settings: SandboxSettings) -> list[str]:
    # prlimit's "--cpu=SOFT:HARD": SIGXCPU at the soft limit, SIGKILL a second later.
    return [
        shutil.which("prlimit") or "prlimit",
        f"--as={settings.memory_bytes}",
        f"--cpu={settings.cpu_s}:{settings.cpu_s + 1}",
        f"--nproc={MAX_USER_PROCESSES}",
        f"--fsize={settings.tmp_bytes}",
        f"--nofile={MAX_OPEN_FILES}",
        "--core=0",
        "--",
    ]


def bwrap_command(
    settings: SandboxSettings,
    mounts: Mounts,
    bootstrap: str,
    seccomp_fd: int | None,
    *,
    drop_to_nobody: bool,
) -> list[str]:
    args = [
        shutil.which("bwrap") or "bwrap",
        "--unshare-all",  # ipc, pid, net, uts, cgroup: no network but a private loopback
        # Always a user namespace, also for a runner run as root: then the sandbox's root has
        # capabilities over its own namespaces only, never over the host's files or processes.
        "--unshare-user",
        "--disable-userns",
        "--uid",
        "65534",
        "--gid",
        "65534",
        "--die-with-parent",
        "--new-session",  # no TIOCSTI into the runner's terminal
        "--clearenv",
        "--hostname",
        "sandbox",
    ]
    for target, link in mounts.symlinks:
        args += ["--symlink", target, link]
    for path in mounts.read_only:
        args += ["--ro-bind", path, path]
    for path in mounts.hidden:
        args += ["--tmpfs", path, "--remount-ro", path]
    for host, inside in mounts.packages:
        args += ["--ro-bind", host, inside]
    args += [
        "--size",
        str(settings.tmp_bytes),
        "--tmpfs",
        WORK_DIR,
        "--proc",
        "/proc",
        # Global sysctls check for the host's uid 0, not capabilities: never writable here.
        "--ro-bind",
        "/proc/sys",
        "/proc/sys",
        "--dev",
        "/dev",
        # Only /tmp is writable: the root and /dev are bwrap's tmpfs, made read-only last.
        "--remount-ro",
        "/dev",
        "--remount-ro",
        "/",
        "--chdir",
        WORK_DIR,
        "--setenv",
        "HOME",
        WORK_DIR,
    ]
    if seccomp_fd is not None:
        args += ["--seccomp", str(seccomp_fd)]
    user = as_nobody() if drop_to_nobody else []
    return [
        *rlimits(settings),
        *user,
        *args,
        mounts.interpreter,
        *_INTERPRETER_FLAGS,
        "-c",
        bootstrap,
    ]


def process_command(settings: SandboxSettings, interpreter: str, bootstrap: str) -> list[str]:
    """The weaker mode: rlimits and an empty environment, nothing else."""
    return [*rlimits(settings), interpreter, *_INTERPRETER_FLAGS, "-c", bootstrap]


def import_paths(mounts: Mounts, mode: str) -> list[str]:
    """Where the sandboxed interpreter finds the allowed packages: their mount point, or in
    the weaker mode the host directories that hold them."""
    if not mounts.packages:
        return []
    if mode == "bwrap":
        return [PACKAGE_DIR]
    return sorted({str(Path(host).parent) for host, _inside in mounts.packages})
