"""Fuzzing (issue 6): schemathesis generates requests for every operation of ``/openapi.json``
and checks that none is answered 5xx and that every answer matches the document (status code,
content type, headers, body schema).

Against a real API process (uvicorn, ``python -m nodedrop.api``) on its own nats-server and
database, so that requests reach the real routes, the real validation and the real stores.
``NODEDROP_FUZZ_EXAMPLES`` sets the examples per operation: by default 150 under CI's Hypothesis
profile (about two minutes for ~20 operations on 2 cores) and 30 under the fast development one;
raise it for a deeper run (e.g. 1000).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Ok

from nodedrop.embedded import EmbeddedNats
from nodedrop.platform.db.migrate import upgrade
from nodedrop.platform.secretbox import SecretKey

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("NODEDROP_FUZZ_EXAMPLES", settings().max_examples * 3 // 2))
TOKEN = "fuzz-admin-token"
#: What the issue asks of every answer. (Not ``positive_data_acceptance``: a body valid by the
#: schema may still be a wrong workflow, e.g. an unknown node type, which is a correct 422.)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _dsn(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme.split('+', 1)[0]}://{rest}"


@pytest.fixture(scope="module")
async def fuzz_api(pg_server_url: str) -> AsyncIterator[str]:
    """A real API process on its own nats-server and database; its base URL."""
    work = Path(tempfile.mkdtemp(prefix="nodedrop-fuzz-"))
    nats = EmbeddedNats(work / "nats", port=0)
    nats.start()
    name = f"nodedrop_fuzz_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(_dsn(pg_server_url))
    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    database_url = pg_server_url.rsplit("/", 1)[0] + f"/{name}"
    port = _free_port()
    log = (work / "api.log").open("wb")
    process: subprocess.Popen[bytes] | None = None
    try:
        await asyncio.to_thread(upgrade, database_url)
        env = {
            **os.environ,
            "NODEDROP_NATS_URL": nats.url,
            "NODEDROP_DATABASE_URL": database_url,
            "NODEDROP_HOST": "127.0.0.1",
            "NODEDROP_PORT": str(port),
            "NODEDROP_ADMIN_TOKEN": TOKEN,
            # Credentials enabled, so their routes are fuzzed rather than answering 503.
            "NODEDROP_SECRET_KEY": SecretKey.generate().text(),
        }
        process = await asyncio.to_thread(
            subprocess.Popen,
            [sys.executable, "-m", "nodedrop.api"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        await _wait_healthy(base, process)
        yield base
    finally:
        if process is not None:
            process.terminate()
            await asyncio.to_thread(process.wait, 10)
        log.close()
        nats.stop()
        shutil.rmtree(work, ignore_errors=True)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _wait_healthy(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            assert process.poll() is None, "the API exited"
            try:
                if (await client.get(f"{base}/health")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("the API did not start")


def _fuzz_operation(operation: Any, base_url: str) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=True,  # the same cases on every run: a CI failure reproduces locally
    )
    def run(case: Any) -> None:
        case.call_and_validate(
            base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"}, checks=CHECKS
        )

    run()


def _describe(error: BaseException) -> str:
    """The failure's text, whatever it is (a deeply nested case can make ``str`` itself fail)."""
    try:
        return str(error)[:3000]
    except RecursionError:
        return f"{type(error).__name__} (its text is too deeply nested to show)"


# Longer than the suite's 120 s: about 0.6 s per example over all operations on 2 cores.
@pytest.mark.timeout(120 + 3 * EXAMPLES)
async def test_no_server_error_and_answers_match_the_document(fuzz_api: str) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzz_api}/openapi.json")
    operations = []
    for result in schema.get_all_operations():
        # An operation schemathesis cannot read is a broken document: fail on it.
        assert isinstance(result, Ok), result.err()
        operations.append(result.ok())
    assert len(operations) >= 15
    failures: dict[str, str] = {}
    for operation in operations:
        try:
            # Off the event loop: schemathesis calls the server synchronously.
            await asyncio.to_thread(_fuzz_operation, operation, fuzz_api)
        except (Exception, BaseExceptionGroup) as error:  # schemathesis raises groups
            failures[operation.label] = _describe(error)
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
