"""``nodedrop up`` as a user runs it: its own embedded servers, a clean stop, data kept.

Each test starts ``python -m nodedrop.cli up`` on a fresh data directory and free ports (never
the defaults, which a developer's own ``make run`` may be using).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from nodedrop.embedded.postgres import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]

REPO = Path(__file__).resolve().parents[2]
HELLO = json.loads((REPO / "examples" / "hello.json").read_text())
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state, ppid, pgrp, ...)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _proc_stat(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    fields = _proc_stat(pid)
    return fields is not None and fields[0] != "Z"


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "?"


@dataclass
class Up:
    """One ``nodedrop up`` process; its output goes to a file (a pipe could fill up)."""

    data_dir: Path
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.env['NODEDROP_PORT']}"

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "nodedrop.cli", "up"],
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_until_up(self) -> None:
        """Until the banner is printed (after /health answered 200)."""
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while "nodedrop is up" not in self.output():
            if self.process.poll() is not None:
                pytest.fail(f"nodedrop up exited with {self.process.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                pytest.fail(f"nodedrop up not up after {START_TIMEOUT_S} s:\n{self.output()}")
            time.sleep(0.2)
        assert httpx.get(f"{self.base_url}/health", timeout=5).status_code == 200

    def banner(self) -> tuple[str, str]:
        """The URL, as printed, and the admin key, read from the file the banner names (the
        output is not a terminal, so the key itself is not printed)."""
        text = self.output()
        url = re.search(r"^\s*URL:\s+(\S+)\s*$", text, re.MULTILINE)
        key_file = re.search(r"^\s*admin key:\s+in\s+(\S+)\s*$", text, re.MULTILINE)
        assert url is not None, text
        assert key_file is not None, text
        key = Path(key_file.group(1)).read_text().strip()
        assert key not in text
        return url.group(1), key

    def stop(self) -> int:
        """SIGTERM, as a service manager would; the exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"nodedrop up still running {STOP_TIMEOUT_S} s after SIGTERM; its output:\n"
                f"{self.output()[-6000:]}"
            )

    def kill_leftovers(self) -> None:
        """Last resort after a failed test: the up process, then anything using its data dir."""
        if self.process is not None and self.process.poll() is None:
            family = descendants(self.process.pid)
            self.process.kill()
            self.process.wait()
            for pid in family:
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not pytest's tmp_path: it is mode 0700, and PostgreSQL runs as another user under root.
    path = Path(tempfile.mkdtemp(prefix="nodedrop-e2e-up-"))
    path.chmod(0o711)
    yield path / "data"
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def make_up(data_dir: Path) -> Iterator[Callable[[], Up]]:
    started: list[Up] = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("NODEDROP_")}
    ports = {
        "NODEDROP_PORT": free_port(),
        "NODEDROP_NOTIFIER_PORT": free_port(),
        "NODEDROP_NATS_PORT": free_port(),
        "NODEDROP_PG_PORT": free_port(),
    }
    env.update({name: str(port) for name, port in ports.items()})
    env.update(NODEDROP_DATA_DIR=str(data_dir), NO_COLOR="1")

    def make() -> Up:
        up = Up(data_dir, env, data_dir.parent / f"up-{len(started) + 1}.log")
        started.append(up)
        return up

    yield make
    for up in started:
        up.kill_leftovers()


def test_up_prints_url_and_key_and_stops_cleanly_on_sigterm(make_up: Callable[[], Up]) -> None:
    up = make_up()
    up.start()
    up.wait_until_up()
    assert up.process is not None

    url, key = up.banner()
    assert url == up.base_url
    assert key == (up.data_dir / "admin_token").read_text().strip()
    assert (up.data_dir / "admin_token").stat().st_mode & 0o777 == 0o600
    answer = httpx.get(f"{url}/api/workflows", headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.text
    assert httpx.get(f"{url}/api/workflows").status_code == 401

    family = descendants(up.process.pid)
    commands = " ".join(command_line(pid) for pid in family)
    for part in ("nodedrop.api", "nodedrop.scheduler", "nodedrop.runner", "nodedrop.notifier"):
        assert part in commands
    assert "nats-server" in commands
    assert "postgres" in commands
    # The credentials key: generated, private, and given to the api and the runner only.
    assert (up.data_dir / "secret_key").stat().st_mode & 0o777 == 0o600
    holders = {
        service: any(
            f"nodedrop.{service}" in command_line(pid) and _has_secret_key(pid) for pid in family
        )
        for service in ("api", "scheduler", "runner", "notifier")
    }
    assert holders == {"api": True, "scheduler": False, "runner": True, "notifier": False}

    assert up.stop() == 0, up.output()
    left = {pid: command_line(pid) for pid in family if alive(pid)}
    assert not left, f"still running after nodedrop up exited: {left}"
    assert "stopped" in up.output().splitlines()[-1]


def test_a_second_up_keeps_the_data_of_the_first(make_up: Callable[[], Up]) -> None:
    first = make_up()
    first.start()
    first.wait_until_up()
    _, key = first.banner()
    headers = {"Authorization": f"Bearer {key}"}
    created = httpx.post(f"{first.base_url}/api/workflows", json=HELLO, headers=headers)
    assert created.status_code == 201, created.text
    workflow_id = created.json()["id"]
    credential = httpx.post(
        f"{first.base_url}/api/credentials",
        json={"type": "bearer_token", "name": "kept", "data": {"token": "t" * 20 + "last"}},
        headers=headers,
    )
    assert credential.status_code == 201, credential.text
    assert first.stop() == 0, first.output()

    second = make_up()
    second.start()
    second.wait_until_up()
    _, key_again = second.banner()
    assert key_again == key
    assert "using the admin key" in second.output()
    got = httpx.get(f"{second.base_url}/api/workflows/{workflow_id}", headers=headers)
    assert got.status_code == 200, got.text
    assert got.json()["name"] == HELLO["name"]
    assert got.json()["version"] == 1
    # the same credentials key, from the data directory: the credential still opens
    kept = httpx.get(
        f"{second.base_url}/api/credentials/{credential.json()['id']}", headers=headers
    )
    assert kept.status_code == 200, kept.text
    assert kept.json()["secrets"] == {"token": "****last"}
    assert "using the credentials key" in second.output()
    assert second.stop() == 0, second.output()


def _has_secret_key(pid: int) -> bool:
    try:
        return b"NODEDROP_SECRET_KEY=" in Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:  # gone, or not ours to read
        return False
