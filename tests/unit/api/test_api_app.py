"""The app factory: no connection at creation, auth and health without any server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from nodedrop.api.app import ConfigurationError, create_app
from nodedrop.api.settings import ApiSettings


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # No lifespan: nothing is connected, which the answers below must survive.
    app = create_app(ApiSettings(admin_token="k"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


async def test_health_needs_no_key_and_no_server(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_auth_comes_before_everything(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/workflows")).status_code == 401
    assert (await client.post("/api/executions", json={"bogus": 1})).status_code == 401


async def test_without_connections_the_answer_is_503(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/workflows", headers={"Authorization": "Bearer k"})
    assert response.status_code == 503
    # Pure endpoints still answer.
    types = await client.get("/api/node-types", headers={"Authorization": "Bearer k"})
    assert types.status_code == 200


async def test_lifespan_refuses_to_start_without_urls() -> None:
    app = create_app(ApiSettings())
    with pytest.raises(ConfigurationError, match="NODEDROP_NATS_URL"):
        async with app.router.lifespan_context(app):
            pass
