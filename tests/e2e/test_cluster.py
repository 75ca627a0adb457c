"""The whole system on a 3-node NATS cluster (3 replicas of every stream), with several
schedulers, notifiers and runners, under faults: a scheduler killed, another paused past its
leases and resumed, a stream's leader killed. Every accepted execution must finish, once, with
every node's work recorded once, and the faults must be seen to have landed."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import tempfile
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
import httpx
import nats
import pytest

from nodedrop.contracts.db.migrate import upgrade
from nodedrop.contracts.events import ExecutionFinished, NodeReady, NodeSucceeded
from nodedrop.contracts.history import read_execution
from nodedrop.contracts.retry import retry_unavailable
from nodedrop.contracts.routing import Layout

from .system import System, free_port

if TYPE_CHECKING:
    from tests.fixtures.nats_cluster import NatsCluster, NatsClusterFactory

pytestmark = pytest.mark.e2e

LAYOUT = Layout(4)
LEASE_S = 3.0
EXECUTIONS = 40
WORKFLOW = {
    "name": "three steps",
    "nodes": [
        {"id": "start", "type": "manual_trigger"},
        {"id": "a", "type": "noop"},
        {"id": "b", "type": "set", "parameters": {"values": {"tagged": True}}},
    ],
    "connections": [{"from": "start", "to": "a"}, {"from": "a", "to": "b"}],
}


def _dsn(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme.split('+', 1)[0]}://{rest}"


@contextlib.asynccontextmanager
async def clustered_system(cluster: NatsCluster, pg_server_url: str) -> AsyncIterator[System]:
    """1 api, 3 schedulers, 2 notifiers and 2 runners on the cluster; all stopped afterwards."""
    work = Path(tempfile.mkdtemp(prefix="nodedrop-cluster-"))
    name = f"nodedrop_cluster_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(_dsn(pg_server_url))
    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    database_url = pg_server_url.rsplit("/", 1)[0] + f"/{name}"
    second_notifier = free_port()
    system = System(
        cluster.url,
        database_url,
        work,
        extra_env={
            "NODEDROP_PARTITIONS": str(LAYOUT.partitions),
            "NODEDROP_STREAM_REPLICAS": "3",
            "NODEDROP_LEASE_S": str(LEASE_S),
            "NODEDROP_RUNNER_ACK_WAIT_S": "4",
        },
    )
    try:
        await asyncio.to_thread(upgrade, database_url)
        notifiers = f"http://127.0.0.1:{system.notifier_port},http://127.0.0.1:{second_notifier}"
        # The api first: it creates the layout, before the others race to check it.
        system.start("api", env={"NODEDROP_NOTIFIER_URL": notifiers})
        await asyncio.to_thread(_wait_for, f"{system.base_url}/health", system)
        for index in (1, 2, 3):
            system.start(f"scheduler-{index}", "scheduler")
        system.start("notifier")
        system.start("notifier-2", "notifier", env={"NODEDROP_NOTIFIER_PORT": str(second_notifier)})
        for index in (1, 2):
            system.start(f"runner-{index}", "runner")
        await asyncio.to_thread(system.wait_healthy, 60.0)
        yield system
    finally:
        await asyncio.to_thread(system.stop_all)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        shutil.rmtree(work, ignore_errors=True)


def _wait_for(url: str, system: System, timeout_s: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for process_name, process in system.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{process_name} exited:\n{system.logs(process_name)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


async def until_each_holds_a_partition(system: System, names: list[str]) -> None:
    for _ in range(600):
        logs = [(system.log_dir / f"{name}.log").read_text(errors="replace") for name in names]
        if all("took partition" in log for log in logs):
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the schedulers never shared the partitions out")


async def submit_all(client: httpx.AsyncClient, count: int, rate_per_s: float) -> list[str]:
    """Submit ``count`` executions at about ``rate_per_s``; each 202 is retried while the log
    is unavailable (a 503 records nothing), so every id returned was accepted."""
    accepted: list[str] = []
    for n in range(count):
        body = {"workflow": WORKFLOW, "trigger": "start", "input": [{"n": n}]}
        for _ in range(200):
            response = await client.post("/api/executions", json=body)
            if response.status_code == 202:
                accepted.append(response.json()["id"])
                break
            assert response.status_code == 503, response.text
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"execution {n} was never accepted")
        await asyncio.sleep(1 / rate_per_s)
    return accepted


async def histories(urls: list[str], execution_ids: list[str]) -> dict[str, list[Any]]:
    nc = await nats.connect(urls, max_reconnect_attempts=-1)
    try:
        js = nc.jetstream()
        found = {}
        for execution_id in execution_ids:
            stored = await retry_unavailable(
                lambda i=execution_id: read_execution(js, i, layout=LAYOUT),  # type: ignore[misc]
                what=f"history of {execution_id}",
                attempts=20,
            )
            found[execution_id] = [event for _, event in stored]
        return found
    finally:
        await nc.close()


async def all_finished(
    urls: list[str], execution_ids: list[str], timeout_s: float
) -> dict[str, list[Any]]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        found = await histories(urls, execution_ids)
        open_ = [
            i for i, h in found.items() if not any(isinstance(e, ExecutionFinished) for e in h)
        ]
        if not open_ or loop.time() > deadline:
            return found
        await asyncio.sleep(0.5)


async def test_executions_finish_once_through_scheduler_and_leader_failures(
    nats_cluster: NatsClusterFactory, pg_server_url: str
) -> None:
    async with (
        nats_cluster() as cluster,
        clustered_system(cluster, pg_server_url) as system,
        httpx.AsyncClient(base_url=system.base_url, headers=system.headers, timeout=10) as client,
    ):
        submitting = asyncio.create_task(submit_all(client, EXECUTIONS, rate_per_s=8))
        # Faults only once every scheduler holds partitions (their leases shared out).
        await until_each_holds_a_partition(system, ["scheduler-1", "scheduler-2", "scheduler-3"])
        killed = system.processes["scheduler-1"]
        killed.send_signal(signal.SIGKILL)
        paused = system.processes["scheduler-2"]
        paused.send_signal(signal.SIGSTOP)
        await asyncio.sleep(3 * LEASE_S)  # past its leases: the third takes everything
        paused.send_signal(signal.SIGCONT)
        leader = await cluster.wait_stream_leader(LAYOUT.stream(0))
        cluster.kill(leader)
        assert not cluster.running(leader)
        new_leader = await cluster.wait_stream_leader(LAYOUT.stream(0), other_than=leader)
        accepted = await submitting
        live = [cluster.node(n).url for n in cluster.names if cluster.running(n)]
        found = await all_finished(live, accepted, timeout_s=120)
        await cluster.restart(leader)

        # The faults landed: a scheduler died, the paused one found its leases gone.
        assert killed.wait(5) == -signal.SIGKILL
        paused_log = (system.log_dir / "scheduler-2.log").read_text(errors="replace")
        assert "lease of partition" in paused_log, paused_log[-4000:]
        assert new_leader != leader
        # The one left took over every partition at some point.
        taken = (system.log_dir / "scheduler-3.log").read_text(errors="replace")
        missing = [p for p in range(LAYOUT.partitions) if f"took partition {p} over" not in taken]
        assert missing == [], taken[-4000:]

        # Every accepted execution finished, succeeded, once; every node's work once.
        assert len(accepted) == EXECUTIONS
        unfinished = [
            i for i, h in found.items() if not any(isinstance(e, ExecutionFinished) for e in h)
        ]
        assert unfinished == [], {i: [type(e).__name__ for e in found[i]] for i in unfinished[:3]}
        for execution_id, history in found.items():
            ends = [e for e in history if isinstance(e, ExecutionFinished)]
            assert [e.status for e in ends] == ["succeeded"], (execution_id, ends)
            ids = Counter(e.event_id for e in history)
            assert [i for i, c in ids.items() if c > 1] == [], execution_id
            results = Counter((e.node, e.attempt) for e in history if isinstance(e, NodeSucceeded))
            assert sorted(node for node, _ in results) == ["a", "b", "start"], history
            ready = Counter(e.node for e in history if isinstance(e, NodeReady))
            assert set(ready) == {"start", "a", "b"}

        # The projection (two notifiers sharing the partitions) says the same.
        for execution_id in accepted:
            body = (await client.get(f"/api/executions/{execution_id}")).json()
            for _ in range(200):
                if body.get("status") == "succeeded":
                    break
                await asyncio.sleep(0.1)
                body = (await client.get(f"/api/executions/{execution_id}")).json()
            assert body.get("status") == "succeeded", body
