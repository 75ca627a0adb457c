"""``nodedrop audit --verify`` on the whole system: a few hundred mixed executions (chains,
branches, retries then success, failures under each ``on_error``, waits, pinned data, cancels,
node and execution timeouts) all verify against the scheduler core; a history republished with
one decision altered does not, and the command says where."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import msgspec
import nats
import pytest
from nats.js import JetStreamContext

from nodedrop.cli.audit import AuditRequest, report
from nodedrop.contracts.events import Event, NodeRetryScheduled
from nodedrop.contracts.routing import Layout
from nodedrop.platform.bus import EventPublisher
from nodedrop.platform.history import read_execution
from nodedrop.platform.jetstream import StreamSettings, ensure_jetstream

from .conftest import running_system
from .system import System

if TYPE_CHECKING:  # pytest gives the class as a fixture (see tests/fixtures/http_server.py)
    from tests.fixtures.http_server import LocalHttpServer, Request

pytestmark = pytest.mark.e2e

PER_KIND = 24
FINAL = {"succeeded", "partial", "failed", "cancelled", "timed_out"}


def flaky(request: Request) -> tuple[int, dict[str, bool]]:
    """Fails the first request of each idempotency key with a 500, then answers 200."""
    return (500 if request.number_with_key == 1 else 200), {"ok": True}


@pytest.fixture(scope="module")
def flaky_url(local_http_server: type[LocalHttpServer]) -> Iterator[str]:
    with local_http_server(flaky) as server:
        yield f"{server.url}/flaky"


@pytest.fixture(scope="module")
async def system(pg_server_url: str) -> AsyncIterator[System]:
    async with running_system(pg_server_url, {"NODEDROP_HTTP_ALLOW_PRIVATE": "true"}) as started:
        yield started


def node(node_id: str, node_type: str = "noop", **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "type": node_type, **extra}


def workflow(nodes: list[dict[str, Any]], *edges: tuple[str, ...]) -> dict[str, Any]:
    connections = [
        {"from": e[0], "to": e[1], **({"output": e[2]} if len(e) > 2 else {})} for e in edges
    ]
    return {
        "name": "audit",
        "nodes": [node("start", "manual_trigger"), *nodes],
        "connections": connections,
    }


def requests(flaky_url: str) -> list[tuple[str, dict[str, Any]]]:
    """(kind, POST /api/executions body) for every kind of execution, PER_KIND times each."""
    retry = {"max_attempts": 3, "initial_interval_ms": 20}
    kinds: dict[str, dict[str, Any]] = {
        "chain": {"workflow": workflow([node("a"), node("b")], ("start", "a"), ("a", "b"))},
        "branch": {
            "workflow": workflow(
                [
                    node("check", "if", parameters={"condition": "{{ item.n > 1 }}"}),
                    node("big"),
                    node("small"),
                ],
                ("start", "check"),
                ("check", "big", "true"),
                ("check", "small", "false"),
            ),
            "input": [{"n": 1}, {"n": 2}],
        },
        "retry": {
            "workflow": workflow(
                [
                    node(
                        "call",
                        "http_request",
                        retry=retry,
                        parameters={"method": "GET", "url": flaky_url},
                    ),
                    node("done"),
                ],
                ("start", "call"),
                ("call", "done"),
            )
        },
        "pinned": {
            "workflow": workflow(
                [node("fixed", pinned_output={"main": [{"p": 1}]}), node("after")],
                ("start", "fixed"),
                ("fixed", "after"),
            )
        },
        "wait": {
            "workflow": workflow(
                [node("w", "wait", parameters={"ms": 100}), node("done")],
                ("start", "w"),
                ("w", "done"),
            )
        },
        "cancel": {
            "workflow": workflow(
                [node("w", "wait", parameters={"ms": 20_000}), node("done")],
                ("start", "w"),
                ("w", "done"),
            )
        },
        "node_timeout": {
            "workflow": workflow(
                [node("w", "wait", parameters={"ms": 20_000}, timeout_ms=200), node("done")],
                ("start", "w"),
                ("w", "done"),
            )
        },
        "execution_timeout": {
            "workflow": workflow(
                [node("w", "wait", parameters={"ms": 20_000}), node("done")],
                ("start", "w"),
                ("w", "done"),
            ),
            "timeout_ms": 300,
        },
    }
    for policy in ("fail", "continue", "error_output"):
        port = ("error",) if policy == "error_output" else ()
        kinds[f"on_error_{policy}"] = {
            "workflow": workflow(
                [
                    node(
                        "boom",
                        "stop_and_error",
                        on_error=policy,
                        retry={"max_attempts": 2, "initial_interval_ms": 10},
                        parameters={"message": "no"},
                    ),
                    node("after"),
                    node("side"),
                ],
                ("start", "boom"),
                ("boom", "after", *port),
                ("start", "side"),
            )
        }
    return [(kind, body) for _ in range(PER_KIND) for kind, body in kinds.items()]


async def submit_all(client: httpx.AsyncClient, flaky_url: str) -> dict[str, str]:
    """Submit every execution; returns execution id -> kind."""
    semaphore = asyncio.Semaphore(16)

    async def one(kind: str, body: dict[str, Any]) -> tuple[str, str]:
        async with semaphore:
            response = await client.post("/api/executions", json=body)
        assert response.status_code == 202, response.text
        return str(response.json()["id"]), kind

    return dict(await asyncio.gather(*(one(k, b) for k, b in requests(flaky_url))))


async def wait_finished(
    client: httpx.AsyncClient, ids: list[str], timeout_s: float
) -> dict[str, str]:
    statuses: dict[str, str] = {}
    semaphore = asyncio.Semaphore(16)

    async def status(execution_id: str) -> None:
        async with semaphore:
            response = await client.get(f"/api/executions/{execution_id}")
        if response.status_code == 200 and response.json()["status"] in FINAL:
            statuses[execution_id] = response.json()["status"]

    deadline = time.monotonic() + timeout_s
    while len(statuses) < len(ids) and time.monotonic() < deadline:
        await asyncio.gather(*(status(i) for i in ids if i not in statuses))
        await asyncio.sleep(0.3)
    return statuses


async def test_hundreds_of_mixed_executions_verify_and_an_altered_decision_is_reported(
    system: System, flaky_url: str, jetstream: JetStreamContext, nats_url: str
) -> None:
    started = time.monotonic()
    async with httpx.AsyncClient(
        base_url=system.base_url, headers=system.headers, timeout=10
    ) as client:
        kinds = await submit_all(client, flaky_url)
        await asyncio.sleep(0.5)
        for execution_id, kind in kinds.items():
            if kind == "cancel":
                response = await client.post(f"/api/executions/{execution_id}/cancel")
                assert response.status_code == 202, response.text
        statuses = await wait_finished(client, list(kinds), timeout_s=40)
    assert len(statuses) == len(kinds), "some executions did not finish"
    by_kind: dict[str, set[str]] = {}
    for execution_id, kind in kinds.items():
        by_kind.setdefault(kind, set()).add(statuses[execution_id])
    assert by_kind == {
        "chain": {"succeeded"},
        "branch": {"succeeded"},
        "retry": {"succeeded"},
        "pinned": {"succeeded"},
        "wait": {"succeeded"},
        "cancel": {"cancelled"},
        "node_timeout": {"failed"},
        "execution_timeout": {"timed_out"},
        "on_error_fail": {"failed"},
        "on_error_continue": {"partial"},
        "on_error_error_output": {"partial"},
    }

    # Every history verifies through the command's own report.
    nc = await nats.connect(system.nats_url)
    try:
        histories = {
            i: await read_execution(nc.jetstream(), i, layout=Layout.from_env()) for i in kinds
        }
    finally:
        await nc.close()
    failures = {}
    for execution_id, recorded in histories.items():
        out = io.StringIO()
        code = report(AuditRequest(execution_id, verify=True), recorded, out)
        if code != 0:
            failures[execution_id] = (kinds[execution_id], out.getvalue()[-2000:])
    assert failures == {}
    assert len(histories) >= 250

    # The command itself, as a process, on one execution with retries.
    retried = next(i for i, k in kinds.items() if k == "retry")
    shown = audit_process(system.nats_url, retried, "--verify")
    assert shown.returncode == 0, shown.stderr
    assert "NodeRetryScheduled" in shown.stdout
    assert "verified: " in shown.stdout

    # One decision altered, republished into a fresh stream: reported, with where.
    history: list[Event] = [event for _, event in histories[retried]]
    at = next(i for i, e in enumerate(history) if isinstance(e, NodeRetryScheduled))
    retry = history[at]
    assert isinstance(retry, NodeRetryScheduled)
    history[at] = msgspec.structs.replace(retry, delay_ms=retry.delay_ms * 10)
    await republish(jetstream, history)
    # (``jetstream`` is on the session's spare nats-server, not the system's.)
    shown = audit_process(nats_url, retried, "--verify")
    assert shown.returncode == 1, shown.stdout + shown.stderr
    assert f"seq {at + 1}: NodeRetryScheduled call#1: changed: delay_ms" in shown.stdout
    assert time.monotonic() - started < 60


async def republish(js: JetStreamContext, events: list[Event]) -> None:
    await ensure_jetstream(js, StreamSettings.from_env())
    await EventPublisher(js, Layout.from_env()).publish(events)


def audit_process(nats_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nodedrop.cli", "audit", *args],
        env={**os.environ, "NODEDROP_NATS_URL": nats_url},
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
