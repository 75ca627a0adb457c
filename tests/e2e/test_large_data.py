"""100,000 items (about 50 MB) through a three-node workflow: the data goes through the object
store, no event carries it, and every service's memory stays bounded."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from .conftest import running_system
from .system import SERVICES, System

pytestmark = pytest.mark.e2e

ITEMS = 100_000
PADDING = 480  # about 500 bytes of JSON per item


@pytest.fixture(scope="module")
async def system(pg_server_url: str, plugin_path: str) -> AsyncIterator[System]:
    async with running_system(pg_server_url, {"PYTHONPATH": plugin_path}) as started:
        yield started


def worker_pids(runner: int) -> list[int]:
    """The runner's worker processes (its children)."""
    children = Path(f"/proc/{runner}/task/{runner}/children").read_text()
    return [int(pid) for pid in children.split()]


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for {pid}")


async def test_a_50_mb_output_flows_through_three_nodes(system: System) -> None:
    workflow = {
        "name": "large",
        "nodes": [
            {"id": "start", "type": "manual_trigger"},
            {"id": "make", "type": "generate", "parameters": {"count": ITEMS, "padding": PADDING}},
            {"id": "pass", "type": "noop"},
            {"id": "tag", "type": "set", "parameters": {"values": {"tagged": True}}},
        ],
        "connections": [
            {"from": "start", "to": "make"},
            {"from": "make", "to": "pass"},
            {"from": "pass", "to": "tag"},
        ],
    }
    async with httpx.AsyncClient(
        base_url=system.base_url, headers=system.headers, timeout=120
    ) as client:
        response = await client.post("/api/executions", json={"workflow": workflow})
        assert response.status_code == 202, response.text
        execution_id = response.json()["id"]
        for _ in range(1200):
            execution = (await client.get(f"/api/executions/{execution_id}")).json()
            if execution.get("finished_at"):
                break
            await asyncio.sleep(0.1)
        assert execution["status"] == "succeeded", execution

        # No event carries the data: the largest is a small fraction of 1 MB.
        events = (await client.get(f"/api/executions/{execution_id}/events")).json()["events"]
        largest = max(len(json.dumps(event)) for event in events)
        assert largest < 1024 * 1024

        # The last node's whole output, streamed by the API from the object store.
        size = 0
        async with client.stream(
            "GET", f"/api/executions/{execution_id}/nodes/tag/output"
        ) as streamed:
            assert streamed.status_code == 200
            body = bytearray()
            async for chunk in streamed.aiter_bytes():
                body += chunk
                size += len(chunk)
        output = json.loads(body)
        assert len(output["main"]) == ITEMS
        assert output["main"][-1] == {"n": ITEMS - 1, "padding": "x" * PADDING, "tagged": True}
    peaks = {name: peak_rss_mb(system.processes[name].pid) for name in SERVICES}
    # The custom node ran in a worker process of the runner: count those too.
    for child in worker_pids(system.processes["runner"].pid):
        peaks[f"runner worker {child}"] = peak_rss_mb(child)
    print(  # noqa: T201 - the measured figures are this test's report (docs/benchmarks.md)
        f"\nlarge data: {ITEMS} items, {size / 1e6:.1f} MB out of the last node; largest "
        f"event {largest} bytes; peak RSS (MB): "
        + ", ".join(f"{name} {mb:.0f}" for name, mb in peaks.items())
    )
    assert max(peaks.values()) < 600, peaks
