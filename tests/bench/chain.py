"""Per-node overhead of a sequential chain of ``noop`` nodes, through the whole system.

    .venv/bin/python -m tests.bench.chain [--nodes 40] [--runs 20]

Starts its own nats-server and PostgreSQL (embedded) and the four services as processes, submits
the chain ``runs`` times one after another, and reads every execution's events from the API.
Overhead per node = (time of the last node's NodeSucceeded - time of the trigger's
NodeSucceeded) / (nodes): everything the system adds between one node's end and the next
one's end, since a ``noop`` itself does nothing. All times are event times, stamped by the
services on this machine's one clock.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from tests.e2e.system import System

from nodedrop.contracts.db.migrate import upgrade
from nodedrop.embedded import EmbeddedNats, EmbeddedPostgres


def chain(nodes: int) -> dict[str, Any]:
    ids = ["start"] + [f"n{i}" for i in range(nodes)]
    return {
        "name": f"chain of {nodes}",
        "nodes": [{"id": "start", "type": "manual_trigger"}]
        + [{"id": node_id, "type": "noop"} for node_id in ids[1:]],
        "connections": [{"from": a, "to": b} for a, b in itertools.pairwise(ids)],
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(system: System, nodes: int, runs: int) -> dict[str, float]:
    workflow = chain(nodes)
    per_node: list[float] = []
    end_to_end: list[float] = []
    async with httpx.AsyncClient(
        base_url=system.base_url, headers=system.headers, timeout=30
    ) as client:
        for _ in range(runs + 1):  # the first run warms up every process and is not counted
            posted = time.time()
            response = await client.post("/api/executions", json={"workflow": workflow})
            response.raise_for_status()
            execution_id = response.json()["id"]
            events: list[dict[str, Any]] = []
            while not events or events[-1]["type"] != "ExecutionFinished":
                await asyncio.sleep(0.01)
                events = (await client.get(f"/api/executions/{execution_id}/events")).json()[
                    "events"
                ]
            assert events[-1]["data"]["status"] == "succeeded", events[-1]
            done = [
                datetime.fromisoformat(e["time"]).timestamp()
                for e in events
                if e["type"] == "NodeSucceeded"
            ]
            per_node.append((done[-1] - done[0]) / nodes * 1000)
            end_to_end.append(
                (datetime.fromisoformat(events[-1]["time"]).timestamp() - posted) * 1000
            )
    per_node, end_to_end = per_node[1:], end_to_end[1:]
    return {
        "p50": statistics.median(per_node),
        "p95": percentile(per_node, 0.95),
        "e2e_p50": statistics.median(end_to_end),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=40)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nodedrop-bench-"))
    os.chmod(work, 0o711)  # traversable by PostgreSQL's system user when run as root
    nats = EmbeddedNats(work / "nats", port=0)
    postgres = EmbeddedPostgres(work / "pg", port=0, database="bench")
    nats.start()
    postgres.start()
    system = System(nats.url, postgres.url("bench"), work)
    try:
        await asyncio.to_thread(upgrade, system.database_url)
        await asyncio.to_thread(system.start_all)
        result = await measure(system, args.nodes, args.runs)
        print(
            f"chain of {args.nodes} noop nodes, {args.runs} runs: overhead per node "
            f"p50 {result['p50']:.2f} ms, p95 {result['p95']:.2f} ms; "
            f"POST to ExecutionFinished p50 {result['e2e_p50']:.1f} ms"
        )
    finally:
        system.stop_all()
        postgres.stop()
        nats.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
