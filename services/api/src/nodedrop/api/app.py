"""The app factory. Connections open in the lifespan, never at import time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from nats.aio.client import Client as NatsClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from nodedrop.api import ws_relay
from nodedrop.api.auth import key_verifier
from nodedrop.api.db import create_engine, session_factory
from nodedrop.api.definitions import openapi_schemas
from nodedrop.api.deps import get_current_user
from nodedrop.api.entry import RefuseNul
from nodedrop.api.errors import install_error_handlers
from nodedrop.api.eventlog import EventLog
from nodedrop.api.limits import BodySizeLimit
from nodedrop.api.resources import Resources
from nodedrop.api.routes import (
    credential_types,
    credentials,
    executions,
    expressions,
    health,
    node_types,
    outputs,
    users,
    webhooks,
    workflows,
)
from nodedrop.api.schedules import ScheduleStore
from nodedrop.api.schemas import Message
from nodedrop.api.secret_keys import SecretKeys
from nodedrop.api.settings import ApiSettings
from nodedrop.api.waiters import FinishedNotices, Waiters
from nodedrop.api.webui import install_web_ui
from nodedrop.contracts.credential_types import CredentialTypeRegistry
from nodedrop.contracts.nodetypes import NodeTypeRegistry
from nodedrop.platform import natsconnect
from nodedrop.platform.datastore import DataStore
from nodedrop.platform.jetstream import ensure_jetstream
from nodedrop.platform.natsconnect import NatsSettings
from nodedrop.platform.ops import Check, CheckResult, PeriodicCheck, nats_connected
from nodedrop.platform.secretbox import SecretKey, SecretKeyError

log = logging.getLogger(__name__)


class ConfigurationError(RuntimeError):
    pass


async def _connect_nats(settings: NatsSettings) -> NatsClient:
    client: list[NatsClient] = []

    async def disconnected() -> None:
        if client and not (client[0].is_closed or client[0].is_draining):
            log.warning("NATS connection lost; reconnecting")

    async def reconnected() -> None:
        log.info("NATS connection restored")

    async def error(exc: Exception) -> None:
        # nats-py's default logs a traceback for every failed reconnect attempt.
        log.warning("NATS: %r", exc)

    nc = await natsconnect.connect(
        settings,
        name="nodedrop-api",
        connect_timeout=5,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        # No reconnect buffer: a publish while disconnected fails at once (a 503 that truly
        # recorded nothing) instead of being sent later, after the client was told it failed.
        pending_size=0,
        disconnected_cb=disconnected,
        reconnected_cb=reconnected,
        error_cb=error,
    )
    client.append(nc)
    return nc


#: /readyz before the lifespan connected (or after it closed): not ready.
_NOT_STARTED: dict[str, Check] = {"started": lambda: CheckResult(False, "not started")}


@asynccontextmanager
async def _readiness(app: FastAPI, nc: NatsClient, engine: AsyncEngine) -> AsyncIterator[None]:
    """/readyz's checks while the app runs: NATS connected, PostgreSQL answering (probed in
    the background)."""

    async def select_one() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    database = PeriodicCheck("PostgreSQL", select_one)
    probing = asyncio.Event()
    probes = asyncio.create_task(database.run(probing), name="database readiness")
    app.state.checks = {"nats": nats_connected(lambda: nc.is_connected), "database": database}
    try:
        yield
    finally:
        app.state.checks = _NOT_STARTED
        probing.set()
        await probes


async def _open_resources(
    config: ApiSettings, nc: NatsClient, engine: AsyncEngine, notices: FinishedNotices
) -> Resources:
    js = nc.jetstream()
    streams = config.streams
    await ensure_jetstream(js, streams)
    sessions = session_factory(engine)
    await notices.start(nc, executions.body_reader(sessions), executions.finished_filter(sessions))
    return Resources(
        nc=nc,
        engine=engine,
        sessions=sessions,
        events=EventLog(nc, js, layout=streams.layout),
        schedules=await ScheduleStore.open(js, streams.replicas),
        data=DataStore(js, replicas=streams.replicas),
        waiters=notices.waiters,
    )


def create_app(
    config: ApiSettings,
    *,
    registry: NodeTypeRegistry | None = None,
    max_body_bytes: int | None = None,
    secret_key: SecretKey | None = None,
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not config.nats_url or not config.database_url:
            raise ConfigurationError(
                "the api needs NODEDROP_NATS_URL and NODEDROP_DATABASE_URL "
                "(`nodedrop up` sets both)"
            )
        if not config.admin_token:
            log.warning("NODEDROP_ADMIN_TOKEN is not set: only users' keys are accepted")
        nc = await _connect_nats(config.nats_settings())
        engine = create_engine(config.database_url)
        notices = FinishedNotices(Waiters())
        try:
            try:
                keys = SecretKeys(secret_key or config.credentials_key)
                await keys.check_at_start(engine)
            except SecretKeyError as error:
                raise ConfigurationError(str(error)) from None
            app.state.secret_keys = keys
            app.state.resources = await _open_resources(config, nc, engine, notices)
            async with _readiness(app, nc, engine):
                yield
        finally:
            app.state.resources = None
            await notices.stop()
            await nc.drain()
            await engine.dispose()

    app = FastAPI(
        title="nodedrop",
        summary="Event-sourced workflow engine: REST API",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.registry = registry or NodeTypeRegistry.with_plugins()
    app.state.credential_types = CredentialTypeRegistry.with_plugins()
    app.state.secret_keys = SecretKeys(None)
    app.state.resources = None
    app.state.checks = _NOT_STARTED
    app.state.keys = key_verifier(app, config.admin_token)
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes or config.max_body_bytes)
    app.add_middleware(RefuseNul)

    api = APIRouter(
        prefix="/api",
        dependencies=[Depends(get_current_user)],
        responses={
            401: {"model": Message, "description": "missing or invalid API key"},
            503: {"model": Message, "description": "database or event log unavailable"},
        },
    )
    # Routes are matched in order: the busiest first (each route tried costs a few µs).
    api.include_router(executions.router)
    api.include_router(workflows.router)
    api.include_router(outputs.router)
    api.include_router(node_types.router)
    api.include_router(expressions.router)
    api.include_router(credentials.router)
    api.include_router(credential_types.router)
    api.include_router(users.router)
    app.include_router(api)
    app.include_router(health.router)
    # Not under /api and not behind the bearer key: a webhook node's own secret guards it.
    app.include_router(webhooks.router)
    app.include_router(ws_relay.router)
    _document_definitions(app)
    install_web_ui(app, config.web_dir)  # last: its catch-all must not shadow an API route
    return app


def _document_definitions(app: FastAPI) -> None:
    """Definitions are validated by ``validate_workflow`` from plain JSON, so FastAPI does not
    see their model: add the Workflow schemas to the document's components."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()  # cached by FastAPI in app.openapi_schema
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(openapi_schemas())
        return generate()

    app.openapi = openapi  # type: ignore[method-assign]
