"""The system under test: embedded servers with their default settings and the services as
processes (:class:`tests.e2e.system.System`), the way ``nodedrop up`` runs them.

One PostgreSQL server serves the whole harness run; every scenario gets a database of its own and
a nats-server of its own (a fresh, empty stream), so no scenario measures the leftovers of
another. Everything started here is stopped when the context exits, also on an error or Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
import httpx
import nats
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from tests.bench.load import ApiConnection
from tests.bench.tap import EventTap
from tests.e2e.system import SERVICES, System

from nodedrop.contracts import subjects
from nodedrop.contracts.routing import Layout, all_events
from nodedrop.embedded import EmbeddedNats, EmbeddedPostgres
from nodedrop.notifier.store import checkpoint_name
from nodedrop.platform.db.migrate import upgrade
from nodedrop.platform.jetstream import StreamSettings, ensure_jetstream

T = TypeVar("T")


async def to_the_end(function: Callable[[], T]) -> T:
    """``function()`` in a thread; cancelled, it still waits for the thread to return before the
    cancellation goes on. A plain ``asyncio.to_thread`` gives up at once and leaves the thread
    running beside the cleanup: a server whose start was cut short would come up after its
    cleanup had run, and a cancelled stop would skip the stops after it."""
    work = asyncio.ensure_future(asyncio.to_thread(function))
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        await work
        raise


def asyncpg_dsn(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme.split('+', 1)[0]}://{rest}"


@dataclass
class Services:
    """A running system (or part of one) for one scenario, on whatever NATS servers: the
    service processes, the harness's connection, and readers of the log and the projection."""

    system: System
    database_url: str
    nc: NatsClient
    runners: list[str] = field(default_factory=list)
    #: The log's partitions, as the services see them (``NODEDROP_PARTITIONS``).
    layout: Layout = field(default_factory=Layout.from_env)

    @property
    def js(self) -> JetStreamContext:
        return self.nc.jetstream()

    def api(self) -> ApiConnection:
        return ApiConnection(self.system.api_port, self.system.token)

    def tap(self, *types: str) -> EventTap:
        return EventTap(self.nc, types)

    def pid(self, name: str) -> int:
        return self.system.processes[name].pid

    def start(self, *services: str) -> None:
        for name in services:
            self.system.start(name)
            if name == "runner":
                self.runners.append(name)

    async def wait_healthy(self, timeout_s: float = 30.0) -> None:
        """:meth:`System.wait_healthy`, but cancellable at once (Ctrl-C during a start)."""
        deadline = time.monotonic() + timeout_s
        urls = [
            f"{self.system.base_url}/health",
            f"http://127.0.0.1:{self.system.notifier_port}/health",
        ]
        async with httpx.AsyncClient(timeout=1) as client:
            while True:
                for name, process in self.system.processes.items():
                    if process.poll() is not None:
                        raise RuntimeError(
                            f"{name} exited with {process.returncode}:\n{self.system.logs(name)}"
                        )
                with contextlib.suppress(httpx.HTTPError):
                    answers = [await client.get(url) for url in urls]
                    if all(answer.status_code == 200 for answer in answers):
                        return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the system did not become healthy in {timeout_s} s")
                await asyncio.sleep(0.05)

    async def set_runners(self, count: int, timeout_s: float = 30.0) -> None:
        """Run ``count`` runner processes (more are started; never fewer), and return once
        each one waits for tasks on the shared consumer of every partition."""
        while len(self.runners) < count:
            name = f"runner-{len(self.runners) + 1}"
            self.system.start(name, "runner")
            self.runners.append(name)
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(NotFoundError):  # until a service has created them
                waiting = [
                    (await self.js.consumer_info(stream, subjects.RUNNER_CONSUMER)).num_waiting or 0
                    for stream in self.layout.streams
                ]
                if min(waiting) >= count:
                    return
            for name in self.runners:
                process = self.system.processes[name]
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited:\n{self.system.logs(name)}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{count} runners not all waiting for tasks after {timeout_s} s")
            await asyncio.sleep(0.1)

    async def last_seqs(self) -> dict[int, int]:
        """Each partition's last event's stream sequence (0 if it has none): what its
        projector's checkpoint reaches (a later fence is no event, and not projected)."""
        layout = self.layout
        return {p: await self.last_event_seq(layout.stream(p)) for p in range(layout.partitions)}

    async def last_event_seq(self, stream: str) -> int:
        try:
            return int((await self.js.get_last_msg(stream, all_events())).seq or 0)
        except NotFoundError:
            return 0

    async def last_seq(self) -> int:
        """The stored events' sequences added over the partitions (grows with every event)."""
        return sum((await self.last_seqs()).values())

    async def checkpoints(self) -> dict[int, int]:
        """Each partition's projection checkpoint (0 before its first batch)."""
        layout = self.layout
        connection = await asyncpg.connect(asyncpg_dsn(self.database_url))
        try:
            rows = await connection.fetch(
                "SELECT name, last_seq FROM projection_checkpoints WHERE name = ANY($1::text[])",
                [checkpoint_name(p) for p in range(layout.partitions)],
            )
        finally:
            await connection.close()
        by_name = {row["name"]: int(row["last_seq"] or 0) for row in rows}
        return {p: by_name.get(checkpoint_name(p), 0) for p in range(layout.partitions)}

    async def settle(self, timeout_s: float = 120.0) -> float:
        """Wait until the notifier has projected every stored event of every partition (so
        that the next measurement does not share the machine with a backlog); returns the
        seconds waited."""
        started = time.monotonic()
        targets = await self.last_seqs()
        while True:
            done = await self.checkpoints()
            if all(done[p] >= target for p, target in targets.items()):
                break
            if time.monotonic() - started > timeout_s:
                raise TimeoutError(
                    f"projection still behind {targets} (at {done}) after {timeout_s} s"
                )
            await asyncio.sleep(0.1)
        return time.monotonic() - started


@dataclass
class Stack(Services):
    """:class:`Services` on an embedded nats-server of their own."""

    nats: EmbeddedNats = field(kw_only=True)


class Bench:
    """The harness's servers: one PostgreSQL for the run, a nats-server per scenario."""

    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.work = Path(tempfile.mkdtemp(prefix="nodedrop-bench-"))
        os.chmod(self.work, 0o711)  # traversable by PostgreSQL's system user when run as root
        self.postgres = EmbeddedPostgres(self.work / "pg", port=0)
        self.nats_version = ""
        self.postgres_version = ""

    def start(self) -> None:
        self.postgres.start()

    def close(self) -> None:
        try:
            self.postgres.stop()
        finally:
            shutil.rmtree(self.work, ignore_errors=True)

    async def new_database(self) -> str:
        name = f"bench_{uuid.uuid4().hex[:12]}"
        admin = await asyncpg.connect(self.postgres.dsn("postgres"))
        try:
            await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
            if not self.postgres_version:
                self.postgres_version = str(await admin.fetchval("SHOW server_version"))
        finally:
            await admin.close()
        url = self.postgres.url(name)
        await asyncio.to_thread(upgrade, url)
        return url

    async def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        admin = await asyncpg.connect(self.postgres.dsn("postgres"))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    @contextlib.asynccontextmanager
    async def stack(self, name: str, services: Iterable[str] = SERVICES) -> AsyncIterator[Stack]:
        """A fresh nats-server and database, and ``services`` started and healthy (the api's
        and the notifier's health are only awaited when they are started)."""
        directory = self.work / name
        directory.mkdir()
        server = EmbeddedNats(directory / "nats", port=0)
        await to_the_end(server.start)
        self.nats_version = self.nats_version or server.server_version
        database_url = ""
        system: System | None = None
        nc: NatsClient | None = None
        try:
            database_url = await self.new_database()
            system = System(server.url, database_url, directory)
            nc = await nats.connect(server.url, name=f"bench {name}")
            # The stream and its consumers exist before any service starts: the services all
            # run ensure_jetstream at start, and on an empty server two of them can race
            # (one creates the stream, another then adds a consumer from new events on, and
            # the first fails with "deliver policy can not be updated" and exits).
            await ensure_jetstream(nc.jetstream(), StreamSettings.from_env())
            stack = Stack(system, database_url, nc, nats=server)
            services = list(services)
            stack.start(*services)
            if {"api", "notifier"} <= set(services):
                await stack.wait_healthy()
            if "runner" in services:
                await stack.set_runners(1)
            yield stack
        finally:
            if nc is not None:
                with contextlib.suppress(Exception):
                    await nc.close()
            if system is not None:
                await to_the_end(system.stop_all)
            await to_the_end(server.stop)
            if database_url:
                with contextlib.suppress(Exception):
                    await self.drop_database(database_url)
