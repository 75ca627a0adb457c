"""The runner's part of an ``execute_workflow`` attempt: find the workflow to call.

The runner reads the saved workflow from PostgreSQL (as the task's requester's own: a user can
call only their own workflows), checks the call depth and the trigger, and answers the attempt
with ``WorkflowCalled``: the definition and each child's input. It starts nothing itself; the
scheduler starts the children from that event and the node waits there, holding no runner slot
(docs/architecture.md, "Sub-workflows").

Every refusal is a ``NodeFailed`` that is not retried (the same call would be refused again),
except a database that does not answer, which the node's retry policy may try again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
import pydantic

from nodedrop.contracts import ids
from nodedrop.contracts.definition_secrets import masked
from nodedrop.contracts.events import ErrorInfo, NodeReady, WorkflowCalled
from nodedrop.contracts.items import Item
from nodedrop.contracts.nodetypes import (
    BUILTIN_SPECS,
    ExecuteWorkflowParameters,
    NodeTypeRegistry,
    passthrough_items,
)
from nodedrop.contracts.workflow import Workflow, WorkflowInvalid, validate_workflow
from nodedrop.runner.credentials import asyncpg_dsn

#: The node type whose attempts this module answers.
CALL_TYPE = "execute_workflow"
#: Default of NODEDROP_MAX_WORKFLOW_DEPTH: how deep ``execute_workflow`` calls may nest.
DEFAULT_MAX_DEPTH = 10
WORKFLOW_NOT_FOUND = "WorkflowNotFound"
DEPTH_EXCEEDED = "WorkflowDepthExceeded"
INVALID_WORKFLOW = "InvalidWorkflow"

_TRIGGER_TYPES = frozenset(spec.type for spec in BUILTIN_SPECS if spec.is_trigger)


@dataclass(frozen=True, slots=True)
class SavedWorkflow:
    id: str
    version: int
    owner: str
    definition: dict[str, Any]


class WorkflowSource(Protocol):
    async def find(self, workflow_id: str, version: int | None) -> SavedWorkflow | None:
        """The workflow at ``version`` (None: its latest), unless it is unknown or deleted."""
        ...


_LATEST = """
SELECT id, version, owner, definition FROM workflows WHERE id = $1 AND deleted_at IS NULL
"""
_PINNED = """
SELECT w.id, v.version, w.owner, v.definition
FROM workflows w JOIN workflow_versions v ON v.workflow_id = w.id
WHERE w.id = $1 AND v.version = $2 AND w.deleted_at IS NULL
"""


class PostgresWorkflows:
    """Saved workflows read from the api's tables (``NODEDROP_DATABASE_URL``)."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, database_url: str) -> PostgresWorkflows:
        # min_size 0: no connection is opened until the first call.
        pool = await asyncpg.create_pool(asyncpg_dsn(database_url), min_size=0, max_size=2)
        return cls(pool)

    async def find(self, workflow_id: str, version: int | None) -> SavedWorkflow | None:
        async with self._pool.acquire() as conn:
            if version is None:
                row = await conn.fetchrow(_LATEST, workflow_id)
            else:
                row = await conn.fetchrow(_PINNED, workflow_id, version)
        if row is None:
            return None
        definition = row["definition"]
        if isinstance(definition, str):  # asyncpg hands jsonb over as text
            definition = json.loads(definition)
        return SavedWorkflow(row["id"], row["version"], row["owner"], definition)

    async def aclose(self) -> None:
        await self._pool.close()


class WorkflowCaller:
    """Answers ``execute_workflow`` attempts. Without a source (no database), every call
    fails, naming why."""

    def __init__(
        self,
        source: WorkflowSource | None,
        *,
        max_depth: int = DEFAULT_MAX_DEPTH,
        clock: Callable[[], datetime],
        types: NodeTypeRegistry | None = None,
    ) -> None:
        self._source = source
        self._max_depth = max_depth
        self._clock = clock
        #: The node types a called definition is checked against (the built-ins by default).
        self._types = types or NodeTypeRegistry()

    async def call(self, task: NodeReady) -> WorkflowCalled | ErrorInfo:
        try:
            parameters = ExecuteWorkflowParameters.model_validate(task.parameters)
        except pydantic.ValidationError as error:
            return _refused("InvalidParameters", str(error))
        if task.depth + 1 > self._max_depth:
            return _refused(
                DEPTH_EXCEEDED,
                f"calling workflow {parameters.workflow_id} would nest executions "
                f"{task.depth + 1} deep, over the limit of {self._max_depth} "
                "(NODEDROP_MAX_WORKFLOW_DEPTH)",
            )
        if self._source is None:
            return _refused(
                "WorkflowSourceUnavailable",
                "this runner has no NODEDROP_DATABASE_URL to read saved workflows from",
            )
        try:
            saved = await self._source.find(parameters.workflow_id, parameters.version)
        except Exception as error:  # the database unreachable: worth another attempt
            return ErrorInfo(type="WorkflowSourceError", message=repr(error), retryable=True)
        version = f" version {parameters.version}" if parameters.version is not None else ""
        # Another user's workflow reads as unknown: its existence is not theirs to learn.
        if saved is None or task.requester is None or saved.owner != task.requester:
            return _refused(
                WORKFLOW_NOT_FOUND,
                f"no workflow {parameters.workflow_id}{version} of yours to call",
            )
        trigger = parameters.trigger or _default_trigger(saved.definition)
        # A saved workflow may be a draft with problems (docs/api.md, "Drafts"): it is checked
        # in full, as the api checks one before it runs it.
        try:
            workflow = validate_workflow(saved.definition, self._types)
        except WorkflowInvalid as invalid:
            return _refused(INVALID_WORKFLOW, f"the saved workflow cannot run: {invalid}")
        problem = _trigger_problem(workflow, trigger)
        if problem is not None or trigger is None:
            return _refused("InvalidTrigger", problem or "the workflow has no trigger")
        items = passthrough_items(task.input)
        inputs: list[list[Item]] = (
            batches(items, parameters.batch_size) if parameters.mode == "each_item" else [items]
        )
        return WorkflowCalled(
            event_id=ids.workflow_called(task.execution_id, task.node, task.attempt),
            execution_id=task.execution_id,
            time=self._clock(),
            node=task.node,
            attempt=task.attempt,
            workflow_id=saved.id,
            workflow_version=saved.version,
            workflow=masked(saved.definition),
            trigger=trigger,
            mode=parameters.mode,
            concurrency=parameters.concurrency,
            inputs=inputs,
        )


def _default_trigger(definition: dict[str, Any]) -> str | None:
    """Without a ``trigger`` parameter: the first ``error_trigger`` node, else the first
    trigger (an error workflow is called this way)."""
    nodes = [n for n in definition.get("nodes", []) if isinstance(n, dict)]
    for wanted in (("error_trigger",), _TRIGGER_TYPES):
        found = next((n.get("id") for n in nodes if n.get("type") in wanted), None)
        if isinstance(found, str):
            return found
    return None


def _trigger_problem(workflow: Workflow, trigger: str | None) -> str | None:
    if trigger is None:
        return "the workflow has no trigger"
    node = next((n for n in workflow.nodes if n.id == trigger), None)
    if node is None or node.type not in _TRIGGER_TYPES:
        return f"the workflow has no trigger {trigger!r}"
    return None


def _refused(error_type: str, message: str) -> ErrorInfo:
    return ErrorInfo(type=error_type, message=message, retryable=False)


def batches(items: list[Item], size: int) -> list[list[Item]]:
    """``items`` in consecutive groups of ``size``, in order (the last may be shorter); one
    child each."""
    return [items[start : start + size] for start in range(0, len(items), size)]
