"""What a node implementation is: the interface between the runner and a node's code."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import msgspec

from nodedrop.contracts.events import LogLevel, LogLine
from nodedrop.contracts.items import PortItems

#: A node writes at most this many lines per attempt, of at most this many characters.
MAX_LOG_LINES = 1000
MAX_LOG_CHARS = 10_000


class NodeLog(msgspec.Struct):
    """``ctx.log``: lines recorded with the attempt's result (event ``NodeLogged``), shown by
    ``GET /api/executions/{id}/logs`` and on the WebSocket."""

    lines: list[LogLine] = msgspec.field(default_factory=list)

    def debug(self, message: str) -> None:
        self.write("debug", message)

    def info(self, message: str) -> None:
        self.write("info", message)

    def warning(self, message: str) -> None:
        self.write("warning", message)

    def error(self, message: str) -> None:
        self.write("error", message)

    def write(self, level: LogLevel, message: str, time: datetime | None = None) -> None:
        """A line at ``level``, stamped ``time`` (default: now; a sandboxed node's lines keep
        the time they were written there)."""
        if len(self.lines) >= MAX_LOG_LINES:
            return
        if len(self.lines) == MAX_LOG_LINES - 1:
            level, message = "warning", f"log truncated: at most {MAX_LOG_LINES} lines"
        # A NUL cannot be stored by the projection: replaced here, so that the event log and
        # the projection hold the same line.
        text = str(message)[:MAX_LOG_CHARS].replace("\x00", "\ufffd")
        self.lines.append(LogLine(time=time or datetime.now(UTC), level=level, message=text))


class Credential(msgspec.Struct, frozen=True, kw_only=True):
    """A credential the node's parameters name, resolved and decrypted by the runner for this
    attempt (docs/credentials.md): ``fields`` holds all its fields, the secret ones included.
    Its repr shows no field: a node that logs or raises with it shows only its id."""

    id: str
    type: str
    name: str
    fields: dict[str, Any]
    #: Which of ``fields`` are secret.
    secret_fields: list[str] = []

    def __repr__(self) -> str:
        return f"Credential(id={self.id!r}, type={self.type!r})"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class NodeContext:
    """Which attempt of which node is running; ids for idempotency keys and logs."""

    execution_id: str
    node: str
    attempt: int
    trigger: str | None = None
    #: Outputs of earlier nodes that this node's expressions read: ``nodes["id"]["main"]``.
    upstream: Mapping[str, PortItems] = field(default_factory=dict)
    #: Where the node writes log lines: ``ctx.log.info("fetched 3 orders")``.
    log: NodeLog = field(default_factory=NodeLog)
    #: The credentials the node's credential parameters name, by parameter name (filled by the
    #: runner before the node runs; see :meth:`credential`).
    credentials: dict[str, Credential] = field(default_factory=dict)
    #: Secret values derived while running (an access token, a header built from a password):
    #: the runner redacts them, with the credentials' own, from the attempt's log and error.
    derived_secrets: list[str] = field(default_factory=list)

    def credential(self, parameter: str = "credential") -> Credential:
        """The credential named by the node's parameter ``parameter``; a ``CredentialError``
        (not retried) when the parameter names none."""
        found = self.credentials.get(parameter)
        if found is None:
            raise NodeError(
                "CredentialError", f"parameter {parameter!r} names no credential", retryable=False
            )
        return found


@runtime_checkable
class NodeImplementation(Protocol):
    """One node type's code. ``run`` gets the node's input ``{port: items}`` and its parameters
    and returns its output ``{port: items}``; it fails by raising (:class:`NodeError` to choose
    the error type and whether a retry may help)."""

    type: str

    async def run(
        self, ctx: NodeContext, node_input: PortItems, parameters: dict[str, Any]
    ) -> PortItems: ...


class NodeError(Exception):
    """A failure a node reports on purpose, with the error type users see and can list in
    ``retry.non_retryable_errors``. ``retryable=False`` fails the node without retrying.
    ``stack`` replaces the recorded traceback (a sandboxed node's is the user's own code's)."""

    def __init__(
        self, type: str, message: str, retryable: bool = True, stack: str | None = None
    ) -> None:
        super().__init__(message)
        self.type = type
        self.message = message
        self.retryable = retryable
        self.stack = stack
