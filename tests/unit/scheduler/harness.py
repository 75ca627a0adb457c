"""A scripted world for the scheduler core: a fake clock and a runner that does as told.

Pure code only (no broker): the core's decisions are folded back exactly as the real adapter
does, and every recorded event is kept in ``log`` for replay checks.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from nodedrop.contracts import ids
from nodedrop.contracts.events import (
    INPUT_EVENT_TYPES,
    ErrorInfo,
    Event,
    ExecutionCancelRequested,
    ExecutionFinished,
    ExecutionRequested,
    NodeFailed,
    NodeReady,
    NodeSkipped,
    NodeStarted,
    NodeSucceeded,
)
from nodedrop.contracts.items import PortItems
from nodedrop.scheduler.core import ExecutionState, next_wakeup, step, tick
from nodedrop.scheduler.core.rules import MAX_INPUT_BYTES

T0 = datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC)


def uncaused(events: Sequence[Event | None]) -> list[Event | None]:
    """The decisions without their causes: a rebuild decides the same events as the step it
    stands in for, and records that it was a ``resume``."""
    return [None if e is None else msgspec.structs.replace(e, cause=None) for e in events]


def wf(nodes: list[dict[str, Any]], edges: list[Any], **settings: Any) -> dict[str, Any]:
    """Workflow JSON from short forms: edges are ("a", "b") or ("a", "b", output[, input])."""
    connections = []
    for edge in edges:
        conn: dict[str, Any] = {"from": edge[0], "to": edge[1]}
        if len(edge) > 2:
            conn["output"] = edge[2]
        if len(edge) > 3:
            conn["input"] = edge[3]
        connections.append(conn)
    body: dict[str, Any] = {"name": "test", "nodes": nodes, "connections": connections}
    if settings:
        body["settings"] = settings
    return body


def n(node_id: str, node_type: str = "noop", **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "type": node_type, **extra}


@dataclass
class Sim:
    workflow: dict[str, Any]
    execution_id: str = "ex1"
    now: datetime = T0
    state: ExecutionState | None = None
    log: list[Event] = field(default_factory=list)
    #: The most data a node's work may carry (``core.step``'s ``max_input_bytes``).
    max_input_bytes: int = MAX_INPUT_BYTES

    def _record(self, event: Event) -> list[Event]:
        self.log.append(event)
        return self._decide(event)

    def _decide(self, event: Event) -> list[Event]:
        decisions = self._step(event)
        return decisions + self._deliver_proposals(decisions)

    def _step(self, event: Event) -> list[Event]:
        self.state, decisions = step(
            self.state, event, self.now, max_input_bytes=self.max_input_bytes
        )
        self.log.extend(decisions)
        return decisions

    def _deliver_proposals(self, decisions: list[Event]) -> list[Event]:
        """What the scheduler records as an input (a timeout, a refused input) comes back to
        it from the stream; here at once, as if nothing else had been recorded in between, and
        in the order recorded (a proposal's answer may hold proposals of its own)."""
        follow_ups: list[Event] = []
        returning = deque(d for d in decisions if isinstance(d, INPUT_EVENT_TYPES))
        while returning:
            decided = self._step(returning.popleft())
            follow_ups.extend(decided)
            returning.extend(d for d in decided if isinstance(d, INPUT_EVENT_TYPES))
        return follow_ups

    def request(
        self,
        *,
        mode: str = "trigger",
        trigger: str | None = "start",
        node: str | None = None,
        input: Any = None,
        timeout_ms: int | None = None,
    ) -> list[Event]:
        return self._record(
            ExecutionRequested(
                event_id=ids.execution_requested(self.execution_id),
                execution_id=self.execution_id,
                time=self.now,
                workflow=self.workflow,
                requested_by="tester",
                mode=mode,  # type: ignore[arg-type]
                trigger=trigger if mode == "trigger" else None,
                node=node,
                input=input,
                timeout_ms=timeout_ms,
            )
        )

    # -- what the scheduler asked for and did
    def of_type(self, kind: type[Event]) -> list[Any]:
        return [e for e in self.log if isinstance(e, kind)]

    def ready(self) -> list[NodeReady]:
        """Attempts the scheduler made ready that have no result yet."""
        answered = {
            (e.node, e.attempt) for e in self.log if isinstance(e, NodeSucceeded | NodeFailed)
        }
        return [e for e in self.of_type(NodeReady) if (e.node, e.attempt) not in answered]

    def ready_ids(self) -> list[str]:
        return sorted(e.node for e in self.ready())

    def ran(self) -> list[str]:
        """Nodes that got at least one NodeReady, in order of first readiness."""
        return list(dict.fromkeys(e.node for e in self.of_type(NodeReady)))

    def skipped(self) -> dict[str, str]:
        return {e.node: e.reason for e in self.of_type(NodeSkipped)}

    def finished(self) -> ExecutionFinished | None:
        done = self.of_type(ExecutionFinished)
        assert len(done) <= 1, "an execution finished twice"
        return done[0] if done else None

    def status(self) -> str | None:
        done = self.finished()
        return done.status if done else None

    # -- the runner
    def _attempt(self, node: str) -> NodeReady:
        pending = [e for e in self.ready() if e.node == node]
        assert pending, f"{node} is not ready; ready: {self.ready_ids()}"
        return pending[-1]

    def start(self, node: str) -> list[Event]:
        task = self._attempt(node)
        return self._record(
            NodeStarted(
                event_id=ids.node_started(self.execution_id, node, task.attempt),
                execution_id=self.execution_id,
                time=self.now,
                node=node,
                attempt=task.attempt,
            )
        )

    def succeed(self, node: str, output: PortItems | None = None) -> list[Event]:
        task = self._attempt(node)
        self.start(node)
        if output is None:
            output = {"main": [item for items in task.input.values() for item in items]}
        return self._record(
            NodeSucceeded(
                event_id=ids.node_result(self.execution_id, node, task.attempt),
                execution_id=self.execution_id,
                time=self.now,
                node=node,
                attempt=task.attempt,
                output=output,
            )
        )

    def fail(
        self, node: str, error_type: str = "Boom", *, retryable: bool = True, started: bool = True
    ) -> list[Event]:
        task = self._attempt(node)
        if started:
            self.start(node)
        return self._record(
            NodeFailed(
                event_id=ids.node_result(self.execution_id, node, task.attempt),
                execution_id=self.execution_id,
                time=self.now,
                node=node,
                attempt=task.attempt,
                error=ErrorInfo(type=error_type, message=f"{node} failed", retryable=retryable),
            )
        )

    def run_all(self, max_steps: int = 10_000) -> None:
        """Succeed every ready node until nothing is ready (pass-through outputs)."""
        for _ in range(max_steps):
            ready = self.ready()
            if not ready:
                return
            self.succeed(ready[0].node)
        raise AssertionError("did not settle")

    def cancel(self) -> list[Event]:
        return self._record(
            ExecutionCancelRequested(
                event_id=ids.cancel_requested(self.execution_id),
                execution_id=self.execution_id,
                time=self.now,
                requested_by="tester",
            )
        )

    def advance(self, ms: int) -> list[Event]:
        self.now += timedelta(milliseconds=ms)
        assert self.state is not None
        decisions = tick(self.state, self.now, max_input_bytes=self.max_input_bytes)
        self.log.extend(decisions)
        return decisions + self._deliver_proposals(decisions)

    def wakeup(self) -> datetime | None:
        assert self.state is not None
        return next_wakeup(self.state)
