"""A Hypothesis state machine of the scheduler core under crashes and rebuilds.

The model is the real adapter's loop (services/scheduler/.../service.py) reduced to pure code:
inputs (runner results, cancels) land in a stream that drops repeated ids as JetStream's
duplicate window does, a consumer queue delivers them to the scheduler until acknowledged, and
the scheduler decides, records its decisions, then acknowledges. Between any two steps the
scheduler may crash, also halfway through recording a batch of decisions; it then forgets its
state and rebuilds it from the stream (fold + ``resume``) when the next input arrives, exactly
as the service does. Events are also republished after the duplicate window, so the stream may
hold the same id twice.

Invariants, after every step:
- a running scheduler's state is the fold of the stream (nothing decided is lost or unrecorded);
- a decision made again after a rebuild says the same as the recorded one (same id, same
  content): a rebuilt scheduler never changes its mind, it only repeats itself;
- at most one distinct ``ExecutionFinished``.
At the end a well-behaved runner answers everything: the execution finishes and every plan node
is in exactly one terminal state.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta
from typing import Any

import msgspec
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from nodedrop.contracts import ids
from nodedrop.contracts.events import (
    INPUT_EVENT_TYPES,
    Event,
    ExecutionCancelRequested,
    ExecutionFinished,
    ExecutionRequested,
    NodeFailed,
    NodeReady,
    NodeRetryScheduled,
    NodeStarted,
    NodeSucceeded,
    NodeWaiting,
)
from nodedrop.scheduler.core import ExecutionState, evolve, resume, step, tick
from nodedrop.scheduler.core.state import TERMINAL

from .harness import T0
from .test_properties import reachable, result, summary, workflows

EXECUTION = "ex"

#: Fields that legitimately differ when a decision is made again later: when it was made, and
#: timers computed from that moment.
_VOLATILE = frozenset({"time", "due_at", "until"})


def _content(event: Event) -> dict[str, Any]:
    raw: dict[str, Any] = msgspec.to_builtins(event)
    return {k: v for k, v in raw.items() if k not in _VOLATILE}


class CrashingScheduler(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now: datetime = T0
        #: The event stream, in order; may hold an id twice (republished after the window).
        self.stream: list[Event] = []
        self.recorded: dict[str, Event] = {}
        #: Inputs delivered to the scheduler's consumer and not yet acknowledged.
        self.queue: deque[Event] = deque()
        #: The scheduler's memory; ``None`` after a crash until the next input rebuilds it.
        self.state: ExecutionState | None = None
        self.workflow: dict[str, Any] = {}
        self.plan: set[str] = set()

    # ------------------------------------------------------------------ the broker

    def publish(self, event: Event, *, dedupe: bool = True) -> None:
        """Append to the stream, dropping a repeated id inside the duplicate window; a repeated
        decision must say what the first one said."""
        first = self.recorded.get(event.event_id)
        # Inputs may race for an id (a node's timeout and its runner's result): the first wins.
        racing_inputs = isinstance(first, INPUT_EVENT_TYPES) and isinstance(
            event, INPUT_EVENT_TYPES
        )
        if first is not None and not racing_inputs:
            difference = f"decided differently the second time: {first!r} then {event!r}"
            assert type(first) is type(event), difference
            assert _content(first) == _content(event), difference
        if first is not None and dedupe:
            return
        self.recorded.setdefault(event.event_id, event)
        self.stream.append(event)
        if isinstance(event, INPUT_EVENT_TYPES):
            self.queue.append(event)

    # ------------------------------------------------------------------ the scheduler

    def rebuild_if_needed(self) -> None:
        if self.state is not None:
            return
        folded: ExecutionState | None = None
        for event in self.stream:
            folded = evolve(folded, event)
        assert folded is not None
        self.state = folded
        for decision in resume(folded, self.now):
            self.publish(decision)

    def deliver(self, *, keep: int | None = None) -> None:
        """Decide on the next queued input and record the decisions; ``keep`` crashes the
        scheduler after recording only that many of them (the input stays unacknowledged)."""
        event = self.queue[0]
        self.rebuild_if_needed()
        self.state, decisions = step(self.state, event, self.now)
        for decision in decisions[:keep]:
            self.publish(decision)
        if keep is not None and keep < len(decisions):
            self.state = None
            return
        self.queue.popleft()

    def open_attempts(self) -> list[NodeReady]:
        answered = {
            (e.node, e.attempt) for e in self.stream if isinstance(e, NodeSucceeded | NodeFailed)
        }
        return [
            e
            for e in self.stream
            if isinstance(e, NodeReady) and (e.node, e.attempt) not in answered
        ]

    def finished(self) -> bool:
        return any(isinstance(e, ExecutionFinished) for e in self.stream)

    def final_status(self) -> str:
        return next(e.status for e in self.stream if isinstance(e, ExecutionFinished))

    # ------------------------------------------------------------------ rules

    @initialize(workflow=workflows())
    def request(self, workflow: dict[str, Any]) -> None:
        self.workflow = workflow
        self.plan = reachable(workflow, "n0")
        self.publish(
            ExecutionRequested(
                event_id=ids.execution_requested(EXECUTION),
                execution_id=EXECUTION,
                time=self.now,
                workflow=workflow,
                requested_by="stateful",
                trigger="n0",
                input=[{"seed": 1}],
            )
        )
        self.deliver()

    @precondition(lambda self: bool(self.queue))
    @rule()
    def deliver_next(self) -> None:
        self.deliver()

    @precondition(lambda self: bool(self.queue))
    @rule(keep=st.integers(0, 3))
    def crash_while_recording(self, keep: int) -> None:
        self.deliver(keep=keep)

    @rule()
    def crash(self) -> None:
        self.state = None

    @precondition(lambda self: bool(self.open_attempts()))
    @rule(data=st.data(), outcome=st.sampled_from(["succeed", "succeed", "fail", "fatal"]))
    def runner_answers(self, data: st.DataObject, outcome: str) -> None:
        task = data.draw(st.sampled_from(self.open_attempts()))
        items = data.draw(st.integers(0, 2))
        self.publish(result(task, self.now, outcome, items, data.draw(st.integers(0, 1))))

    @precondition(lambda self: bool(self.open_attempts()))
    @rule(data=st.data())
    def runner_starts(self, data: st.DataObject) -> None:
        self.runner_starts_task(data.draw(st.sampled_from(self.open_attempts())))

    def runner_starts_task(self, task: NodeReady) -> None:
        self.publish(
            NodeStarted(
                event_id=ids.node_started(EXECUTION, task.node, task.attempt),
                execution_id=EXECUTION,
                time=self.now,
                node=task.node,
                attempt=task.attempt,
            )
        )

    @rule(ms=st.sampled_from([1, 10, 600, 5000]))
    def time_passes(self, ms: int) -> None:
        self.now += timedelta(milliseconds=ms)
        if self.state is not None:
            for decision in tick(self.state, self.now):
                self.publish(decision)

    @precondition(lambda self: self.stream)
    @rule(data=st.data())
    def republish_after_window(self, data: st.DataObject) -> None:
        inputs = [e for e in self.stream if isinstance(e, INPUT_EVENT_TYPES)]
        self.publish(data.draw(st.sampled_from(inputs)), dedupe=False)

    @rule()
    def cancel(self) -> None:
        self.publish(
            ExecutionCancelRequested(
                event_id=ids.cancel_requested(EXECUTION),
                execution_id=EXECUTION,
                time=self.now,
                requested_by="stateful",
            )
        )

    # ------------------------------------------------------------------ invariants

    @invariant()
    def running_state_is_the_fold_of_the_stream(self) -> None:
        if self.state is None or self.queue:
            # Mid-batch states are checked once the queue drains: an input already in the
            # stream but not yet decided is in the fold and not yet in the state.
            return
        folded: ExecutionState | None = None
        for event in self.stream:
            folded = evolve(folded, event)
        assert summary(folded) == summary(self.state)

    @invariant()
    def finishes_at_most_once(self) -> None:
        finishes = {e.event_id for e in self.stream if isinstance(e, ExecutionFinished)}
        assert len(finishes) <= 1

    def teardown(self) -> None:
        if not self.workflow:
            return
        # A well-behaved world from here on: deliver everything, answer every attempt, let time
        # pass (timers only fire in a running scheduler, so rebuild first).
        for _ in range(1000):
            if self.finished() and not self.queue:
                break
            if self.queue:
                self.deliver()
            elif attempts := self.open_attempts():
                self.publish(result(attempts[0], self.now, "succeed", 1, 0))
            else:
                self.rebuild_if_needed()
                self.time_passes(60_000)
        assert self.finished(), "the execution never finished"
        self.rebuild_if_needed()
        assert self.state is not None
        assert set(self.state.nodes) == self.plan
        assert all(node.status in TERMINAL for node in self.state.nodes.values())
        decided_waits = {e.event_id for e in self.stream if isinstance(e, NodeWaiting)}
        decided_retries = {e.event_id for e in self.stream if isinstance(e, NodeRetryScheduled)}
        # Deterministic ids make every repeated decision collapse into the first one.
        assert len(decided_waits) == len(
            {(e.node, e.attempt) for e in self.stream if isinstance(e, NodeWaiting)}
        )
        assert len(decided_retries) == len(
            {(e.node, e.attempt) for e in self.stream if isinstance(e, NodeRetryScheduled)}
        )


CrashingScheduler.TestCase.settings = settings(
    max_examples=settings().max_examples * 3,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
test_scheduler_survives_crashes_between_any_two_steps = CrashingScheduler.TestCase


def _run_to_running(machine: CrashingScheduler, workflow: dict[str, Any]) -> NodeReady:
    """Request, answer the trigger, and start the next node: it is now running."""
    machine.request(workflow)
    machine.publish(result(machine.open_attempts()[0], machine.now, "succeed", 1, 0))
    machine.deliver()
    task = machine.open_attempts()[0]
    machine.runner_starts_task(task)
    machine.deliver()
    return task


def _two_nodes(**settings_: Any) -> dict[str, Any]:
    workflow: dict[str, Any] = {
        "name": "race",
        "nodes": [
            {"id": "n0", "type": "manual_trigger"},
            {"id": "n1", "type": "noop", "timeout_ms": 5},
        ],
        "connections": [{"from": "n0", "to": "n1"}],
    }
    if settings_:
        workflow["settings"] = settings_
    return workflow


def test_a_result_already_in_the_stream_beats_the_node_timeout() -> None:
    machine = CrashingScheduler()
    task = _run_to_running(machine, _two_nodes())
    # The runner's result is stored but not yet delivered when the timeout timer fires.
    machine.publish(result(task, machine.now, "succeed", 1, 0))
    machine.time_passes(5000)
    while machine.queue:
        machine.deliver()
    assert machine.state is not None
    assert machine.state.nodes["n1"].status == "succeeded"
    machine.running_state_is_the_fold_of_the_stream()
    assert machine.final_status() == "succeeded"


def test_a_result_already_in_the_stream_beats_the_execution_deadline() -> None:
    machine = CrashingScheduler()
    workflow = _two_nodes(timeout_ms=1000)
    del workflow["nodes"][1]["timeout_ms"]
    task = _run_to_running(machine, workflow)
    machine.publish(result(task, machine.now, "succeed", 1, 0))
    machine.time_passes(5000)
    while machine.queue:
        machine.deliver()
    machine.running_state_is_the_fold_of_the_stream()
    assert machine.state is not None
    assert machine.state.nodes["n1"].status == "succeeded"
    assert machine.final_status() == "succeeded"


def test_an_execution_past_its_deadline_ends_timed_out_once_the_proposal_is_back() -> None:
    machine = CrashingScheduler()
    workflow = _two_nodes(timeout_ms=1000)
    del workflow["nodes"][1]["timeout_ms"]
    _run_to_running(machine, workflow)
    machine.time_passes(5000)
    assert not machine.finished(), "a timeout is acted on in stream order, not at once"
    machine.crash()  # and a crash before the proposal comes back changes nothing
    while machine.queue:
        machine.deliver()
    finished = [e for e in machine.stream if isinstance(e, ExecutionFinished)]
    assert [f.status for f in finished] == ["timed_out"]
    assert machine.state is not None
    assert machine.state.nodes["n1"].status == "cancelled"


def test_a_cancel_folded_in_before_the_start_was_recorded_still_ends_the_run() -> None:
    machine = CrashingScheduler()
    workflow = _two_nodes()
    # The request is delivered, the scheduler crashes before recording any decision, and a
    # cancel lands in the stream meanwhile: the rebuild folds both and must still end the run.
    machine.workflow = workflow
    machine.plan = reachable(workflow, "n0")
    machine.publish(
        ExecutionRequested(
            event_id=ids.execution_requested(EXECUTION),
            execution_id=EXECUTION,
            time=machine.now,
            workflow=workflow,
            requested_by="stateful",
            trigger="n0",
        )
    )
    machine.crash_while_recording(0)
    machine.cancel()
    while machine.queue:
        machine.deliver()
    assert machine.finished()
    assert machine.final_status() == "cancelled"


def test_a_wake_decided_before_a_queued_cancel_is_folded_as_the_scheduler_applied_it() -> None:
    machine = CrashingScheduler()
    machine.request(
        {
            "name": "wake",
            "nodes": [
                {"id": "n0", "type": "manual_trigger"},
                {"id": "n1", "type": "wait", "parameters": {"ms": 0}},
                {"id": "n2", "type": "noop"},
            ],
            "connections": [{"from": "n0", "to": "n1"}, {"from": "n1", "to": "n2"}],
        }
    )
    machine.publish(result(machine.open_attempts()[0], machine.now, "succeed", 1, 0))
    machine.cancel()  # in the stream, not yet delivered, when the wait's timer fires
    machine.deliver()  # the trigger's result: n1 starts waiting
    machine.time_passes(1)  # n1 wakes: a decision recorded after the cancel
    while machine.queue:
        machine.deliver()
    machine.running_state_is_the_fold_of_the_stream()
    assert machine.final_status() == "cancelled"
    assert machine.state is not None
    assert machine.state.nodes["n1"].status == "succeeded"
    assert machine.state.nodes["n2"].status == "cancelled"
