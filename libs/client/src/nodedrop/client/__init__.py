"""nodedrop's Python client: ``Client`` (sync) and ``AsyncClient`` (asyncio), typed answers,
and exceptions that carry the API's problem details. docs/client.md has examples."""

from nodedrop.client.aio import AsyncClient
from nodedrop.client.errors import (
    ApiError,
    ClientError,
    Conflict,
    ConnectionFailed,
    Forbidden,
    NotFound,
    Problem,
    StreamLost,
    TooLarge,
    Unauthorized,
    Unavailable,
    ValidationFailed,
    WaitTimedOut,
)
from nodedrop.client.follow import Reconnecting
from nodedrop.client.models import (
    Accepted,
    CancelRequested,
    Event,
    Execution,
    ExecutionSummary,
    LogLine,
    NodeState,
    NodeType,
    Page,
    Workflow,
)
from nodedrop.client.sync import Client

__all__ = [
    "Accepted",
    "ApiError",
    "AsyncClient",
    "CancelRequested",
    "Client",
    "ClientError",
    "Conflict",
    "ConnectionFailed",
    "Event",
    "Execution",
    "ExecutionSummary",
    "Forbidden",
    "LogLine",
    "NodeState",
    "NodeType",
    "NotFound",
    "Page",
    "Problem",
    "Reconnecting",
    "StreamLost",
    "TooLarge",
    "Unauthorized",
    "Unavailable",
    "ValidationFailed",
    "WaitTimedOut",
    "Workflow",
]
