"""With tracing on, a node's span on the runner belongs to the trace of the API request."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from .conftest import running_system
from .system import System

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def traced(pg_server_url: str) -> AsyncIterator[System]:
    exporter = {"NODEDROP_OTEL_EXPORTER": "jsonl:{log_dir}/spans.jsonl"}
    async with running_system(pg_server_url, exporter) as system:
        yield system


def spans(system: System) -> list[dict[str, Any]]:
    # Every service appends its spans to the same file.
    path = system.log_dir / "spans.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def test_the_runners_node_spans_join_the_requests_trace(traced: System) -> None:
    workflow = {
        "name": "traced",
        "nodes": [{"id": "start", "type": "manual_trigger"}, {"id": "work", "type": "noop"}],
        "connections": [{"from": "start", "to": "work"}],
    }
    async with httpx.AsyncClient(base_url=traced.base_url, headers=traced.headers) as client:
        response = await client.post("/api/executions", json={"workflow": workflow})
        assert response.status_code == 202
        execution_id = response.json()["id"]
        for _ in range(200):
            names = {s["name"] for s in spans(traced)}
            if {"node start", "node work"} <= names:
                break
            await asyncio.sleep(0.05)
    recorded = spans(traced)
    request = [
        s
        for s in recorded
        if s["name"] == "execution requested"
        and s["attributes"]["nodedrop.execution_id"] == execution_id
    ]
    assert len(request) == 1
    trace_id = request[0]["context"]["trace_id"]
    nodes = [
        s
        for s in recorded
        if s["name"].startswith("node ")
        and s["attributes"]["nodedrop.execution_id"] == execution_id
    ]
    assert sorted(s["name"] for s in nodes) == ["node start", "node work"]
    assert {s["context"]["trace_id"] for s in nodes} == {trace_id}
    assert {s["parent_id"] for s in nodes} == {request[0]["context"]["span_id"]}
    assert {s["resource"]["attributes"]["service.name"] for s in nodes} == {"nodedrop-runner"}
