"""Small steps through the public REST API that several end-to-end journeys share."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx


async def submit(client: httpx.AsyncClient, **body: Any) -> str:
    """``POST /api/executions``; the new execution's id (the request must be accepted)."""
    response = await client.post("/api/executions", json=body)
    assert response.status_code == 202, response.text
    execution_id: str = response.json()["id"]
    return execution_id


async def finished(
    client: httpx.AsyncClient, execution_id: str, timeout_s: float = 30.0
) -> dict[str, Any]:
    """The execution once the projection has seen it end."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    body: dict[str, Any] = {}
    while loop.time() < deadline:
        body = (await client.get(f"/api/executions/{execution_id}")).json()
        if body.get("finished_at"):
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"{execution_id} did not finish within {timeout_s} s: {body}")
