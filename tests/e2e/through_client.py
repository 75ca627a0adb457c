"""The client library over a test's own ``httpx.AsyncClient`` (the ``client`` fixture), for
tests that also send raw requests."""

from __future__ import annotations

from typing import Any

import httpx

from nodedrop.client import AsyncClient


def library(client: httpx.AsyncClient) -> AsyncClient:
    return AsyncClient(str(client.base_url), http=client)


async def submit(client: httpx.AsyncClient, **body: Any) -> str:
    """``POST /api/executions`` of an inline ``workflow`` or a saved ``workflow_id``; its id."""
    return (await library(client).submit(**body)).id


async def finished(
    client: httpx.AsyncClient, execution_id: str, timeout_s: float = 30.0
) -> dict[str, Any]:
    """The execution once it finished, as the library's model dumped to JSON (its times are
    written with microseconds: compare them with the API's own answers as times, not text)."""
    execution = await library(client).wait_for(execution_id, timeout_s)
    return execution.model_dump(mode="json")
