"""Each user's share of the runners, against a real nats-server and the real scheduler: a user's
attempts beyond the share are deferred out of the runners' queue, another user's work passes
them, they are made ready oldest first as the user's attempts end, a restart keeps them waiting
their turn, and the history verifies."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest
from nats.js import JetStreamContext

from nodedrop.contracts.events import Event, ExecutionFinished, NodeDeferred, NodeReady
from nodedrop.contracts.routing import Layout
from nodedrop.platform.bus import EventPublisher
from nodedrop.platform.history import read_execution
from nodedrop.platform.jetstream import StreamSettings, ensure_jetstream
from nodedrop.scheduler.core.replay import verify

from .test_concurrency_limits import first, history, until
from .test_scheduler_service import (
    chain,
    running_scheduler,
    scripted_runner,
    succeed,
    wait_finished,
)
from .test_scheduler_service import request as request_as

pytestmark = pytest.mark.integration

LEAVES = [f"leaf{i}" for i in range(6)]
FAN_OUT = {
    "name": "fan-out",
    "nodes": [
        {"id": "start", "type": "manual_trigger"},
        *({"id": n, "type": "noop"} for n in LEAVES),
    ],
    "connections": [{"from": "start", "to": n} for n in LEAVES],
}


@pytest.fixture
async def js(jetstream: JetStreamContext) -> JetStreamContext:
    await ensure_jetstream(jetstream, StreamSettings.from_env())
    return jetstream


def readied(events: list[Event]) -> list[str]:
    return [e.node for e in events if isinstance(e, NodeReady)]


async def test_a_heavy_user_waits_in_their_own_queue_and_gets_every_node_run_once(
    js: JetStreamContext, nats_url: str
) -> None:
    held: list[NodeReady] = []
    answered: list[NodeReady] = []
    most_on_runners = 0

    def hold_alices_leaves(task: NodeReady) -> Event | None:
        nonlocal most_on_runners
        if task.execution_id == "share-alice" and task.node != "start":
            held.append(task)  # on a runner, not answered yet
            most_on_runners = max(most_on_runners, len(held) - len(answered))
            return None
        return succeed(task)

    async with scripted_runner(nats_url, hold_alices_leaves):
        async with running_scheduler(nats_url, max_running_nodes_per_user=2):
            await request_as(js, "share-alice", FAN_OUT, user="alice")
            await until(lambda: _deferred(js, "share-alice", 4), "alice's four leaves deferred")
            alice = await history(js, "share-alice")
            assert len(held) == 2
            assert readied(alice) == ["start", *(t.node for t in held)]
            deferred = [e for e in alice if isinstance(e, NodeDeferred)]
            assert {(d.key, d.limit, d.attempt) for d in deferred} == {("alice", 2, 1)}
            # Bob's work goes to the runners past alice's deferred attempts.
            await request_as(js, "share-bob", chain({"id": "a", "type": "noop"}), user="bob")
            bob = await wait_finished(js, "share-bob")
            assert first(bob, ExecutionFinished).status == "succeeded"
            assert first(bob, NodeDeferred) is None
            assert len(held) == 2  # alice still waits in her own queue
        # A restart while alice's attempts are deferred: the new scheduler keeps them waiting.
        async with running_scheduler(nats_url, max_running_nodes_per_user=2):
            await asyncio.sleep(1.0)  # a rebuilt scheduler that ignored the share would by now
            assert len(held) == 2
            assert readied(await history(js, "share-alice")) == ["start", *(t.node for t in held)]
            # Each of alice's attempts that ends lets her oldest deferred one go.
            for count in range(len(LEAVES)):
                await until(_more_than(held, count), "a leaf made ready")
                answered.append(held[count])
                await EventPublisher(js, Layout.from_env()).publish([succeed(held[count])])
            alice = await wait_finished(js, "share-alice")

    assert first(alice, ExecutionFinished).status == "succeeded"
    assert most_on_runners == 2  # never more than her share
    leaves = readied(alice)[1:]
    assert Counter(leaves) == Counter(LEAVES)  # every leaf ran, none twice
    order = [d.node for d in alice if isinstance(d, NodeDeferred)]
    assert leaves[2:] == order  # oldest deferred first
    result = verify(await read_execution(js, "share-alice", layout=Layout.from_env()))
    assert result.ok, [str(d) for d in result.differences]


def _more_than(held: list[NodeReady], count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(held) > count

    return check


async def _deferred(js: JetStreamContext, execution_id: str, count: int) -> bool:
    return sum(isinstance(e, NodeDeferred) for e in await history(js, execution_id)) >= count
