"""While NATS is down, a request is refused at once and nothing reaches the stream later.

Has its own nats-server (the session one must stay up for the other tests).
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from nodedrop.api.app import create_app
from nodedrop.contracts.routing import Layout
from nodedrop.embedded import EmbeddedNats

from .harness import TOKEN, api_config

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _stream_count(url: str) -> int:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        return sum([(await js.stream_info(s)).state.messages for s in Layout.from_env().streams])
    finally:
        await nc.close()


async def test_outage_refuses_and_records_nothing(
    tmp_path: Path, migrated_database_url: str, workflow: dict[str, Any]
) -> None:
    server = EmbeddedNats(tmp_path / "nats", port=_free_port())
    server.start()
    app = create_app(api_config(server.url, migrated_database_url))
    body = {"workflow": workflow}
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://api",
                headers={"Authorization": f"Bearer {TOKEN}"},
            ) as client,
        ):
            first = await client.post("/api/executions", json=body)
            assert first.status_code == 202
            await asyncio.to_thread(server.stop)

            started = time.monotonic()
            refused = await client.post("/api/executions", json=body)
            assert refused.status_code == 503
            assert "nothing was recorded" in refused.json()["detail"]
            assert time.monotonic() - started < 1.0
            read = await client.get(f"/api/executions/{first.json()['id']}")
            assert read.status_code == 503
            # The projection-backed endpoints still answer.
            assert (await client.get("/api/workflows")).status_code == 200

            await asyncio.to_thread(server.start)
            for _ in range(100):
                again = await client.post("/api/executions", json=body)
                if again.status_code == 202:
                    break
                await asyncio.sleep(0.1)
            assert again.status_code == 202
            # The refused request was not sent after the reconnect.
            assert await _stream_count(server.url) == 2
    finally:
        await asyncio.to_thread(server.stop)
