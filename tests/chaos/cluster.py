"""The system under fault injection: its own nats-server and PostgreSQL database, the services
as processes (:class:`tests.e2e.system.System`), and the levers a scenario pulls.

Faults are real signals to real processes: SIGKILL for a crash, SIGSTOP/SIGCONT for a pause,
``pg_terminate_backend`` for dropped connections, SIGQUIT to the postmaster (what
``pg_ctl stop -m immediate`` sends) for a database crash. The nats-server restarts on the same
port and store directory, so clients reconnect to it and it recovers its streams from disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
import httpx
import nats
from tests.bench.stack import Stack
from tests.chaos.oracle import Kill
from tests.chaos.sideeffects import SideEffectServer
from tests.e2e.system import System, free_port

from nodedrop.embedded import EmbeddedNats, EmbeddedPostgres
from nodedrop.platform.db.migrate import upgrade
from nodedrop.platform.jetstream import StreamSettings, ensure_jetstream

#: A runner's task goes to another runner this long after its runner stopped heartbeating
#: (production default 15 s; shorter here so that a run with many kills stays short).
ACK_WAIT_S = 4.0


def asyncpg_dsn(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme.split('+', 1)[0]}://{rest}"


class Postgres:
    """A PostgreSQL server for the run: the given one (``NODEDROP_TEST_DATABASE_URL``), or an
    embedded one on disk that this harness may crash and restart (:meth:`crash_and_restart`)."""

    def __init__(self, work: Path, external_url: str | None) -> None:
        self.external_url = external_url
        self.embedded: EmbeddedPostgres | None = None
        if not external_url:
            # A fixed port, so that the services find it again after a restart.
            self.embedded = EmbeddedPostgres(work / "pg", port=free_port())
        self.version = ""

    @property
    def server_url(self) -> str:
        if self.embedded is not None:
            return self.embedded.url("postgres")
        assert self.external_url
        return self.external_url

    def start(self) -> None:
        if self.embedded is not None:
            self.embedded.start()

    def stop(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()

    def crash_and_restart(self, down_s: float = 1.0) -> None:
        """``pg_ctl stop -m immediate``: SIGQUIT to the postmaster, no checkpoint, crash
        recovery at the next start."""
        server = self.embedded
        if server is None or server.pid is None:
            raise RuntimeError("only an embedded PostgreSQL can be crashed")
        os.kill(server.pid, signal.SIGQUIT)
        deadline = time.monotonic() + 30
        while server.running and time.monotonic() < deadline:
            time.sleep(0.01)
        server.stop()  # reaps it
        time.sleep(down_s)
        server.start()

    async def new_database(self) -> str:
        name = f"chaos_{uuid.uuid4().hex[:12]}"
        admin = await asyncpg.connect(asyncpg_dsn(self.server_url))
        try:
            await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
            self.version = self.version or str(await admin.fetchval("SHOW server_version"))
        finally:
            await admin.close()
        url = self.server_url.rsplit("/", 1)[0] + f"/{name}"
        await asyncio.to_thread(upgrade, url)
        return url

    async def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        admin = await asyncpg.connect(asyncpg_dsn(self.server_url))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    async def terminate_connections(self, database_url: str) -> int:
        """End every other session on the scenario's database (what a failover or an
        operator's ``pg_terminate_backend`` does); returns how many were ended."""
        name = database_url.rsplit("/", 1)[1]
        admin = await asyncpg.connect(asyncpg_dsn(self.server_url))
        try:
            ended: int = await admin.fetchval(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()) AS t",
                name,
            )
        finally:
            await admin.close()
        return ended


@dataclass(kw_only=True)
class Cluster(Stack):
    """One scenario's system: the benchmarks' :class:`Stack` (its servers, services, runners,
    stream and checkpoint readers) with the levers of fault injection. Use :func:`cluster`."""

    work: Path
    postgres: Postgres
    http: httpx.AsyncClient
    side_effects: SideEffectServer
    #: Execution id -> the input it was submitted with.
    inputs: dict[str, Any] = field(default_factory=dict)
    #: Submits the API answered 503 (or did not answer), retried: measured, for the table.
    refused: int = 0

    # ------------------------------------------------------------------ processes
    def kill(self, name: str) -> None:
        """SIGKILL: no shutdown, no nak, no flush; whatever it held is left to the ack wait."""
        self.system.stop(name, signal.SIGKILL)

    def kill_observed(self, name: str) -> Killed:
        """:meth:`kill`, keeping the process object to see afterwards how it ended."""
        process = self.system.processes[name]
        self.kill(name)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(10)
        return Killed(name, process)

    def restart_observed(self, killed: Killed, service: str | None = None) -> None:
        self.restart(killed.name, service)
        killed.replacement = self.system.processes.get(killed.name)

    def log_lines(self, text: str) -> int:
        """Lines of the services' logs that contain ``text`` (how often a retry happened)."""
        return sum(path.read_text(errors="replace").count(text) for path in self.work.glob("*.log"))

    def restart(self, name: str, service: str | None = None) -> None:
        self.system.start(name, service)

    def pause(self, name: str) -> None:
        os.kill(self.pid(name), signal.SIGSTOP)

    def resume(self, name: str) -> None:
        os.kill(self.pid(name), signal.SIGCONT)

    def exited(self) -> dict[str, int]:
        """Processes that ended by themselves (a crash), with their exit codes."""
        return {
            name: code
            for name, process in self.system.processes.items()
            if (code := process.poll()) is not None
        }

    def kill_nats(self) -> None:
        pid = self.nats.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        self.nats.stop()  # reaps it and removes its ports file

    def restart_nats(self) -> None:
        self.nats.start()

    # ------------------------------------------------------------------ the API
    async def submit(self, workflow: dict[str, Any], **body: Any) -> str:
        """``POST /api/executions``; retried while the API answers 503 (a backing service is
        restarting), as a client would."""
        deadline = time.monotonic() + 60
        while True:
            try:
                response = await self.http.post(
                    "/api/executions", json={"workflow": workflow, **body}
                )
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code == 202:
                execution_id: str = response.json()["id"]
                self.inputs[execution_id] = body.get("input")
                return execution_id
            if response is not None and response.status_code != 503:
                raise RuntimeError(f"submit answered {response.status_code}: {response.text}")
            self.refused += 1
            if time.monotonic() > deadline:
                raise TimeoutError("the API kept refusing executions for 60 s")
            await asyncio.sleep(0.2)


@dataclass
class Killed:
    """A process killed by a scenario, and the one started in its place."""

    name: str
    process: subprocess.Popen[bytes]
    replacement: subprocess.Popen[bytes] | None = None

    def observed(self) -> Kill:
        """What the process objects show now: how the killed one ended, whether its
        replacement (another pid) runs."""
        replacement = self.replacement
        return Kill(
            self.name,
            self.process.pid,
            self.process.poll(),
            replacement.pid if replacement is not None else None,
            replacement is not None and replacement.poll() is None,
        )


async def until(check: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> float:
    """Poll ``check`` (errors count as not yet: a server may be restarting) until it holds;
    returns the seconds it took. TimeoutError naming ``what`` after ``timeout_s``."""
    started = time.monotonic()
    while True:
        with contextlib.suppress(Exception):
            if await check():
                return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"no {what} after {timeout_s} s")
        await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def cluster(
    postgres: Postgres,
    name: str,
    *,
    runners: int = 1,
    extra_env: dict[str, str] | None = None,
    effect_delay_s: float = 0.0,
) -> AsyncIterator[Cluster]:
    """A fresh nats-server and database with the four services running (``runners`` runner
    processes) and a side-effect server answering after ``effect_delay_s``; everything stopped
    and removed afterwards."""
    work = Path(tempfile.mkdtemp(prefix=f"nodedrop-chaos-{name}-"))
    os.chmod(work, 0o711)
    server = EmbeddedNats(work / "nats", port=free_port())
    await asyncio.to_thread(server.start)
    database_url = await postgres.new_database()
    env = {
        "NODEDROP_HTTP_ALLOW_PRIVATE": "true",
        "NODEDROP_RUNNER_ACK_WAIT_S": str(ACK_WAIT_S),
        **(extra_env or {}),
    }
    system = System(server.url, database_url, work, extra_env=env)
    nc = await nats.connect(server.url, name=f"chaos {name}", max_reconnect_attempts=-1)
    http = httpx.AsyncClient(base_url=system.base_url, headers=system.headers, timeout=10)
    effects = SideEffectServer(effect_delay_s)
    effects.start()
    # The services' settings: their environment is this one with ``env`` over it.
    settings = StreamSettings.from_env({**os.environ, **env})
    result = Cluster(
        nats=server,
        system=system,
        database_url=database_url,
        nc=nc,
        work=work,
        postgres=postgres,
        http=http,
        side_effects=effects,
        layout=settings.layout,
    )
    try:
        # The stream and consumers exist before any service starts (services starting
        # together on an empty server can otherwise race), with the services' settings.
        await ensure_jetstream(nc.jetstream(), settings)
        for service in ("api", "scheduler", "notifier"):
            system.start(service)
        await asyncio.to_thread(system.wait_healthy)
        await result.set_runners(runners)
        yield result
    finally:
        await http.aclose()
        await asyncio.to_thread(system.stop_all)
        effects.stop()
        with contextlib.suppress(Exception):
            await nc.close()
        server.stop()
        with contextlib.suppress(Exception):
            await postgres.drop_database(database_url)
        if os.environ.get("NODEDROP_CHAOS_KEEP"):
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
