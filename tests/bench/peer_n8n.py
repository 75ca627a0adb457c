"""n8n side by side: installs it into a folder of its own and serves the workflows of
``n8n_workflows.py``, each behind a webhook that answers once its last node has run.

Only where Node.js >= 20 is found (npm is needed to install it): otherwise the harness prints a
line saying so and goes on; n8n is never failed, nor a nodedrop dependency. n8n 2.x itself runs
on the Node.js 24 that :mod:`tests.bench.n8n_install` puts into ``.bench/n8n`` with it.
Its data folder is a fresh one under the bench's work directory, with n8n's defaults (SQLite).
It listens on 127.0.0.1 only and is stopped, with its whole process group, when the peer closes.
A failed installation or start is reported, not raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.bench import n8n_install, n8n_workflows, peer_env
from tests.bench.load import ApiConnection
from tests.bench.peer_rates import NO_TOKEN, RateStep, best_sustained, cpu_seconds, submit_wait
from tests.bench.stack import Bench
from tests.bench.stats import ms

MIN_NODE = (20,)
#: What the default keeps, written next to n8n's figures.
DURABILITY = (
    "the run in memory, saved to SQLite (WAL) once it has ended; nothing written per node "
    "(EXECUTIONS_DATA_SAVE_ON_PROGRESS off by default)"
)


@dataclass
class N8nResult:
    version: str = ""
    #: Why n8n did not run (no Node.js >= 20, a failed installation or start).
    error: str = ""
    chain_nodes: int = 40
    chain_whole_ms: list[float] = field(default_factory=list)
    fan_width: int = 1000
    fan_whole_ms: list[float] = field(default_factory=list)
    submit_steps: list[RateStep] = field(default_factory=list)
    #: Workload (S1, S4, S9) -> why it was not measured; the others still were.
    failed: dict[str, str] = field(default_factory=dict)

    def best_sustained(self, p99_ms: float) -> RateStep | None:
        return best_sustained(self.submit_steps, p99_ms)


def parse_node_version(text: str) -> tuple[int, ...] | None:
    """``node --version``'s answer (``v20.19.2``) as numbers; None if it is not one."""
    found = re.fullmatch(r"\s*v?(\d+)\.(\d+)\.(\d+)\S*\s*", text)
    return tuple(int(part) for part in found.groups()) if found else None


def skip_reason(node: str | None, version_text: str | None, npm: str | None) -> str | None:
    """Why n8n cannot be installed here (a line for the harness to print), or None."""
    if node is None:
        return "skipped: no Node.js found (n8n needs Node.js >= 20 and npm)"
    version = parse_node_version(version_text or "")
    if version is None:
        return f"skipped: cannot read the Node.js version ({(version_text or '').strip()!r})"
    if version < MIN_NODE:
        shown = ".".join(map(str, version))
        return f"skipped: Node.js {shown} found, n8n needs Node.js >= 20"
    if npm is None:
        return "skipped: Node.js found but not npm (n8n is installed with npm)"
    return None


async def _system_node() -> str | None:
    node, npm = shutil.which("node"), shutil.which("npm")
    version = None
    if node is not None:
        with contextlib.suppress(RuntimeError, OSError, TimeoutError):
            version = await peer_env.run([node, "--version"], 30)
    return skip_reason(node, version, npm)


class N8nPeer:
    """n8n, running with the bench's workflows active; ``result`` gathers what was measured."""

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.port = port
        self.result = N8nResult()

    async def _post(self, path: str, body: bytes = b"{}") -> float:
        """Milliseconds from sending to reading the answer."""
        connection = ApiConnection(self.port, NO_TOKEN)
        try:
            started = time.perf_counter()
            status, answer = await connection.post(path, body)
            took = ms(time.perf_counter() - started)
        finally:
            await connection.close()
        if status != 200:
            raise RuntimeError(f"n8n answered {status} to POST {path}: {answer}")
        return took

    async def chain(self, runs: int) -> None:
        await self._post(f"/webhook/{n8n_workflows.CHAIN}")  # warm-up, not counted
        for _ in range(runs):
            self.result.chain_whole_ms.append(await self._post(f"/webhook/{n8n_workflows.CHAIN}"))

    async def fan(self, runs: int, width: int = 1000) -> None:
        self.result.fan_width = width
        body = json.dumps({"items": list(range(width))}).encode()
        await self._post(f"/webhook/{n8n_workflows.FAN}", body)  # warm-up, not counted
        for _ in range(runs):
            self.result.fan_whole_ms.append(await self._post(f"/webhook/{n8n_workflows.FAN}", body))

    def _cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)

    async def submit_wait(self, rates: tuple[float, ...], step_s: float, connections: int) -> None:
        self.result.submit_steps += await submit_wait(
            self.port,
            f"/webhook/{n8n_workflows.ONE}",
            rates,
            step_s=step_s,
            connections=connections,
            cpu_seconds=self._cpu_seconds,
            label="n8n",
        )


def _environment(node: str, data: Path, port: int) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("N8N_", "DB_", "EXECUTIONS_"))}
    return keep | {
        # n8n starts its JavaScript task runner with the first ``node`` on the PATH: the same.
        "PATH": f"{Path(node).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "N8N_USER_FOLDER": str(data),
        "N8N_PORT": str(port),
        "N8N_LISTEN_ADDRESS": "127.0.0.1",
        "N8N_HOST": "127.0.0.1",
        # No calls home and no banners; the defaults that matter (SQLite, saving every
        # execution) stay as they are.
        "N8N_DIAGNOSTICS_ENABLED": "false",
        "N8N_VERSION_NOTIFICATIONS_ENABLED": "false",
        "N8N_TEMPLATES_ENABLED": "false",
        "N8N_PERSONALIZATION_ENABLED": "false",
        "N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS": "true",
        "N8N_LOG_LEVEL": "warn",
        # Its catalogue of MCP servers is fetched from api.n8n.io every so often.
        "N8N_DISABLED_MODULES": "mcp-registry",
    }


async def _import_workflows(node: str, n8n: str, data: Path, env: dict[str, str]) -> None:
    folder = data / "workflows"
    folder.mkdir(parents=True)
    for workflow in n8n_workflows.all_workflows(40):
        (folder / f"{workflow['id']}.json").write_text(json.dumps(workflow))
    await peer_env.run([node, n8n, "import:workflow", "--separate", f"--input={folder}"], 300, env)
    for workflow in n8n_workflows.all_workflows(40):
        # n8n 2.x imports workflows inactive; publishing makes their webhooks live at start.
        await peer_env.run([node, n8n, "publish:workflow", f"--id={workflow['id']}"], 300, env)


async def _wait_ready(peer: N8nPeer, timeout_s: float = 180) -> None:
    """Until the S9 webhook answers (n8n has then registered the active workflows)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if peer.process.returncode is not None:
            raise RuntimeError(f"n8n exited with {peer.process.returncode}")
        with contextlib.suppress(OSError, RuntimeError, ValueError):
            await peer._post(f"/webhook/{n8n_workflows.ONE}")
            return
        if time.monotonic() > deadline:
            raise TimeoutError("n8n's webhooks did not answer")
        await asyncio.sleep(0.5)


@contextlib.asynccontextmanager
async def running(bench: Bench, *, retry: bool = False) -> AsyncIterator[N8nPeer | N8nResult]:
    """n8n with the bench's workflows active, or a result saying why it is not there;
    ``retry``: install it even if its installation failed before."""
    if (why := await _system_node()) is not None:
        yield N8nResult(error=why)
        return
    try:
        node, n8n = await n8n_install.install(retry=retry)
        version = (await peer_env.run([node, n8n, "--version"], 120)).strip().splitlines()[-1]
        data = bench.work / "n8n"
        port = peer_env.free_port()
        env = _environment(node, data, port)
        await _import_workflows(node, n8n, data, env)
    except n8n_install.InstallError as error:
        yield N8nResult(error=str(error))
        return
    except (RuntimeError, OSError, TimeoutError) as error:
        yield N8nResult(error=f"setting n8n up failed: {error}".splitlines()[0][:300])
        return
    log = os.open(bench.work / "n8n.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    process = await asyncio.create_subprocess_exec(
        node,
        n8n,
        "start",
        stdout=log,
        stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL,
        env=env,
        cwd=data,
        start_new_session=True,
    )
    os.close(log)  # n8n holds its own copy
    peer = N8nPeer(process, port)
    peer.result.version = version
    try:
        try:
            await _wait_ready(peer)
        except (RuntimeError, TimeoutError) as error:
            tail = (bench.work / "n8n.log").read_text(errors="replace").splitlines()[-3:]
            yield N8nResult(error=f"start failed: {error}: {' '.join(tail)}"[:300])
            return
        yield peer
    finally:
        await peer_env.stop_group(process, 20)
