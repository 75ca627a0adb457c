"""Prefect 3 side by side: installs it into its own environment and runs ``prefect_flows.py``.

The environment is ``.bench/prefect-venv`` (git-ignored), created with ``python -m venv`` and
``pip install 'prefect>=3,<4'`` the first time; Prefect is never a nodedrop dependency. It runs
with its local ephemeral server and SQLite under ``.bench/prefect-home`` (emptied first),
telemetry off, nothing but 127.0.0.1. A failed installation or run is reported, not raised.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from tests.bench import peer_env

VENV = peer_env.BENCH_DIR / "prefect-venv"
HOME = peer_env.BENCH_DIR / "prefect-home"
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


async def install() -> str:
    """The Python of the Prefect environment, created on first use."""
    return await peer_env.install(VENV, "prefect", [REQUIREMENT])


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
        output = await peer_env.run(command, 1800, prefect_env())
    except (RuntimeError, OSError, TimeoutError) as error:
        return PrefectResult(error=f"run failed: {error!r}"[:300])
    for line in output.splitlines():
        if line.startswith("RESULT "):
            return PrefectResult(**json.loads(line.removeprefix("RESULT ")))
    return PrefectResult(error="the Prefect run printed no result")
