"""Audit and recovery through the real system: a few hundred mixed executions (successes,
failures, retries, waits, cancels, timeouts, node logs, outputs stored in the object store) are
projected by the running notifier; ``nodedrop projections rebuild`` folds the stream again and
finds the identical projection; an altered live row is reported; ``nodedrop prune`` removes
finished executions from the stream, the projection and the data bucket, never the one still
waiting, and the projection still rebuilds identical afterwards."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
import httpx
import nats
import pytest
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from nodedrop.contracts import subjects
from nodedrop.contracts.routing import Layout, all_events, execution_subject
from nodedrop.notifier.rebuild import rebuild_and_compare
from nodedrop.notifier.store import asyncpg_dsn, checkpoint_name
from nodedrop.platform.event_log import JetStreamEventLog
from nodedrop.platform.jetstream import StreamSettings

from .conftest import running_system
from .system import System, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

EXECUTIONS = 300


@pytest.fixture(scope="module")
async def system(pg_server_url: str, plugin_path: str) -> AsyncIterator[System]:
    env = {"NODEDROP_HTTP_ALLOW_PRIVATE": "true", "PYTHONPATH": plugin_path}
    async with running_system(pg_server_url, env) as started:
        yield started


def workflows() -> dict[str, dict[str, Any]]:
    """One workflow per kind of execution; ``start`` is every workflow's trigger."""
    start = {"id": "start", "type": "manual_trigger"}
    # Nothing listens there: every attempt fails at once with a retryable HttpServerError.
    closed = f"http://127.0.0.1:{free_port()}/"

    def chain(*nodes: dict[str, Any], **extra: Any) -> dict[str, Any]:
        ids = ["start", *(n["id"] for n in nodes)]
        return {
            "name": "audit",
            "nodes": [start, *nodes],
            "connections": [{"from": a, "to": b} for a, b in itertools.pairwise(ids)],
            **extra,
        }

    return {
        "branches": {
            "name": "branches",
            "nodes": [
                start,
                {"id": "big", "type": "if", "parameters": {"condition": "{{ item.n > 1 }}"}},
                {"id": "tag", "type": "set", "parameters": {"values": {"big": True}}},
                {"id": "small", "type": "noop"},
            ],
            "connections": [
                {"from": "start", "to": "big"},
                {"from": "big", "output": "true", "to": "tag"},
                {"from": "big", "output": "false", "to": "small"},
            ],
        },
        "fails": chain(
            {"id": "boom", "type": "stop_and_error", "parameters": {"message": "no"}},
            {"id": "after", "type": "noop"},
        ),
        "retries": chain(
            {
                "id": "call",
                "type": "http_request",
                "parameters": {"url": closed},
                "retry": {"max_attempts": 2, "initial_interval_ms": 10},
                "on_error": "continue",
            },
            {"id": "after", "type": "noop"},
        ),
        "waits": chain({"id": "pause", "type": "wait", "parameters": {"ms": 30}}),
        "cancelled": chain({"id": "pause", "type": "wait", "parameters": {"ms": 60_000}}),
        "timed_out": chain(
            {"id": "pause", "type": "wait", "parameters": {"ms": 60_000}},
            settings={"timeout_ms": 300},
        ),
        "logs": chain({"id": "hello", "type": "greet", "parameters": {"greeting": "hi"}}),
        "large": chain(
            {"id": "make", "type": "generate", "parameters": {"count": 600, "padding": 500}},
            {"id": "pass", "type": "noop"},
        ),
    }


#: How many of each kind (the rest are "branches"); large outputs and worker-process nodes
#: cost the most, so there are fewer of them.
MIX = {
    "fails": 40,
    "retries": 50,
    "waits": 40,
    "cancelled": 20,
    "timed_out": 10,
    "logs": 20,
    "large": 8,
}


@dataclass
class Workload:
    ids: dict[str, list[str]]
    waiting: str

    @property
    def finished(self) -> list[str]:
        return [i for ids in self.ids.values() for i in ids]


async def submit(client: httpx.AsyncClient, workflow: dict[str, Any], n: int) -> str:
    response = await client.post(
        "/api/executions", json={"workflow": workflow, "input": [{"n": n % 3}]}
    )
    assert response.status_code == 202, response.text
    execution_id: str = response.json()["id"]
    return execution_id


async def wait_until(check: Any, within: float, what: str) -> None:
    for _ in range(int(within / 0.1)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {within} s")


@pytest.fixture(scope="module")
async def workload(system: System) -> Workload:
    flows = workflows()
    kinds = [kind for kind, count in MIX.items() for _ in range(count)]
    kinds += ["branches"] * (EXECUTIONS - len(kinds))
    limit = asyncio.Semaphore(16)
    async with httpx.AsyncClient(
        base_url=system.base_url, headers=system.headers, timeout=30
    ) as client:
        waiting = await submit(
            client,
            {
                "name": "long wait",
                "nodes": [
                    {"id": "start", "type": "manual_trigger"},
                    {"id": "pause", "type": "wait", "parameters": {"ms": 600_000}},
                ],
                "connections": [{"from": "start", "to": "pause"}],
            },
            0,
        )

        async def one(n: int, kind: str) -> tuple[str, str]:
            async with limit:
                return kind, await submit(client, flows[kind], n)

        submitted = await asyncio.gather(*(one(n, kind) for n, kind in enumerate(kinds)))
        ids: dict[str, list[str]] = {}
        for kind, execution_id in submitted:
            ids.setdefault(kind, []).append(execution_id)
        for execution_id in ids["cancelled"]:
            response = await client.post(f"/api/executions/{execution_id}/cancel")
            assert response.status_code in (202, 409), response.text

    conn = await asyncpg.connect(asyncpg_dsn(system.database_url))
    try:

        async def all_finished() -> bool:
            count = await conn.fetchval(
                "SELECT count(*) FROM executions WHERE finished_at IS NOT NULL"
            )
            return bool(count == EXECUTIONS)

        await wait_until(all_finished, 120, f"{EXECUTIONS} executions finishing")
        statuses = dict(
            await conn.fetch(
                "SELECT status, count(*) FROM executions GROUP BY status ORDER BY status"
            )
        )
    finally:
        await conn.close()
    # The mix really is mixed.
    assert statuses["cancelled"] == MIX["cancelled"]
    assert statuses["failed"] == MIX["fails"]
    assert statuses["partial"] == MIX["retries"]
    assert statuses["timed_out"] == MIX["timed_out"]
    assert statuses["running"] == 1  # the long wait
    await quiet(system)
    return Workload(ids, waiting)


async def quiet(system: System) -> None:
    """Wait until the notifier has projected everything in every partition's stream."""
    nc = await nats.connect(system.nats_url)
    conn = await asyncpg.connect(asyncpg_dsn(system.database_url))
    try:
        js = nc.jetstream()

        async def projected() -> bool:
            for partition, stream in enumerate(Layout.from_env().streams):
                # The last event: a partition's fence, written after it, is not projected.
                try:
                    last = (await js.get_last_msg(stream, all_events())).seq or 0
                except NotFoundError:
                    last = 0
                checkpoint = await conn.fetchval(
                    "SELECT last_seq FROM projection_checkpoints WHERE name = $1",
                    checkpoint_name(partition),
                )
                if (checkpoint or 0) < last:
                    return False
            return True

        await wait_until(projected, 30, "the projection catching up")
    finally:
        await conn.close()
        await nc.close()


def nodedrop(system: System, *args: str) -> subprocess.CompletedProcess[str]:
    """The ``nodedrop`` command, as an operator runs it against this system."""
    env = {
        **os.environ,
        "NODEDROP_NATS_URL": system.nats_url,
        "NODEDROP_DATABASE_URL": system.database_url,
    }
    return subprocess.run(
        [sys.executable, "-m", "nodedrop.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
async def js(system: System) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(system.nats_url)
    try:
        yield nc.jetstream()
    finally:
        await nc.close()


async def test_the_rebuilt_projection_is_identical_to_the_live_one(
    system: System, workload: Workload
) -> None:
    result = nodedrop(system, "projections", "rebuild")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(f"identical ({EXECUTIONS + 1} executions, "), result.stdout


async def test_an_altered_live_row_is_reported(
    system: System, workload: Workload, js: JetStreamContext
) -> None:
    victim = workload.ids["retries"][0]
    where = "WHERE execution_id = $1 AND node = 'call'"
    conn = await asyncpg.connect(asyncpg_dsn(system.database_url))
    try:
        attempts = await conn.fetchval(
            f"SELECT attempts FROM node_executions {where}",
            victim,
        )
        assert attempts == 2  # retried once
        await conn.execute(
            f"UPDATE node_executions SET attempts = 7 {where}",
            victim,
        )
        try:
            report = await rebuild_and_compare(
                JetStreamEventLog.of_context(js, StreamSettings(layout=Layout.from_env())),
                system.database_url,
            )
        finally:
            await conn.execute(
                f"UPDATE node_executions SET attempts = $2 {where}",
                victim,
                attempts,
            )
    finally:
        await conn.close()
    assert not report.comparison.identical
    assert [d.describe() for d in report.comparison.differences] == [
        f"node_executions ({victim}, call): attempts: live 7, rebuilt 2"
    ]


async def test_prune_removes_finished_executions_everywhere_but_never_the_waiting_one(
    system: System, workload: Workload, js: JetStreamContext
) -> None:
    await quiet(system)
    before = await snapshot(system, js, workload.waiting)
    assert before.objects  # the large outputs went to the object store

    dry = nodedrop(system, "prune", "--older-than", "0", "--dry-run")

    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith(f"would prune {EXECUTIONS} executions finished before "), (
        dry.stdout
    )
    assert await snapshot(system, js, workload.waiting) == before

    done = nodedrop(system, "prune", "--older-than", "0")

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"pruned {EXECUTIONS} executions "), done.stdout
    after = await snapshot(system, js, workload.waiting)
    assert after.executions == [workload.waiting]
    assert after.events == after.waiting_events == before.waiting_events > 0
    assert after.objects == set()
    # The waiting execution is intact and still served.
    async with httpx.AsyncClient(base_url=system.base_url, headers=system.headers) as client:
        waiting = (await client.get(f"/api/executions/{workload.waiting}")).json()
        gone = await client.get(f"/api/executions/{workload.ids['large'][0]}")
    assert waiting["status"] == "running"
    assert waiting["nodes"]["pause"]["status"] == "running"
    assert gone.status_code == 404
    # Nothing to do twice; and the stream, with its holes, still folds into the projection.
    again = nodedrop(system, "prune", "--older-than", "0")
    assert again.stdout.startswith("pruned 0 executions"), again.stdout
    rebuilt = nodedrop(system, "projections", "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert rebuilt.stdout.startswith("identical (1 executions, "), rebuilt.stdout


@dataclass
class Snapshot:
    executions: list[str]
    rows: int
    events: int
    #: Events of the execution still waiting.
    waiting_events: int
    objects: set[str]


async def snapshot(system: System, js: JetStreamContext, waiting: str) -> Snapshot:
    """What the stream, the projection and the data bucket hold."""
    conn = await asyncpg.connect(asyncpg_dsn(system.database_url))
    try:
        executions = [r["id"] for r in await conn.fetch("SELECT id FROM executions ORDER BY id")]
        rows = await conn.fetchval(
            "SELECT (SELECT count(*) FROM executions) + (SELECT count(*) FROM node_executions)"
            " + (SELECT count(*) FROM execution_logs)"
        )
    finally:
        await conn.close()
    layout = Layout.from_env()
    events = 0
    for partition, stream in enumerate(layout.streams):
        info = await js.stream_info(stream)
        # The partition's fences (its schedulers' takeovers) are no events.
        fences = await js.stream_info(stream, subjects_filter=layout.fence_subject(partition))
        events += info.state.messages - sum((fences.state.subjects or {}).values())
    of_waiting = await js.stream_info(
        layout.stream_of(waiting), subjects_filter=execution_subject(waiting)
    )
    bucket = await js.object_store(subjects.DATA_BUCKET)
    try:
        objects = {i.name for i in await bucket.list(ignore_deletes=True) if i.name}
    except NotFoundError:
        objects = set()
    return Snapshot(
        executions=executions,
        rows=rows,
        events=events,
        waiting_events=sum((of_waiting.state.subjects or {}).values()),
        objects=objects,
    )
