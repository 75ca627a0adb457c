"""The whole system on a 3-node NATS cluster (3 replicas of every stream), with several
schedulers, notifiers and runners, under load and under faults: schedulers killed, paused past
their leases, added and removed; a stream's leader killed; a follower killed and restarted.
Every accepted execution must finish, once, with every node's work recorded once
(:func:`check_finished_once`), and each fault must be seen to have landed.

Nothing here waits a fixed time for the system: each step waits for the condition it needs
(a log line, a leader, a sequence) with a generous deadline, so a slow machine is slower, not
failing."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import socket
import tempfile
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
import httpx
import nats
import pytest

from nodedrop.contracts.events import ExecutionFinished, NodeReady, NodeStarted, NodeSucceeded
from nodedrop.contracts.routing import Layout
from nodedrop.platform.db.migrate import upgrade
from nodedrop.platform.history import read_execution
from nodedrop.platform.retry import retry_unavailable

from .system import System, free_port

if TYPE_CHECKING:
    from tests.fixtures.nats_cluster import NatsCluster, NatsClusterFactory

pytestmark = pytest.mark.e2e

LAYOUT = Layout(4)
LEASE_S = 3.0
EXECUTIONS = 40
#: Deadline of every wait for a condition (a takeover, a log line): generous, only ever
#: reached when something is wrong.
WAIT_S = 60.0
WORKFLOW = {
    "name": "three steps",
    "nodes": [
        {"id": "start", "type": "manual_trigger"},
        {"id": "a", "type": "noop"},
        {"id": "b", "type": "set", "parameters": {"values": {"tagged": True}}},
    ],
    "connections": [{"from": "start", "to": "a"}, {"from": "a", "to": "b"}],
}
TOOK = re.compile(
    r"took partition (\d+) over \(fence \d+; inputs from seq \d+; previous owner (\S+)\)"
)
HANDED_BACK = re.compile(r"handed partition (\d+) back")
LOST = re.compile(r"lease of partition (\d+) lost")


def _dsn(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme.split('+', 1)[0]}://{rest}"


@contextlib.asynccontextmanager
async def clustered_system(
    cluster: NatsCluster,
    pg_server_url: str,
    *,
    schedulers: int = 3,
    notifiers: int = 2,
    runners: int = 2,
) -> AsyncIterator[System]:
    """1 api and ``schedulers`` schedulers (``scheduler-1``...), ``notifiers`` notifiers
    (``notifier``, ``notifier-2``...) and ``runners`` runners (``runner-1``...) on the cluster;
    all stopped afterwards."""
    work = Path(tempfile.mkdtemp(prefix="nodedrop-cluster-"))
    name = f"nodedrop_cluster_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(_dsn(pg_server_url))
    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    database_url = pg_server_url.rsplit("/", 1)[0] + f"/{name}"
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
        notifier_ports = [system.notifier_port] + [free_port() for _ in range(notifiers - 1)]
        notifier_urls = ",".join(f"http://127.0.0.1:{port}" for port in notifier_ports)
        # The api first: it creates the layout, before the others race to check it.
        system.start("api", env={"NODEDROP_NOTIFIER_URL": notifier_urls})
        await asyncio.to_thread(_wait_for, f"{system.base_url}/health", system)
        for index in range(1, schedulers + 1):
            system.start(f"scheduler-{index}", "scheduler")
        for index, port in enumerate(notifier_ports, 1):
            process = "notifier" if index == 1 else f"notifier-{index}"
            system.start(process, "notifier", env={"NODEDROP_NOTIFIER_PORT": str(port)})
        for index in range(1, runners + 1):
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


# ---------------------------------------------------------------------------- waiting
def log_of(system: System, name: str) -> str:
    path = system.log_dir / f"{name}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def takeovers(text: str) -> list[tuple[int, str]]:
    """(partition, previous owner) of every "took partition N over" in a scheduler's log."""
    return [(int(p), previous) for p, previous in TOOK.findall(text)]


def owned(text: str) -> set[int]:
    """The partitions a scheduler holds at the end of its log ``text``: taken over, and not
    handed back or lost since."""
    held: set[int] = set()
    changes = [(m.start(), int(m[1]), True) for m in TOOK.finditer(text)]
    changes += [(m.start(), int(m[1]), False) for m in HANDED_BACK.finditer(text)]
    changes += [(m.start(), int(m[1]), False) for m in LOST.finditer(text)]
    for _, partition, taken in sorted(changes):
        (held.add if taken else held.discard)(partition)
    return held


def moved_to(system: System, name: str) -> bool:
    """Whether ``name`` took a partition over from a previous owner (one that handed it back
    or lost it), not a fresh one."""
    return any(previous != "none" for _, previous in takeovers(log_of(system, name)))


async def until(
    check: Callable[[], bool],
    what: str,
    timeout_s: float = WAIT_S,
    shown: Callable[[], str] = lambda: "",
) -> None:
    """Wait for ``check``; on timeout fail naming ``what``, with the tail of ``shown()`` (a
    process's log, say)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"no {what} after {timeout_s} s\n{shown()[-4000:]}")
        await asyncio.sleep(0.1)


async def until_each_holds_a_partition(system: System, names: list[str]) -> None:
    await until(
        lambda: all(takeovers(log_of(system, name)) for name in names),
        f"partitions shared out to {names}",
    )


async def until_taken(
    system: System, names: list[str], partitions: set[int], since: dict[str, int]
) -> None:
    """Until every one of ``partitions`` was taken over by one of ``names`` in their logs past
    the offsets ``since`` (name -> characters of its log already seen)."""

    def taken() -> set[int]:
        return {
            p for name in names for p, _ in takeovers(log_of(system, name)[since.get(name, 0) :])
        }

    await until(
        lambda: partitions <= taken(), f"takeover of partitions {sorted(partitions)} by {names}"
    )


# ---------------------------------------------------------------------------- load
async def submit_one(client: httpx.AsyncClient, n: int) -> str:
    """Submit one execution; retried while the log is unavailable (a 503 records nothing),
    so the id returned was accepted."""
    body = {"workflow": WORKFLOW, "trigger": "start", "input": [{"n": n}]}
    for _ in range(200):
        response = await client.post("/api/executions", json=body)
        if response.status_code == 202:
            execution_id: str = response.json()["id"]
            return execution_id
        assert response.status_code == 503, response.text
        await asyncio.sleep(0.1)
    raise AssertionError(f"execution {n} was never accepted")


async def submit_all(client: httpx.AsyncClient, count: int, rate_per_s: float) -> list[str]:
    """Submit ``count`` executions at about ``rate_per_s``."""
    accepted: list[str] = []
    for n in range(count):
        accepted.append(await submit_one(client, n))
        await asyncio.sleep(1 / rate_per_s)
    return accepted


async def submit_until(
    client: httpx.AsyncClient, done: asyncio.Event, rate_per_s: float, at_least: int = 20
) -> list[str]:
    """Submit at about ``rate_per_s`` until ``done`` is set (and at least ``at_least``): the
    load lasts as long as the faults take, however slow the machine."""
    accepted: list[str] = []
    while not done.is_set() or len(accepted) < at_least:
        accepted.append(await submit_one(client, len(accepted)))
        await asyncio.sleep(1 / rate_per_s)
    return accepted


@contextlib.asynccontextmanager
async def background(
    load: Coroutine[Any, Any, list[str]],
) -> AsyncIterator[asyncio.Task[list[str]]]:
    """``load`` as a task, cancelled if the block ends before it did (a failing test must
    not leave it submitting to a system being stopped)."""
    task = asyncio.create_task(load)
    try:
        yield task
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


# ---------------------------------------------------------------------------- checking
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


async def check_finished_once(
    cluster: NatsCluster, client: httpx.AsyncClient, accepted: list[str], timeout_s: float = 120
) -> dict[str, list[Any]]:
    """Every accepted execution finished (nothing stuck), succeeded, once; no event id stored
    twice; every node's work recorded once; the projection says the same. Returns the
    histories (read through the nodes running now)."""
    live = [cluster.node(n).url for n in cluster.names if cluster.running(n)]
    found = await all_finished(live, accepted, timeout_s=timeout_s)
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

    # The projection (the notifiers sharing the partitions) says the same.
    for execution_id in accepted:
        body = (await client.get(f"/api/executions/{execution_id}")).json()
        for _ in range(200):
            if body.get("status") == "succeeded":
                break
            await asyncio.sleep(0.1)
            body = (await client.get(f"/api/executions/{execution_id}")).json()
        assert body.get("status") == "succeeded", body
    return found


# ---------------------------------------------------------------------------- scenarios
async def test_executions_finish_once_through_scheduler_and_leader_failures(
    nats_cluster: NatsClusterFactory, pg_server_url: str
) -> None:
    async with (
        nats_cluster() as cluster,
        clustered_system(cluster, pg_server_url) as system,
        httpx.AsyncClient(base_url=system.base_url, headers=system.headers, timeout=10) as client,
        background(submit_all(client, EXECUTIONS, rate_per_s=8)) as submitting,
    ):
        # Faults only once every scheduler holds partitions (their leases shared out).
        await until_each_holds_a_partition(system, ["scheduler-1", "scheduler-2", "scheduler-3"])
        killed = system.processes["scheduler-1"]
        killed.send_signal(signal.SIGKILL)
        paused = system.processes["scheduler-2"]
        seen = {"scheduler-3": len(log_of(system, "scheduler-3"))}
        paused.send_signal(signal.SIGSTOP)
        # Past its leases: the third takes every partition it does not hold now (waited for,
        # not timed: how long that takes depends on the machine), the paused one's among them.
        # (Not "every partition it never took": one it took and handed back would be left out.)
        paused_held = owned(log_of(system, "scheduler-2"))
        others = set(range(LAYOUT.partitions)) - owned(log_of(system, "scheduler-3"))
        assert paused_held, log_of(system, "scheduler-2")[-2000:]
        assert paused_held <= others, (paused_held, others)
        await until_taken(system, ["scheduler-3"], others, seen)
        paused.send_signal(signal.SIGCONT)
        leader = await cluster.wait_stream_leader(LAYOUT.stream(0))
        cluster.kill(leader)
        assert not cluster.running(leader)
        new_leader = await cluster.wait_stream_leader(LAYOUT.stream(0), other_than=leader)
        accepted = await submitting
        await check_finished_once(cluster, client, accepted)
        await cluster.restart(leader)

        # The faults landed: a scheduler died, the paused one found its leases gone.
        assert killed.wait(5) == -signal.SIGKILL
        await until(
            lambda: "lease of partition" in log_of(system, "scheduler-2"),
            "lease lost in the paused scheduler's log",
            shown=partial(log_of, system, "scheduler-2"),
        )
        assert new_leader != leader
        assert len(accepted) == EXECUTIONS


async def test_three_runners_under_load(
    nats_cluster: NatsClusterFactory, pg_server_url: str
) -> None:
    """The deployed shape (3 schedulers, 2 notifiers, 3 runners) under load, no fault: each
    execution once, and every process of each kind did a share of the work."""
    async with (
        nats_cluster() as cluster,
        clustered_system(cluster, pg_server_url, runners=3) as system,
        httpx.AsyncClient(base_url=system.base_url, headers=system.headers, timeout=10) as client,
    ):
        schedulers = ["scheduler-1", "scheduler-2", "scheduler-3"]
        await until_each_holds_a_partition(system, schedulers)
        accepted = await submit_all(client, 60, rate_per_s=15)
        found = await check_finished_once(cluster, client, accepted)

        host = socket.gethostname()
        workers = Counter(
            e.worker for history in found.values() for e in history if isinstance(e, NodeStarted)
        )
        runners = {f"{host}-{system.processes[f'runner-{i}'].pid}" for i in (1, 2, 3)}
        # Every runner ran nodes (they share each partition's task consumer).
        assert runners <= set(workers), (runners, workers)
        for name in ("notifier", "notifier-2"):
            assert "projecting partition" in log_of(system, name), log_of(system, name)[-2000:]


async def test_follower_killed_and_restarted(
    nats_cluster: NatsClusterFactory, pg_server_url: str
) -> None:
    """SIGKILL a node that leads none of the log's streams and consumers while executions run;
    restart it after the log moved on without it: it catches up, nothing is lost or doubled."""
    done = asyncio.Event()
    async with (
        nats_cluster() as cluster,
        clustered_system(cluster, pg_server_url) as system,
        httpx.AsyncClient(base_url=system.base_url, headers=system.headers, timeout=10) as client,
        background(submit_until(client, done, rate_per_s=8)) as submitting,
    ):
        streams = LAYOUT.streams
        nc = await nats.connect(cluster.urls, max_reconnect_attempts=-1)
        try:
            js = nc.jetstream()

            async def last_seqs() -> dict[str, int]:
                return {s: (await js.stream_info(s)).state.last_seq for s in streams}

            # Not the meta leader, and made to lead nothing of the log: a follower only.
            meta = await cluster.meta_leader()
            victim = next(n for n in reversed(cluster.names) if n != meta)
            await cluster.make_follower(victim)
            for stream in streams:
                assert await cluster.stream_leader(stream) != victim
            process = cluster.node(victim).process
            assert process is not None
            at_kill = await last_seqs()
            cluster.kill(victim)
            assert process.returncode == -signal.SIGKILL
            assert not cluster.running(victim)

            # The log moves on without it (events written that it must catch up on).
            moved = dict(at_kill)

            async def moved_on() -> bool:
                moved.update(await last_seqs())
                return sum(moved.values()) >= sum(at_kill.values()) + 100

            await cluster.until(moved_on, "the log moving on without the follower")
            done.set()
            accepted = await submitting
            await cluster.restart(victim)
            await check_finished_once(cluster, client, accepted)

            # Caught up: the restarted node stores each stream up to the leader's last seq.
            async def caught_up() -> bool:
                for stream in streams:
                    leader = await cluster.stream_leader(stream)
                    if leader is None:
                        return False
                    mine = await cluster.stream_detail(victim, stream)
                    theirs = await cluster.stream_detail(leader, stream)
                    if mine is None or theirs is None:
                        return False
                    if mine["state"]["last_seq"] != theirs["state"]["last_seq"]:
                        return False
                return True

            await cluster.until(caught_up, f"{victim} caught up with every stream")
            after = {
                s: (await cluster.stream_detail(victim, s) or {})["state"]["last_seq"]
                for s in streams
            }
            assert sum(after.values()) > sum(at_kill.values()), (at_kill, after)
        finally:
            await nc.close()


async def test_schedulers_added_and_removed_under_load(
    nats_cluster: NatsClusterFactory, pg_server_url: str
) -> None:
    """One scheduler, then a second and a third joining mid-load (partitions move to them
    from the first), then one leaving gracefully (its partitions move to the others)."""
    done = asyncio.Event()
    async with (
        nats_cluster() as cluster,
        clustered_system(cluster, pg_server_url, schedulers=1) as system,
        httpx.AsyncClient(base_url=system.base_url, headers=system.headers, timeout=10) as client,
        background(submit_until(client, done, rate_per_s=8)) as submitting,
    ):
        every = set(range(LAYOUT.partitions))
        await until_taken(system, ["scheduler-1"], every, {})

        for joining in ("scheduler-2", "scheduler-3"):
            system.start(joining, "scheduler")
            await until(partial(moved_to, system, joining), f"a partition moved to {joining}")
        assert HANDED_BACK.search(log_of(system, "scheduler-1")), log_of(system, "scheduler-1")

        # The one leaving: the second, once it holds partitions.
        await until(lambda: bool(owned(log_of(system, "scheduler-2"))), "scheduler-2 owning")
        seen = {n: len(log_of(system, n)) for n in ("scheduler-1", "scheduler-3")}
        before = len(log_of(system, "scheduler-2"))
        leaving = system.processes["scheduler-2"]
        await asyncio.to_thread(system.stop, "scheduler-2")
        left_log = log_of(system, "scheduler-2")
        assert leaving.returncode == 0, left_log[-2000:]
        # It handed back whatever it held when told to stop, and held nothing at the end.
        handed = {int(p) for p in HANDED_BACK.findall(left_log[before:])}
        assert handed, left_log[-2000:]
        assert not owned(left_log), left_log[-2000:]
        await until_taken(system, ["scheduler-1", "scheduler-3"], handed, seen)

        done.set()
        accepted = await submitting
        await check_finished_once(cluster, client, accepted)
