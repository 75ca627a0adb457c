"""The load the scenarios put on the system: five-node workflows with two real side effects."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from tests.chaos.cluster import Cluster, until

from nodedrop.contracts import routing
from nodedrop.contracts.events import ExecutionFinished


def five_nodes(effects_url: str, *, attempts: int = 3) -> dict[str, Any]:
    """trigger -> charge (POST) -> enrich (set) -> notify (POST) -> done. The two requests are
    the side effects whose ``Idempotency-Key`` the side-effect server counts."""
    retry = {"max_attempts": attempts, "initial_interval_ms": 200}
    return {
        "name": "chaos five nodes",
        "nodes": [
            {"id": "start", "type": "manual_trigger"},
            {
                "id": "charge",
                "type": "http_request",
                "parameters": {"method": "POST", "url": f"{effects_url}/charge",
                               "json": {"n": "{{ item.n }}"}},
                "retry": retry,
            },
            {"id": "enrich", "type": "set", "parameters": {"values": {"charged": True}}},
            {
                "id": "notify",
                "type": "http_request",
                "parameters": {"method": "POST", "url": f"{effects_url}/notify",
                               "json": {"done": True}},
                "retry": retry,
            },
            {"id": "done", "type": "noop"},
        ],
        "connections": [
            {"from": "start", "to": "charge"},
            {"from": "charge", "to": "enrich"},
            {"from": "enrich", "to": "notify"},
            {"from": "notify", "to": "done"},
        ],
    }  # fmt: skip


async def submit_spread(
    cluster: Cluster, workflow: dict[str, Any], count: int, over_s: float
) -> dict[str, dict[str, Any]]:
    """Submit ``count`` executions evenly over ``over_s`` seconds (so that faults meet work in
    flight); returns execution id -> workflow."""
    submitted: dict[str, dict[str, Any]] = {}
    interval = over_s / count if count else 0
    started = time.monotonic()
    for i in range(count):
        delay = started + i * interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        execution_id = await cluster.submit(workflow, input=[{"n": i}])
        submitted[execution_id] = workflow
    return submitted


async def finished_ids(cluster: Cluster) -> set[str]:
    """Executions with an ``ExecutionFinished`` in the log (from every partition stream's
    subject counts: no consumer involved)."""
    finished: set[str] = set()
    for stream in cluster.layout.streams:
        info = await cluster.js.stream_info(
            stream, subjects_filter=routing.events_of_type(ExecutionFinished)
        )
        finished |= {routing.execution_id_of(s) for s in (info.state.subjects or {})}
    return finished


async def wait_finished(cluster: Cluster, execution_ids: set[str], timeout_s: float) -> None:
    """Wait until every one of ``execution_ids`` has finished, or ``timeout_s`` passed (the
    check then reports the unfinished ones)."""

    async def all_finished() -> bool:
        return execution_ids <= await finished_ids(cluster)

    with contextlib.suppress(TimeoutError):
        await until(all_finished, timeout_s, "end of every execution")
