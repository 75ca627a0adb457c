"""DBOS side by side: installs it into its own environment and serves ``dbos_app.py``.

The environment is ``.bench/dbos-venv`` (git-ignored), created with ``python -m venv`` and
``pip install 'dbos>=3.4,<4' fastapi uvicorn`` the first time; DBOS is never a nodedrop
dependency. Its system database is a database of its own on the bench's PostgreSQL (durable:
fsync and ``synchronous_commit`` on, as nodedrop's). The app listens on 127.0.0.1 only and is
stopped, with its whole process group, when the peer closes. Each workload is timed from outside
as nodedrop's are: from sending the request to reading the answer, which comes once the workflow
has finished. A failed installation or start is reported, not raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
from tests.bench import peer_env
from tests.bench.load import ApiConnection
from tests.bench.peer_rates import NO_TOKEN, RateStep, best_sustained, cpu_seconds, submit_wait
from tests.bench.stack import Bench
from tests.bench.stats import ms

VENV = peer_env.BENCH_DIR / "dbos-venv"
APP = Path(__file__).with_name("dbos_app.py")
REQUIREMENTS = ["dbos>=3.4,<4", "fastapi>=0.110", "uvicorn>=0.29"]


@dataclass
class DbosResult:
    version: str = ""
    error: str = ""
    chain_nodes: int = 40
    chain_whole_ms: list[float] = field(default_factory=list)  # request -> answer, from outside
    chain_inside_ms: list[float] = field(default_factory=list)  # first step -> last result
    fan_width: int = 1000
    fan_whole_ms: list[float] = field(default_factory=list)
    fan_inside_ms: list[float] = field(default_factory=list)
    submit_steps: list[RateStep] = field(default_factory=list)
    #: Workload (S1, S4, S9) -> why it was not measured; the others still were.
    failed: dict[str, str] = field(default_factory=dict)

    def best_sustained(self, p99_ms: float) -> RateStep | None:
        return best_sustained(self.submit_steps, p99_ms)


async def install() -> str:
    """The Python of the DBOS environment, created on first use."""
    return await peer_env.install(VENV, "dbos, fastapi, uvicorn", REQUIREMENTS)


class DbosPeer:
    """The DBOS app, running; ``result`` gathers what the workloads measured."""

    def __init__(self, process: asyncio.subprocess.Process, port: int, postgres_pid: int):
        self.process = process
        self.port = port
        self.postgres_pid = postgres_pid
        self.result = DbosResult()

    async def _post(self, path: str) -> tuple[float, dict[str, float]]:
        """(milliseconds from sending to reading the answer, the answer)."""
        connection = ApiConnection(self.port, NO_TOKEN)
        try:
            started = time.perf_counter()
            status, answer = await connection.post(path, b"{}")
            took = ms(time.perf_counter() - started)
        finally:
            await connection.close()
        if status != 200:
            raise RuntimeError(f"DBOS app answered {status} to POST {path}: {answer}")
        return took, answer

    async def chain(self, runs: int, nodes: int = 40) -> None:
        self.result.chain_nodes = nodes
        await self._post(f"/chain?nodes={nodes}")  # warm-up, not counted
        for _ in range(runs):
            whole, answer = await self._post(f"/chain?nodes={nodes}")
            self.result.chain_whole_ms.append(whole)
            self.result.chain_inside_ms.append(ms(answer["inside_s"]))

    async def fan(self, runs: int, width: int = 1000) -> None:
        self.result.fan_width = width
        await self._post("/fan?width=10")  # warm-up, not counted
        for _ in range(runs):
            whole, answer = await self._post(f"/fan?width={width}")
            self.result.fan_whole_ms.append(whole)
            self.result.fan_inside_ms.append(ms(answer["inside_s"]))

    def _cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid, self.postgres_pid)

    async def submit_wait(self, rates: tuple[float, ...], step_s: float, connections: int) -> None:
        """Open loop at each rate in turn, as S9 drives nodedrop, until DBOS falls behind."""
        self.result.submit_steps += await submit_wait(
            self.port,
            "/api/executions",
            rates,
            step_s=step_s,
            connections=connections,
            cpu_seconds=self._cpu_seconds,
            label="DBOS",
        )


async def _database(bench: Bench) -> str:
    name = f"dbos_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(bench.postgres.dsn("postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    finally:
        await admin.close()
    return bench.postgres.dsn(name)


async def _wait_ready(peer: DbosPeer, timeout_s: float = 120) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        if peer.process.returncode is not None:
            raise RuntimeError(f"the DBOS app exited with {peer.process.returncode}")
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", peer.port)
            writer.write(b"GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            answer = await reader.read()
            writer.close()
            return str(json.loads(answer.split(b"\r\n\r\n", 1)[1])["version"])
        except (OSError, ValueError, IndexError, KeyError):
            if time.monotonic() > deadline:
                raise TimeoutError("the DBOS app did not answer") from None
            await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def running(bench: Bench) -> AsyncIterator[DbosPeer | DbosResult]:
    """The DBOS app on a database of its own, or a result saying why it is not there."""
    try:
        python = await install()
    except (RuntimeError, OSError, TimeoutError) as error:
        yield DbosResult(error=f"installation failed: {error}".splitlines()[0])
        return
    postgres_pid = bench.postgres.pid
    assert postgres_pid is not None
    url = await _database(bench)
    port = peer_env.free_port()
    log = os.open(bench.work / "dbos.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    process = await asyncio.create_subprocess_exec(
        python,
        str(APP),
        "--port",
        str(port),
        "--database-url",
        url,
        stdout=log,
        stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if not k.startswith("DBOS_")},
        start_new_session=True,
    )
    os.close(log)  # the app holds its own copy
    peer = DbosPeer(process, port, postgres_pid)
    try:
        try:
            peer.result.version = await _wait_ready(peer)
        except (RuntimeError, TimeoutError) as error:
            tail = (bench.work / "dbos.log").read_text(errors="replace").splitlines()[-3:]
            yield DbosResult(error=f"start failed: {error}: {' '.join(tail)}"[:300])
            return
        yield peer
    finally:
        await peer_env.stop_group(process, 10)
