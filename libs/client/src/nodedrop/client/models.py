"""Typed answers of the API.

Every model accepts fields it does not know (``extra="allow"``): the API only ever adds fields
(docs/api.md), and an older client must keep reading a newer server's answers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

#: Execution statuses after which nothing changes any more.
FINISHED_STATUSES = frozenset({"succeeded", "partial", "failed", "cancelled", "timed_out"})


class Answer(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Workflow(Answer):
    """A saved workflow: its definition plus ``id``, ``version`` and times."""

    id: str
    version: int
    name: str
    nodes: list[dict[str, Any]]
    connections: list[dict[str, Any]] = []
    settings: dict[str, Any] = {}
    owner: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def definition(self) -> dict[str, Any]:
        """The definition alone, as ``POST /api/workflows`` takes it: its own fields, none of
        what the server adds (id, version, times, a draft's ``problems``, or fields a newer
        server answers with, which a save would refuse)."""
        return self.model_dump(mode="json", include=set(DEFINITION_FIELDS))


#: The fields of a workflow definition (docs/api.md, "Workflows").
DEFINITION_FIELDS = frozenset({"name", "nodes", "connections", "settings"})


class NodeState(Answer):
    """One node of an execution's plan."""

    status: str
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    output: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    skip_reason: str | None = None
    pinned: bool = False


class ExecutionSummary(Answer):
    """An execution as lists show it (without its nodes)."""

    id: str
    workflow_id: str | None = None
    workflow_version: int | None = None
    mode: str = "trigger"
    trigger: str | None = None
    node: str | None = None
    status: str
    requested_by: str | None = None
    rerun_of: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: dict[str, Any] | None = None
    last_seq: int = 0

    @property
    def finished(self) -> bool:
        return self.finished_at is not None or self.status in FINISHED_STATUSES


class Execution(ExecutionSummary):
    """``GET /api/executions/{id}``: the execution with every node of its plan."""

    nodes: dict[str, NodeState] = {}


class Accepted(Answer):
    """202 of a submit or a rerun: the new execution's id (``rerun_of`` for a rerun)."""

    id: str
    status: str = "queued"
    rerun_of: str | None = None


class CancelRequested(Answer):
    id: str
    cancel_requested: bool = True


class Event(Answer):
    """One event of an execution, as the events endpoint and the WebSocket send it."""

    seq: int
    type: str
    time: datetime
    execution_id: str
    node: str | None = None
    attempt: int | None = None
    event_id: str | None = None
    #: The event's schema version (1 from servers that did not send it).
    v: int = 1
    actor: str | None = None
    data: dict[str, Any] = {}


class LogLine(Answer):
    seq: int | None = None
    time: datetime
    level: str
    node: str | None = None
    message: str


class NodeType(Answer):
    type: str
    display_name: str
    category: str
    description: str = ""
    parameters_schema: dict[str, Any] = {}
    outputs: list[str] = []


ItemT = TypeVar("ItemT", bound=BaseModel)


class Page(BaseModel, Generic[ItemT]):
    """One page of a list; ``next_cursor`` is ``None`` on the last."""

    model_config = ConfigDict(extra="allow", frozen=True)

    items: list[ItemT]
    next_cursor: str | None = None
