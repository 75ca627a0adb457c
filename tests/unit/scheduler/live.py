"""The real scheduler service (``nodedrop.scheduler.service.Scheduler``) driven turn by turn
over the in-memory event log and key-value store, for replay tests: batches, races and crashes.

A test (or Hypothesis) chooses how many waiting inputs each turn of the loop takes, records
runner events while a turn's decisions are being published (they land amid them), cuts a
publish short (the scheduler then rebuilds the execution from the log, and its inputs come
again after their redelivery delay) and lets time pass: the clock the scheduler and the log's
redeliveries read. Each ``Live`` runs its scheduler on an event loop of its own.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from nodedrop.contracts import ids
from nodedrop.contracts.events import (
    ErrorInfo,
    Event,
    ExecutionCancelRequested,
    ExecutionFinished,
    ExecutionRequested,
    NodeFailed,
    NodeReady,
    NodeStarted,
    NodeSucceeded,
)
from nodedrop.platform.testing.event_log import MemoryEventLog
from nodedrop.platform.testing.key_values import MemoryKeyValues
from nodedrop.scheduler.core.rules import MAX_INPUT_BYTES
from nodedrop.scheduler.service import Scheduler

from .harness import T0

EXECUTION = "ex"
#: Never: no snapshot is stored in the background while a test drives the loop.
_NO_SNAPSHOTS_S = 10.0**9

T = TypeVar("T")


class _Clock:
    """The time the scheduler and the log read: moved by the test only."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def seconds(self) -> float:
        return self.now.timestamp()


class Live:
    def __init__(
        self,
        workflow: dict[str, Any],
        *,
        limit: int = MAX_INPUT_BYTES,
        share_limit: int | None = None,
    ) -> None:
        self.workflow = workflow
        #: The most data a node's work may carry (the scheduler's ``max_input_bytes``): may be
        #: changed until the first event is recorded.
        self.limit = limit
        self.share_limit = share_limit
        self._clock = _Clock(T0)
        self.log = MemoryEventLog(clock=self._clock.seconds)
        self._kv = MemoryKeyValues()
        #: Ids of the events the scheduler recorded (the decisions a tampering test may alter).
        self.decided: set[str] = set()
        #: The last turn's publish was cut short: the execution is rebuilt at the next one.
        self.lost = False
        self._scheduler: Scheduler | None = None
        self._loop = asyncio.Runner()
        weakref.finalize(self, self._loop.close)

    @property
    def now(self) -> datetime:
        return self._clock.now

    @now.setter
    def now(self, value: datetime) -> None:
        self._clock.now = value

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        return self._loop.run(work)

    def _started(self) -> Scheduler:
        """The scheduler, owning the log's only partition (made before the first event)."""
        if self._scheduler is None:
            self._scheduler = Scheduler(
                self.log,
                self._kv,
                clock=self._clock,
                max_in_flight=1,
                snapshot_interval_s=_NO_SNAPSHOTS_S,
                owner="live",
                max_running_nodes_per_user=self.share_limit,
                max_input_bytes=self.limit,
            )
            self._run(self._scheduler.take(0))
        return self._scheduler

    # ------------------------------------------------------------------ the log
    @property
    def stream(self) -> list[Event]:
        """Every recorded event, in order, each id once."""
        return self.log.events()

    @property
    def done(self) -> bool:
        return any(isinstance(e, ExecutionFinished) for e in self.stream)

    def record(self, event: Event) -> None:
        """Record ``event`` as a runner or a user would."""
        self._started()
        self.log.record(event)

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

    def history(self) -> list[tuple[int, Event]]:
        return list(enumerate(self.stream, start=1))

    # ------------------------------------------------------------------ the runner
    def open_attempts(self) -> list[NodeReady]:
        stream = self.stream
        answered = {e.event_id for e in stream if isinstance(e, NodeSucceeded | NodeFailed)}
        return [
            e
            for e in stream
            if isinstance(e, NodeReady)
            and ids.node_result(EXECUTION, e.node, e.attempt) not in answered
        ]

    def started(self, task: NodeReady) -> bool:
        started = ids.node_started(EXECUTION, task.node, task.attempt)
        return any(e.event_id == started for e in self.stream)

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
    def inputs_waiting(self) -> bool:
        """Whether the scheduler's consumer has an input to deliver now."""
        self._started()
        return any(c.waiting() for c in self.log.consumers())

    def batch(
        self,
        take: int | None = None,
        *,
        during_publish: list[Event] | None = None,
        publish_upto: int | None = None,
    ) -> list[Event]:
        """One turn of the scheduler's loop at a new clock reading; the decisions it recorded.
        ``take``: how many waiting inputs it takes (all by default); ``during_publish``: events
        runners record while its decisions are published (they land amid them);
        ``publish_upto``: only that many decisions reach the log (the publish then fails)."""
        scheduler = self._started()
        self.now += timedelta(milliseconds=1)
        amid = list(during_publish or [])
        if amid or publish_upto is not None:
            self.log.disturb_next_publish(keep=publish_upto, amid=amid)
        before, cut = len(self.stream), self.log.cut_short
        self._run(scheduler.turn(10**6 if take is None else take, wait_s=0, wait=True))
        for event in self.log.take_disturbance():  # no publish this turn: they land anyway
            self.log.record(event)
        mine = {e.event_id for e in amid}
        kept = [e for e in self.stream[before:] if e.event_id not in mine]
        self.decided.update(e.event_id for e in kept)
        self.lost = self.log.cut_short > cut
        return kept

    def _next_due(self) -> datetime | None:
        """When a timer of the scheduler or a redelivery of the log falls due."""
        scheduler = self._started()
        due = [scheduler.next_timer()] + [
            datetime.fromtimestamp(seconds, UTC)
            for c in self.log.consumers()
            if (seconds := c.next_due()) is not None
        ]
        return min((d for d in due if d is not None), default=None)

    def settle(self, *, max_turns: int = 2000) -> None:
        """A well-behaved runner and scheduler from here on, until the execution finishes."""
        for _ in range(max_turns):
            if self.done:
                return
            if self.inputs_waiting() or self.lost:
                self.batch()
                continue
            tasks = self.open_attempts()
            if tasks:
                task = tasks[0]
                if not self.started(task):
                    self.record(self.start(task))
                self.record(self.result(task, "succeed"))
                continue
            self.now = max(self.now, self._next_due() or self.now) + timedelta(milliseconds=1)
            self.batch()
        raise AssertionError("the execution did not finish")
