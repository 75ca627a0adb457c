"""An execution's events as the API and the WebSocket send them (``codec.to_public``), built
from real events so that they decode: what ``nodedrop run`` folds and prints."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from nodedrop.contracts import codec
from nodedrop.contracts.events import (
    OUTCOMES_RECORDED_VERSION,
    ErrorInfo,
    Event,
    ExecutionCancelRequested,
    ExecutionFinished,
    ExecutionQueued,
    ExecutionRequested,
    ExecutionStarted,
    FailureOutcome,
    FinalStatus,
    NodeCancelled,
    NodeFailed,
    NodeFailureHandled,
    NodeReady,
    NodeRetryScheduled,
    NodeSkipped,
    NodeStarted,
    NodeSucceeded,
    SkipReason,
)
from nodedrop.contracts.items import PortItems

#: Event ``seq`` n happens n seconds after this.
T0 = datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC)

Public = dict[str, Any]


class PublicHistory:
    """Events appended in order; each takes the next ``seq`` (or ``at``) and happens ``seq``
    seconds after :data:`T0`."""

    def __init__(self, execution_id: str = "ex1") -> None:
        self.execution_id = execution_id
        self.seq = 0
        self.events: list[Public] = []

    def add(self, kind: type[Event], at: int | None = None, **fields: Any) -> Public:
        self.seq = self.seq + 1 if at is None else at
        event = kind(
            event_id=f"{self.execution_id}.{self.seq}",
            execution_id=self.execution_id,
            time=T0 + timedelta(seconds=self.seq),
            **fields,
        )
        # Through JSON, as a client receives it.
        public: Public = json.loads(json.dumps(codec.to_public(event, self.seq)))
        self.events.append(public)
        return public

    def running(self, node: str, **started: Any) -> list[Public]:
        """The execution requested and started with ``node`` as its plan, whose first attempt
        runs; ``started``: of :meth:`requested` (``workflow``) and :meth:`started` (``v``)."""
        workflow = started.pop("workflow", None)
        request = self.requested() if workflow is None else self.requested(workflow=workflow)
        return [request, self.started(node, **started), self.ready(node), self.node_started(node)]

    def requested(self, trigger: str = "start", **fields: Any) -> Public:
        workflow = {"nodes": [{"id": trigger, "type": "manual_trigger"}], "connections": []}
        return self.add(
            ExecutionRequested,
            workflow=fields.pop("workflow", workflow),
            requested_by="user-1",
            trigger=trigger,
            **fields,
        )

    def queued(self, key: str, limit: int) -> Public:
        return self.add(ExecutionQueued, scope="workflow", key=key, limit=limit)

    def started(self, *plan: str, v: int = OUTCOMES_RECORDED_VERSION) -> Public:
        return self.add(ExecutionStarted, plan=list(plan), v=v)

    def ready(self, node: str, attempt: int = 1, at: int | None = None) -> Public:
        return self.add(
            NodeReady, at, node=node, attempt=attempt, node_type="noop", input={"main": [{}]}
        )

    def node_started(self, node: str, attempt: int = 1, at: int | None = None) -> Public:
        return self.add(NodeStarted, at, node=node, attempt=attempt)

    def succeeded(
        self, node: str, attempt: int = 1, output: PortItems | None = None, at: int | None = None
    ) -> Public:
        output = {"main": [{}]} if output is None else output
        return self.add(NodeSucceeded, at, node=node, attempt=attempt, output=output)

    def failed(
        self, node: str, attempt: int = 1, message: str = "503", at: int | None = None
    ) -> Public:
        error = ErrorInfo(type="HttpServerError", message=message)
        return self.add(NodeFailed, at, node=node, attempt=attempt, error=error)

    def handled(
        self, node: str, attempt: int, outcome: FailureOutcome, message: str = "503"
    ) -> Public:
        error = ErrorInfo(type="HttpServerError", message=message)
        return self.add(
            NodeFailureHandled,
            node=node,
            attempt=attempt,
            outcome=outcome,
            error=error,
            failed_at=T0 + timedelta(seconds=self.seq),
        )

    def retry(self, node: str, attempt: int, delay_ms: int) -> Public:
        due_at = T0 + timedelta(seconds=self.seq + 1)
        return self.add(
            NodeRetryScheduled, node=node, attempt=attempt, delay_ms=delay_ms, due_at=due_at
        )

    def skipped(self, node: str, reason: SkipReason) -> Public:
        return self.add(NodeSkipped, node=node, reason=reason)

    def cancelled(self, node: str, attempt: int = 1) -> Public:
        return self.add(NodeCancelled, node=node, attempt=attempt)

    def cancel_requested(self, reason: str | None = None) -> Public:
        return self.add(ExecutionCancelRequested, requested_by="user-1", reason=reason)

    def finished(
        self, status: FinalStatus, error: ErrorInfo | None = None, at: int | None = None
    ) -> Public:
        return self.add(ExecutionFinished, at, status=status, error=error)
