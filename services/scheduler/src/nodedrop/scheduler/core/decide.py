"""Decisions: what the scheduler records in answer to an event or to the passing of time.

``step(state, event, now)`` folds an event and returns the events the scheduler decides in answer,
already folded into ``state`` (decisions cascade: a skipped node may make its children ready).
``tick(state, now)`` answers the passing of time (retry backoff, node and execution timeouts);
``resume(state, now)`` re-derives, after a rebuild from the stream, whatever an interrupted
scheduler decided but may not have recorded. ``now`` is always passed in, and every decided event
has a deterministic id, so the same inputs give the same decisions, and deciding twice records
nothing twice.

``max_input_bytes`` bounds the data the scheduler sends with a node's work: a node whose
``NodeReady`` (a ``wait`` node's ``NodeWaiting``) would carry more, input items and all, fails
with ``InputTooLarge`` instead (docs/architecture.md, "Inputs too large for one event"). The same
limit gives the same decisions, so whatever decides again (a rebuild, replay) uses the default
unless told otherwise.

Work per event is proportional to the out-degree of the node it concerns, except when an
execution ends (every unfinished node is cancelled or skipped once).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from nodedrop.contracts import ids
from nodedrop.contracts.errors import DEAD_LETTER, INPUT_TOO_LARGE
from nodedrop.contracts.events import (
    CAUSES_RECORDED_VERSION,
    SCHEDULER_ACTOR,
    Cause,
    ChildExecutionFinished,
    ChildExecutionStarted,
    ConcurrencyScope,
    DecidingCall,
    ErrorInfo,
    Event,
    ExecutionCancelRequested,
    ExecutionFinished,
    ExecutionQueued,
    ExecutionStarted,
    FinalStatus,
    NodeCancelled,
    NodeDeferred,
    NodeFailed,
    NodeFailureHandled,
    NodeReady,
    NodeRetryScheduled,
    NodeSkipped,
    NodeSucceeded,
    NodeWaiting,
    SkipReason,
    WorkflowCalled,
)
from nodedrop.contracts.expressions import ANY_NODE
from nodedrop.contracts.items import MAIN_PORT, Item, PortItems
from nodedrop.contracts.nodetypes import passthrough_items
from nodedrop.contracts.workflow import Node
from nodedrop.scheduler.core import calls
from nodedrop.scheduler.core.fold import apply, evolve
from nodedrop.scheduler.core.rules import (
    MAX_INPUT_BYTES,
    NODE_TIMEOUT,
    carried_bytes,
    counted_attempts,
    gather_input,
    has_items,
)
from nodedrop.scheduler.core.state import IN_FLIGHT, TERMINAL, ExecutionState, NodeStatus

#: The node type the scheduler runs itself, on its durable timer.
WAIT_TYPE = "wait"
#: ``reason`` of the cancel request the scheduler records when an execution's deadline passes.
TIMED_OUT = "timed_out"
#: ``reason`` of the cancel request the scheduler records when a message of the execution was
#: dead-lettered: the execution ends ``failed`` (docs/architecture.md, "Dead letters").
DEAD_LETTERED = "dead_letter"


@dataclass(frozen=True, slots=True)
class ShareFull:
    """A user's share of the runners is taken: ``key`` has ``limit`` attempts on them."""

    key: str
    limit: int


class RunnerShare(Protocol):
    """Whether one more attempt of an execution's user may go to the runners now. Without one
    (None), every attempt goes at once."""

    def take(self, state: ExecutionState, node: str, attempt: int) -> ShareFull | None:
        """Count the attempt as on the runners and return None; or, when the user's share is
        full, count nothing and return it (the attempt is deferred)."""
        ...


def step(
    state: ExecutionState | None,
    event: Event,
    now: datetime,
    *,
    max_input_bytes: int = MAX_INPUT_BYTES,
    admitted: bool = True,
    share: RunnerShare | None = None,
) -> tuple[ExecutionState | None, list[Event]]:
    """Fold ``event`` and decide; returns the (updated) state and the new decisions.

    A new execution starts only if ``admitted`` (it has a concurrency slot); one that is not
    is only folded, for :func:`queue` and, once it has a slot, :func:`admit`. An attempt that
    ``share`` does not let go to the runners is deferred (``NodeDeferred``) until
    :func:`dispatch` makes it ready."""
    if state is None:
        state = evolve(None, event)
        if state is None:
            return None, []  # an event of an execution we never saw requested
        if not admitted and state.plan is not None:
            return state, []
        decider = _Decider(state, now, max_input_bytes, share, _cause(state, "step"))
        decider.start()
        return state, decider.decisions
    if not apply(state, event):
        return state, []  # a duplicate, a late result, or after the end: nothing to decide
    state.through = event.event_id
    decider = _Decider(state, now, max_input_bytes, share, _cause(state, "step"))
    match event:
        case NodeSucceeded() | NodeSkipped():
            decider.examine_children(event.node)
        case NodeFailed():
            decider.record_outcome(event.node)
            decider.stop_children(event.node)
            decider.after_failure(event.node)
        case WorkflowCalled():
            decider.call_workflow(event.node)
        case ChildExecutionFinished():
            decider.child_finished(event.node, event)
        case ExecutionCancelRequested(reason=reason):
            decider.end_as_requested(reason)
        case _:
            pass
    decider.finish_if_done()
    return state, decider.decisions


def tick(
    state: ExecutionState,
    now: datetime,
    *,
    max_input_bytes: int = MAX_INPUT_BYTES,
    share: RunnerShare | None = None,
) -> list[Event]:
    """Fire every timer of ``state`` that is due at ``now``."""
    return _tick(state, now, _cause(state, "tick"), max_input_bytes, share)


def _tick(
    state: ExecutionState,
    now: datetime,
    cause: Cause,
    max_input_bytes: int,
    share: RunnerShare | None,
) -> list[Event]:
    if state.finished or not state.started:
        return []
    decider = _Decider(state, now, max_input_bytes, share, cause)
    deadline = state.deadline
    if deadline is not None and deadline <= now and not state.memo.deadline_proposed:
        decider.propose_timeout()
        return decider.decisions
    while not state.finished and (timer := state.next_timer()) is not None and timer[0] <= now:
        due, node_id = timer
        node = state.nodes[node_id]
        if node.status == NodeStatus.RETRYING:
            decider.ready(node_id, node.attempt + 1, node.input or {})
        elif (
            node.status == NodeStatus.RUNNING
            and node.wait_until is not None
            and (node.wait_until <= due)
        ):
            # A waiting node's timer is the earlier of its wake-up and its timeout. Which one
            # it is decides, not how late the timer is fired: a late tick (a busy or restarted
            # scheduler, a rebuild after a lost publish) past both must not turn a timeout
            # into a success, nor decide otherwise than the tick that lost its publish.
            decider.wake(node_id)
        elif node.status == NodeStatus.RUNNING:
            timeout_ms = _definition(state, node_id).timeout_ms
            message = (
                f"node {node_id!r} attempt {node.attempt} ran longer than its timeout "
                f"of {timeout_ms} ms"
            )
            decider.propose_failure(node_id, ErrorInfo(type=NODE_TIMEOUT, message=message))
        else:  # pragma: no cover - the fold clears timers of nodes in any other status
            state.answer_timer(node_id)
    decider.finish_if_done()
    return decider.decisions


def queue(
    state: ExecutionState, now: datetime, *, scope: ConcurrencyScope, key: str, limit: int
) -> list[Event]:
    """Record that the execution, not admitted, waits for a slot of ``scope`` ``key`` (once:
    a queued execution stays queued until :func:`admit`)."""
    if state.started or state.queued or state.finished:
        return []
    decider = _Decider(state, now, MAX_INPUT_BYTES, cause=_cause(state, "queue"))
    decider.emit(
        ExecutionQueued(
            event_id=ids.execution_queued(state.execution_id),
            execution_id=state.execution_id,
            time=now,
            cause=decider.cause,
            scope=scope,
            key=key,
            limit=limit,
        )
    )
    return decider.decisions


def admit(
    state: ExecutionState,
    now: datetime,
    *,
    max_input_bytes: int = MAX_INPUT_BYTES,
    share: RunnerShare | None = None,
) -> list[Event]:
    """Start an execution that was not admitted before (it has a slot now)."""
    if state.started or state.finished:
        return []
    return _resume(state, now, _cause(state, "admit"), max_input_bytes, admitted=True, share=share)


def dispatch(
    state: ExecutionState,
    now: datetime,
    share: RunnerShare | None,
    *,
    max_input_bytes: int = MAX_INPUT_BYTES,
) -> list[Event]:
    """Make ready the deferred attempts that ``share`` lets go to the runners now, oldest
    first; the first one it does not let go stops the rest (they keep their turn)."""
    if state.finished or not state.started or not state.deferred:
        return []
    decider = _Decider(state, now, max_input_bytes, share, _cause(state, "dispatch"))
    decider.dispatch_deferred()
    return decider.decisions


def resume(
    state: ExecutionState,
    now: datetime,
    *,
    max_input_bytes: int = MAX_INPUT_BYTES,
    admitted: bool = True,
    share: RunnerShare | None = None,
) -> list[Event]:
    """After a rebuild: decide again everything the state calls for (recorded decisions have
    the same ids, so re-recording them is harmless), then fire overdue timers. An execution
    not started yet starts only if ``admitted``; if cancelled meanwhile, it ends either way.
    Deferred attempts keep their turn: they go first, as far as ``share`` lets them."""
    return _resume(
        state, now, _cause(state, "resume"), max_input_bytes, admitted=admitted, share=share
    )


def _resume(
    state: ExecutionState,
    now: datetime,
    cause: Cause,
    max_input_bytes: int,
    *,
    admitted: bool,
    share: RunnerShare | None,
) -> list[Event]:
    if state.finished:
        return []
    decider = _Decider(state, now, max_input_bytes, share, cause)
    for node_id in state.nodes:
        decider.record_outcome(node_id)  # lost with the rest of its batch
    if not state.started and not admitted and state.plan is not None:
        if state.cancel_requested:
            decider.end_as_requested(state.cancel_reason)
        return decider.decisions
    if not state.started:
        decider.start()
        if state.cancel_requested:
            # Cancelled before the start was recorded (a lost publish): the cancel is folded
            # in already and will not come again, so act on it here.
            decider.end_as_requested(state.cancel_reason)
        return decider.decisions
    if state.cancel_requested:
        decider.end_as_requested(state.cancel_reason)
        return decider.decisions
    if state.failure is not None:
        decider.end("failed", "execution_failed")
        return decider.decisions
    assert state.plan is not None
    decider.dispatch_deferred()
    for node_id, node in state.nodes.items():
        if node.call is not None:
            decider.resume_call(node_id)
        if node_id in state.deferred:
            continue  # waits for its share (dispatch), not for a decision lost in a crash
        if node.status == NodeStatus.RETRYING and node.timer is None:
            if state.memo.refused.get(node_id) != node.attempt + 1:  # else refused already
                decider.after_failure(node_id)
        elif node.status == NodeStatus.PENDING and node.waiting_on == 0:
            decider.examine(node_id)
    decider.finish_if_done()
    return decider.decisions + _tick(state, now, cause, max_input_bytes, share)


def next_wakeup(state: ExecutionState) -> datetime | None:
    """The earliest time at which :func:`tick` has something to do."""
    if state.finished or not state.started:
        return None
    timer = state.next_timer()
    deadline = None if state.memo.deadline_proposed else state.deadline
    times = [t for t in (timer[0] if timer else None, deadline) if t is not None]
    return min(times, default=None)


def _cause(state: ExecutionState, call: DecidingCall) -> Cause:
    """The cause each decision of ``call`` records: the call, and the last event ``state``
    folded from the stream (for ``step``, the input stepped), named relative to the execution
    (:class:`Cause`)."""
    through = state.through
    prefix = f"{state.execution_id}."
    if through is not None and through.startswith(prefix):
        through = through[len(prefix) :]
    return Cause(call=call, after=through)


class _Decider:
    """Collects the decisions of one call, folding each into the state as it is made, each
    marked with ``cause``."""

    def __init__(
        self,
        state: ExecutionState,
        now: datetime,
        max_input_bytes: int,
        share: RunnerShare | None = None,
        cause: Cause | None = None,
    ) -> None:
        self.state = state
        self.now = now
        self.max_input_bytes = max_input_bytes
        self.share = share
        self.cause = cause
        self.decisions: list[Event] = []
        self._id = state.execution_id

    def emit(self, event: Event) -> None:
        self.decisions.append(event)
        apply(self.state, event)

    # Timeouts race with what runners and users record: a result may already be in the stream,
    # not yet delivered, when the timer fires. So a timeout is only proposed here: recorded like
    # a runner's result or a user's cancel (the node's timeout shares the id of the attempt's
    # result, so only the first of the two is stored), and acted on when it comes back from the
    # stream, in stream order. The live state then never differs from a fold of the stream.
    def propose_failure(self, node_id: str, error: ErrorInfo, attempt: int | None = None) -> None:
        """Propose that ``attempt`` (by default the node's current one) failed with ``error``."""
        if attempt is None:
            attempt = self.state.nodes[node_id].attempt
        self.decisions.append(
            NodeFailed(
                event_id=ids.node_result(self._id, node_id, attempt),
                execution_id=self._id,
                time=self.now,
                cause=self.cause,
                node=node_id,
                attempt=attempt,
                error=error,
            )
        )
        self.state.answer_timer(node_id)  # proposed once; a rebuild proposes it again

    def propose_timeout(self) -> None:
        self.decisions.append(
            ExecutionCancelRequested(
                event_id=ids.execution_timed_out(self._id),
                execution_id=self._id,
                time=self.now,
                cause=self.cause,
                requested_by=SCHEDULER_ACTOR,
                reason=TIMED_OUT,
            )
        )
        self.state.memo.deadline_proposed = True  # once; a rebuild proposes it again

    # ------------------------------------------------------------------ execution level
    def start(self) -> None:
        state = self.state
        if state.plan is None:
            error = ErrorInfo(
                type="InvalidRequest", message=state.plan_error or "no plan", retryable=False
            )
            self._finish("failed", error)
            return
        self.emit(
            ExecutionStarted(
                event_id=ids.execution_started(self._id),
                execution_id=self._id,
                time=self.now,
                cause=self.cause,
                plan=state.plan.order,
                v=CAUSES_RECORDED_VERSION,
            )
        )
        self.examine(state.plan.root)
        self.examine_children(state.plan.root)
        self.finish_if_done()

    def _root_input(self) -> PortItems:
        request = self.state.request
        if request.mode == "trigger":
            items = request.input if isinstance(request.input, list) else [{}]
            return {MAIN_PORT: items}
        return request.input if isinstance(request.input, dict) else {MAIN_PORT: [{}]}

    def end_as_requested(self, reason: str | None) -> None:
        """End the execution for a cancel request: a user's, the deadline's, a dead letter's."""
        if reason == TIMED_OUT:
            self.end("timed_out", "timed_out")
        elif reason == DEAD_LETTERED:
            message = (
                "an event of this execution could not be processed and was dead-lettered "
                "(the scheduler's log and the dead-letter stream name it)"
            )
            error = ErrorInfo(type=DEAD_LETTER, message=message, retryable=False)
            self.end("failed", "execution_failed", error=error)
        else:
            self.end("cancelled", "cancelled")

    def end(
        self, status: FinalStatus, skip_reason: SkipReason, *, error: ErrorInfo | None = None
    ) -> None:
        """End the execution: stop what runs, skip what has not run (rules 5, 7, 8)."""
        state = self.state
        if state.finished:
            return
        # Never started (cancelled while queued): it has no node to stop or skip.
        for node_id, node in state.nodes.items() if state.started else ():
            if node.status in IN_FLIGHT or node.status == NodeStatus.RETRYING:
                self.emit(
                    NodeCancelled(
                        event_id=ids.node_cancelled(self._id, node_id, node.attempt),
                        execution_id=self._id,
                        time=self.now,
                        cause=self.cause,
                        node=node_id,
                        attempt=node.attempt,
                    )
                )
                self.stop_children(node_id)
            elif node.status not in TERMINAL:
                self._skip(node_id, skip_reason)
        if error is None and status == "failed":
            error = state.failure
        elif error is None and status == "timed_out":
            error = ErrorInfo(
                type="ExecutionTimeout",
                retryable=False,
                message=f"execution ran longer than {state.timeout_ms} ms",
            )
        self._finish(status, error)

    def finish_if_done(self) -> None:
        state = self.state
        if state.finished or not state.started:
            return
        if state.failure is not None:
            self.end("failed", "execution_failed")
        elif state.unfinished == 0:
            self._finish("partial" if state.tolerated_failures else "succeeded", None)

    def _finish(self, status: FinalStatus, error: ErrorInfo | None) -> None:
        """Record the execution's end and, in the same batch (same partition:
        :func:`routing.child_execution_id`), a child's report to the parent waiting for it and
        the start of the workflow's error workflow after a failure (:mod:`calls`)."""
        self.emit(
            ExecutionFinished(
                event_id=ids.execution_finished(self._id),
                execution_id=self._id,
                time=self.now,
                cause=self.cause,
                status=status,
                error=error,
            )
        )
        for other in (
            calls.error_workflow_request(self.state, status, error, self.now),
            calls.report_to_parent(self.state, status, error, self.now),
        ):
            if other is not None:
                self.decisions.append(other)  # another execution's: not folded here

    # ------------------------------------------------------------------ node level
    def record_outcome(self, node_id: str) -> None:
        """Record what the fold made of the node's failure, before what it leads to, so that
        no reader of the history judges the failure again."""
        node = self.state.nodes[node_id]
        if node.outcome is None or node.outcome_recorded or node.error is None:
            return
        assert node.failed_at is not None  # set with the outcome
        self.emit(
            NodeFailureHandled(
                event_id=ids.node_failure_handled(self._id, node_id, node.attempt),
                execution_id=self._id,
                time=self.now,
                cause=self.cause,
                node=node_id,
                attempt=node.attempt,
                outcome=node.outcome,
                error=node.error,
                failed_at=node.failed_at,
            )
        )

    def after_failure(self, node_id: str) -> None:
        node = self.state.nodes[node_id]
        if node.status == NodeStatus.RETRYING:
            policy = _definition(self.state, node_id).retry_policy
            # A lost runner's attempt is made again at once: nothing to back off from.
            lost = node.attempt in node.runner_lost
            delay_ms = 0 if lost else policy.delay_ms(counted_attempts(node))
            due = self.now + timedelta(milliseconds=delay_ms)
            self.emit(
                NodeRetryScheduled(
                    event_id=ids.node_retry(self._id, node_id, node.attempt),
                    execution_id=self._id,
                    time=self.now,
                    cause=self.cause,
                    node=node_id,
                    attempt=node.attempt,
                    delay_ms=delay_ms,
                    due_at=due,
                )
            )
            if delay_ms == 0:
                self.ready(node_id, node.attempt + 1, node.input or {})
        elif node.status == NodeStatus.FAILED and self.state.failure is None:
            self.examine_children(node_id)  # continue / error_output: the run goes on

    def examine_children(self, node_id: str) -> None:
        assert self.state.plan is not None
        work = deque(self.state.plan.nodes[node_id].children)
        while work:
            child = work.popleft()
            if self.examine(child):
                work.extend(self.state.plan.nodes[child].children)

    def examine(self, node_id: str) -> bool:
        """Run or skip a pending node whose plan parents all finished (rules 2 and 3).
        Returns True when the node finished at once (skipped or pinned), so its children
        need a look too."""
        state = self.state
        node = state.nodes[node_id]
        if state.finished or node.status != NodeStatus.PENDING or node.waiting_on > 0:
            return False
        assert state.plan is not None
        if node_id == state.plan.root:
            # The root always runs (rule 3), with the request's input.
            return self._run_or_pin(node_id, self._root_input())
        node_input = gather_input(state, state.plan.nodes[node_id])
        if not has_items(node_input):
            self._skip(node_id, "no_input")
            return True
        return self._run_or_pin(node_id, node_input)

    def dispatch_deferred(self) -> None:
        for node_id, attempt in list(self.state.deferred.items()):
            if not self.ready(node_id, attempt, self._input_of(node_id, attempt)):
                return

    def _input_of(self, node_id: str, attempt: int) -> PortItems:
        """The input a deferred attempt was to run with: a retry's is the node's recorded
        input; a first attempt's is gathered again (its parents' outputs do not change)."""
        assert self.state.plan is not None
        node = self.state.nodes[node_id]
        if attempt > 1 and node.input is not None:
            return node.input
        if node_id == self.state.plan.root:
            return self._root_input()
        return gather_input(self.state, self.state.plan.nodes[node_id])

    def ready(self, node_id: str, attempt: int, node_input: PortItems) -> bool:
        """Make the attempt ready (or waiting, for a ``wait`` node); returns False when it
        was not: refused as too large, or deferred for its user's share of the runners."""
        if self.state.memo.refused.get(node_id) == attempt:
            return False  # too large: its failure is proposed, not back from the stream yet
        definition = _definition(self.state, node_id)
        ms = definition.parameters.get("ms")  # a `wait` node's delay
        work: NodeReady | NodeWaiting
        if definition.type == WAIT_TYPE:
            work = self._waiting(node_id, attempt, node_input, ms)
        else:
            work = NodeReady(
                event_id=ids.node_ready(self._id, node_id, attempt),
                execution_id=self._id,
                time=self.now,
                cause=self.cause,
                node=node_id,
                attempt=attempt,
                node_type=definition.type,
                input=node_input,
                parameters=definition.parameters,
                timeout_ms=definition.timeout_ms,
                trigger=self.state.request.trigger,
                trace_context=self.state.request.trace_context,
                upstream=self._upstream(node_id),
                requester=self.state.request.requested_by,
                depth=self.state.request.depth,
            )
        # An event over the message limit could never be recorded: every publish would fail
        # and the execution would end only as a dead letter, so the node fails here, visibly.
        # (Measuring a usual event costs a few tenths of a microsecond.)
        size = carried_bytes(work)
        if size > self.max_input_bytes:
            self._refuse_input(node_id, attempt, size)
            return False
        if isinstance(work, NodeReady) and self.share is not None:
            full = self.share.take(self.state, node_id, attempt)
            if full is not None:
                self._defer(node_id, attempt, full)
                return False
        self.emit(work)
        if isinstance(work, NodeWaiting) and _wait_ms(ms) is None:
            # The API validates `ms`; a hand-made request may not have.
            self._refuse_wait(node_id, ms)
        return True

    def _defer(self, node_id: str, attempt: int, full: ShareFull) -> None:
        if self.state.deferred.get(node_id) == attempt:
            self.state.answer_timer(node_id)  # (a retry's timer read again) it keeps its turn
            return
        self.emit(
            NodeDeferred(
                event_id=ids.node_deferred(self._id, node_id, attempt),
                execution_id=self._id,
                time=self.now,
                cause=self.cause,
                node=node_id,
                attempt=attempt,
                key=full.key,
                limit=full.limit,
            )
        )

    def _refuse_input(self, node_id: str, attempt: int, size: int) -> None:
        # Proposed like a timeout and acted on when it comes back from the stream. Not
        # retryable: the same input would not fit next time either.
        message = (
            f"the input of node {node_id!r} is too large to send in one event: {size:,} bytes "
            f"encoded (input items, parameters and the outputs its expressions read), over "
            f"the limit of {self.max_input_bytes:,} bytes. Each parent output under the "
            "offload threshold travels inside the event; make the parents' outputs smaller "
            "or fewer"
        )
        error = ErrorInfo(type=INPUT_TOO_LARGE, message=message, retryable=False)
        self.propose_failure(node_id, error, attempt)
        self.state.memo.refused[node_id] = attempt

    def _upstream(self, node_id: str) -> dict[str, PortItems]:
        """The recorded outputs the node's expressions may read, and only those."""
        assert self.state.plan is not None
        reads = self.state.plan.nodes[node_id].reads
        if not reads:
            return {}
        wanted = self.state.nodes.keys() if ANY_NODE in reads else reads
        return {
            other: output
            for other in wanted
            if other != node_id
            and (state := self.state.nodes.get(other)) is not None
            and (output := state.output) is not None
        }

    def _waiting(
        self, node_id: str, attempt: int, node_input: PortItems, ms: object
    ) -> NodeWaiting:
        """``wait`` runs on the scheduler's durable timer: no runner holds a slot for it."""
        return NodeWaiting(
            event_id=ids.node_waiting(self._id, node_id, attempt),
            execution_id=self._id,
            time=self.now,
            cause=self.cause,
            node=node_id,
            attempt=attempt,
            input=node_input,
            until=self.now + timedelta(milliseconds=_wait_ms(ms) or 0),
        )

    def _refuse_wait(self, node_id: str, ms: object) -> None:
        # Proposed like a timeout, so it is acted on in stream order as a runner's failure is.
        message = f"wait node {node_id!r} needs a whole number `ms` >= 0, not {ms!r}"
        self.propose_failure(
            node_id, ErrorInfo(type="InvalidParameters", message=message, retryable=False)
        )

    def wake(self, node_id: str) -> None:
        """A waiting ``wait`` node's time has come: it passes its items through."""
        ms = _definition(self.state, node_id).parameters.get("ms")
        if _wait_ms(ms) is None:  # after a rebuild that lost the refusal: refuse again
            self._refuse_wait(node_id, ms)
            return
        self._succeed_with(node_id, passthrough_items(self.state.nodes[node_id].input or {}))

    def _run_or_pin(self, node_id: str, node_input: PortItems) -> bool:
        """Run the node, or record at once the output that stands in for a run: its
        ``pinned_output``, else (a rerun) the output the first execution recorded for it."""
        request = self.state.request
        pinned = _definition(self.state, node_id).pinned_output
        reused = None
        if pinned is None and request.rerun_of is not None:  # reuse needs an origin to name
            reused = request.reused_outputs.get(node_id)
        output = pinned if pinned is not None else reused
        if output is None:
            self.ready(node_id, 1, node_input)
            return False
        self.state.nodes[node_id].input = node_input
        self.emit(
            NodeSucceeded(
                event_id=ids.node_result(self._id, node_id, 0),
                execution_id=self._id,
                time=self.now,
                cause=self.cause,
                node=node_id,
                attempt=0,
                output=output,
                pinned=pinned is not None,
                reused_from=request.rerun_of if reused is not None else None,
            )
        )
        return True

    # ------------------------------------------------------------------ execute_workflow
    def call_workflow(self, node_id: str) -> None:
        """The runner found the workflow to call: start the first children. ``fire_and_forget``
        succeeds at once with the child's id; the others wait for their children's ends."""
        call = self.state.nodes[node_id].call
        assert call is not None
        called = call.called
        if called.mode == "fire_and_forget":
            child = self._start_child(node_id, 0)
            output: list[Item] = [{"execution_id": child, "workflow_id": called.workflow_id}]
            self._succeed_with(node_id, output)
            return
        for index in range(min(called.concurrency, len(called.inputs))):
            self._start_child(node_id, index)
        self._succeed_if_all_done(node_id)

    def child_finished(self, node_id: str, event: ChildExecutionFinished) -> None:
        if event.status not in calls.CHILD_SUCCEEDED:
            reason = f": {event.error.type}: {event.error.message}" if event.error else ""
            message = f"child execution {event.child} ended {event.status}{reason}"
            retryable = event.error.retryable if event.error else True
            self._fail_call(
                node_id, ErrorInfo(type=calls.CHILD_FAILED, message=message, retryable=retryable)
            )
            return
        call = self.state.nodes[node_id].call
        assert call is not None
        following = len(call.started)
        if following < len(call.called.inputs):
            self._start_child(node_id, following)
        self._succeed_if_all_done(node_id)

    def resume_call(self, node_id: str) -> None:
        """After a rebuild: start the children a crash kept from being started (the same ids:
        stored once), and stop again those of a node that no longer waits for them."""
        node = self.state.nodes[node_id]
        call = node.call
        assert call is not None
        if node.status != NodeStatus.RUNNING:
            self.stop_children(node_id)
            return
        if not call.started:
            self.call_workflow(node_id)
            return
        wanted = min(len(call.called.inputs), call.called.concurrency + len(call.finished))
        for index in range(len(call.started), wanted):
            self._start_child(node_id, index)
        self._succeed_if_all_done(node_id)

    def stop_children(self, node_id: str) -> None:
        """Cancel the running children a node waited for (``fire_and_forget`` ones live on)."""
        call = self.state.nodes[node_id].call
        if call is None or not call.waits:
            return
        for child in call.running():
            self.decisions.append(calls.cancel_child(child, self.now))

    def _start_child(self, node_id: str, index: int) -> str:
        call = self.state.nodes[node_id].call
        assert call is not None
        called = call.called
        request = calls.child_request(self.state, node_id, called, index, self.now)
        # Another execution's event: stored with this batch, acted on by the child's own
        # (same partition's) scheduler when it comes back from the stream.
        self.decisions.append(request)
        self.emit(
            ChildExecutionStarted(
                event_id=ids.child_started(self._id, node_id, called.attempt, index),
                execution_id=self._id,
                time=self.now,
                cause=self.cause,
                node=node_id,
                attempt=called.attempt,
                index=index,
                child=request.execution_id,
            )
        )
        return request.execution_id

    def _succeed_if_all_done(self, node_id: str) -> None:
        call = self.state.nodes[node_id].call
        assert call is not None
        if len(call.finished) < len(call.called.inputs):
            return
        output = [item for _, done in sorted(call.finished.items()) for item in done.output]
        self._succeed_with(node_id, output)

    def _succeed_with(self, node_id: str, output: list[Item]) -> None:
        """A node the scheduler completes itself (a ``wait`` woken, a call whose children
        finished): its current attempt succeeds with ``output`` on ``main``."""
        node = self.state.nodes[node_id]
        self.emit(
            NodeSucceeded(
                event_id=ids.node_result(self._id, node_id, node.attempt),
                execution_id=self._id,
                time=self.now,
                cause=self.cause,
                node=node_id,
                attempt=node.attempt,
                output={MAIN_PORT: output},
            )
        )
        self.examine_children(node_id)

    def _fail_call(self, node_id: str, error: ErrorInfo) -> None:
        node = self.state.nodes[node_id]
        self.emit(
            NodeFailed(
                event_id=ids.node_result(self._id, node_id, node.attempt),
                execution_id=self._id,
                time=self.now,
                cause=self.cause,
                node=node_id,
                attempt=node.attempt,
                error=error,
            )
        )
        self.record_outcome(node_id)
        self.stop_children(node_id)
        self.after_failure(node_id)

    def _skip(self, node_id: str, reason: SkipReason) -> None:
        self.emit(
            NodeSkipped(
                event_id=ids.node_skipped(self._id, node_id),
                execution_id=self._id,
                time=self.now,
                cause=self.cause,
                node=node_id,
                reason=reason,
            )
        )


def _wait_ms(ms: object) -> int | None:
    """A ``wait`` node's delay, or ``None`` when its ``ms`` is not a whole number >= 0."""
    return ms if isinstance(ms, int) and not isinstance(ms, bool) and ms >= 0 else None


def _definition(state: ExecutionState, node_id: str) -> Node:
    assert state.plan is not None
    return state.plan.nodes[node_id].node
