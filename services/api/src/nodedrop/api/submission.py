"""Recording an ``ExecutionRequested``: the one way the api starts an execution
(``POST /api/executions`` and ``POST /webhooks/...``)."""

from __future__ import annotations

from typing import Any

from opentelemetry import trace

from nodedrop.api.eventlog import EventLog
from nodedrop.api.timefmt import utcnow
from nodedrop.api.workflow_store import new_id
from nodedrop.contracts import ids
from nodedrop.contracts.definition_secrets import masked
from nodedrop.contracts.events import ExecutionMode, ExecutionRequested
from nodedrop.contracts.items import Item, PortItems
from nodedrop.contracts.workflow import Workflow
from nodedrop.platform import tracing

_tracer = trace.get_tracer("nodedrop.api")


async def request_execution(
    events: EventLog,
    *,
    workflow: Workflow | dict[str, Any],
    requested_by: str,
    mode: ExecutionMode,
    trigger: str | None,
    node: str | None,
    run_input: list[Item] | PortItems | None,
    timeout_ms: int | None = None,
    workflow_id: str | None = None,
    workflow_version: int | None = None,
    rerun_of: str | None = None,
    reused_outputs: dict[str, PortItems] | None = None,
    execution_id: str | None = None,
) -> str:
    """Record the request under a new execution id and return the id once JetStream has
    acknowledged it. Raises what :meth:`EventLog.append` raises (503, 413). ``workflow`` is a
    definition, or (a rerun) the snapshot another request recorded, kept as it was.
    ``execution_id``: a fresh id the caller made (:func:`new_id`) to wait on before the request
    is recorded."""
    execution_id = execution_id or new_id()
    # The request's span is the root of the execution's trace: its context is recorded in the
    # event, and every node's span on a runner joins it.
    with _tracer.start_as_current_span(
        "execution requested",
        attributes={"nodedrop.execution_id": execution_id, "nodedrop.mode": mode},
    ):
        await events.append(
            ExecutionRequested(
                event_id=ids.execution_requested(execution_id),
                execution_id=execution_id,
                time=utcnow(),
                workflow=masked(workflow.to_json() if isinstance(workflow, Workflow) else workflow),
                requested_by=requested_by,
                mode=mode,
                trigger=trigger,
                node=node,
                input=run_input,
                timeout_ms=timeout_ms,
                workflow_id=workflow_id,
                workflow_version=workflow_version,
                rerun_of=rerun_of,
                reused_outputs=reused_outputs or {},
                trace_context=tracing.current_context(),
            )
        )
    return execution_id
