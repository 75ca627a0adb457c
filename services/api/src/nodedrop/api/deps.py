"""Dependencies of the routes, as ``Annotated`` aliases (one place to swap an implementation).

Every dependency is ``async def``, even the trivial ones: FastAPI runs a plain ``def``
dependency in a worker thread, a thread hand-off per dependency per request that cost more CPU
than the rest of a request's dependencies together (docs/benchmarks.md, "CPU per execution").
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel.ext.asyncio.session import AsyncSession

from nodedrop.api.auth import User
from nodedrop.api.errors import ServiceUnavailableError
from nodedrop.api.eventlog import EventLog
from nodedrop.api.resources import Resources
from nodedrop.api.schedules import ScheduleStore
from nodedrop.api.settings import ApiSettings
from nodedrop.contracts.nodetypes import NodeTypeRegistry
from nodedrop.platform.apikeys import KeyVerifier
from nodedrop.platform.datastore import DataStore

_bearer = HTTPBearer(auto_error=False, description="an API key: `Authorization: Bearer <key>`")


async def get_config(request: Request) -> ApiSettings:
    return cast(ApiSettings, request.app.state.config)


async def get_registry(request: Request) -> NodeTypeRegistry:
    return cast(NodeTypeRegistry, request.app.state.registry)


async def get_resources(request: Request) -> Resources:
    resources = getattr(request.app.state, "resources", None)
    if resources is None:
        raise ServiceUnavailableError("the API is starting or stopping")
    return cast(Resources, resources)


ConfigDep = Annotated[ApiSettings, Depends(get_config)]
RegistryDep = Annotated[NodeTypeRegistry, Depends(get_registry)]
ResourcesDep = Annotated[Resources, Depends(get_resources)]


@dataclass(frozen=True, slots=True)
class Running:
    """The running app's configuration, node types and connections, as one dependency: for the
    hot routes (``POST /api/executions``), where each dependency FastAPI solves costs ~15 µs."""

    config: ApiSettings
    registry: NodeTypeRegistry
    resources: Resources


async def get_running(request: Request) -> Running:
    state = request.app.state
    return Running(state.config, state.registry, await get_resources(request))


RunningDep = Annotated[Running, Depends(get_running)]


@asynccontextmanager
async def open_session(resources: Resources) -> AsyncIterator[AsyncSession]:
    """A database session; connection errors become 503. For a route that needs the database
    only on some paths (``SessionDep`` opens one for every request)."""
    async with resources.sessions() as session:
        try:
            yield session
        except (OSError, TimeoutError) as error:
            # asyncpg's connection errors reach the route unwrapped by SQLAlchemy. (The event
            # log wraps its own, so what gets here comes from the database.)
            raise ServiceUnavailableError(
                f"the database is unavailable ({type(error).__name__}), try again later"
            ) from error


async def get_session(resources: ResourcesDep) -> AsyncIterator[AsyncSession]:
    async with open_session(resources) as session:
        yield session


async def get_event_log(resources: ResourcesDep) -> EventLog:
    return resources.events


async def get_schedule_store(resources: ResourcesDep) -> ScheduleStore:
    return resources.schedules


async def get_data_store(resources: ResourcesDep) -> DataStore:
    return resources.data


SessionDep = Annotated[AsyncSession, Depends(get_session)]
DataStoreDep = Annotated[DataStore, Depends(get_data_store)]
EventLogDep = Annotated[EventLog, Depends(get_event_log)]
ScheduleStoreDep = Annotated[ScheduleStore, Depends(get_schedule_store)]


async def get_key_verifier(request: Request) -> KeyVerifier:
    return cast(KeyVerifier, request.app.state.keys)


KeyVerifierDep = Annotated[KeyVerifier, Depends(get_key_verifier)]


async def get_current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The caller, from its API key (the admin token or a user's key)."""
    # The verifier is read here rather than through KeyVerifierDep: every API request solves
    # this dependency (twice when a route names it too), and each level costs ~15 µs.
    verifier = await get_key_verifier(request)
    user = await verifier.verify(credentials.credentials if credentials else None)
    if user is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or invalid API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return user


async def get_admin(user: Annotated[User, Depends(get_current_user)]) -> User:
    """The caller, who must be an admin. Others get 403: the route exists, they may not use it."""
    if not user.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only an admin may do this")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]
AdminUser = Annotated[User, Depends(get_admin)]
