"""Concurrency limits against a real nats-server: the gate's contract (one body, run against
the in-memory gate and the key-value one), and the scheduler queueing what is over a limit,
first come first served, without holding up anyone else, across a restart."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from nats.js import JetStreamContext

from nodedrop.contracts import ids
from nodedrop.contracts.events import (
    Event,
    ExecutionCancelRequested,
    ExecutionFinished,
    ExecutionQueued,
    ExecutionStarted,
    NodeReady,
)
from nodedrop.contracts.routing import Layout
from nodedrop.platform.bus import EventPublisher
from nodedrop.platform.history import read_execution
from nodedrop.platform.jetstream import StreamSettings, ensure_jetstream
from nodedrop.scheduler.admission import Claim, ConcurrencyGate, KvGate, MemoryGate
from nodedrop.scheduler.snapshot_store import open_bucket

from .test_scheduler_service import (
    chain,
    running_scheduler,
    scripted_runner,
    succeed,
    wait_finished,
)
from .test_scheduler_service import request as request_as

pytestmark = pytest.mark.integration

GateFactory = Callable[[Callable[[str], Awaitable[bool]]], Awaitable[ConcurrencyGate]]


@pytest.fixture(params=["memory", "key-value"])
async def make_gate(request: pytest.FixtureRequest, jetstream: JetStreamContext) -> GateFactory:
    async def memory(finished: Callable[[str], Awaitable[bool]]) -> ConcurrencyGate:
        return MemoryGate(finished)

    async def key_value(finished: Callable[[str], Awaitable[bool]]) -> ConcurrencyGate:
        kv, _ = await open_bucket(jetstream)
        return KvGate(kv, finished, prune_every_s=0)

    return memory if request.param == "memory" else key_value


def never_finished() -> Callable[[str], Awaitable[bool]]:
    async def finished(execution_id: str) -> bool:
        return False

    return finished


# ------------------------------------------------------------------ the gate's contract
async def test_a_limit_admits_up_to_its_size_and_a_slot_given_back_is_taken_again(
    make_gate: GateFactory,
) -> None:
    gate = await make_gate(never_finished())
    two = Claim("workflow", "wf-size", 2)
    assert await gate.acquire("a", [two]) is None
    assert await gate.acquire("b", [two]) is None
    assert await gate.acquire("c", [two]) == two
    assert await gate.acquire("a", [two]) is None  # held already: asking again takes nothing
    assert await gate.acquire("c", [two]) == two
    await gate.release("a", [two])
    await gate.release("a", [two])  # given back twice: nothing else is freed
    assert await gate.acquire("c", [two]) is None
    assert await gate.acquire("d", [two]) == two


async def test_slots_of_several_limits_are_taken_all_or_none(make_gate: GateFactory) -> None:
    gate = await make_gate(never_finished())
    user = Claim("user", "alice@example.com", 5)
    workflow = Claim("workflow", "wf-all", 1)
    assert await gate.acquire("x", [user, workflow]) is None
    assert await gate.acquire("y", [user, workflow]) == workflow
    # y holds no user slot: four more of alice's executions (of other workflows) fit.
    for n in range(4):
        assert await gate.acquire(f"other-{n}", [user]) is None
    assert await gate.acquire("one-too-many", [user]) == user


async def test_a_slot_an_ended_execution_never_gave_back_is_reclaimed(
    make_gate: GateFactory,
) -> None:
    ended: set[str] = set()

    async def finished(execution_id: str) -> bool:
        return execution_id in ended

    gate = await make_gate(finished)
    one = Claim("user", "bob", 1)
    assert await gate.acquire("crashed", [one]) is None
    assert await gate.acquire("next", [one]) == one
    ended.add("crashed")  # its end is in the log; its scheduler stopped before giving back
    assert await gate.acquire("next", [one]) is None


async def test_key_value_gates_of_two_schedulers_share_the_running_sets(
    jetstream: JetStreamContext,
) -> None:
    kv, _ = await open_bucket(jetstream)
    first, second = KvGate(kv, never_finished()), KvGate(kv, never_finished())
    limit = Claim("workflow", "wf-shared", 3)
    outcomes = await asyncio.gather(
        *(
            gate.acquire(f"e{n}-{i}", [limit])
            for n in range(10)
            for i, gate in enumerate((first, second))
        )
    )
    assert outcomes.count(None) == 3  # compare-and-swap: never more than the limit
    assert all(o in (None, limit) for o in outcomes)


# ------------------------------------------------------------------ the scheduler
async def request(
    js: JetStreamContext,
    execution_id: str,
    workflow: dict[str, Any],
    *,
    user: str = "alice",
    workflow_id: str = "wf",
) -> None:
    await request_as(js, execution_id, workflow, user=user, workflow_id=workflow_id)


async def history(js: JetStreamContext, execution_id: str) -> list[Event]:
    return [e for _, e in await read_execution(js, execution_id, layout=Layout.from_env())]


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no {what} after {timeout_s} s")
        await asyncio.sleep(0.05)


def first(events: list[Event], kind: type[Event]) -> Any:
    return next((e for e in events if isinstance(e, kind)), None)


@pytest.fixture
async def js(jetstream: JetStreamContext) -> JetStreamContext:
    await ensure_jetstream(jetstream, StreamSettings.from_env())
    return jetstream


async def test_a_workflows_executions_beyond_its_limit_wait_and_run_one_after_another(
    js: JetStreamContext, nats_url: str
) -> None:
    workflow = {**chain({"id": "a", "type": "noop"}), "settings": {"max_concurrent": 1}}
    names = [f"wf-limit-{n}" for n in range(4)]
    async with running_scheduler(nats_url), scripted_runner(nats_url, succeed):
        for name in names:
            await request(js, name, workflow, workflow_id="wf-one-at-a-time")
        histories = [await wait_finished(js, name, timeout_s=30) for name in names]

    spans = []
    for events in histories:
        assert first(events, ExecutionFinished).status == "succeeded"
        spans.append((first(events, ExecutionStarted).time, first(events, ExecutionFinished).time))
    # One at a time: each started only once the one before it had finished; in request order.
    for (_, finished), (started, _) in itertools.pairwise(spans):
        assert started >= finished
    queued = [first(events, ExecutionQueued) for events in histories]
    assert queued[0] is None
    for record in queued[1:]:
        assert (record.scope, record.key, record.limit) == ("workflow", "wf-one-at-a-time", 1)


async def test_a_user_over_the_limit_waits_while_another_user_runs_and_a_restart_keeps_the_queue(
    js: JetStreamContext, nats_url: str
) -> None:
    held: list[NodeReady] = []

    def hold_alices_first(task: NodeReady) -> Event | None:
        if task.execution_id == "u-alice-1" and task.node == "a":
            held.append(task)
            return None
        return succeed(task)

    workflow = chain({"id": "a", "type": "noop"})
    async with scripted_runner(nats_url, hold_alices_first):
        async with running_scheduler(nats_url, max_concurrent_per_user=1):
            await request(js, "u-alice-1", workflow, user="alice")
            await until(lambda: asyncio.sleep(0, bool(held)), "alice's first running")
            await request(js, "u-alice-2", workflow, user="alice")
            await request(js, "u-alice-3", workflow, user="alice")
            await request(js, "u-bob-1", workflow, user="bob")
            bob = await wait_finished(js, "u-bob-1")
            assert first(bob, ExecutionQueued) is None  # bob is not held up by alice
            for name in ("u-alice-2", "u-alice-3"):
                waiting = await history(js, name)
                assert first(waiting, ExecutionQueued) is not None, waiting
                assert first(waiting, ExecutionStarted) is None
            # Alice cancels her third while it waits: it ends at once, never started.
            await EventPublisher(js, Layout.from_env()).publish(
                [
                    ExecutionCancelRequested(
                        event_id=ids.cancel_requested("u-alice-3"),
                        execution_id="u-alice-3",
                        time=datetime.now(UTC),
                        requested_by="alice",
                    )
                ]
            )
            third = await wait_finished(js, "u-alice-3")
            assert first(third, ExecutionFinished).status == "cancelled"
            assert first(third, ExecutionStarted) is None
        # The scheduler restarts while alice's second waits: it is still queued after.
        async with running_scheduler(nats_url, max_concurrent_per_user=1):
            await asyncio.sleep(1.0)  # a restarted scheduler that started it would by now
            assert first(await history(js, "u-alice-2"), ExecutionStarted) is None
            await EventPublisher(js, Layout.from_env()).publish([succeed(held[0])])
            second = await wait_finished(js, "u-alice-2")
    assert first(second, ExecutionFinished).status == "succeeded"
    started = first(second, ExecutionStarted).time
    assert started >= first(await history(js, "u-alice-1"), ExecutionFinished).time


async def test_a_new_execution_waits_behind_those_already_queued_for_its_limit(
    js: JetStreamContext, nats_url: str
) -> None:
    """First come, first served: a slot given back by another scheduler (here: straight in the
    gate) goes to the execution queued first, not to one requested just after."""
    held: list[NodeReady] = []

    def hold_the_first(task: NodeReady) -> Event | None:
        if task.execution_id == "fifo-0" and task.node == "a":
            held.append(task)
            return None
        return succeed(task)

    gate = MemoryGate()
    limit = Claim("user", "carol", 1)
    workflow = chain({"id": "a", "type": "noop"})
    async with (
        running_scheduler(nats_url, gate=gate, max_concurrent_per_user=1),
        scripted_runner(nats_url, hold_the_first),
    ):
        await request(js, "fifo-0", workflow, user="carol")
        await until(lambda: asyncio.sleep(0, bool(held)), "the first running")
        await request(js, "fifo-1", workflow, user="carol")
        await until(lambda: _has(js, "fifo-1", ExecutionQueued), "the second queued", timeout_s=10)
        await gate.release("fifo-0", [limit])  # as if given back elsewhere
        await request(js, "fifo-2", workflow, user="carol")
        second = await wait_finished(js, "fifo-1")
        third = await wait_finished(js, "fifo-2")
    assert first(third, ExecutionQueued) is not None
    assert first(third, ExecutionStarted).time >= first(second, ExecutionFinished).time


async def _has(js: JetStreamContext, execution_id: str, kind: type[Event]) -> bool:
    return first(await history(js, execution_id), kind) is not None
