"""``make bench`` stopped by a signal stops everything it started: its PostgreSQL, its
nats-server and the four services, which run in sessions of their own and so get no signal of
their own. The harness runs its quick S1 for real and is signalled once the services are up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc"),
]

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("nodedrop.api", "nodedrop.scheduler", "nodedrop.runner", "nodedrop.notifier")


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process still running (zombies left out)."""
    found: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        state, parent = stat.rsplit(")", 1)[1].split()[:2]
        if state != "Z":
            found[int(entry.name)] = (int(parent), command)
    return found


def _children(pid: int) -> dict[int, str]:
    return {child: cmd for child, (parent, cmd) in _processes().items() if parent == pid}


def _alive(pids: set[int]) -> dict[int, str]:
    running = _processes()
    return {pid: running[pid][1] for pid in pids if pid in running}


def _wait_until_all_started(
    harness: subprocess.Popen[bytes], log: Path, timeout_s: float
) -> dict[int, str]:
    """The harness's children once its PostgreSQL, nats-server and four services all run."""
    wanted = ("postgres", "nats-server", *SERVICES)
    deadline = time.monotonic() + timeout_s
    while True:
        children = _children(harness.pid)
        if all(any(name in command for command in children.values()) for name in wanted):
            return children
        if harness.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise AssertionError(f"the harness exited with {harness.returncode}:\n{tail}")
        assert time.monotonic() < deadline, f"not all of {wanted} started in {timeout_s} s"
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("number", "ignored_at_start"),
    [
        pytest.param(signal.SIGTERM, False, id="SIGTERM"),
        # A shell starts a background job with SIGINT ignored; kill -INT still stops it.
        pytest.param(signal.SIGINT, True, id="SIGINT-background"),
        pytest.param(signal.SIGHUP, False, id="SIGHUP"),
    ],
)
def test_a_signalled_harness_leaves_no_process_behind(
    tmp_path: Path, number: signal.Signals, ignored_at_start: bool
) -> None:
    log = (tmp_path / "harness.log").open("wb")
    command = [sys.executable, "-m", "tests.bench", "--quick", "--only", "S1", "--no-write"]
    if ignored_at_start:  # as a shell does for `make bench &`; exec keeps it ignored
        command = ["sh", "-c", 'trap "" INT; exec "$@"', "sh", *command]
    harness = subprocess.Popen(
        command,
        cwd=REPO,
        # Its work directory (PostgreSQL's data, the nats-server's store) goes under tmp_path.
        env={**os.environ, "TMPDIR": str(tmp_path)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    started: dict[int, str] = {}
    try:
        started = _wait_until_all_started(harness, tmp_path / "harness.log", 120)
        harness.send_signal(number)
        assert harness.wait(120) == 130, (tmp_path / "harness.log").read_text()[-3000:]
        # Its cleanup waited for each of them; a survivor is one it forgot.
        assert _alive(set(started)) == {}
        assert [cmd for _, cmd in _processes().values() if str(tmp_path) in cmd] == []
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.wait()
        for pid in _alive(set(started)):
            os.kill(pid, signal.SIGKILL)
        log.close()
