"""Prefect 3 side by side: installs it into its own environment and runs ``prefect_flows.py``.

The environment is ``.bench/prefect-venv`` (git-ignored), created with ``python -m venv`` and
``pip install 'prefect>=3,<4'`` the first time; Prefect is never a nodedrop dependency. It runs
with its local ephemeral server and SQLite under ``.bench/prefect-home`` (emptied first),
telemetry off, nothing but 127.0.0.1. A failed installation or run is reported, not raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO / ".bench"
VENV = BENCH_DIR / "prefect-venv"
HOME = BENCH_DIR / "prefect-home"
FLOWS = Path(__file__).with_name("prefect_flows.py")
REQUIREMENT = "prefect>=3,<4"


@dataclass
class PrefectResult:
    version: str = ""
    error: str = ""
    chain_nodes: int = 40
    chain_inside_s: list[float] = field(default_factory=list)
    chain_flow_s: list[float] = field(default_factory=list)
    chain_recorded_s: list[float] = field(default_factory=list)
    fan_width: int = 1000
    fan_inside_s: list[float] = field(default_factory=list)
    fan_flow_s: list[float] = field(default_factory=list)
    fan_recorded_s: list[float] = field(default_factory=list)


async def _run(command: list[str], timeout_s: float, env: dict[str, str] | None = None) -> str:
    """Run ``command`` in a process group of its own; its output, or an error with its tail.
    On timeout or cancellation the whole group (Prefect's server included) is killed."""
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
    with contextlib.suppress(ProcessLookupError):  # anything of Prefect's still in the group
        os.killpg(process.pid, signal.SIGTERM)
    text = output.decode(errors="replace")
    if process.returncode != 0:
        tail = "\n".join(text.splitlines()[-15:])
        raise RuntimeError(f"{command[0]} exited with {process.returncode}:\n{tail}")
    return text


async def install() -> str:
    """The Python of the Prefect environment, created on first use."""
    python = VENV / "bin" / "python"
    if python.exists():
        try:
            await _run([str(python), "-c", "import prefect"], 120)
            return str(python)
        except RuntimeError:
            shutil.rmtree(VENV, ignore_errors=True)
    BENCH_DIR.mkdir(exist_ok=True)
    print(f"  installing {REQUIREMENT} into {VENV} ...", flush=True)
    base = getattr(sys, "_base_executable", sys.executable)
    await _run([base, "-m", "venv", str(VENV)], 300)
    await _run([str(python), "-m", "pip", "install", "--quiet", REQUIREMENT], 1800)
    return str(python)


def prefect_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return env | {
        "PREFECT_HOME": str(HOME),
        "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "true",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "DO_NOT_TRACK": "1",
    }


async def measure(chain_runs: int = 20, fan_runs: int = 3) -> PrefectResult:
    try:
        python = await install()
    except (RuntimeError, OSError, TimeoutError) as error:
        return PrefectResult(error=f"installation failed: {error}".splitlines()[0])
    shutil.rmtree(HOME, ignore_errors=True)
    HOME.mkdir(parents=True)
    command = [python, str(FLOWS), "--chain-runs", str(chain_runs), "--fan-runs", str(fan_runs)]
    try:
        output = await _run(command, 1800, prefect_env())
    except (RuntimeError, OSError, TimeoutError) as error:
        return PrefectResult(error=f"run failed: {error!r}"[:300])
    for line in output.splitlines():
        if line.startswith("RESULT "):
            return PrefectResult(**json.loads(line.removeprefix("RESULT ")))
    return PrefectResult(error="the Prefect run printed no result")
