"""The one reading of an execution's history: each node's status, attempts, input, output and
error, and the execution's status, from its events in stream order. Pure code.

Every reader of a history reads it through this module: the notifier's projection (row by row,
:func:`apply_to_execution` and :func:`apply_to_node`), api reruns, the runner's check of an old
task and ``nodedrop audit`` (whole histories, :func:`fold_history`), and ``nodedrop run``'s live
view (event by event, :func:`evolve`). None of them judges anything itself: what the scheduler
decided is in the history.

- A runner's result counts only for the node's current attempt while that attempt is queued or
  running (the first result wins); an output that stands in for a run (pinned, or reused by a
  rerun) only while the node is pending, as attempt 0; the scheduler's refusal of the node's next
  attempt (``InputTooLarge``) while that attempt waits to be made ready.
- A failure counts when the scheduler acted on it: its ``NodeFailureHandled`` (which carries the
  error) says what it made of it: ``retrying`` (``again``, ``retry``), or failed for good under
  the node's ``on_error`` (``fail`` begins the execution's end; ``error_output`` gives the node
  the ``error`` port's items its children receive). The runner's ``NodeFailed`` itself changes
  nothing here: one stored after the execution began to end has no outcome, and never counts.
- Once the execution began to end (a cancel was requested, a failure under ``fail`` was handled,
  the scheduler cancelled or skipped a node to end the run) runner results are ignored; the
  scheduler's own results (pinned or reused outputs, a ``wait`` node's wake-up, a call's end)
  still count.
- The scheduler's ``NodeCancelled`` is its last word on a node: a runner's success stored
  between a failure that ended the run and that failure's outcome is counted here but was
  ignored by the scheduler, which then cancelled the node; the cancel stands.
- Once an execution has finished, nothing changes.

Histories started before the scheduler recorded outcomes (``ExecutionStarted.v`` 1,
``ExecutionView.outcomes_recorded`` false) are upcast: a counted ``NodeFailed`` fails the node
at once, fenced as the scheduler fenced it, and :func:`fold_history` judges it with the node's
policy from the recorded definition (:mod:`nodedrop.contracts.failures`), as the scheduler did
then. A row-by-row reader that has not kept the definition reads such a failure as ``failed``
until a ``NodeRetryScheduled`` or ``NodeReady`` says otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nodedrop.contracts.errors import INPUT_TOO_LARGE
from nodedrop.contracts.events import (
    OUTCOMES_RECORDED_VERSION,
    ChildExecutionFinished,
    ChildExecutionStarted,
    ErrorInfo,
    Event,
    ExecutionCancelRequested,
    ExecutionFinished,
    ExecutionQueued,
    ExecutionRequested,
    ExecutionStarted,
    FailureOutcome,
    NodeCancelled,
    NodeDeferred,
    NodeFailed,
    NodeFailureHandled,
    NodeReady,
    NodeRetryScheduled,
    NodeSkipped,
    NodeStarted,
    NodeSucceeded,
    NodeWaiting,
    WorkflowCalled,
)
from nodedrop.contracts.failures import FailurePolicy, error_output, failure_outcome, policies_in
from nodedrop.contracts.items import PortItems

FINAL_STATUSES = frozenset({"succeeded", "partial", "failed", "cancelled", "timed_out"})
#: Node statuses no runner's event moves a node out of.
NODE_DONE = frozenset({"succeeded", "skipped", "cancelled"})
_NODE_ACTIVE = frozenset({"queued", "running"})
#: Skips that only the ending of an execution decides.
ENDING_SKIP_REASONS = frozenset({"cancelled", "timed_out", "execution_failed"})
#: A node whose next attempt is to be made ready.
_WAITING_FOR_ATTEMPT = frozenset({"pending", "retrying"})


@dataclass(slots=True, kw_only=True)
class ExecutionView:
    """What the history says of the execution as a whole."""

    status: str = "queued"
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: dict[str, Any] | None = None
    #: The execution began to end: runner results recorded from here on are ignored.
    ending: bool = False
    #: The scheduler records each failure's outcome (``ExecutionStarted.v`` 2 and later).
    outcomes_recorded: bool = False


@dataclass(slots=True, kw_only=True)
class NodeView:
    """What the history says of one plan node."""

    status: str = "pending"
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
    #: An ``execute_workflow`` node that found its workflow: the children it started, in item
    #: order. Its result is then the scheduler's own.
    children: list[str] | None = None
    #: The scheduler's outcome of the node's last handled failure.
    outcome: FailureOutcome | None = None


@dataclass(slots=True)
class History:
    """A whole history folded: the request, the plan, the execution and its plan nodes."""

    request: ExecutionRequested
    execution: ExecutionView = field(default_factory=ExecutionView)
    plan: list[str] | None = None
    nodes: dict[str, NodeView] = field(default_factory=dict)
    #: Each node's failure policy, for a history whose failures' outcomes are not recorded
    #: (``ExecutionStarted.v`` 1): the upcaster judges them as the scheduler then did.
    legacy_policies: dict[str, FailurePolicy] | None = None

    @property
    def finished(self) -> bool:
        return self.execution.status in FINAL_STATUSES


def fold_history(events: Iterable[Event]) -> History | None:
    """Fold an execution's events (in stream order); ``None`` without its request."""
    history: History | None = None
    for event in events:
        if history is None:
            if isinstance(event, ExecutionRequested):
                history = History(event)
            continue
        evolve(history, event)
    return history


def evolve(history: History, event: Event) -> bool:
    """Fold one event into a whole history in place; False when it changes nothing."""
    if isinstance(event, ExecutionStarted) and history.execution.status == "queued":
        history.plan = list(event.plan)
        history.nodes = {name: NodeView() for name in event.plan}
        if event.v < OUTCOMES_RECORDED_VERSION:  # v1: upcast its failures
            history.legacy_policies = policies_in(history.request.workflow)
    if not isinstance(event, NODE_EVENTS):
        return apply_to_execution(history.execution, event)
    node = history.nodes.get(event.node)
    if node is None or history.finished:
        return False
    changed = apply_to_node(history.execution, node, event)
    if changed and isinstance(event, NodeFailed) and history.legacy_policies is not None:
        _upcast_failure(history, node, event)
    return changed


def _upcast_failure(history: History, node: NodeView, event: NodeFailed) -> None:
    """A failure of a v1 history: judge it with the node's recorded policy, as the scheduler
    did, and apply that outcome as if it were recorded."""
    assert history.legacy_policies is not None
    policy = history.legacy_policies.get(event.node, FailurePolicy())
    judged = failure_outcome(policy, node.attempts, node.runner_lost, event.error)
    outcome: FailureOutcome
    if judged == "failed":
        outcome = "fail" if policy.on_error not in ("continue", "error_output") else "continue"
        if policy.on_error == "error_output":
            outcome = "error_output"
    else:
        outcome = "again" if judged == "again" else "retry"
    apply_outcome(history.execution, node, outcome)


def apply_to_execution(execution: ExecutionView, event: Event) -> bool:
    """Fold an execution-level event; False when it changes nothing. ``ExecutionStarted``
    only moves the status: the caller makes the plan's node views."""
    if isinstance(event, ExecutionCancelRequested):
        # The status changes only when the execution ends; from here on it is ending.
        execution.ending = execution.ending or execution.status not in FINAL_STATUSES
        return True
    if execution.status in FINAL_STATUSES:
        return False
    if isinstance(event, ExecutionQueued):
        return execution.status == "queued"
    if isinstance(event, ExecutionStarted):
        if execution.status != "queued":
            return False
        execution.status = "running"
        execution.started_at = utc(event.time)
        execution.outcomes_recorded = event.v >= OUTCOMES_RECORDED_VERSION
        return True
    if isinstance(event, ExecutionFinished):
        execution.status = event.status
        execution.finished_at = utc(event.time)
        execution.error = error_dict(event.error)
        return True
    return False


NodeEvent = (
    NodeReady | NodeDeferred | NodeWaiting | NodeStarted | NodeSucceeded | NodeFailed
    | NodeFailureHandled | NodeRetryScheduled | NodeSkipped | NodeCancelled | WorkflowCalled
    | ChildExecutionStarted | ChildExecutionFinished
)  # fmt: skip
NODE_EVENTS = (
    NodeReady, NodeDeferred, NodeWaiting, NodeStarted, NodeSucceeded, NodeFailed,
    NodeFailureHandled, NodeRetryScheduled, NodeSkipped, NodeCancelled, WorkflowCalled,
    ChildExecutionStarted, ChildExecutionFinished,
)  # fmt: skip


def apply_to_node(execution: ExecutionView, node: NodeView, event: NodeEvent) -> bool:
    """Fold a node's event into its view; False when it changes nothing. The caller has checked
    that the execution has not finished."""
    time = utc(event.time)
    if isinstance(event, NodeDeferred):
        # Still pending (or retrying), now for its user's share of the runners.
        return event.attempt > node.attempts and node.status not in NODE_DONE
    if isinstance(event, NodeReady):
        if event.attempt <= node.attempts or node.status in NODE_DONE:
            return False
        node.status = "queued"
        node.attempts = event.attempt
        node.input = event.input
        node.started_at = None  # the new attempt's start, once it comes
        node.finished_at = None
        node.children = None  # an earlier attempt's children were stopped when it failed
        return True
    if isinstance(event, NodeWaiting):
        if event.attempt <= node.attempts or node.status in NODE_DONE:
            return False
        node.status = "running"
        node.attempts = event.attempt
        node.input = event.input
        node.started_at = time
        node.finished_at = None
        node.wait_until = utc(event.until)
        return True
    if isinstance(event, NodeStarted):
        return _started(node, event, time)
    if isinstance(event, WorkflowCalled | ChildExecutionStarted | ChildExecutionFinished):
        return _call(execution, node, event)
    if isinstance(event, NodeSucceeded):
        return _succeeded(execution, node, event, time)
    if isinstance(event, NodeFailed):
        return _failed(execution, node, event, time)
    if isinstance(event, NodeFailureHandled):
        return _handled(execution, node, event)
    if isinstance(event, NodeRetryScheduled):
        if event.attempt != node.attempts or node.status not in _RETRY_FROM:
            return False
        node.status = "retrying"
        node.finished_at = None  # The node is not done: attempt + 1 follows.
        return True
    if isinstance(event, NodeSkipped):
        if node.status in NODE_DONE or node.status == "failed":
            return False
        node.status = "skipped"
        node.skip_reason = event.reason
        node.finished_at = time
        execution.ending = execution.ending or event.reason in ENDING_SKIP_REASONS
        return True
    # NodeCancelled: the scheduler's word; it cancels only what it had not finished, so a
    # success counted here was one it ignored.
    if node.status in ("skipped", "cancelled", "failed") or event.attempt < node.attempts:
        return False
    node.status = "cancelled"
    node.finished_at = time
    node.output = None
    node.pinned = False
    execution.ending = True
    return True


#: A retry is scheduled after a failure: ``retrying`` already when its outcome was read,
#: ``failed`` when not (and queued or running for histories of older versions).
_RETRY_FROM = frozenset({"queued", "running", "failed", "retrying"})


def _handled(execution: ExecutionView, node: NodeView, event: NodeFailureHandled) -> bool:
    """The scheduler acted on a failure of the current attempt in flight, or refused the next
    attempt (it failed before it was made ready)."""
    current = node.status in _NODE_ACTIVE and event.attempt == node.attempts
    if not (current or _refused(node, event.attempt, event.error)):
        return False
    node.attempts = event.attempt
    node.error = error_dict(event.error)
    node.finished_at = utc(event.failed_at)
    apply_outcome(execution, node, event.outcome)
    return True


def apply_outcome(execution: ExecutionView, node: NodeView, outcome: FailureOutcome) -> None:
    """What the scheduler made of the node's failure (its error recorded already)."""
    node.status = "failed"
    if outcome in ("again", "retry"):
        node.runner_lost += outcome == "again"
        node.status = "retrying"  # the next attempt follows (NodeRetryScheduled, NodeReady)
        node.finished_at = None
        return
    node.outcome = outcome
    if outcome == "fail":
        execution.ending = True  # the scheduler ends the run as failed
    # What the node delivers downstream: under error_output, its children's input on `error`.
    node.output = None
    if outcome == "error_output" and node.error is not None:
        error = ErrorInfo(type=node.error["type"], message=node.error["message"])
        node.output = dict(error_output(node.input, error))


def _started(node: NodeView, event: NodeStarted, time: datetime) -> bool:
    if event.attempt != node.attempts:
        return False
    if node.status == "queued":
        node.status = "running"
        node.started_at = time
        return True
    # A side-effect-free node's runner does not wait for its start to be stored before it
    # records the result, so after a failed publish the start can be stored last: it still
    # says when the attempt started, and changes nothing else.
    if node.started_at is None and node.status not in ("pending", "running"):
        node.started_at = time
        return True
    return False


def _call(
    execution: ExecutionView,
    node: NodeView,
    event: WorkflowCalled | ChildExecutionStarted | ChildExecutionFinished,
) -> bool:
    """An ``execute_workflow`` node's children."""
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
    # A child's end changes no view here (the child's own history has it).
    return node.status == "running" and not execution.ending and event.child in node.children


def _succeeded(
    execution: ExecutionView, node: NodeView, event: NodeSucceeded, time: datetime
) -> bool:
    stands_in = event.pinned or event.reused_from is not None  # recorded without a run
    # The scheduler's own results (pinned or reused data, a `wait` node's wake-up, a call's
    # end) were applied when it decided them, even with a cancel already in the stream; a
    # runner's result is an input taken in stream order, and none counts once the end began.
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


def _failed(execution: ExecutionView, node: NodeView, event: NodeFailed, time: datetime) -> bool:
    counts = not execution.ending and (
        _result_counts(node, event.attempt, stands_in=False)
        or _refused(node, event.attempt, event.error)
    )
    if execution.outcomes_recorded or not counts:
        # Read when the scheduler acted on it (NodeFailureHandled), if it did; False here
        # only says that it cannot have (a late, duplicate or fenced failure).
        return counts
    # An older history: the failure counts here, as the scheduler counted it.
    if _refused(node, event.attempt, event.error):
        node.attempts = event.attempt  # an attempt that failed before it was made ready
    elif not _result_counts(node, event.attempt, stands_in=False):
        return False
    node.error = error_dict(event.error)
    node.status = "failed"  # until a NodeRetryScheduled or NodeReady follows
    node.outcome = None
    node.finished_at = time
    return True


def _result_counts(node: NodeView, attempt: int, stands_in: bool) -> bool:
    """The first result of the current attempt wins. An output standing in for a run (pinned
    or reused) is recorded while the node is still pending, as attempt 0."""
    if stands_in:
        return node.status == "pending" and attempt == 0
    return node.status in _NODE_ACTIVE and attempt == node.attempts


def _refused(node: NodeView, attempt: int, error: ErrorInfo) -> bool:
    """The scheduler refused to make the node's next attempt ready (its input would not fit in
    one event) and recorded that attempt as failed: no runner ever had it."""
    waiting = node.status in _WAITING_FOR_ATTEMPT
    return waiting and attempt == node.attempts + 1 and error.type == INPUT_TOO_LARGE


def utc(time: datetime) -> datetime:
    # Events carry aware UTC times; a naive one can only mean UTC (the wire format is ISO 8601).
    return time.replace(tzinfo=UTC) if time.tzinfo is None else time


def error_dict(error: ErrorInfo | None) -> dict[str, Any] | None:
    if error is None:
        return None
    return {"type": error.type, "message": error.message, "stack": error.stack}


def settled(node: NodeView | None) -> str:
    """A node's end as a rerun reads it: ``succeeded``, ``failed``, ``cancelled``,
    ``skipped:<reason>``, or "" while it is not done."""
    if node is None:
        return ""
    if node.status == "skipped":
        return f"skipped:{node.skip_reason}"
    if node.status in ("succeeded", "failed", "cancelled"):
        return node.status
    return ""


__all__ = [
    "ExecutionView",
    "History",
    "NodeView",
    "PortItems",
    "apply_outcome",
    "apply_to_execution",
    "apply_to_node",
    "evolve",
    "fold_history",
    "settled",
]
