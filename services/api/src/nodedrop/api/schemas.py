"""Request and response bodies (docs/api.md), so /openapi.json describes them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from nodedrop.api.definitions import WorkflowJson
from nodedrop.contracts.events import ExecutionMode
from nodedrop.contracts.nodetypes import Category
from nodedrop.contracts.workflow import MAX_TIMEOUT_MS

ExecutionStatus = Literal[
    "queued", "running", "succeeded", "partial", "failed", "cancelled", "timed_out"
]
NodeStatus = Literal[
    "pending", "queued", "running", "retrying", "succeeded", "failed", "skipped", "cancelled"
]


class Message(BaseModel):
    detail: str


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class WorkflowListed(BaseModel):
    """A saved workflow in a list: its definition plus id, version and times."""

    id: str
    version: int
    name: str
    nodes: list[dict[str, Any]]
    connections: list[dict[str, Any]] = []
    settings: dict[str, Any] = {}
    owner: str
    created_at: str
    updated_at: str


class WorkflowOut(WorkflowListed):
    """A saved workflow and its problems."""

    #: What a run would refuse (``{"loc", "msg", "type"}``, ``loc`` within the definition);
    #: empty when it can run. Only a draft (``?draft=true``) is stored with problems.
    problems: list[dict[str, Any]] = []


class WorkflowPage(BaseModel):
    items: list[WorkflowListed]
    next_cursor: str | None


class ExecutionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workflow_id: str | None = Field(default=None, description="a saved workflow (or `workflow`)")
    workflow: WorkflowJson | None = Field(default=None, description="an inline definition")
    mode: ExecutionMode = "trigger"
    trigger: str | None = Field(
        default=None, description="the trigger node; optional when the workflow has one"
    )
    node: str | None = Field(default=None, description="node mode: the node to run")
    input: Any = Field(
        default=None,
        description="trigger mode: a list of JSON objects (default [{}]); node mode: "
        "{port: [JSON objects]} (default: the outputs its parents recorded)",
    )
    # Strict, like node-level settings: "100" or true is an error, not a number.
    timeout_ms: int | None = Field(default=None, ge=1, le=MAX_TIMEOUT_MS, strict=True)


class ExecutionAccepted(BaseModel):
    id: str
    status: Literal["queued"] = "queued"


class RerunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_node: str = Field(
        description="the node to run again, with everything downstream of it; the outputs "
        "recorded upstream of it are reused"
    )


class RerunAccepted(ExecutionAccepted):
    rerun_of: str


class CancelAccepted(BaseModel):
    id: str
    cancel_requested: bool = True


class NodeExecutionOut(BaseModel):
    status: NodeStatus | str
    attempts: int
    started_at: str | None
    finished_at: str | None
    output: dict[str, Any] | None
    error: dict[str, Any] | None
    skip_reason: str | None
    pinned: bool = False
    #: ``execute_workflow``: the child executions the node started, in item order.
    children: list[str] | None = None
    #: A node failed for good: what the scheduler made of it (``fail``, ``continue``,
    #: ``error_output``), as recorded in its ``NodeFailureHandled``.
    outcome: str | None = None


class ChildExecution(BaseModel):
    """A child execution an ``execute_workflow`` node of this execution started."""

    id: str
    node: str | None
    workflow_id: str | None
    status: ExecutionStatus | str


class ExecutionSummary(BaseModel):
    id: str
    workflow_id: str | None
    workflow_version: int | None
    mode: str
    trigger: str | None
    node: str | None
    status: ExecutionStatus | str
    requested_by: str
    rerun_of: str | None = None
    #: A child of an ``execute_workflow`` node: the parent execution and that node.
    parent_execution_id: str | None = None
    parent_node: str | None = None
    created_at: str
    started_at: str | None
    finished_at: str | None
    error: dict[str, Any] | None
    last_seq: int


class ExecutionOut(ExecutionSummary):
    nodes: dict[str, NodeExecutionOut]
    #: Executions its ``execute_workflow`` nodes started, oldest first.
    children: list[ChildExecution] = []


class ExecutionPage(BaseModel):
    items: list[ExecutionSummary]
    next_cursor: str | None


class PublicEvent(BaseModel):
    seq: int
    type: str
    time: str
    execution_id: str
    node: str | None
    attempt: int | None
    event_id: str
    #: The event's schema version (a history's reader needs its ``ExecutionStarted``'s).
    v: int = 1
    #: The user who caused the event (a request, a cancel); None for the system's own events.
    actor: str | None = None
    data: dict[str, Any]


class EventList(BaseModel):
    events: list[PublicEvent]


class LogEntry(BaseModel):
    seq: int
    time: str
    level: str
    node: str | None
    message: str


class LogList(BaseModel):
    logs: list[LogEntry]


class NodeTypeOut(BaseModel):
    type: str
    display_name: str
    category: Category
    description: str
    parameters_schema: dict[str, Any]
    outputs: list[str]


class NodeTypeList(BaseModel):
    items: list[NodeTypeOut]
