"""Crash recovery with real processes: each service is killed with SIGKILL while a batch of
executions runs, and restarted. Every execution still finishes once and succeeds, every node
runs once per attempt (a runner killed mid-node costs that node one more attempt, RunnerLost,
never the node), side effects repeat only with a new attempt, the projection catches up, and
WebSocket clients that reconnect with ``after_seq`` see every event once, in order.

Runners use a 4 s ack wait here (NODEDROP_RUNNER_ACK_WAIT_S) so a killed runner's tasks come
back quickly; two runners of 8 slots share the work.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import threading
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import websockets

from nodedrop.contracts.errors import RUNNER_LOST

from .conftest import running_system
from .system import System

if TYPE_CHECKING:  # pytest gives the class as a fixture (see tests/fixtures/http_server.py)
    from tests.fixtures.http_server import LocalHttpServer, Request

pytestmark = pytest.mark.e2e

BATCH = 40
#: How long the side-effect server takes to answer: kills land while nodes wait on it.
SLOW_MS = 500
WATCHED = 4  # WebSocket clients per batch


# ------------------------------------------------------------------ the side-effect server


class Gate:
    """Keeps the side effects' answers back while closed, so that a test kills a runner with
    requests surely in flight, however slow the machine (open unless a test closes it)."""

    #: A closed gate lets a request go after this long anyway, so a failing test ends.
    LONGEST_S = 300.0

    def __init__(self) -> None:
        self._open = threading.Event()
        self._open.set()

    def close(self) -> None:
        self._open.clear()

    def open(self) -> None:
        self._open.set()

    def wait(self) -> None:
        self._open.wait(self.LONGEST_S)


def slow_effect(request: Request, gate: Gate) -> tuple[int, dict[str, bool]]:
    """Answers once the gate is open, after the ``ms`` of the query string (SLOW_MS): kills
    land while nodes wait."""
    gate.wait()
    time.sleep(int(parse_qs(urlsplit(request.path).query).get("ms", ["0"])[0]) / 1000)
    return 200, {"ok": True}


@pytest.fixture
def gate() -> Iterator[Gate]:
    gate = Gate()
    yield gate
    gate.open()  # no request waits on a test that ended


@pytest.fixture
def effects(local_http_server: type[LocalHttpServer], gate: Gate) -> Iterator[LocalHttpServer]:
    """The server the effect nodes POST to, at ``/<execution id>/<node>``."""
    with local_http_server(lambda request: slow_effect(request, gate), method="POST") as server:
        yield server


def keys_per_node(effects: LocalHttpServer) -> dict[tuple[str, str], Counter[str | None]]:
    """The requests the server saw per (execution, node), counted by idempotency key."""
    found: dict[tuple[str, str], Counter[str | None]] = defaultdict(Counter)
    for request in effects.requests():
        _, execution_id, node = urlsplit(request.path).path.split("/")
        found[execution_id, node][request.idempotency_key] += 1
    return found


# ------------------------------------------------------------------ the system


@pytest.fixture(scope="module")
async def system(pg_server_url: str, plugin_path: str) -> AsyncIterator[System]:
    env = {
        "NODEDROP_HTTP_ALLOW_PRIVATE": "true",
        "PYTHONPATH": plugin_path,  # the example plugin: runners start worker processes
        "NODEDROP_RUNNER_ACK_WAIT_S": "4",
        "NODEDROP_RUNNER_CONCURRENCY": "8",
    }
    async with running_system(pg_server_url, env) as started:
        started.start("runner-2", "runner")
        await asyncio.to_thread(started.wait_healthy)
        yield started


def workflow(server: str) -> dict[str, Any]:
    """A chain with a fan-out: two slow side effects (so kills land mid-node), a custom node
    in a worker process, a join."""

    def effect(node_id: str) -> dict[str, Any]:
        return {
            "id": node_id,
            "type": "http_request",
            "parameters": {
                "method": "POST",
                "url": server + "/{{ execution.id }}/" + node_id + f"?ms={SLOW_MS}",
                "json": {"node": node_id},
            },
        }

    return {
        "name": "crash recovery",
        "nodes": [
            {"id": "start", "type": "manual_trigger"},
            effect("charge"),
            {"id": "tag", "type": "set", "parameters": {"values": {"tagged": True}}},
            effect("notify"),
            {"id": "greet", "type": "greet"},
            {"id": "join", "type": "merge"},
            {"id": "done", "type": "noop"},
        ],
        "connections": [
            {"from": "start", "to": "charge"},
            {"from": "charge", "to": "tag"},
            {"from": "charge", "to": "notify"},
            {"from": "tag", "to": "greet"},
            {"from": "notify", "to": "join"},
            {"from": "greet", "to": "join"},
            {"from": "join", "to": "done"},
        ],
    }


EFFECT_NODES = ("charge", "notify")
PLAN = {"start", "charge", "tag", "notify", "greet", "join", "done"}


# ------------------------------------------------------------------ clients


async def submit(client: httpx.AsyncClient, server: str) -> str:
    response = await client.post("/api/executions", json={"workflow": workflow(server)})
    assert response.status_code == 202, response.text
    execution_id: str = response.json()["id"]
    return execution_id


async def submit_batch(client: httpx.AsyncClient, server: str, count: int = BATCH) -> list[str]:
    return list(await asyncio.gather(*(submit(client, server) for _ in range(count))))


@dataclass
class Follower:
    """A WebSocket client of one execution (through the API's /ws relay) that reconnects with
    ``after_seq`` whenever its connection drops, until ExecutionFinished arrives."""

    system: System
    execution_id: str
    events: list[dict[str, Any]] = field(default_factory=list)
    connections: int = 0

    async def run(self) -> None:
        while not self.events or self.events[-1]["type"] != "ExecutionFinished":
            after = self.events[-1]["seq"] if self.events else 0
            url = f"{self.system.ws_url}/ws/executions/{self.execution_id}?after_seq={after}"
            try:
                async with websockets.connect(url, additional_headers=self.system.headers) as ws:
                    self.connections += 1
                    async for message in ws:
                        self.events.append(json.loads(message))
            except (OSError, websockets.ConnectionClosed, websockets.InvalidHandshake):
                pass  # the service behind it is down: try again
            if not self.events or self.events[-1]["type"] != "ExecutionFinished":
                await asyncio.sleep(0.2)


async def follow(
    system: System, execution_ids: list[str]
) -> tuple[list[Follower], asyncio.Task[Any]]:
    """Followers connected (each has an event) before the caller goes on to kill something."""
    followers = [Follower(system, execution_id) for execution_id in execution_ids]
    task = asyncio.create_task(all_of(f.run() for f in followers))
    await until(lambda: all(f.events for f in followers), within_s=60)
    return followers, task


async def all_of(coroutines: Iterable[Coroutine[Any, Any, None]]) -> None:
    await asyncio.gather(*coroutines)


async def until(check: Callable[[], bool], within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {within_s} s")
        await asyncio.sleep(0.02)


def running(followers: list[Follower]) -> list[Follower]:
    """The followers whose execution has not ended yet (as far as they know)."""
    return [f for f in followers if f.events[-1]["type"] != "ExecutionFinished"]


async def kill_and_restart(system: System, name: str, service: str, down_s: float) -> None:
    await asyncio.to_thread(system.stop, name, signal.SIGKILL)
    await asyncio.sleep(down_s)
    system.start(name, service)
    await asyncio.to_thread(system.wait_healthy)


# ------------------------------------------------------------------ the checks


async def stored_events(client: httpx.AsyncClient, execution_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/api/executions/{execution_id}/events")
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


async def finished_events(
    client: httpx.AsyncClient, execution_ids: list[str], within_s: float = 60
) -> dict[str, list[dict[str, Any]]]:
    """Each execution's events from the stream, once every execution has ended."""
    deadline = time.monotonic() + within_s
    pending = set(execution_ids)
    found: dict[str, list[dict[str, Any]]] = {}
    while pending:
        for execution_id in list(pending):
            events = await stored_events(client, execution_id)
            if any(e["type"] == "ExecutionFinished" for e in events):
                found[execution_id] = events
                pending.discard(execution_id)
        if pending and time.monotonic() > deadline:
            raise AssertionError(f"{len(pending)} executions did not finish, e.g. {min(pending)}")
        await asyncio.sleep(0.2)
    return found


def check_attempts(execution_id: str, events: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """One end, succeeded; every node of the plan succeeded once; per (node, attempt) at most
    one NodeStarted and one result; every failure is RunnerLost and followed by the next
    attempt. Returns the lost (node, attempt)s."""
    where = f"execution {execution_id}"
    ends = [e for e in events if e["type"] == "ExecutionFinished"]
    assert len(ends) == 1, where
    assert ends[0]["data"]["status"] == "succeeded", (
        where,
        ends[0]["data"],
        [
            (e["type"], e["node"], e["attempt"], e["data"].get("error"))
            for e in events
            if e["type"] in ("NodeFailed", "ExecutionCancelRequested")
        ],
    )
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs)), where
    per_attempt: Counter[tuple[str, str, int]] = Counter(
        (e["type"] if e["type"] == "NodeStarted" else "result", e["node"], e["attempt"])
        for e in events
        if e["type"] in ("NodeStarted", "NodeSucceeded", "NodeFailed")
    )
    assert max(per_attempt.values()) == 1, (where, per_attempt.most_common(3))
    succeeded = Counter(e["node"] for e in events if e["type"] == "NodeSucceeded")
    assert succeeded == dict.fromkeys(PLAN, 1), where
    ready = {(e["node"], e["attempt"]) for e in events if e["type"] == "NodeReady"}
    lost = []
    for failure in (e for e in events if e["type"] == "NodeFailed"):
        assert failure["data"]["error"]["type"] == RUNNER_LOST, (where, failure)
        node, attempt = failure["node"], failure["attempt"]
        assert (node, attempt + 1) in ready, f"{where}: {node} attempt {attempt} lost for good"
        lost.append((node, attempt))
    return lost


def check_side_effects(
    effects: LocalHttpServer, all_events: dict[str, list[dict[str, Any]]]
) -> None:
    """Each effect node's request was sent, and sent again only by a new attempt (its key is
    the same on every attempt)."""
    keys = keys_per_node(effects)
    for execution_id, events in all_events.items():
        for node in EFFECT_NODES:
            attempts = sum(1 for e in events if e["type"] == "NodeReady" and e["node"] == node)
            sent = keys[execution_id, node]
            assert len(sent) == 1, (execution_id, node, sent)  # one item: one key
            assert 1 <= sum(sent.values()) <= attempts, (execution_id, node, sent, attempts)


async def check_projection(
    client: httpx.AsyncClient, all_events: dict[str, list[dict[str, Any]]], within_s: float = 30
) -> None:
    """GET /api/executions/{id} reaches the final status and the stream's last seq."""
    deadline = time.monotonic() + within_s
    for execution_id, events in all_events.items():
        while True:
            body = (await client.get(f"/api/executions/{execution_id}")).json()
            if body["status"] == "succeeded" and body["last_seq"] == events[-1]["seq"]:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"projection of {execution_id} stuck at {body}")
            await asyncio.sleep(0.1)
        assert {name: node["status"] for name, node in body["nodes"].items()} == dict.fromkeys(
            PLAN, "succeeded"
        )


async def check_followers(
    followers: list[Follower], task: Awaitable[Any], all_events: dict[str, list[dict[str, Any]]]
) -> None:
    """Every WebSocket client saw exactly the stored events, in order, none twice."""
    await asyncio.wait_for(task, 30)
    for follower in followers:
        stored = all_events[follower.execution_id]
        assert [e["seq"] for e in follower.events] == [e["seq"] for e in stored]
        assert [e["type"] for e in follower.events] == [e["type"] for e in stored]


async def check_all(
    client: httpx.AsyncClient,
    execution_ids: list[str],
    effects: LocalHttpServer,
    followers: list[Follower],
    followers_task: Awaitable[Any],
) -> tuple[dict[str, list[dict[str, Any]]], list[tuple[str, str, int]]]:
    all_events = await finished_events(client, execution_ids)
    lost = [
        (execution_id, node, attempt)
        for execution_id, events in all_events.items()
        for node, attempt in check_attempts(execution_id, events)
    ]
    check_side_effects(effects, all_events)
    await check_projection(client, all_events)
    await check_followers(followers, followers_task, all_events)
    return all_events, lost


def children_of(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                # pid (comm) state ppid ...: comm may hold spaces, so split after its ')'.
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        if (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False  # a zombie runs nothing
    return True


# ------------------------------------------------------------------ the tests


async def test_a_runner_killed_mid_node_costs_that_node_one_attempt_not_the_node(
    client: httpx.AsyncClient, system: System, effects: LocalHttpServer, gate: Gate
) -> None:
    runner = system.processes["runner"]
    # The custom node type runs in worker processes, started with the runner.
    await until(lambda: bool(children_of(runner.pid)), within_s=60)
    workers = children_of(runner.pid)
    gate.close()
    execution_ids = await submit_batch(client, effects.url)
    followers, followers_task = await follow(system, execution_ids[-WATCHED:])
    # 16 slots over two runners, every request held: with 10 waiting, both runners hold nodes
    # mid-call (whatever the time the followers took to connect).
    await until(lambda: effects.in_flight >= 10, within_s=60)
    await kill_and_restart(system, "runner", "runner", down_s=0.5)
    gate.open()

    # The killed runner's worker processes died with it: nothing of it runs a node any more.
    await until(lambda: not any(alive(pid) for pid in workers), within_s=2)

    all_events, lost = await check_all(client, execution_ids, effects, followers, followers_task)
    assert lost, "no node was running on the killed runner"
    killed_worker = f"-{runner.pid}"
    for execution_id, node, attempt in lost:
        started = next(
            (
                e
                for e in all_events[execution_id]
                if e["type"] == "NodeStarted" and (e["node"], e["attempt"]) == (node, attempt)
            ),
            None,
        )
        # Only attempts the killed runner had claimed were declared lost: one it received but
        # had not claimed (no NodeStarted stored) is run again as it is, not as RunnerLost.
        assert started is not None, (execution_id, node, attempt)
        assert started["data"]["worker"].endswith(killed_worker), started


@pytest.mark.parametrize("service", ["scheduler", "notifier"])
async def test_a_scheduler_or_notifier_killed_mid_run_is_caught_up_with_no_gap(
    client: httpx.AsyncClient,
    system: System,
    effects: LocalHttpServer,
    service: str,
) -> None:
    """The scheduler resumes every execution from the stream; the notifier projects from its
    checkpoint, and the WebSocket clients it dropped come back with ``after_seq``."""
    execution_ids = await submit_batch(client, effects.url)
    followers, followers_task = await follow(system, execution_ids[-WATCHED:])
    await until(lambda: len(effects.requests()) >= BATCH // 2, within_s=20)
    cut_off = running(followers)
    await kill_and_restart(system, service, service, down_s=1.0)
    _, lost = await check_all(client, execution_ids, effects, followers, followers_task)
    assert lost == []  # the runners lived: no attempt was lost
    if service == "notifier":
        assert cut_off, "every watched execution ended before the kill"
        assert all(f.connections >= 2 for f in cut_off)  # dropped, and came back


async def test_an_api_killed_mid_submission_loses_no_acknowledged_execution(
    client: httpx.AsyncClient, system: System, effects: LocalHttpServer
) -> None:
    acknowledged: list[str] = []

    async def keep_submitting() -> None:
        while len(acknowledged) < BATCH:
            try:
                acknowledged.append(await submit(client, effects.url))
            except httpx.TransportError:
                await asyncio.sleep(0.05)  # not acknowledged: not promised

    submitting = asyncio.gather(*(keep_submitting() for _ in range(4)))
    await until(lambda: len(acknowledged) >= WATCHED, within_s=20)
    followers, followers_task = await follow(system, acknowledged[:WATCHED])
    await until(lambda: len(acknowledged) >= BATCH // 2, within_s=20)
    killed_after = len(acknowledged)
    cut_off = running(followers)
    await kill_and_restart(system, "api", "api", down_s=1.0)
    await asyncio.wait_for(submitting, 60)
    assert killed_after < BATCH  # some were acknowledged by the restarted api
    await check_all(client, acknowledged, effects, followers, followers_task)
    assert all(f.connections >= 2 for f in cut_off)  # dropped, and came back
