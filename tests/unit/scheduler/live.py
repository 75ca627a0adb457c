"""A model of the live scheduler's loop for replay tests: batches, races and crashes.

The real adapter (``nodedrop.scheduler.service``) consumes every recorded event of an input type
in stream order (its own results and proposals included), steps a batch of them at the batch's
clock, fires timers when the execution's wakeup is due, and records the batch's decisions in one
publish. This model does the same over an in-memory stream, and lets a test (or Hypothesis)
choose how big each batch is, record runner events while a batch is being published, lose part
of a publish (the execution is then rebuilt from the stream and resumed), and let time pass.
Pure code: no broker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from nodedrop.contracts import ids
from nodedrop.contracts.events import (
    INPUT_EVENT_TYPES,
    ErrorInfo,
    Event,
    ExecutionCancelRequested,
    ExecutionRequested,
    NodeFailed,
    NodeReady,
    NodeStarted,
    NodeSucceeded,
)
from nodedrop.scheduler.core import (
    ExecutionState,
    dispatch,
    evolve,
    next_wakeup,
    resume,
    step,
    tick,
)
from nodedrop.scheduler.core.rules import MAX_INPUT_BYTES
from nodedrop.scheduler.shares import RunnerShares

from .harness import T0

EXECUTION = "ex"


@dataclass
class Live:
    workflow: dict[str, Any]
    now: datetime = T0
    #: The execution's stream: every recorded event, in order, each id once (dedup window).
    stream: list[Event] = field(default_factory=list)
    #: Ids the scheduler recorded (the decisions a tampering test may alter).
    decided: set[str] = field(default_factory=set)
    state: ExecutionState | None = None
    #: The in-memory state was dropped (a failed publish, a restart): rebuild before deciding.
    lost: bool = False
    done: bool = False
    #: How many input-type events of the stream the scheduler has consumed.
    consumed: int = 0
    wakeup: datetime | None = None
    #: The most data a node's work may carry (``core.step``'s ``max_input_bytes``).
    limit: int = MAX_INPUT_BYTES
    #: The user's share of the runners (None: none), as the service keeps it.
    share_limit: int | None = None

    def __post_init__(self) -> None:
        self.shares = RunnerShares(self.share_limit)

    # ------------------------------------------------------------------ recording
    def record(self, event: Event, *, by_scheduler: bool = False) -> None:
        if any(e.event_id == event.event_id for e in self.stream):
            return  # JetStream's duplicate window
        self.stream.append(event)
        if by_scheduler:
            self.decided.add(event.event_id)

    def request(self, trigger: str = "start", *, timeout_ms: int | None = None) -> None:
        self.record(
            ExecutionRequested(
                event_id=ids.execution_requested(EXECUTION),
                execution_id=EXECUTION,
                time=self.now,
                workflow=self.workflow,
                requested_by="tester",
                trigger=trigger,
                input=[{"seed": 1}],
                timeout_ms=timeout_ms,
            )
        )

    def cancel(self) -> None:
        self.record(
            ExecutionCancelRequested(
                event_id=ids.cancel_requested(EXECUTION),
                execution_id=EXECUTION,
                time=self.now,
                requested_by="tester",
            )
        )

    # ------------------------------------------------------------------ the runner
    def open_attempts(self) -> list[NodeReady]:
        answered = {e.event_id for e in self.stream if isinstance(e, NodeSucceeded | NodeFailed)}
        return [
            e
            for e in self.stream
            if isinstance(e, NodeReady)
            and ids.node_result(EXECUTION, e.node, e.attempt) not in answered
        ]

    def started(self, task: NodeReady) -> bool:
        return any(
            e.event_id == ids.node_started(EXECUTION, task.node, task.attempt) for e in self.stream
        )

    def start(self, task: NodeReady) -> NodeStarted:
        return NodeStarted(
            event_id=ids.node_started(EXECUTION, task.node, task.attempt),
            execution_id=EXECUTION,
            time=self.now,
            node=task.node,
            attempt=task.attempt,
        )

    def result(self, task: NodeReady, outcome: str, items: int = 1, port: int = 0) -> Event:
        """``succeed``, ``fail`` (retryable), ``fatal``, ``timeout`` (the runner's own stop),
        ``lost`` (another runner found the task redelivered)."""
        event_id = ids.node_result(EXECUTION, task.node, task.attempt)
        if outcome == "succeed":
            ports = ["true", "false"] if task.node_type == "if" else ["main"]
            return NodeSucceeded(
                event_id=event_id,
                execution_id=EXECUTION,
                time=self.now,
                node=task.node,
                attempt=task.attempt,
                output={ports[port % len(ports)]: [{"i": k} for k in range(items)]},
            )
        error_type = {"timeout": "NodeTimeout", "lost": "RunnerLost"}.get(outcome, "Boom")
        return NodeFailed(
            event_id=event_id,
            execution_id=EXECUTION,
            time=self.now,
            node=task.node,
            attempt=task.attempt,
            error=ErrorInfo(type=error_type, message=f"{outcome}!", retryable=outcome != "fatal"),
        )

    # ------------------------------------------------------------------ the scheduler
    def waiting_inputs(self) -> list[Event]:
        return [e for e in self.stream if isinstance(e, INPUT_EVENT_TYPES)][self.consumed :]

    def batch(
        self,
        take: int | None = None,
        *,
        during_publish: list[Event] | None = None,
        publish_upto: int | None = None,
    ) -> list[Event]:
        """One turn of the scheduler's loop at a new clock reading. ``take``: how many waiting
        inputs it consumed (all by default); ``during_publish``: events runners record while
        the batch is being published (they land amid its decisions); ``publish_upto``: only
        that many decisions reach the stream (then the in-memory state is dropped)."""
        self.now += timedelta(milliseconds=1)
        now = self.now
        inputs = self.waiting_inputs()
        inputs = inputs if take is None else inputs[:take]
        decisions: list[Event] = []
        shares = self.shares
        if self.lost:  # rebuilt from the stream, as the service does after a failure
            self.lost = False
            self.state = None
            for event in self.stream:
                self.state = evolve(self.state, event)
            if self.state is not None and not self.state.finished:
                shares.sync(self.state)
                decisions += resume(self.state, now, max_input_bytes=self.limit, share=shares)
            elif self.state is not None:
                self.done = True
        due = self.wakeup is not None and self.wakeup <= now
        for event in inputs:
            if self.done:
                break
            shares.observe(EXECUTION, [event])
            self.state, decided = step(
                self.state, event, now, max_input_bytes=self.limit, share=shares
            )
            shares.observe(EXECUTION, decided)
            decisions += decided
        if due and self.state is not None and not self.done:
            decisions += tick(self.state, now, max_input_bytes=self.limit, share=shares)
        if self.state is not None and not self.state.finished:
            decisions += dispatch(self.state, now, shares, max_input_bytes=self.limit)
        shares.observe(EXECUTION, decisions)
        kept = decisions if publish_upto is None else decisions[:publish_upto]
        middle = len(kept) // 2
        for position, decision in enumerate(kept):
            if position == middle:
                for event in during_publish or []:
                    self.record(event)
            self.record(decision, by_scheduler=True)
        if not kept:
            for event in during_publish or []:
                self.record(event)
        if len(kept) < len(decisions):
            self.lost = True  # the inputs are redelivered; the execution is rebuilt
            return kept
        self.consumed += len(inputs)
        if self.state is not None and self.state.finished:
            self.done = True
        self.wakeup = next_wakeup(self.state) if self.state is not None else None
        return kept

    def settle(self, *, max_turns: int = 2000) -> None:
        """A well-behaved runner and scheduler from here on, until the execution finishes."""
        for _ in range(max_turns):
            if self.done:
                return
            if self.waiting_inputs() or self.lost:
                self.batch()
                continue
            tasks = [t for t in self.open_attempts() if not self.done]
            if tasks:
                task = tasks[0]
                if not self.started(task):
                    self.record(self.start(task))
                self.record(self.result(task, "succeed"))
                continue
            self.now = max(self.now, self.wakeup or self.now) + timedelta(milliseconds=1)
            self.batch()
        raise AssertionError("the execution did not finish")

    def history(self) -> list[tuple[int, Event]]:
        return list(enumerate(self.stream, start=1))
