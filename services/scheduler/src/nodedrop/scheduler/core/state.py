"""An execution's state: what the fold of its events says, and, apart from it, the decider's
memo of what it proposed this run.

Every field of :class:`ExecutionState` and :class:`NodeState` but ``through`` and ``memo`` is
the fold of the execution's events (:mod:`fold`, and the decisions the decider folds in as it
makes them): a fresh fold of the same events gives the same values. ``through`` says how far
the state has read the stream (the last event read from it that changed the state), for the
causes of its decisions. ``memo`` (:class:`DeciderMemo`) is what
no event says: a proposal (a node's timeout or refused input, the execution's deadline: see
``decide.propose_failure``) is recorded as an input and acted on only when it comes back from
the stream, and until then the memo keeps the decider from proposing it again. A rebuild from
the stream starts with an empty memo and proposes again (the proposals' ids are deterministic,
so nothing is recorded twice).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from nodedrop.contracts.events import (
    ChildExecutionFinished,
    ErrorInfo,
    ExecutionRequested,
    FailureOutcome,
    WorkflowCalled,
)
from nodedrop.contracts.items import PortItems
from nodedrop.scheduler.core.plan import Plan


class NodeStatus(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


TERMINAL = frozenset(
    {NodeStatus.SUCCEEDED, NodeStatus.FAILED, NodeStatus.SKIPPED, NodeStatus.CANCELLED}
)
#: A node in one of these has an attempt that a runner may be working on.
IN_FLIGHT = frozenset({NodeStatus.QUEUED, NodeStatus.RUNNING})


@dataclass(slots=True)
class Call:
    """An ``execute_workflow`` attempt's children: what the runner found to call, the children
    the scheduler started (index -> child execution id) and those that reported their end."""

    called: WorkflowCalled
    started: dict[int, str] = field(default_factory=dict)
    finished: dict[int, ChildExecutionFinished] = field(default_factory=dict)

    @property
    def waits(self) -> bool:
        """Whether the node waits for its children (not ``fire_and_forget``)."""
        return self.called.mode != "fire_and_forget"

    def running(self) -> list[str]:
        """Children started and not reported ended, in index order."""
        return [c for i, c in sorted(self.started.items()) if i not in self.finished]


@dataclass(slots=True)
class NodeState:
    status: NodeStatus = NodeStatus.PENDING
    #: The current attempt (0 before the first NodeReady).
    attempt: int = 0
    #: Plan parents not yet finished; the node is examined when this reaches 0.
    waiting_on: int = 0
    input: PortItems | None = None
    #: What the node delivers downstream: its output, the error port's items, or nothing.
    output: PortItems | None = None
    error: ErrorInfo | None = None
    skip_reason: str | None = None
    started_at: datetime | None = None
    #: When the retry of a RETRYING node is due, when a RUNNING attempt times out, or when a
    #: waiting ``wait`` node is done.
    timer: datetime | None = None
    #: A ``wait`` node waiting on the scheduler's timer (no runner has it) until this time.
    wait_until: datetime | None = None
    #: Attempts that a lost runner ended (``RunnerLost``) and that were made again at once;
    #: the retry policy does not count them.
    runner_lost: tuple[int, ...] = ()
    #: An ``execute_workflow`` attempt's children (``WorkflowCalled`` recorded): the node
    #: waits on the scheduler, no runner holds a slot for it.
    call: Call | None = None
    #: What the fold made of the current attempt's failure (None: it has not failed), and
    #: whether that outcome is recorded (``NodeFailureHandled``): the decider records it once.
    outcome: FailureOutcome | None = None
    outcome_recorded: bool = False
    #: When the current attempt failed.
    failed_at: datetime | None = None


@dataclass(slots=True)
class DeciderMemo:
    """What the decider proposed (or answered with nothing to record) this run and has not
    seen back from the stream: not part of the fold, empty after a rebuild."""

    #: node -> due time of the node's timer, answered already (a timeout proposed, a deferred
    #: attempt's retry read again): :meth:`ExecutionState.next_timer` passes it over until
    #: the fold sets the node's timer anew.
    timers_answered: dict[str, datetime] = field(default_factory=dict)
    #: The execution's deadline passed and its cancel is proposed.
    deadline_proposed: bool = False
    #: node -> the attempt refused as too large to send and proposed as failed: not made ready
    #: nor proposed again until that failure comes back.
    refused: dict[str, int] = field(default_factory=dict)

    def copy(self) -> DeciderMemo:
        return DeciderMemo(dict(self.timers_answered), self.deadline_proposed, dict(self.refused))


@dataclass(slots=True)
class ExecutionState:
    execution_id: str
    request: ExecutionRequested
    plan: Plan | None
    #: Why no plan could be made (the request names an unknown trigger or node).
    plan_error: str | None = None
    nodes: dict[str, NodeState] = field(default_factory=dict)
    #: Attempts ready to run but waiting for their user's share of the runners
    #: (``NodeDeferred`` recorded, no ``NodeReady`` yet): node -> attempt, oldest first.
    deferred: dict[str, int] = field(default_factory=dict)
    #: Waiting for a concurrency slot (``ExecutionQueued`` recorded), not started yet.
    queued: bool = False
    started: bool = False
    started_at: datetime | None = None
    #: The request's ``timeout_ms``, else the workflow's ``settings.timeout_ms``.
    timeout_ms: int | None = None
    deadline: datetime | None = None
    #: Plan nodes not yet in a terminal state.
    unfinished: int = 0
    #: Nodes that failed under ``continue`` / ``error_output`` (the run ends ``partial``).
    tolerated_failures: int = 0
    #: A node failed under ``on_error: fail``: the execution is ending as failed.
    failure: ErrorInfo | None = None
    #: (due, node) for every timer ever set; stale entries (the node's timer changed since) are
    #: dropped lazily, so finding the next due timer never scans the whole graph.
    timer_heap: list[tuple[datetime, str]] = field(default_factory=list)
    cancel_requested: bool = False
    #: The first cancel request's reason (``timed_out`` when the scheduler's deadline fired).
    cancel_reason: str | None = None
    #: The scheduler recorded the first decision of ending the execution (a cancelled node or a
    #: skip for cancel, failure or timeout). Results recorded after it are ignored, as the live
    #: scheduler, which had already ended the run, ignored them.
    ending: bool = False
    finished: bool = False
    final_status: str | None = None
    #: The id of the last event that changed the state as read from the stream: folded by a
    #: rebuild (``evolve``), or stepped as an input. Each decision's ``cause`` names it
    #: (``after``); an event that changed nothing (a duplicate) leaves it.
    through: str | None = None
    #: Not the fold: the decider's memo of this run (:class:`DeciderMemo`).
    memo: DeciderMemo = field(default_factory=DeciderMemo)

    def set_timer(self, node_id: str, due: datetime | None) -> None:
        self.nodes[node_id].timer = due
        self.memo.timers_answered.pop(node_id, None)  # a new timer, unanswered
        if due is not None:
            heapq.heappush(self.timer_heap, (due, node_id))

    def answer_timer(self, node_id: str) -> None:
        """Note in the memo that the node's timer is answered (its timeout proposed...)."""
        due = self.nodes[node_id].timer
        if due is not None:
            self.memo.timers_answered[node_id] = due

    def next_timer(self) -> tuple[datetime, str] | None:
        """The earliest live timer not answered yet (see :class:`DeciderMemo`), discarding
        stale and answered heap entries on the way."""
        heap = self.timer_heap
        answered = self.memo.timers_answered
        while heap:
            due, node_id = heap[0]
            if self.nodes[node_id].timer == due and answered.get(node_id) != due:
                return due, node_id
            heapq.heappop(heap)
        return None

    @property
    def accepts_results(self) -> bool:
        """Whether a runner's result can still change a node: not once the execution ends."""
        return not (self.cancel_requested or self.ending or self.failure is not None)

    @property
    def status(self) -> str:
        if self.final_status is not None:
            return self.final_status
        return "running" if self.started else "queued"
