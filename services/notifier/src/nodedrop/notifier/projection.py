"""The read model as a fold: ``(seq, event)`` pairs in, final row states out. Pure code.

No clock, no I/O: every value comes from the events, so replaying the stream into an empty
database rebuilds identical rows. The fold is given the rows that already exist (read by the store
once per batch) and returns only the rows the batch changed, each once, in its final state: several
events on one row collapse into one write.

Fencing follows the scheduler core's fold (``nodedrop.scheduler.core.fold``), so the rows say what
the scheduler decided on:

- A runner's result counts only for the node's current attempt while that attempt is queued or
  running (the first result wins, a late or duplicate one changes nothing); an output that stands
  in for a run (pinned, or reused by a rerun) only while the node is still pending, as attempt 0;
  the scheduler's refusal of the node's next attempt (``InputTooLarge``: its input would not fit
  in one event) while that attempt waits to be made ready.
- Once the execution began to end (``ending``: a cancel was requested, the deadline passed, a node
  failed under ``on_error: fail``, or the scheduler cancelled or skipped a node to end the run),
  runner results are ignored; the scheduler's own results (pinned or reused outputs, a ``wait``
  node's wake-up) still count, as the core applied them when it decided them.
- A failure is judged at once with the node's policy from the request's definition
  (``node_policies``, :mod:`nodedrop.contracts.failures`): ``retrying`` when the node is tried
  again, else ``failed``; under ``error_output`` the node's output is the ``error`` port's items
  its children received.
- Once an execution has finished, its status and its nodes no longer change.

Ignored events still advance the execution's ``last_seq`` and leave a warning in the log, so the
log tells the whole story of the stream.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from nodedrop.contracts.errors import INPUT_TOO_LARGE
from nodedrop.contracts.events import (
    AnyEvent,
    ChildExecutionFinished,
    ChildExecutionStarted,
    ErrorInfo,
    ExecutionCancelRequested,
    ExecutionFinished,
    ExecutionQueued,
    ExecutionRequested,
    ExecutionStarted,
    NodeCancelled,
    NodeDeferred,
    NodeFailed,
    NodeLogged,
    NodeReady,
    NodeRetryScheduled,
    NodeSkipped,
    NodeStarted,
    NodeSucceeded,
    NodeWaiting,
    WorkflowCalled,
)
from nodedrop.contracts.failures import (
    DEFAULT_POLICY,
    FailurePolicy,
    error_output,
    failure_outcome,
    policies_in,
)

LogLevel = Literal["debug", "info", "warning", "error"]
NodeKey = tuple[str, str]

FINAL_STATUSES = frozenset({"succeeded", "partial", "failed", "cancelled", "timed_out"})
#: Node statuses no event moves a node out of (a failed node can still be retried, see below).
_NODE_DONE = frozenset({"succeeded", "skipped", "cancelled"})
_NODE_ACTIVE = frozenset({"queued", "running"})
#: Skips that only the ending of an execution decides (the scheduler core's likewise).
_ENDING_SKIP_REASONS = frozenset({"cancelled", "timed_out", "execution_failed"})
_FINISH_LEVEL: dict[str, LogLevel] = {
    "succeeded": "info",
    "partial": "warning",
    "cancelled": "warning",
    "failed": "error",
    "timed_out": "error",
}


@dataclass(slots=True)
class ExecutionRecord:
    """One ``executions`` row."""

    id: str
    mode: str
    status: str
    requested_by: str
    created_at: datetime
    last_seq: int
    workflow_id: str | None = None
    workflow_version: int | None = None
    trigger: str | None = None
    node: str | None = None
    rerun_of: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: dict[str, Any] | None = None
    #: The execution began to end: runner results recorded from here on are ignored.
    ending: bool = False
    #: The failure policy of each node whose policy is not the default, from the request's
    #: definition: ``{node: {"on_error", "max_attempts", "non_retryable_errors"}}`` (fields at
    #: their default left out). None: not known (a definition that cannot be read, or a row
    #: projected before the column existed); failures are then ``failed`` until a
    #: ``NodeRetryScheduled`` says otherwise, and end nothing.
    node_policies: dict[str, Any] | None = None
    #: A child of an ``execute_workflow`` node: its parent execution and node.
    parent_execution_id: str | None = None
    parent_node: str | None = None


@dataclass(slots=True)
class NodeRecord:
    """One ``node_executions`` row."""

    execution_id: str
    node: str
    position: int
    status: str
    last_seq: int
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    input: dict[str, Any] | None = None
    output: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    skip_reason: str | None = None
    pinned: bool = False
    #: Attempts a lost runner ended that were made again at once (the retry policy does not
    #: count them).
    runner_lost: int = 0
    #: A ``wait`` node waiting on the scheduler's timer until then: its success is the
    #: scheduler's own result.
    wait_until: datetime | None = None
    #: An ``execute_workflow`` node that found its workflow: the children it started, in
    #: item order. Its result is then the scheduler's own.
    children: list[str] | None = None


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
            LogLine(event.execution_id, seq, _utc(event.time), level, node, message)
        )

    def apply(self, seq: int, event: AnyEvent) -> None:
        if isinstance(event, NodeLogged):
            # What the node wrote, line by line, with the node's own times and levels; it
            # changes no row, whatever the attempt (a late attempt's lines still explain it).
            self.changes.logs.extend(
                LogLine(
                    event.execution_id,
                    seq,
                    _utc(line.time),
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
        """Change the rows for one event; False when fencing ignores it."""
        if isinstance(event, ExecutionRequested):
            return False  # A copy: the row exists already.
        if isinstance(event, ExecutionCancelRequested):
            # The status changes only when the execution ends; from here on it is ending.
            execution.ending = execution.ending or execution.status not in FINAL_STATUSES
            return True
        if execution.status in FINAL_STATUSES:
            return False
        if isinstance(event, ExecutionQueued):
            # Still "queued", now for a concurrency limit: the log line says which.
            return execution.status == "queued"
        if isinstance(event, ExecutionStarted):
            return self._started(execution, seq, event)
        if isinstance(event, ExecutionFinished):
            execution.status = event.status
            execution.finished_at = _utc(event.time)
            execution.error = _error(event.error)
            return True
        if isinstance(event, NodeLogged):
            return False  # its lines are written by `apply`, they change no row
        node = self._node(event.execution_id, event.node)
        if node is None:
            return False  # Not a plan node of this execution.
        if _apply_to_node(execution, node, event):
            node.last_seq = seq
            return True
        return False

    def _started(self, execution: ExecutionRecord, seq: int, event: ExecutionStarted) -> bool:
        if execution.status != "queued":
            return False
        execution.status = "running"
        execution.started_at = _utc(event.time)
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


_NodeEvent = (
    NodeReady | NodeDeferred | NodeWaiting | NodeStarted | NodeSucceeded | NodeFailed
    | NodeRetryScheduled | NodeSkipped | NodeCancelled | WorkflowCalled
    | ChildExecutionStarted | ChildExecutionFinished
)  # fmt: skip


def _apply_to_node(execution: ExecutionRecord, node: NodeRecord, event: _NodeEvent) -> bool:
    time = _utc(event.time)
    if isinstance(event, NodeDeferred):
        # Still pending (or retrying), now for its user's share of the runners: the log line
        # says so; its NodeReady follows.
        return event.attempt > node.attempts and node.status not in _NODE_DONE
    if isinstance(event, NodeReady):
        # A newer attempt starts, unless the node is already done; a duplicate ready is ignored.
        if event.attempt <= node.attempts or node.status in _NODE_DONE:
            return False
        node.status = "queued"
        node.attempts = event.attempt
        node.input = event.input
        node.started_at = None  # the new attempt's start, once it comes
        node.finished_at = None
        node.children = None  # an earlier attempt's children were stopped when it failed
        return True
    if isinstance(event, NodeWaiting):
        # A wait starts at once on the scheduler's timer: queued and started in one event.
        if event.attempt <= node.attempts or node.status in _NODE_DONE:
            return False
        node.status = "running"
        node.attempts = event.attempt
        node.input = event.input
        node.started_at = time
        node.finished_at = None
        node.wait_until = _utc(event.until)
        return True
    if isinstance(event, NodeStarted):
        if event.attempt != node.attempts:
            return False
        if node.status == "queued":
            node.status = "running"
            node.started_at = time
            return True
        # A side-effect-free node's runner does not wait for its start to be stored before it
        # records the result, so after a failed publish the start can be stored last: it
        # still says when the attempt started, and changes nothing else.
        if node.started_at is None and node.status not in ("pending", "running"):
            node.started_at = time
            return True
        return False
    if isinstance(event, WorkflowCalled | ChildExecutionStarted | ChildExecutionFinished):
        return _call(execution, node, event)
    if isinstance(event, NodeSucceeded):
        return _succeeded(execution, node, event, time)
    if isinstance(event, NodeFailed):
        return _failed(execution, node, event, time)
    if isinstance(event, NodeRetryScheduled):
        if event.attempt != node.attempts or node.status not in _RETRY_FROM:
            return False
        node.status = "retrying"
        node.finished_at = None  # The node is not done: attempt + 1 follows.
        return True
    if isinstance(event, NodeSkipped):
        if node.status in _NODE_DONE or node.status == "failed":
            return False
        node.status = "skipped"
        node.skip_reason = event.reason
        node.finished_at = time
        execution.ending = execution.ending or event.reason in _ENDING_SKIP_REASONS
        return True
    # NodeCancelled
    if node.status in _NODE_DONE or node.status == "failed" or event.attempt < node.attempts:
        return False
    node.status = "cancelled"
    node.finished_at = time
    execution.ending = True
    return True


def _call(
    execution: ExecutionRecord,
    node: NodeRecord,
    event: WorkflowCalled | ChildExecutionStarted | ChildExecutionFinished,
) -> bool:
    """An ``execute_workflow`` node's children, fenced as the scheduler core's fold does."""
    if isinstance(event, WorkflowCalled):
        # The runner's answer: counts like a result, for the current attempt in flight.
        if (
            execution.ending
            or node.children is not None
            or not _result_counts(node, event.attempt, stands_in=False)
        ):
            return False
        node.status = "running"
        node.children = []
        return True
    if node.children is None or event.attempt != node.attempts:
        return False
    if isinstance(event, ChildExecutionStarted):
        if event.child in node.children:
            return False
        node.children = [*node.children, event.child]
        return True
    # A child's end changes no row here (the child's own row has it); the log says it.
    return node.status == "running" and not execution.ending and event.child in node.children


#: A retry is scheduled after a failure: ``retrying`` already when the policy was known at the
#: failure, ``failed`` when it was not (and queued or running for histories of older versions).
_RETRY_FROM = frozenset({"queued", "running", "failed", "retrying"})


def _succeeded(
    execution: ExecutionRecord, node: NodeRecord, event: NodeSucceeded, time: datetime
) -> bool:
    stands_in = event.pinned or event.reused_from is not None  # recorded without a run
    # The scheduler's own results (pinned or reused data, a `wait` node's wake-up) were applied
    # when it decided them, even with a cancel already in the stream, not yet delivered to it;
    # a runner's result is an input taken in stream order, and none counts once the end began.
    decided = stands_in or node.wait_until is not None or node.children is not None
    if (execution.ending and not decided) or not _result_counts(node, event.attempt, stands_in):
        return False
    node.attempts = max(node.attempts, event.attempt)
    node.finished_at = time
    node.status = "succeeded"
    node.output = event.output
    node.pinned = event.pinned
    node.error = None
    return True


def _failed(
    execution: ExecutionRecord, node: NodeRecord, event: NodeFailed, time: datetime
) -> bool:
    if execution.ending:
        return False
    if _refused(node, event.attempt, event.error):
        node.attempts = event.attempt  # an attempt that failed before it was made ready
    elif not _result_counts(node, event.attempt, stands_in=False):
        return False
    node.error = _error(event.error)
    policy = _policy(execution, node.node)
    if policy is None:  # not known: failed, unless a NodeRetryScheduled follows
        node.status = "failed"
        node.finished_at = time
        return True
    outcome = failure_outcome(policy, event.attempt, node.runner_lost, event.error)
    if outcome == "again":
        node.runner_lost += 1
    if outcome != "failed":
        node.status = "retrying"  # the next attempt follows (NodeRetryScheduled, NodeReady)
        node.finished_at = None
        return True
    node.status = "failed"
    node.finished_at = time
    if policy.on_error == "fail":
        execution.ending = True  # the scheduler ends the run as failed
    # What the node delivers downstream: under error_output, its children's input on `error`.
    node.output = (
        error_output(node.input, event.error) if policy.on_error == "error_output" else None
    )
    return True


def _result_counts(node: NodeRecord, attempt: int, stands_in: bool) -> bool:
    """The first result of the current attempt wins. An output standing in for a run (pinned
    or reused) is recorded while the node is still pending, as attempt 0."""
    if stands_in:
        return node.status == "pending" and attempt == 0
    return node.status in _NODE_ACTIVE and attempt == node.attempts


def _refused(node: NodeRecord, attempt: int, error: ErrorInfo) -> bool:
    """The scheduler refused to make the node's next attempt ready (its input would not fit in
    one event) and recorded that attempt as failed: no runner ever had it."""
    waiting = node.status in _WAITING_FOR_ATTEMPT
    return waiting and attempt == node.attempts + 1 and error.type == INPUT_TOO_LARGE


#: A node whose next attempt is to be made ready.
_WAITING_FOR_ATTEMPT = frozenset({"pending", "retrying"})


def _policies(workflow: object) -> dict[str, Any] | None:
    """``node_policies`` of a recorded definition: only the fields not at their default."""
    policies = policies_in(workflow)
    if policies is None:
        return None
    stored: dict[str, Any] = {}
    for node, policy in policies.items():
        fields: dict[str, Any] = {}
        if policy.on_error != DEFAULT_POLICY.on_error:
            fields["on_error"] = policy.on_error
        if policy.max_attempts != DEFAULT_POLICY.max_attempts:
            fields["max_attempts"] = policy.max_attempts
        if policy.non_retryable_errors:
            fields["non_retryable_errors"] = sorted(policy.non_retryable_errors)
        if fields:
            stored[node] = fields
    return stored


def _policy(execution: ExecutionRecord, node: str) -> FailurePolicy | None:
    if execution.node_policies is None:
        return None
    fields = execution.node_policies.get(node)
    if fields is None:
        return DEFAULT_POLICY
    return FailurePolicy(
        on_error=fields.get("on_error", DEFAULT_POLICY.on_error),
        max_attempts=fields.get("max_attempts", DEFAULT_POLICY.max_attempts),
        non_retryable_errors=frozenset(fields.get("non_retryable_errors", ())),
    )


def _requested(seq: int, event: ExecutionRequested) -> ExecutionRecord:
    return ExecutionRecord(
        id=event.execution_id,
        mode=event.mode,
        status="queued",
        requested_by=event.requested_by,
        created_at=_utc(event.time),
        last_seq=seq,
        workflow_id=event.workflow_id,
        workflow_version=event.workflow_version,
        trigger=event.trigger,
        node=event.node,
        rerun_of=event.rerun_of,
        node_policies=_policies(event.workflow),
        parent_execution_id=event.parent_execution,
        parent_node=event.parent_node,
    )


def _utc(time: datetime) -> datetime:
    # Events carry aware UTC times; a naive one can only mean UTC (the wire format is ISO 8601).
    return time.replace(tzinfo=UTC) if time.tzinfo is None else time


def _error(error: ErrorInfo | None) -> dict[str, Any] | None:
    if error is None:
        return None
    return {"type": error.type, "message": error.message, "stack": error.stack}


# ------------------------------------------------------------------------------------------ logs


def _level(event: AnyEvent) -> LogLevel:
    if isinstance(event, NodeFailed):
        return "error"
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
