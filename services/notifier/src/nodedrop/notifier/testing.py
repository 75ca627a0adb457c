"""Test support shipped with the service: build the event history of an execution the way the
scheduler and the runners record it, with deterministic ids and times; and a projection kept in
memory (:class:`MemoryProjection`) for running the projector in unit tests.

Used by the notifier's unit and integration tests and by its benchmark; no I/O here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from nodedrop.contracts import ids
from nodedrop.contracts.events import (
    OUTCOMES_RECORDED_VERSION,
    AnyEvent,
    ErrorInfo,
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
    NodeWaiting,
    SkipReason,
)
from nodedrop.contracts.failures import FailurePolicy, failure_outcome, policies_in
from nodedrop.contracts.items import PortItems
from nodedrop.notifier.projection import ExecutionRecord, LogLine, NodeKey, NodeRecord, fold

T0 = datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC)


class MemoryProjection:
    """The projection tables as dictionaries, folded with the real :func:`fold` and written
    with the rules of :class:`~nodedrop.notifier.store.ProjectionStore`: a batch and its
    checkpoint at once, events the checkpoint covers skipped, log lines unique."""

    def __init__(self) -> None:
        self.last_seq = 0
        self.executions: dict[str, ExecutionRecord] = {}
        self.nodes: dict[NodeKey, NodeRecord] = {}
        self.logs: dict[tuple[str, int, int], LogLine] = {}
        #: Sequences of the events each commit applied.
        self.commits: list[list[int]] = []
        #: How many of the next commits fail (as while the database restarts).
        self.failures = 0

    async def checkpoint(self) -> int:
        return self.last_seq

    async def apply(self, events: Sequence[tuple[int, AnyEvent]], through_seq: int) -> int:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("database restarting")
        if through_seq <= self.last_seq:
            return 0
        fresh = [(seq, event) for seq, event in events if seq > self.last_seq]
        changes = fold(fresh, self.executions, self.nodes)
        self.executions.update(changes.executions)
        self.nodes.update(changes.nodes)
        for line in changes.logs:
            self.logs.setdefault((line.execution_id, line.seq, line.line), line)
        self.last_seq = through_seq
        self.commits.append([seq for seq, _ in fresh])
        return len(fresh)


@contextlib.asynccontextmanager
async def running(
    loop: Callable[[asyncio.Event], Coroutine[Any, Any, None]], *, within: float = 10.0
) -> AsyncIterator[asyncio.Task[None]]:
    """Run a service loop (``loop(stop)``: a projector's, the pruner's) for the block; then stop
    it and wait up to ``within`` seconds for it to end."""
    stop = asyncio.Event()
    task = asyncio.create_task(loop(stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, within)


def numbered(events: Iterable[AnyEvent], start: int = 1) -> list[tuple[int, AnyEvent]]:
    """Events with consecutive stream sequences, as a consumer sees them."""
    return list(enumerate(events, start=start))


class History:
    """One execution's events, appended in order; every event is 10 ms after the previous."""

    def __init__(
        self,
        execution_id: str = "ex1",
        *,
        start: datetime = T0,
        requested_by: str = "user-1",
        workflow_id: str | None = "wf-1",
        step_ms: int = 10,
    ) -> None:
        self.execution_id = execution_id
        self.requested_by = requested_by
        self.workflow_id = workflow_id
        self.now = start
        self.step = timedelta(milliseconds=step_ms)
        self.events: list[AnyEvent] = []
        self.policies: dict[str, FailurePolicy] = {}
        self.outcomes_recorded = True
        self._runner_lost: dict[str, int] = {}

    def _add(self, event: AnyEvent) -> AnyEvent:
        self.events.append(event)
        self.now += self.step
        return event

    def _common(self, event_id: str) -> dict[str, Any]:
        return {"event_id": event_id, "execution_id": self.execution_id, "time": self.now}

    def requested(
        self,
        *,
        trigger: str | None = "start",
        mode: str = "trigger",
        node: str | None = None,
        rerun_of: str | None = None,
        policies: dict[str, dict[str, Any]] | None = None,
    ) -> AnyEvent:
        """``policies``: ``{node: {"on_error": ..., "retry": {...}}}`` of the nodes that do not
        fail for good at their first failure under ``on_error: fail`` (the default)."""
        nodes = [
            {"id": node, "type": "noop", **fields} for node, fields in (policies or {}).items()
        ]
        self.policies = policies_in({"nodes": nodes}) or {}
        return self._add(
            ExecutionRequested(
                **self._common(ids.execution_requested(self.execution_id)),
                workflow={"name": "test", "nodes": nodes, "connections": []},
                requested_by=self.requested_by,
                mode="node" if mode == "node" else "trigger",
                trigger=trigger,
                node=node,
                workflow_id=self.workflow_id,
                workflow_version=1 if self.workflow_id else None,
                rerun_of=rerun_of,
            )
        )

    @classmethod
    def one_node_succeeded(cls, execution_id: str = "ex1") -> History:
        """A whole execution whose trigger ``start`` ran and succeeded (six events)."""
        history = cls(execution_id)
        history.requested()
        history.started(["start"])
        history.ready("start")
        history.node_started("start")
        history.succeeded("start")
        history.finished("succeeded")
        return history

    def queued(self, scope: str = "workflow", key: str = "wf-1", limit: int = 1) -> AnyEvent:
        return self._add(
            ExecutionQueued(
                **self._common(ids.execution_queued(self.execution_id)),
                scope="user" if scope == "user" else "workflow",
                key=key,
                limit=limit,
            )
        )

    def started(self, plan: list[str], *, outcomes_recorded: bool = True) -> AnyEvent:
        """``outcomes_recorded=False``: a start recorded before the scheduler recorded each
        failure's outcome (``v`` 1), and no ``NodeFailureHandled`` follows a failure."""
        self.outcomes_recorded = outcomes_recorded
        version = OUTCOMES_RECORDED_VERSION if outcomes_recorded else 1
        return self._add(
            ExecutionStarted(
                **self._common(ids.execution_started(self.execution_id)), plan=plan, v=version
            )
        )

    def ready(self, node: str, attempt: int = 1, input: PortItems | None = None) -> AnyEvent:
        return self._add(
            NodeReady(
                **self._common(ids.node_ready(self.execution_id, node, attempt)),
                node=node,
                attempt=attempt,
                node_type="noop",
                input=input if input is not None else {"main": [{}]},
            )
        )

    def waiting(self, node: str, attempt: int = 1, ms: int = 1000) -> AnyEvent:
        return self._add(
            NodeWaiting(
                **self._common(ids.node_waiting(self.execution_id, node, attempt)),
                node=node,
                attempt=attempt,
                input={"main": [{}]},
                until=self.now + timedelta(milliseconds=ms),
            )
        )

    def node_started(self, node: str, attempt: int = 1) -> AnyEvent:
        return self._add(
            NodeStarted(
                **self._common(ids.node_started(self.execution_id, node, attempt)),
                node=node,
                attempt=attempt,
                worker="runner-1",
            )
        )

    def succeeded(
        self,
        node: str,
        attempt: int = 1,
        output: PortItems | None = None,
        pinned: bool = False,
        reused_from: str | None = None,
    ) -> AnyEvent:
        return self._add(
            NodeSucceeded(
                **self._common(ids.node_result(self.execution_id, node, attempt)),
                node=node,
                attempt=attempt,
                output=output if output is not None else {"main": [{"node": node}]},
                pinned=pinned,
                reused_from=reused_from,
            )
        )

    def failed(
        self,
        node: str,
        attempt: int = 1,
        error_type: str = "HttpServerError",
        message: str = "boom",
        retryable: bool = True,
        *,
        acted_on: bool = True,
    ) -> AnyEvent:
        """The attempt's failure and, as the scheduler records it when it acts on the failure
        (``acted_on``; not once the execution began to end), its outcome under the node's
        policy given to :meth:`requested`."""
        error = ErrorInfo(
            type=error_type, message=message, stack="Traceback ...", retryable=retryable
        )
        failed = self._add(
            NodeFailed(
                **self._common(ids.node_result(self.execution_id, node, attempt)),
                node=node,
                attempt=attempt,
                error=error,
            )
        )
        if self.outcomes_recorded and acted_on:
            self.handled(node, self.outcome(node, attempt, error), attempt, error, failed.time)
        return failed

    def outcome(self, node: str, attempt: int, error: ErrorInfo) -> FailureOutcome:
        """What the scheduler makes of the failure, under the node's policy."""
        policy = self.policies.get(node, FailurePolicy())
        lost = self._runner_lost.get(node, 0)
        judged = failure_outcome(policy, attempt, lost, error)
        if judged == "again":
            self._runner_lost[node] = lost + 1
            return "again"
        if judged == "retry":
            return "retry"
        return (
            "continue"
            if policy.on_error == "continue"
            else ("error_output" if policy.on_error == "error_output" else "fail")
        )

    def handled(
        self,
        node: str,
        outcome: FailureOutcome,
        attempt: int = 1,
        error: ErrorInfo | None = None,
        failed_at: datetime | None = None,
    ) -> AnyEvent:
        return self._add(
            NodeFailureHandled(
                **self._common(ids.node_failure_handled(self.execution_id, node, attempt)),
                node=node,
                attempt=attempt,
                outcome=outcome,
                error=error or ErrorInfo(type="HttpServerError", message="boom"),
                failed_at=failed_at or self.now,
            )
        )

    def retry(self, node: str, attempt: int = 1, delay_ms: int = 200) -> AnyEvent:
        return self._add(
            NodeRetryScheduled(
                **self._common(ids.node_retry(self.execution_id, node, attempt)),
                node=node,
                attempt=attempt,
                delay_ms=delay_ms,
                due_at=self.now + timedelta(milliseconds=delay_ms),
            )
        )

    def skipped(self, node: str, reason: SkipReason = "no_input") -> AnyEvent:
        return self._add(
            NodeSkipped(
                **self._common(ids.node_skipped(self.execution_id, node)), node=node, reason=reason
            )
        )

    def cancelled(self, node: str, attempt: int = 1) -> AnyEvent:
        return self._add(
            NodeCancelled(
                **self._common(ids.node_cancelled(self.execution_id, node, attempt)),
                node=node,
                attempt=attempt,
            )
        )

    def cancel_requested(self, reason: str | None = None) -> AnyEvent:
        return self._add(
            ExecutionCancelRequested(
                **self._common(ids.cancel_requested(self.execution_id)),
                requested_by=self.requested_by,
                reason=reason,
            )
        )

    def finished(
        self, status: FinalStatus = "succeeded", error: ErrorInfo | None = None
    ) -> AnyEvent:
        return self._add(
            ExecutionFinished(
                **self._common(ids.execution_finished(self.execution_id)),
                status=status,
                error=error,
            )
        )

    def run_node(self, node: str, attempt: int = 1) -> None:
        """One attempt that succeeds: ready, started, succeeded."""
        self.ready(node, attempt)
        self.node_started(node, attempt)
        self.succeeded(node, attempt)

    def typical(self, nodes: int = 3) -> History:
        """A whole execution: a trigger and a chain of nodes, the second one failing once."""
        plan = ["start", *(f"n{i}" for i in range(1, nodes))]
        self.requested(policies={"n1": {"retry": {"max_attempts": 2}}})
        self.started(plan)
        for name in plan:
            if name == "n1":
                self.ready(name)
                self.node_started(name)
                self.failed(name)
                self.retry(name)
                self.run_node(name, attempt=2)
            else:
                self.run_node(name)
        self.finished()
        return self
