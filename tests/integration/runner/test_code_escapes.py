"""Escape attempts from the code sandbox, run in the real sandbox (bubblewrap).

Each attack runs beside an ordinary code node of another execution; every time, the attack
must fail (the node fails, or the action errors inside the sandbox), the other node must get
its right output, the runner's event loop must keep going, and no process of either sandbox
may be left behind. Everything is bounded: the fork bomb meets seccomp and RLIMIT_NPROC, the
10 GB allocation RLIMIT_AS, the endless loop RLIMIT_CPU, each in its own sandbox.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import nodedrop.runner
from nodedrop.contracts.items import PortItems
from nodedrop.runner.nodes.api import NodeContext, NodeError
from nodedrop.runner.nodes.code import CodeNode
from nodedrop.runner.sandbox.settings import SandboxSettings

from .sandboxes import sandbox_pids

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("bwrap") is None,
        reason="bubblewrap (bwrap) is not installed: apt-get install bubblewrap (.ci/run does)",
    ),
]

SETTINGS = SandboxSettings(cpu_s=2, memory_bytes=256 * 1024 * 1024)
SECRET = "s3cret-runner-only-value"


def runner_file() -> str:
    return str(Path(nodedrop.runner.__file__).resolve())


def interpreter_dir() -> str:
    return os.path.dirname(os.path.realpath(sys.executable))


def exists(path: str) -> bool:
    return Path(path).exists()


#: An interpreter that the host's nobody can read, so a runner run as root drops to it.
SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.fixture(params=["runner's python", "system python"])
def node(request: pytest.FixtureRequest) -> CodeNode:
    """Both ways a root runner runs sandboxes: as nobody (the system's interpreter, readable
    by all) and as a root without capabilities (the runner's own, under /root here)."""
    if request.param == "runner's python":
        return CodeNode(SETTINGS)
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip(f"no {SYSTEM_PYTHON} on this host")
    node = CodeNode(dataclasses.replace(SETTINGS, python=SYSTEM_PYTHON))
    assert node.jail.drops_to_nobody() == (os.geteuid() == 0)
    return node


@pytest.fixture
def runner_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A NATS credentials file and secret variables, as a runner has them."""
    creds = tmp_path / "runner.creds"
    creds.write_text(f"-----BEGIN NATS USER JWT-----\n{SECRET}\n")
    monkeypatch.setenv("NODEDROP_NATS_CREDS", str(creds))
    monkeypatch.setenv("NODEDROP_NATS_PASSWORD", SECRET)
    return creds


class LoopWatch:
    """How long the event loop was held at most while it ran."""

    def __init__(self) -> None:
        self.longest_gap_s = 0.0

    async def tick(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            self.longest_gap_s = max(self.longest_gap_s, now - last)
            last = now


@pytest.fixture
async def loop_watch() -> AsyncIterator[LoopWatch]:
    watch = LoopWatch()
    ticker = asyncio.create_task(watch.tick())
    yield watch
    ticker.cancel()


async def run(
    node: CodeNode,
    source: str,
    items: list[dict[str, Any]] | None = None,
    *,
    execution_id: str = "attacker",
    mode: str = "all_items",
) -> PortItems | NodeError:
    ctx = NodeContext(execution_id, "py", 1)
    try:
        return await node.run(ctx, {"main": items or [{}]}, {"source": source, "mode": mode})
    except NodeError as error:
        return error


BYSTANDER = "def main(items, ctx):\n    return [{'n': item['n'] * 2} for item in items]\n"


async def attack(node: CodeNode, watch: LoopWatch, source: str, **options: Any) -> Any:
    """The attack beside a bystander's code node; checks the bystander and the runner."""
    outcome, bystander = await asyncio.gather(
        run(node, source, **options),
        run(node, BYSTANDER, [{"n": 1}, {"n": 2}], execution_id="bystander"),
    )
    assert bystander == {"main": [{"n": 2}, {"n": 4}]}
    assert watch.longest_gap_s < 0.5, "the sandbox held the runner's event loop"
    assert sandbox_pids() == [], "a sandbox process outlived its node"
    return outcome


def inside(outcome: PortItems | NodeError) -> dict[str, Any]:
    """What the attacking code reported about its attempt from inside the sandbox."""
    assert not isinstance(outcome, NodeError), f"{outcome.type}: {outcome.message}"
    [report] = outcome["main"]
    return report


def failed(outcome: PortItems | NodeError, error_type: str = "CodeError") -> NodeError:
    assert isinstance(outcome, NodeError), outcome
    assert outcome.type == error_type, outcome.message
    return outcome


async def test_no_network_not_even_the_runners_loopback(
    node: CodeNode, loop_watch: LoopWatch
) -> None:
    listener = socket.create_server(("127.0.0.1", 0))  # a service of the runner's host
    port = listener.getsockname()[1]
    try:
        source = f"""
import socket
def main(items, ctx):
    tried = {{}}
    for name, address in (("loopback", ("127.0.0.1", {port})), ("internet", ("1.1.1.1", 53))):
        try:
            socket.create_connection(address, timeout=2).close()
            tried[name] = "connected"
        except OSError as error:
            tried[name] = type(error).__name__
    try:
        socket.getaddrinfo("example.org", 443)
        tried["dns"] = "resolved"
    except OSError as error:
        tried["dns"] = type(error).__name__
    return [tried]
"""
        report = inside(await attack(node, loop_watch, source))
    finally:
        listener.close()
    assert report["loopback"] == "ConnectionRefusedError"  # its own, empty loopback
    assert report["internet"] != "connected"
    assert report["dns"] != "resolved"


async def test_no_environment_and_no_credentials(
    node: CodeNode, loop_watch: LoopWatch, runner_secrets: Path
) -> None:
    source = f"""
import os
def main(items, ctx):
    seen = {{"environ": dict(os.environ)}}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                seen[pid] = open(f"/proc/{{pid}}/environ", "rb").read().decode("latin-1")
            except OSError as error:
                seen[pid] = type(error).__name__
    try:
        seen["creds"] = open({str(runner_secrets)!r}).read()
    except OSError as error:
        seen["creds"] = type(error).__name__
    return [seen]
"""
    report = inside(await attack(node, loop_watch, source))
    assert SECRET not in str(report)
    assert "NODEDROP" not in str(report)
    assert report["creds"] == "FileNotFoundError"
    assert report["environ"] == {"HOME": "/tmp"} or "NODEDROP_NATS_PASSWORD" not in report


async def test_no_files_of_the_runner(node: CodeNode, loop_watch: LoopWatch) -> None:
    source = f"""
import os
def main(items, ctx):
    seen = {{"root": sorted(os.listdir("/"))}}
    for path in ({runner_file()!r}, {os.getcwd()!r}, "/etc/passwd", "/root", "/proc/1/root/work"):
        try:
            seen[path] = os.listdir(path) if os.path.isdir(path) else open(path).read(100)
        except OSError as error:
            seen[path] = type(error).__name__
    for module in ("nodedrop", "nats", "pip"):
        try:
            __import__(module)
            seen[module] = "imported"
        except ImportError as error:
            seen[module] = type(error).__name__
    return [seen]
"""
    report = inside(await attack(node, loop_watch, source))
    assert set(report["root"]) <= {"dev", "proc", "tmp", "usr", "lib", "lib64", "lib32", "root"}
    assert report[runner_file()] == "FileNotFoundError"
    assert report[os.getcwd()] in ("FileNotFoundError", [])
    assert report["/etc/passwd"] == "FileNotFoundError"
    assert report["nodedrop"] == report["nats"] == report["pip"] == "ModuleNotFoundError"


async def test_writes_only_its_private_tmp(node: CodeNode, loop_watch: LoopWatch) -> None:
    planted = interpreter_dir() + "/planted"
    source = f"""
def main(items, ctx):
    seen = {{}}
    for path in ("/usr/lib/planted", {planted!r}, "/planted",
                 "/proc/sys/kernel/hostname", "/dev/planted", "/tmp/mine"):
        try:
            with open(path, "w") as file:
                file.write("x")
            seen[path] = "written"
        except OSError as error:
            seen[path] = type(error).__name__
    return [seen]
"""
    report = inside(await attack(node, loop_watch, source))
    assert report.pop("/tmp/mine") == "written"
    assert "written" not in report.values(), report
    assert not exists("/tmp/mine")
    assert not exists(planted)


async def test_a_fork_bomb_gets_no_second_process(node: CodeNode, loop_watch: LoopWatch) -> None:
    source = """
import os, subprocess
def main(items, ctx):
    seen = {}
    try:
        subprocess.run(["/bin/sh", "-c", "echo hi"], check=True)
        seen["subprocess"] = "ran"
    except OSError as error:
        seen["subprocess"] = type(error).__name__
    forks = 0
    try:
        while True:
            if os.fork() == 0:
                while True:
                    pass
            forks += 1
    except OSError as error:
        seen["fork"] = type(error).__name__
    seen["forks"] = forks
    return [seen]
"""
    report = inside(await attack(node, loop_watch, source))
    assert report == {"subprocess": "BlockingIOError", "fork": "BlockingIOError", "forks": 0}


async def test_ten_gigabytes_are_refused(node: CodeNode, loop_watch: LoopWatch) -> None:
    source = "def main(items, ctx):\n    data = bytearray(10 * 1024**3)\n    return [{}]\n"
    error = failed(await attack(node, loop_watch, source))
    assert error.message.startswith("MemoryError")
    assert 'File "<code>", line 2, in main' in (error.stack or "")


async def test_spinning_forever_is_stopped_by_the_cpu_limit(
    node: CodeNode, loop_watch: LoopWatch
) -> None:
    source = "def main(items, ctx):\n    while True:\n        pass\n"
    error = failed(await attack(node, loop_watch, source), "CodeLimitExceeded")
    # The CPU limit's own message (the wall-clock limit's says "longer than N s"): stopped by
    # the CPU limit, however long a loaded machine took to give it that CPU time.
    assert error.message == f"the code used more than {SETTINGS.cpu_s} s of CPU time"


async def test_sleeping_forever_is_stopped_by_the_wall_limit(loop_watch: LoopWatch) -> None:
    node = CodeNode(SandboxSettings(cpu_s=1))  # wall limit: 3 s
    source = "import time\ndef main(items, ctx):\n    time.sleep(3600)\n"
    error = failed(await attack(node, loop_watch, source), "CodeLimitExceeded")
    assert "longer than 3 s" in error.message


async def test_ctypes_reaches_libc_but_not_past_the_filter(
    node: CodeNode, loop_watch: LoopWatch
) -> None:
    source = """
import ctypes, os
def main(items, ctx):
    libc = ctypes.CDLL(None, use_errno=True)
    seen = {}
    seen["fork"] = libc.fork()
    seen["fork_errno"] = ctypes.get_errno()
    seen["ptrace"] = libc.ptrace(16, 1, 0, 0)  # PTRACE_ATTACH to pid 1
    seen["unshare"] = libc.unshare(0x10000000)  # CLONE_NEWUSER
    seen["mount"] = libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)
    seen["system"] = libc.system(b"id")
    seen["uid"] = libc.getuid()
    return [seen]
"""
    report = inside(await attack(node, loop_watch, source))
    assert report["fork"] == report["ptrace"] == report["unshare"] == report["mount"] == -1
    assert report["fork_errno"] == 11  # EAGAIN
    assert report["system"] != 0  # no shell: it needs a new process
    assert report["uid"] == 65534


async def test_no_other_executions_data(node: CodeNode, loop_watch: LoopWatch) -> None:
    keeper = """
import os, time
def main(items, ctx):
    with open("/tmp/secret-of-" + ctx.execution_id, "w") as file:
        file.write(items[0]["secret"])
    time.sleep(1.5)
    return items
"""
    snooper = """
import os, time
def main(items, ctx):
    time.sleep(0.5)
    seen = {"tmp": os.listdir("/tmp"), "pids": [p for p in os.listdir("/proc") if p.isdigit()]}
    found = []
    for pid in seen["pids"]:
        try:
            found.append(open(f"/proc/{pid}/cmdline", "rb").read().decode("latin-1"))
        except OSError:
            pass
    seen["cmdlines"] = found
    return [seen]
"""
    kept, seen = await asyncio.gather(
        run(node, keeper, [{"secret": SECRET}], execution_id="keeper"),
        run(node, snooper, execution_id="snooper"),
    )
    assert kept == {"main": [{"secret": SECRET}]}  # the keeper is the bystander here
    assert sandbox_pids() == []
    report = inside(seen)
    assert report["tmp"] == []
    assert len(report["pids"]) <= 2  # bwrap's init and itself: nobody else's processes
    assert SECRET not in str(report)
    # And nothing is left for a later attempt: each gets a fresh sandbox.
    later = inside(await attack(node, loop_watch, snooper))
    assert later["tmp"] == []


async def test_killing_its_parent_kills_only_itself(node: CodeNode, loop_watch: LoopWatch) -> None:
    source = f"""
import os, signal
def main(items, ctx):
    seen = {{}}
    for name, pid in (("parent", os.getppid()), ("init", 1), ("runner", {os.getpid()}),
                      ("everyone", -1)):
        try:
            os.kill(pid, signal.SIGKILL)
            seen[name] = "sent"
        except OSError as error:
            seen[name] = type(error).__name__
    return [seen]
"""
    outcome = await attack(node, loop_watch, source)
    # The runner's pid means nothing in the sandbox's PID namespace; its init ignores
    # SIGKILL from inside; "everyone" is only the sandbox's own processes.
    report = inside(outcome)
    assert report["runner"] in ("ProcessLookupError", "sent")
    assert os.getpid() > 0  # still here: the runner is this test's process
    second = await run(node, BYSTANDER, [{"n": 5}], execution_id="after")
    assert second == {"main": [{"n": 10}]}


async def test_cancelling_the_attempt_kills_the_sandbox(
    node: CodeNode, loop_watch: LoopWatch
) -> None:
    spinning = asyncio.create_task(
        run(node, "def main(items, ctx):\n    while True:\n        pass\n")
    )
    deadline = time.monotonic() + 5
    while not sandbox_pids() and time.monotonic() < deadline:  # noqa: ASYNC110 - nothing to await
        await asyncio.sleep(0.02)
    assert sandbox_pids(), "the sandbox never started"
    spinning.cancel()
    with pytest.raises(asyncio.CancelledError):
        await spinning
    assert sandbox_pids() == []
    assert loop_watch.longest_gap_s < 0.5
