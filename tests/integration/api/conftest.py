"""The API against a real nats-server and PostgreSQL (fixtures from tests/fixtures/servers.py).

``api`` runs the app's lifespan in-process and talks to it through httpx's ASGI transport.
The projection tables are written directly where a test needs the notifier's output.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from nats.js import JetStreamContext

from nodedrop.api.app import create_app
from nodedrop.platform.db import migrate

from .harness import TOKEN, WORKFLOW, Api, api_config


@pytest.fixture
async def migrated_database_url(database_url: str) -> str:
    # Alembic's env runs its own event loop: keep it off this one.
    await asyncio.to_thread(migrate.upgrade, database_url)
    return database_url


@pytest.fixture
async def api(
    nats_url: str, migrated_database_url: str, jetstream: JetStreamContext
) -> AsyncIterator[Api]:
    app = create_app(api_config(nats_url, migrated_database_url))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://api",
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as client,
    ):
        yield Api(app=app, client=client, js=jetstream)


@pytest.fixture
def workflow() -> dict[str, Any]:
    """A small valid definition: start -> shape -> big -(true)-> done."""
    return copy.deepcopy(WORKFLOW)


@pytest.fixture
async def anonymous(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the api without the API key (webhooks need none)."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api.app), base_url="http://api"
    ) as client:
        yield client
