"""End-to-end fixtures: the whole system on its own nats-server and database."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
import httpx
import pytest

from nodedrop.client import AsyncClient
from nodedrop.embedded import EmbeddedNats
from nodedrop.platform.db.migrate import upgrade

from .system import System


def _dsn(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme.split('+', 1)[0]}://{rest}"


@pytest.fixture(scope="module")
async def system(pg_server_url: str) -> AsyncIterator[System]:
    async with running_system(pg_server_url) as started:
        yield started


@contextlib.asynccontextmanager
async def running_system(
    pg_server_url: str, extra_env: dict[str, str] | None = None
) -> AsyncIterator[System]:
    """The four services on a fresh nats-server and database; everything stopped afterwards."""
    work = Path(tempfile.mkdtemp(prefix="nodedrop-e2e-"))
    nats = EmbeddedNats(work / "nats", port=0)
    nats.start()
    name = f"nodedrop_e2e_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(_dsn(pg_server_url))
    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    database_url = pg_server_url.rsplit("/", 1)[0] + f"/{name}"
    system = System(nats.url, database_url, work, extra_env=extra_env or {})
    try:
        await asyncio.to_thread(upgrade, database_url)
        await asyncio.to_thread(system.start_all)
        yield system
    finally:
        await asyncio.to_thread(system.stop_all)
        nats.stop()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
async def client(system: System) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=system.base_url, headers=system.headers, timeout=10
    ) as http:
        yield http


@pytest.fixture
def api(client: httpx.AsyncClient) -> AsyncClient:
    """nodedrop's client library over the same connection as ``client``."""
    return AsyncClient(str(client.base_url), http=client)


PLUGIN = Path(__file__).resolve().parents[2] / "examples" / "plugin"


@pytest.fixture(scope="session")
def plugin_path() -> Iterator[str]:
    """The example plugin package (examples/plugin), really installed, into a directory of its
    own that the services get on their PYTHONPATH."""
    with tempfile.TemporaryDirectory(prefix="nodedrop-plugin-") as target:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--target",
                target,
                str(PLUGIN),
            ],
            check=True,
            capture_output=True,
        )
        yield target
