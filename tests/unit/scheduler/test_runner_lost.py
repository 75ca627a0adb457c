"""A lost runner (``RunnerLost``) costs one more attempt, at once and outside the retry policy,
up to MAX_RUNNER_LOST_ATTEMPTS per node; past that it is an ordinary failure."""

from __future__ import annotations

from typing import Any

from nodedrop.contracts import ids
from nodedrop.contracts.errors import RUNNER_LOST
from nodedrop.contracts.events import NodeReady, NodeRetryScheduled, NodeSucceeded
from nodedrop.contracts.failures import MAX_RUNNER_LOST_ATTEMPTS
from nodedrop.scheduler.core import NodeStatus, evolve, resume

from .harness import T0, Sim, n, uncaused, wf


def chain(**fetch: Any) -> dict[str, Any]:
    return wf(
        [n("start", "manual_trigger"), n("fetch", **fetch), n("after")],
        [("start", "fetch"), ("fetch", "after")],
    )


def attempts_of(sim: Sim, node: str) -> list[int]:
    return [e.attempt for e in sim.of_type(NodeReady) if e.node == node]


def test_a_lost_runner_gets_one_more_attempt_at_once_even_without_a_retry_policy() -> None:
    sim = Sim(chain())  # max_attempts 1: an ordinary failure would end the run
    sim.request()
    sim.succeed("start")
    decisions = sim.fail("fetch", RUNNER_LOST)
    [retry] = [e for e in decisions if isinstance(e, NodeRetryScheduled)]
    assert (retry.attempt, retry.delay_ms, retry.due_at) == (1, 0, T0)
    assert [e.attempt for e in decisions if isinstance(e, NodeReady)] == [2]
    sim.run_all()
    assert attempts_of(sim, "fetch") == [1, 2]
    assert sim.status() == "succeeded"


def test_a_lost_attempt_does_not_count_against_max_attempts_or_the_backoff() -> None:
    retry = {"max_attempts": 2, "initial_interval_ms": 1000, "backoff_coefficient": 2.0}
    sim = Sim(chain(retry=retry))
    sim.request()
    sim.succeed("start")
    sim.fail("fetch", RUNNER_LOST)  # attempt 1: not counted
    decisions = sim.fail("fetch", "HttpServerError")  # attempt 2: the first that counts
    [scheduled] = [e for e in decisions if isinstance(e, NodeRetryScheduled)]
    assert scheduled.delay_ms == 1000  # the first backoff step, not the second
    assert [e.attempt for e in sim.advance(1000) if isinstance(e, NodeReady)] == [3]
    sim.fail("fetch", "HttpServerError")  # attempt 3: the second that counts, the last
    assert sim.status() == "failed"
    assert attempts_of(sim, "fetch") == [1, 2, 3]


def test_past_the_cap_a_lost_runner_is_an_ordinary_failure() -> None:
    sim = Sim(chain())
    sim.request()
    sim.succeed("start")
    for _ in range(MAX_RUNNER_LOST_ATTEMPTS):
        sim.fail("fetch", RUNNER_LOST)
    assert sim.status() is None
    sim.fail("fetch", RUNNER_LOST)  # a node that keeps killing its runner stops here
    assert sim.status() == "failed"
    assert attempts_of(sim, "fetch") == list(range(1, MAX_RUNNER_LOST_ATTEMPTS + 2))
    assert sim.skipped() == {"after": "execution_failed"}


def test_past_the_cap_the_retry_policy_decides_counting_that_attempt() -> None:
    sim = Sim(chain(retry={"max_attempts": 2, "initial_interval_ms": 500}))
    sim.request()
    sim.succeed("start")
    for _ in range(MAX_RUNNER_LOST_ATTEMPTS + 1):
        sim.fail("fetch", RUNNER_LOST)
    [*_, last] = sim.of_type(NodeRetryScheduled)
    assert last.delay_ms == 500  # backed off like the policy's first retry
    sim.advance(500)
    sim.run_all()
    assert sim.status() == "succeeded"


def test_a_policy_that_lists_runner_lost_as_non_retryable_fails_at_once() -> None:
    sim = Sim(chain(retry={"max_attempts": 3, "non_retryable_errors": [RUNNER_LOST]}))
    sim.request()
    sim.succeed("start")
    sim.fail("fetch", RUNNER_LOST)
    assert sim.status() == "failed"
    assert attempts_of(sim, "fetch") == [1]


def test_a_lost_attempt_that_never_started_also_gets_another() -> None:
    sim = Sim(chain())
    sim.request()
    sim.succeed("start")
    sim.fail("fetch", RUNNER_LOST, started=False)  # handed back before NodeStarted was stored
    assert attempts_of(sim, "fetch") == [1, 2]


def test_a_late_result_of_the_lost_attempt_changes_nothing() -> None:
    sim = Sim(chain())
    sim.request()
    sim.succeed("start")
    sim.fail("fetch", RUNNER_LOST)
    # The first runner's own result for attempt 1, beyond the duplicate window: the fold keeps
    # the first result of an attempt.
    late = NodeSucceeded(
        event_id=ids.node_result(sim.execution_id, "fetch", 1),
        execution_id=sim.execution_id,
        time=T0,
        node="fetch",
        attempt=1,
        output={"main": [{"late": True}]},
    )
    assert sim._record(late) == []
    assert sim.state is not None
    fetch = sim.state.nodes["fetch"]
    assert (fetch.attempt, fetch.status, fetch.output) == (2, NodeStatus.QUEUED, None)


def test_a_rebuild_from_history_makes_the_lost_attempt_again_once() -> None:
    sim = Sim(chain())
    sim.request()
    sim.succeed("start")
    sim.fail("fetch", RUNNER_LOST)
    # The scheduler died after the failure was stored and before its decisions were.
    decided = [e for e in sim.log if isinstance(e, NodeRetryScheduled)]
    decided += [e for e in sim.of_type(NodeReady) if e.attempt == 2]
    state = None
    for event in sim.log:
        if event not in decided:
            state = evolve(state, event)
    assert state is not None
    decisions = resume(state, T0)
    assert uncaused(decisions) == uncaused(decided)
