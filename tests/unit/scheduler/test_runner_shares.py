"""Each user's share of the runners: attempts beyond it are deferred (``NodeDeferred``), kept
out of the runners' queue, and made ready oldest first as the user's attempts end; other users'
attempts pass them. Deferred histories rebuild and replay like any other.

The world here is the core with the scheduler's real :class:`RunnerShares`, driven batch by
batch as the service drives it: inputs stepped (a result gives its place back first), then the
deferred attempts of users with room dispatched."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest

from nodedrop.contracts import ids
from nodedrop.contracts.events import (
    ErrorInfo,
    Event,
    ExecutionCancelRequested,
    ExecutionFinished,
    ExecutionRequested,
    NodeDeferred,
    NodeFailed,
    NodeReady,
    NodeSkipped,
    NodeStarted,
    NodeSucceeded,
    NodeWaiting,
)
from nodedrop.scheduler.core import ExecutionState, dispatch, evolve, resume, step, tick
from nodedrop.scheduler.core.replay import verify
from nodedrop.scheduler.shares import RunnerShares

from .harness import T0, n, wf


def fan_out(width: int, **start: Any) -> dict[str, Any]:
    leaves = [f"a{i}" for i in range(1, width + 1)]
    nodes = [n("start", "manual_trigger", **start), *(n(leaf) for leaf in leaves)]
    return wf(nodes, [("start", leaf) for leaf in leaves])


@dataclass
class World:
    """Executions of several users under one scheduler's shares, batch by batch."""

    shares: RunnerShares
    now: datetime = T0
    states: dict[str, ExecutionState] = field(default_factory=dict)
    logs: dict[str, list[Event]] = field(default_factory=dict)

    def batch(self, inputs: Iterable[Event] = ()) -> list[Event]:
        self.now += timedelta(milliseconds=1)  # each batch has its own clock reading
        decided: list[Event] = []
        for event in inputs:
            execution_id = event.execution_id
            self.logs.setdefault(execution_id, []).append(event)
            self.shares.observe(execution_id, [event])
            state, made = step(self.states.get(execution_id), event, self.now, share=self.shares)
            assert state is not None
            self.states[execution_id] = state
            self._record(execution_id, made)
            decided += made
        for _, executions in self.shares.waiting():
            for execution_id in executions:
                made = dispatch(self.states[execution_id], self.now, self.shares)
                self._record(execution_id, made)
                decided += made
                if self.states[execution_id].deferred:
                    break
                self.shares.done_waiting(execution_id)
        return decided

    def _record(self, execution_id: str, decisions: list[Event]) -> None:
        self.logs[execution_id].extend(decisions)
        self.shares.observe(execution_id, decisions)

    def request(self, execution_id: str, user: str, workflow: dict[str, Any]) -> list[Event]:
        return self.batch([request(execution_id, user, workflow, self.now)])

    def succeed(self, execution_id: str, *nodes: str) -> list[Event]:
        results: list[Event] = []
        for node in nodes:
            attempt = self.states[execution_id].nodes[node].attempt
            results += [
                NodeStarted(
                    event_id=ids.node_started(execution_id, node, attempt),
                    execution_id=execution_id,
                    time=self.now,
                    node=node,
                    attempt=attempt,
                ),
                NodeSucceeded(
                    event_id=ids.node_result(execution_id, node, attempt),
                    execution_id=execution_id,
                    time=self.now,
                    node=node,
                    attempt=attempt,
                    output={"main": [{}]},
                ),
            ]
        return self.batch(results)

    def fail(self, execution_id: str, node: str) -> list[Event]:
        attempt = self.states[execution_id].nodes[node].attempt
        return self.batch(
            [
                NodeFailed(
                    event_id=ids.node_result(execution_id, node, attempt),
                    execution_id=execution_id,
                    time=self.now,
                    node=node,
                    attempt=attempt,
                    error=ErrorInfo(type="Boom", message="boom", retryable=True),
                )
            ]
        )

    def cancel(self, execution_id: str) -> list[Event]:
        return self.batch(
            [
                ExecutionCancelRequested(
                    event_id=ids.cancel_requested(execution_id),
                    execution_id=execution_id,
                    time=self.now,
                    requested_by="tester",
                )
            ]
        )

    def of(self, execution_id: str, kind: type[Event]) -> list[Any]:
        return [e for e in self.logs[execution_id] if isinstance(e, kind)]

    def ready_nodes(self, execution_id: str) -> list[str]:
        return [e.node for e in self.of(execution_id, NodeReady)]

    def verifies(self, execution_id: str) -> bool:
        result = verify(list(enumerate(self.logs[execution_id])))
        assert result.ok, [str(d) for d in result.differences]
        return result.ok


def request(
    execution_id: str, user: str, workflow: dict[str, Any], now: datetime
) -> ExecutionRequested:
    return ExecutionRequested(
        event_id=ids.execution_requested(execution_id),
        execution_id=execution_id,
        time=now,
        workflow=workflow,
        requested_by=user,
        trigger="start",
    )


def test_attempts_beyond_a_users_share_are_deferred_and_another_user_passes_them() -> None:
    world = World(RunnerShares(2))
    world.request("alice-1", "alice", fan_out(5))
    world.succeed("alice-1", "start")
    assert world.ready_nodes("alice-1") == ["start", "a1", "a2"]
    deferred = world.of("alice-1", NodeDeferred)
    assert [(d.node, d.attempt, d.key, d.limit) for d in deferred] == [
        ("a3", 1, "alice", 2),
        ("a4", 1, "alice", 2),
        ("a5", 1, "alice", 2),
    ]
    assert [d.event_id for d in deferred] == [
        ids.node_deferred("alice-1", f"a{i}", 1) for i in (3, 4, 5)
    ]
    # Bob's work goes to the runners at once, past alice's three deferred attempts.
    world.request("bob-1", "bob", fan_out(1))
    assert world.ready_nodes("bob-1") == ["start"]
    assert world.shares.running("alice") == 2
    assert world.shares.running("bob") == 1


def test_deferred_attempts_are_made_ready_oldest_first_as_the_users_attempts_end() -> None:
    world = World(RunnerShares(2))
    world.request("alice-1", "alice", fan_out(5))
    world.succeed("alice-1", "start")
    world.succeed("alice-1", "a2")
    assert world.ready_nodes("alice-1") == ["start", "a1", "a2", "a3"]
    world.succeed("alice-1", "a1", "a3")
    assert world.ready_nodes("alice-1") == ["start", "a1", "a2", "a3", "a4", "a5"]
    world.succeed("alice-1", "a4", "a5")
    (finished,) = world.of("alice-1", ExecutionFinished)
    assert finished.status == "succeeded"
    assert world.shares.running("alice") == 0
    assert world.shares.waiting() == []
    assert world.verifies("alice-1")


def test_a_users_new_attempts_do_not_pass_their_deferred_ones() -> None:
    world = World(RunnerShares(1))
    world.request("alice-1", "alice", fan_out(2))
    world.succeed("alice-1", "start")  # a1 ready, a2 deferred
    world.request("alice-2", "alice", fan_out(1))  # its start waits behind a2
    assert world.ready_nodes("alice-2") == []
    assert [d.node for d in world.of("alice-2", NodeDeferred)] == ["start"]
    world.succeed("alice-1", "a1")
    assert world.ready_nodes("alice-1") == ["start", "a1", "a2"]
    assert world.ready_nodes("alice-2") == []
    world.succeed("alice-1", "a2")
    assert world.ready_nodes("alice-2") == ["start"]
    assert world.verifies("alice-1")
    assert world.verifies("alice-2")


def test_without_a_share_nothing_is_deferred() -> None:
    world = World(RunnerShares(None))
    world.request("alice-1", "alice", fan_out(50))
    world.succeed("alice-1", "start")
    assert len(world.ready_nodes("alice-1")) == 51
    assert world.of("alice-1", NodeDeferred) == []


def test_cancelled_while_deferred_its_deferred_attempts_never_reach_a_runner() -> None:
    world = World(RunnerShares(1))
    world.request("alice-1", "alice", fan_out(3))
    world.succeed("alice-1", "start")
    world.cancel("alice-1")
    assert world.ready_nodes("alice-1") == ["start", "a1"]
    skipped = {e.node: e.reason for e in world.of("alice-1", NodeSkipped)}
    assert skipped == {"a2": "cancelled", "a3": "cancelled"}
    (finished,) = world.of("alice-1", ExecutionFinished)
    assert finished.status == "cancelled"
    assert world.shares.running("alice") == 0
    assert world.shares.waiting() == []
    assert world.verifies("alice-1")


def test_a_retry_beyond_the_share_is_deferred_and_runs_with_its_input() -> None:
    retrying = {"max_attempts": 3, "initial_interval_ms": 0}
    workflow = wf(
        [n("start", "manual_trigger"), n("a", retry=retrying), n("b")],
        [("start", "a"), ("start", "b")],
    )
    world = World(RunnerShares(1))
    world.request("alice-1", "alice", workflow)
    world.succeed("alice-1", "start")  # a ready, b deferred
    world.fail("alice-1", "a")  # a's retry waits behind b
    assert [(d.node, d.attempt) for d in world.of("alice-1", NodeDeferred)] == [("b", 1), ("a", 2)]
    assert world.ready_nodes("alice-1") == ["start", "a", "b"]
    world.succeed("alice-1", "b")
    retry = world.of("alice-1", NodeReady)[-1]
    assert (retry.node, retry.attempt) == ("a", 2)
    first = world.of("alice-1", NodeReady)[1]
    assert retry.input == first.input
    world.succeed("alice-1", "a")
    assert world.of("alice-1", ExecutionFinished)[0].status == "succeeded"
    assert world.verifies("alice-1")


def test_a_rebuild_leaves_a_deferred_retry_deferred_and_decides_nothing_for_it() -> None:
    retrying = {"max_attempts": 3, "initial_interval_ms": 5}
    workflow = wf(
        [n("start", "manual_trigger"), n("a", retry=retrying), n("b")],
        [("start", "a"), ("start", "b")],
    )
    world = World(RunnerShares(1))
    world.request("alice-1", "alice", workflow)
    world.succeed("alice-1", "start")  # a ready, b deferred
    world.fail("alice-1", "a")  # b goes; a's retry is due in 5 ms
    world.now += timedelta(milliseconds=10)
    state = world.states["alice-1"]
    world._record("alice-1", tick(state, world.now, share=world.shares))
    assert list(state.deferred.items()) == [("a", 2)]  # due, but b has the share
    rebuilt: ExecutionState | None = None
    for event in world.logs["alice-1"]:
        rebuilt = evolve(rebuilt, event)
    assert rebuilt is not None
    shares = RunnerShares(1)
    shares.sync(rebuilt)
    later = world.now + timedelta(seconds=1)
    assert resume(rebuilt, later, share=shares) == []
    assert tick(rebuilt, later, share=shares) == []
    assert list(rebuilt.deferred.items()) == [("a", 2)]


def test_a_wait_node_takes_no_share_of_the_runners() -> None:
    workflow = wf(
        [
            n("start", "manual_trigger"),
            n("w1", "wait", parameters={"ms": 1000}),
            n("w2", "wait", parameters={"ms": 1000}),
            n("a"),
        ],
        [("start", "w1"), ("start", "w2"), ("start", "a")],
    )
    world = World(RunnerShares(1))
    world.request("alice-1", "alice", workflow)
    world.succeed("alice-1", "start")
    assert {e.node for e in world.of("alice-1", NodeWaiting)} == {"w1", "w2"}
    assert world.ready_nodes("alice-1") == ["start", "a"]
    assert world.of("alice-1", NodeDeferred) == []


def test_a_rebuild_keeps_deferred_attempts_waiting_for_their_turn() -> None:
    world = World(RunnerShares(2))
    world.request("alice-1", "alice", fan_out(4))
    world.succeed("alice-1", "start")
    recorded = list(world.logs["alice-1"])
    # A new scheduler folds the history and counts the execution as its state says.
    state: ExecutionState | None = None
    for event in recorded:
        state = evolve(state, event)
    assert state is not None
    assert list(state.deferred) == ["a3", "a4"]
    shares = RunnerShares(2)
    shares.sync(state)
    assert shares.running("alice") == 2
    redecided = resume(state, world.now + timedelta(seconds=1), share=shares)
    # Nothing is made ready beyond the share, and nothing new is recorded for the deferred.
    assert [e for e in redecided if isinstance(e, NodeReady | NodeDeferred)] == []
    assert dispatch(state, world.now, shares) == []
    # Once one of alice's attempts ends, the oldest deferred one goes.
    shares.observe("alice-1", [done("alice-1", "a1", 1, world.now)])
    made = dispatch(state, world.now, shares)
    assert [(e.node, e.attempt) for e in made if isinstance(e, NodeReady)] == [("a3", 1)]
    assert list(state.deferred) == ["a4"]


def test_a_deferral_the_core_does_not_decide_is_reported() -> None:
    chain = wf([n("start", "manual_trigger"), n("a"), n("b")], [("start", "a"), ("a", "b")])
    world = World(RunnerShares(1))
    world.request("alice-1", "alice", chain)
    world.succeed("alice-1", "start")
    world.succeed("alice-1", "a")
    assert world.verifies("alice-1")
    history = world.logs["alice-1"]
    # b deferred while a, its parent, had not run: not a decision the core makes.
    first_ready = next(
        i for i, e in enumerate(history) if isinstance(e, NodeReady) and e.node == "a"
    )
    forged = NodeDeferred(
        event_id=ids.node_deferred("alice-1", "b", 1),
        execution_id="alice-1",
        time=history[first_ready].time,
        node="b",
        attempt=1,
        key="alice",
        limit=1,
    )
    tampered = [*history[: first_ready + 1], forged, *history[first_ready + 1 :]]
    result = verify(list(enumerate(tampered)))
    assert [(d.kind, d.event_type, d.node) for d in result.differences][:1] == [
        ("unexpected", "NodeDeferred", "b")
    ]


@pytest.mark.parametrize("limit", [0, -1])
def test_a_share_is_at_least_one_attempt(limit: int) -> None:
    with pytest.raises(ValueError, match="at least one"):
        RunnerShares(limit)


def done(execution_id: str, node: str, attempt: int, now: datetime) -> NodeSucceeded:
    return NodeSucceeded(
        event_id=ids.node_result(execution_id, node, attempt),
        execution_id=execution_id,
        time=now,
        node=node,
        attempt=attempt,
        output={"main": [{}]},
    )
