"""The peers' own environments: each peer (Prefect, DBOS) is installed into a virtualenv of its
own under ``.bench/`` (git-ignored) the first time, never as a nodedrop dependency, and its
programs run in a process group of their own so that nothing of theirs outlives the run."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO / ".bench"


async def run(command: list[str], timeout_s: float, env: dict[str, str] | None = None) -> str:
    """Run ``command`` in a process group of its own; its output, or an error with its tail.
    On timeout or cancellation the whole group (a peer's server included) is killed."""
    process = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL,
        env=env,
        cwd=BENCH_DIR,
        start_new_session=True,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout_s)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        raise
    with contextlib.suppress(ProcessLookupError):  # anything of the peer's still in the group
        os.killpg(process.pid, signal.SIGTERM)
    text = output.decode(errors="replace")
    if process.returncode != 0:
        tail = "\n".join(text.splitlines()[-15:])
        raise RuntimeError(f"{command[0]} exited with {process.returncode}:\n{tail}")
    return text


async def install(venv: Path, imports: str, requirements: list[str]) -> str:
    """The Python of ``venv``, created with ``requirements`` unless it can already import
    ``imports`` (comma-separated module names)."""
    python = venv / "bin" / "python"
    if python.exists():
        try:
            await run([str(python), "-c", f"import {imports}"], 120)
            return str(python)
        except RuntimeError:
            shutil.rmtree(venv, ignore_errors=True)
    BENCH_DIR.mkdir(exist_ok=True)
    print(f"  installing {' '.join(requirements)} into {venv} ...", flush=True)
    base = getattr(sys, "_base_executable", sys.executable)
    await run([base, "-m", "venv", str(venv)], 300)
    await run([str(python), "-m", "pip", "install", "--quiet", *requirements], 1800)
    return str(python)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def stop_group(process: asyncio.subprocess.Process, timeout_s: float) -> None:
    """Stop a peer started in a session of its own, and everything it started: SIGTERM to its
    process group, SIGKILL if it has not ended within ``timeout_s``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), timeout_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
