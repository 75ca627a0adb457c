"""The event catalogue: everything that happens to an execution, as immutable records.

Events are msgspec structs (frozen, tagged by ``type``): they are encoded and decoded on every hop
of the hot path, and msgspec does that several times faster than pydantic (docs/benchmarks.md).

Schema rules: a field is only ever added, with a default, so events stored by older versions keep
decoding; ``v`` is the schema version of the event's type. Every event carries its execution id,
a deterministic ``event_id`` (also its ``Nats-Msg-Id``, see :mod:`nodedrop.contracts.ids`) and the
``time`` it happened, decided by whoever recorded it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

from nodedrop.contracts.items import Item, PortItems

ExecutionMode = Literal["trigger", "node"]
FinalStatus = Literal["succeeded", "partial", "failed", "cancelled", "timed_out"]
SkipReason = Literal["no_input", "execution_failed", "cancelled", "timed_out"]


class ErrorInfo(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A node's or an execution's error. ``retryable=False`` fails the node at once."""

    type: str
    message: str
    stack: str | None = None
    retryable: bool = True


#: The scheduler core's calls that decide (``nodedrop.scheduler.core.decide``).
DecidingCall = Literal["step", "tick", "resume", "admit", "queue", "dispatch"]


class Cause(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What a scheduler decision answered: the core's ``call`` that decided it, at the
    decision's ``time`` (the batch's clock), from a state that had folded the execution's
    events up to ``after``. For ``step``, ``after`` is the input stepped; for ``resume`` (after
    a rebuild from the stream), the last event the rebuild read; for the other calls, the last
    input stepped before them. ``after`` is the event's id with the execution's id and the dot
    after it left off when it starts so (most do), to keep decisions small on the wire."""

    call: DecidingCall
    after: str | None = None


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", omit_defaults=True):
    event_id: str
    execution_id: str
    time: datetime
    v: int = 1
    #: Set on the scheduler's decisions about their own execution from ``ExecutionStarted``
    #: ``v`` 3 on (:data:`CAUSES_RECORDED_VERSION`); never on what runners, users or other
    #: executions record.
    cause: Cause | None = None


class ExecutionRequested(Event, tag=True, frozen=True):
    """A user asked for an execution. Carries a snapshot of the definition: the run never
    depends on the workflow being edited or deleted later."""

    workflow: dict[str, Any]
    requested_by: str
    mode: ExecutionMode = "trigger"
    trigger: str | None = None
    node: str | None = None
    #: trigger mode: the trigger's output items; node mode: the node's input ``{port: items}``.
    input: list[Item] | PortItems | None = None
    timeout_ms: int | None = None
    workflow_id: str | None = None
    workflow_version: int | None = None
    rerun_of: str | None = None
    #: W3C trace context of the request (``traceparent``...), when tracing is on.
    trace_context: dict[str, str] | None = None
    #: A rerun (``rerun_of``): outputs the first execution recorded for nodes upstream of the
    #: rerun's starting node. Each such node succeeds with this output instead of running.
    reused_outputs: dict[str, PortItems] = {}
    #: A child started by an ``execute_workflow`` node: the parent execution and node, the
    #: node's attempt and the child's index among the attempt's children.
    parent_execution: str | None = None
    parent_node: str | None = None
    parent_attempt: int = 0
    child_index: int = 0
    #: The parent waits for this child's end (modes ``wait``, ``each_item``): the child's
    #: scheduler reports it to the parent (``ChildExecutionFinished``).
    report_to_parent: bool = False
    #: How many ``execute_workflow`` calls deep this execution is (0: not a child).
    depth: int = 0
    #: Started to handle another execution's failure (an error workflow), or by one that was:
    #: its own failure starts no error workflow, so error workflows never loop.
    error_handler: bool = False


#: How an ``execute_workflow`` node runs its children (docs/nodes.md).
CallMode = Literal["wait", "fire_and_forget", "each_item"]


#: What a concurrency limit counts: one user's executions, or one workflow's.
ConcurrencyScope = Literal["user", "workflow"]


class ExecutionQueued(Event, tag=True, frozen=True):
    """The execution waits for a slot: ``scope`` ``key`` (a user, a workflow) has ``limit``
    executions running. It starts (``ExecutionStarted``) once one of them ends; the time it
    waits does not count against its timeout."""

    scope: ConcurrencyScope
    key: str
    limit: int


#: ``v`` of the ``ExecutionStarted`` a scheduler records now: from this version on, the scheduler
#: records the outcome of every failure it acts on (``NodeFailureHandled``). A history whose start
#: is older is read by judging each failure from the recorded definition
#: (:mod:`nodedrop.contracts.history_fold`).
OUTCOMES_RECORDED_VERSION = 2
#: ``v`` of the ``ExecutionStarted`` from which on every scheduler decision of the execution
#: carries its :class:`Cause`, so that replay verifies the history by folding it as it stands
#: (``nodedrop.scheduler.core.replay``); older histories are read by the reader that infers
#: the scheduler's batches (``replay_legacy``).
CAUSES_RECORDED_VERSION = 3


class ExecutionStarted(Event, tag=True, frozen=True):
    """The execution started. ``v`` 2 and later: each failure's outcome is recorded
    (``NodeFailureHandled``); ``v`` 1 (older histories): it is not. ``v`` 3 and later: every
    scheduler decision of the execution carries its ``cause``."""

    #: The plan: the nodes this execution may run, in definition order.
    plan: list[str]


class NodeReady(Event, tag=True, frozen=True):
    """Work for a runner: everything it needs to run one attempt of one node."""

    node: str
    attempt: int
    node_type: str
    input: PortItems
    parameters: dict[str, Any] = {}
    timeout_ms: int | None = None
    trigger: str | None = None
    #: The request's trace context, so the runner's span joins the request's trace.
    trace_context: dict[str, str] | None = None
    #: Outputs of earlier nodes that the parameters' expressions read (``nodes["id"]``).
    upstream: dict[str, PortItems] = {}
    #: The request's ``requested_by``: whose credentials the node may use (docs/credentials.md).
    #: None in tasks recorded before it was added: such a task may use none.
    requester: str | None = None
    #: The execution's ``depth`` (``execute_workflow`` checks it against the depth limit).
    depth: int = 0


class NodeDeferred(Event, tag=True, frozen=True):
    """The node's ``attempt`` is ready to run but waits for its user's share of the runners:
    ``key`` (a user) has ``limit`` node attempts queued or running. Its ``NodeReady`` follows
    once one of them ends; until then no runner sees it, so other users' work passes it."""

    node: str
    attempt: int
    key: str
    limit: int


class NodeWaiting(Event, tag=True, frozen=True):
    """A ``wait`` node started waiting. The scheduler keeps the timer (a runner holds no slot
    for it) and records the node's success at ``until``; the wait survives restarts because
    ``until`` is recorded here."""

    node: str
    attempt: int
    input: PortItems
    until: datetime


class NodeStarted(Event, tag=True, frozen=True):
    node: str
    attempt: int
    worker: str = ""


class NodeSucceeded(Event, tag=True, frozen=True):
    node: str
    attempt: int
    output: PortItems
    pinned: bool = False
    #: The execution whose recorded output this is: the node did not run in this one (a rerun).
    reused_from: str | None = None
    #: Ids of the credentials the attempt used (the audit of their use; never their values).
    credentials: list[str] = []


class NodeFailed(Event, tag=True, frozen=True):
    node: str
    attempt: int
    error: ErrorInfo
    #: Ids of the credentials the attempt used before it failed.
    credentials: list[str] = []


class WorkflowCalled(Event, tag=True, frozen=True):
    """An ``execute_workflow`` attempt found the workflow it calls (the runner read it, as the
    requester's own): the scheduler starts the children from here, and the runner's slot is
    free. ``inputs`` holds each child's input items in item order (one list unless
    ``each_item``)."""

    node: str
    attempt: int
    workflow_id: str
    workflow_version: int
    workflow: dict[str, Any]
    trigger: str
    mode: CallMode
    concurrency: int = 1
    inputs: list[list[Item]] = []


class ChildExecutionStarted(Event, tag=True, frozen=True):
    """The scheduler requested child ``index`` of the node's attempt (its ``ExecutionRequested``
    is stored in the same atomic batch): the parent's history names every child it started,
    so a rebuild never starts one twice."""

    node: str
    attempt: int
    index: int
    child: str


class ChildExecutionFinished(Event, tag=True, frozen=True):
    """A child the parent waits for ended; recorded into the parent by the child's scheduler
    with the child's ``ExecutionFinished``. ``output``: the child's final output (the main
    items of its plan's terminal nodes, docs/nodes.md)."""

    node: str
    attempt: int
    index: int
    child: str
    status: FinalStatus
    output: list[Item] = []
    error: ErrorInfo | None = None


LogLevel = Literal["debug", "info", "warning", "error"]


class LogLine(msgspec.Struct, frozen=True, kw_only=True):
    time: datetime
    level: LogLevel
    message: str


class NodeLogged(Event, tag=True, frozen=True):
    """What a node attempt wrote to ``ctx.log``, recorded with its result."""

    node: str
    attempt: int
    lines: list[LogLine]


#: What the scheduler made of a failed attempt: ``again`` (a lost runner's attempt, made again at
#: once, outside the retry policy), ``retry`` (the retry policy tries once more), or, failed for
#: good, the node's ``on_error``: ``fail`` (the execution begins to end as failed), ``continue``
#: (its connections deliver nothing), ``error_output`` (its ``error`` port delivers the error).
FailureOutcome = Literal["again", "retry", "fail", "continue", "error_output"]


class NodeFailureHandled(Event, tag=True, frozen=True):
    """The scheduler acted on ``attempt``'s ``NodeFailed`` (its ``error``): recorded in the batch
    of the decisions it led to, so that no reader of the history judges a failure again. A
    ``NodeFailed`` without one was not acted on (stored once the execution began to end)."""

    node: str
    attempt: int
    outcome: FailureOutcome
    error: ErrorInfo
    #: When the attempt failed (its ``NodeFailed``'s time): when the node finished, if it did.
    failed_at: datetime


class NodeRetryScheduled(Event, tag=True, frozen=True):
    node: str
    #: The attempt that failed; the next one is ``attempt + 1``.
    attempt: int
    delay_ms: int
    due_at: datetime


class NodeSkipped(Event, tag=True, frozen=True):
    node: str
    reason: SkipReason


class NodeCancelled(Event, tag=True, frozen=True):
    """A queued or running attempt was stopped because its execution ended."""

    node: str
    attempt: int


#: ``requested_by`` of what the scheduler asks for on its own (not a user's act).
SCHEDULER_ACTOR = "scheduler"


class ExecutionCancelRequested(Event, tag=True, frozen=True):
    requested_by: str
    reason: str | None = None


class ExecutionFinished(Event, tag=True, frozen=True):
    status: FinalStatus
    error: ErrorInfo | None = None


AnyEvent = (
    ExecutionRequested
    | ExecutionQueued
    | ExecutionStarted
    | NodeReady
    | NodeDeferred
    | NodeWaiting
    | NodeStarted
    | NodeSucceeded
    | NodeFailed
    | NodeLogged
    | NodeFailureHandled
    | NodeRetryScheduled
    | NodeSkipped
    | NodeCancelled
    | ExecutionCancelRequested
    | ExecutionFinished
    | WorkflowCalled
    | ChildExecutionStarted
    | ChildExecutionFinished
)
EVENT_TYPES: tuple[type[Event], ...] = (
    ExecutionRequested,
    ExecutionQueued,
    ExecutionStarted,
    NodeReady,
    NodeDeferred,
    NodeWaiting,
    NodeStarted,
    NodeSucceeded,
    NodeFailed,
    NodeLogged,
    NodeFailureHandled,
    NodeRetryScheduled,
    NodeSkipped,
    NodeCancelled,
    ExecutionCancelRequested,
    ExecutionFinished,
    WorkflowCalled,
    ChildExecutionStarted,
    ChildExecutionFinished,
)
#: The events a runner or a user records; the scheduler records all the others.
INPUT_EVENT_TYPES: tuple[type[Event], ...] = (
    ExecutionRequested,
    NodeStarted,
    NodeSucceeded,
    NodeFailed,
    ExecutionCancelRequested,
    WorkflowCalled,
    ChildExecutionFinished,
)
NODE_RESULT_TYPES = (NodeSucceeded, NodeFailed)


def type_name(event: Event | type[Event]) -> str:
    cls = event if isinstance(event, type) else type(event)
    return cls.__name__
