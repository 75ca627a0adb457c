"""The read model as a fold: ``(seq, event)`` pairs in, final row states out. Pure code.

No clock, no I/O: every value comes from the events, so replaying the stream into an empty
database rebuilds identical rows. The fold is given the rows that already exist (read by the store
once per batch) and returns only the rows the batch changed, each once, in its final state: several
events on one row collapse into one write.

What an event means for a row is :mod:`nodedrop.contracts.history_fold`, the one reading of a
history (a row *is* its view: ``ExecutionRecord`` and ``NodeRecord`` extend ``ExecutionView`` and
``NodeView`` with their keys and sequence). This module only finds the rows and writes the log.

Ignored events still advance the execution's ``last_seq`` and leave a warning in the log, so the
log tells the whole story of the stream.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from nodedrop.contracts.events import (
    AnyEvent,
    ChildExecutionFinished,
    ChildExecutionStarted,
    ExecutionCancelRequested,
    ExecutionFinished,
    ExecutionQueued,
    ExecutionRequested,
    ExecutionStarted,
    NodeCancelled,
    NodeDeferred,
    NodeFailed,
    NodeFailureHandled,
    NodeLogged,
    NodeReady,
    NodeRetryScheduled,
    NodeSkipped,
    NodeStarted,
    NodeSucceeded,
    NodeWaiting,
    WorkflowCalled,
)
from nodedrop.contracts.history_fold import (
    FINAL_STATUSES,
    NODE_EVENTS,
    ExecutionView,
    NodeView,
    apply_to_execution,
    apply_to_node,
    utc,
)

LogLevel = Literal["debug", "info", "warning", "error"]
NodeKey = tuple[str, str]

_FINISH_LEVEL: dict[str, LogLevel] = {
    "succeeded": "info",
    "partial": "warning",
    "cancelled": "warning",
    "failed": "error",
    "timed_out": "error",
}


@dataclass(slots=True, kw_only=True)
class ExecutionRecord(ExecutionView):
    """One ``executions`` row."""

    id: str
    mode: str
    requested_by: str
    created_at: datetime
    last_seq: int
    workflow_id: str | None = None
    workflow_version: int | None = None
    trigger: str | None = None
    node: str | None = None
    rerun_of: str | None = None
    #: A child of an ``execute_workflow`` node: its parent execution and node.
    parent_execution_id: str | None = None
    parent_node: str | None = None


@dataclass(slots=True, kw_only=True)
class NodeRecord(NodeView):
    """One ``node_executions`` row."""

    execution_id: str
    node: str
    position: int
    last_seq: int


@dataclass(frozen=True, slots=True)
class LogLine:
    """One ``execution_logs`` row; unique on ``(execution_id, seq, line)``."""

    execution_id: str
    seq: int
    time: datetime
    level: LogLevel
    node: str | None
    message: str
    #: Position within the event (a ``NodeLogged`` event holds several lines).
    line: int = 0


@dataclass(slots=True)
class Changes:
    """What a batch changed: final row states keyed by primary key, and the new log lines."""

    executions: dict[str, ExecutionRecord] = field(default_factory=dict)
    nodes: dict[NodeKey, NodeRecord] = field(default_factory=dict)
    logs: list[LogLine] = field(default_factory=list)


def fold(
    events: Iterable[tuple[int, AnyEvent]],
    executions: Mapping[str, ExecutionRecord] | None = None,
    nodes: Mapping[NodeKey, NodeRecord] | None = None,
) -> Changes:
    """Apply ``events`` (in stream order) to the existing rows; the inputs are not modified."""
    folder = _Folder(executions or {}, nodes or {})
    for seq, event in events:
        folder.apply(seq, event)
    return folder.finish()


class _Folder:
    def __init__(
        self, executions: Mapping[str, ExecutionRecord], nodes: Mapping[NodeKey, NodeRecord]
    ) -> None:
        self._known_executions = executions
        self._known_nodes = nodes
        self.changes = Changes()

    # Rows are copied on first touch: the caller's rows stay as they were, and only touched rows
    # end up in the changes.
    def _execution(self, execution_id: str) -> ExecutionRecord | None:
        row = self.changes.executions.get(execution_id)
        if row is None:
            known = self._known_executions.get(execution_id)
            if known is None:
                return None
            row = self.changes.executions[execution_id] = dataclasses.replace(known)
        return row

    def _node(self, execution_id: str, node: str) -> NodeRecord | None:
        key = (execution_id, node)
        row = self.changes.nodes.get(key)
        if row is None:
            known = self._known_nodes.get(key)
            if known is None:
                return None
            row = self.changes.nodes[key] = dataclasses.replace(known)
        return row

    def finish(self) -> Changes:
        # A node row touched only by ignored events is unchanged: no need to write it again.
        self.changes.nodes = {
            key: row for key, row in self.changes.nodes.items() if row != self._known_nodes.get(key)
        }
        return self.changes

    def _log(self, seq: int, event: AnyEvent, level: LogLevel, message: str) -> None:
        node: str | None = getattr(event, "node", None)
        self.changes.logs.append(
            LogLine(event.execution_id, seq, utc(event.time), level, node, message)
        )

    def apply(self, seq: int, event: AnyEvent) -> None:
        if isinstance(event, NodeLogged):
            # What the node wrote, line by line, with the node's own times and levels; it
            # changes no row, whatever the attempt (a late attempt's lines still explain it).
            self.changes.logs.extend(
                LogLine(
                    event.execution_id,
                    seq,
                    utc(line.time),
                    line.level,
                    event.node,
                    line.message,
                    index,
                )
                for index, line in enumerate(event.lines)
            )
            return
        execution = self._execution(event.execution_id)
        if execution is None and isinstance(event, ExecutionRequested):
            self.changes.executions[event.execution_id] = _requested(seq, event)
            self._log(seq, event, "info", _describe(event))
            return
        if execution is None:
            # Its ExecutionRequested is not in the stream (or not yet): there is no row to change,
            # but the log still records what the stream says.
            self._log(seq, event, "warning", _ignored(event))
            return
        execution.last_seq = max(execution.last_seq, seq)
        applied = self._apply_to(execution, seq, event)
        if applied:
            self._log(seq, event, _level(event), _describe(event))
        else:
            self._log(seq, event, "warning", _ignored(event))

    def _apply_to(self, execution: ExecutionRecord, seq: int, event: AnyEvent) -> bool:
        """Change the rows for one event; False when the history's fold ignores it."""
        if isinstance(event, ExecutionStarted) and not self._plan(execution, seq, event):
            return False
        if not isinstance(event, NODE_EVENTS):
            return apply_to_execution(execution, event)
        if execution.status in FINAL_STATUSES:
            return False
        node = self._node(event.execution_id, event.node)
        if node is None:
            return False  # Not a plan node of this execution.
        if apply_to_node(execution, node, event):
            node.last_seq = seq
            return True
        return False

    def _plan(self, execution: ExecutionRecord, seq: int, event: ExecutionStarted) -> bool:
        """The plan's node rows, made when the execution starts."""
        if execution.status != "queued":
            return False
        for position, name in enumerate(event.plan):
            if self._node(event.execution_id, name) is None:
                self.changes.nodes[(event.execution_id, name)] = NodeRecord(
                    execution_id=event.execution_id,
                    node=name,
                    position=position,
                    status="pending",
                    last_seq=seq,
                )
        return True


def _requested(seq: int, event: ExecutionRequested) -> ExecutionRecord:
    return ExecutionRecord(
        id=event.execution_id,
        mode=event.mode,
        status="queued",
        requested_by=event.requested_by,
        created_at=utc(event.time),
        last_seq=seq,
        workflow_id=event.workflow_id,
        workflow_version=event.workflow_version,
        trigger=event.trigger,
        node=event.node,
        rerun_of=event.rerun_of,
        parent_execution_id=event.parent_execution,
        parent_node=event.parent_node,
    )


# ------------------------------------------------------------------------------------------ logs


_OUTCOME_TEXT = {
    "again": "its runner was lost, made again",
    "retry": "will be retried",
    "fail": "failed for good, the execution fails",
    "continue": "failed for good, the execution continues",
    "error_output": "failed for good, its error goes to its error output",
}


def _level(event: AnyEvent) -> LogLevel:
    if isinstance(event, NodeFailed):
        return "error"
    if isinstance(event, NodeFailureHandled):
        return "error" if event.outcome == "fail" else "warning"
    if isinstance(event, NodeRetryScheduled | NodeCancelled | ExecutionCancelRequested):
        return "warning"
    if isinstance(event, ExecutionFinished):
        return _FINISH_LEVEL.get(event.status, "info")
    return "info"


def _ignored(event: AnyEvent) -> str:
    return f"ignored (duplicate, late or after the end): {_describe(event)}"


def _count_items(ports: Mapping[str, list[Any]]) -> int:
    return sum(len(items) for items in ports.values())


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _describe(event: AnyEvent) -> str:
    """A human line for the execution log, e.g. ``node fetch failed (attempt 2): Type: msg``."""
    match event:
        case ExecutionRequested(mode="node", node=node, requested_by=who):
            return f"execution requested by {who}: run node {node}"
        case ExecutionRequested(trigger=trigger, requested_by=who):
            return f"execution requested by {who}" + (f" from trigger {trigger}" if trigger else "")
        case ExecutionQueued(scope=scope, key=key, limit=limit):
            return (
                f"execution waiting: {scope} {key} has {_plural(limit, 'execution')} running "
                "(its limit); it starts when one ends"
            )
        case ExecutionStarted(plan=plan):
            return f"execution started: {_plural(len(plan), 'node')} planned"
        case NodeReady(node=node, attempt=attempt, input=ports):
            items = _plural(_count_items(ports), "input item")
            return f"node {node} queued (attempt {attempt}, {items})"
        case NodeDeferred(node=node, attempt=attempt, key=key, limit=limit):
            return (
                f"node {node} waiting for a runner (attempt {attempt}): {key} has "
                f"{_plural(limit, 'node')} queued or running (their share)"
            )
        case NodeWaiting(node=node, attempt=attempt, until=until):
            return f"node {node} waiting until {until.isoformat()} (attempt {attempt})"
        case NodeStarted(node=node, attempt=attempt, worker=worker):
            return f"node {node} started (attempt {attempt})" + (f" on {worker}" if worker else "")
        case NodeSucceeded(node=node, pinned=True):
            return f"node {node} used its pinned output"
        case NodeSucceeded(node=node, reused_from=str() as origin):
            return f"node {node} reused its output recorded by execution {origin}"
        case NodeSucceeded(node=node, attempt=attempt, output=ports):
            items = _plural(_count_items(ports), "item")
            return f"node {node} succeeded (attempt {attempt}): {items} out"
        case NodeFailed(node=node, attempt=attempt, error=error):
            return f"node {node} failed (attempt {attempt}): {error.type}: {error.message}"
        case NodeFailureHandled(node=node, attempt=attempt, outcome=outcome):
            return f"node {node} failure handled (attempt {attempt}): {_OUTCOME_TEXT[outcome]}"
        case NodeRetryScheduled(node=node, attempt=attempt, delay_ms=delay):
            return f"node {node} will retry in {delay} ms (attempt {attempt + 1})"
        case NodeSkipped(node=node, reason=reason):
            return f"node {node} skipped: {reason}"
        case NodeLogged(node=node, attempt=attempt, lines=lines):
            return f"node {node} logged {_plural(len(lines), 'line')} (attempt {attempt})"
        case NodeCancelled(node=node, attempt=attempt):
            return f"node {node} cancelled (attempt {attempt})"
        case ExecutionCancelRequested(requested_by=who, reason=reason):
            return f"cancel requested by {who}" + (f": {reason}" if reason else "")
        case ExecutionFinished(status=status, error=error):
            return f"execution {status}" + (f": {error.type}: {error.message}" if error else "")
        case WorkflowCalled(node=node, attempt=attempt, workflow_id=workflow, mode=mode):
            count = "1 child" if len(event.inputs) == 1 else f"{len(event.inputs)} children"
            return f"node {node} calls workflow {workflow} ({mode}, {count}, attempt {attempt})"
        case ChildExecutionStarted(node=node, index=index, child=child):
            return f"node {node} started child execution {child} (item {index})"
        case ChildExecutionFinished(node=node, child=child, status=status, error=error):
            reason = f": {error.type}: {error.message}" if error else ""
            return f"node {node}: child execution {child} {status}{reason}"
    return type(event).__name__  # pragma: no cover - the match covers the catalogue
