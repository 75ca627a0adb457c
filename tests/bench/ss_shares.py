"""SS: one user's fan-out against another user's small run, without and with a share of the
runners per user (``NODEDROP_MAX_RUNNING_NODES_PER_USER``).

Alice requests two executions fanning out to 1,000 ``noop`` nodes each; once their trigger nodes
have run (the fan-out is being made ready), bob requests a two-node run. Without shares, bob's
node waits in the runners' queue behind alice's 2,000 tasks; with a share, behind at most the
share. Bob's time (his request's stamp to
his ``ExecutionFinished``) is measured with alice's (her first ``ExecutionStarted`` to her last
``ExecutionFinished``): what the fairness costs her. One runner, median of 3 rounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from tests.bench.s4_fanout import fan_out
from tests.bench.stack import Bench
from tests.bench.stats import Outcome, Row, fmt_ms, median, ms
from tests.bench.tap import EventTap

from nodedrop.contracts import ids
from nodedrop.contracts.events import ExecutionRequested
from nodedrop.platform.bus import EventPublisher

ID = "SS"
SHARE_ENV = "NODEDROP_MAX_RUNNING_NODES_PER_USER"
SHARES = (None, 64)
SMALL_RUN = {
    "name": "small run",
    "nodes": [{"id": "start", "type": "manual_trigger"}, {"id": "a", "type": "noop"}],
    "connections": [{"from": "start", "to": "a"}],
}


@contextlib.contextmanager
def share(limit: int | None) -> Iterator[None]:
    """The services started meanwhile run with ``limit`` (None: no share)."""
    before = os.environ.pop(SHARE_ENV, None)
    if limit is not None:
        os.environ[SHARE_ENV] = str(limit)
    try:
        yield
    finally:
        os.environ.pop(SHARE_ENV, None)
        if before is not None:
            os.environ[SHARE_ENV] = before


def request(user: str, workflow: dict[str, Any]) -> ExecutionRequested:
    execution_id = uuid.uuid4().hex
    return ExecutionRequested(
        event_id=ids.execution_requested(execution_id),
        execution_id=execution_id,
        time=datetime.now(UTC),
        workflow=workflow,
        requested_by=user,
        trigger="start",
    )


async def _trigger_ran(tap: EventTap, execution_id: str, timeout_s: float = 60.0) -> None:
    """Wait for the execution's first ``NodeSucceeded`` (the tap is polled: it has no signal
    for an event type other than the end)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not tap.of(execution_id, "NodeSucceeded"):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{execution_id}: no node succeeded after {timeout_s} s")
        await asyncio.sleep(0.005)


async def run(bench: Bench) -> Outcome:
    width, rounds = (100, 1) if bench.quick else (1000, 3)
    heavy = fan_out(width)
    results: dict[int | None, tuple[float, float]] = {}
    for limit in SHARES:
        bob_ms: list[float] = []
        alice_ms: list[float] = []
        with share(limit):
            async with (
                bench.stack(f"ss-{limit or 'none'}") as stack,
                stack.tap("ExecutionStarted", "NodeSucceeded") as tap,
            ):
                publisher = EventPublisher(stack.js, stack.layout)
                warm_up = request("bob", SMALL_RUN)
                await publisher.publish([warm_up])
                await tap.finished(warm_up.execution_id)
                for _ in range(rounds):
                    alice = [request("alice", heavy) for _ in range(2)]
                    await publisher.publish(alice)
                    for execution in alice:  # her fan-out is being made ready
                        await _trigger_ran(tap, execution.execution_id)
                    bob = request("bob", SMALL_RUN)
                    await publisher.publish([bob])
                    bob_done = await tap.finished(bob.execution_id, timeout_s=120)
                    bob_ms.append(ms(bob_done.t - bob.time.timestamp()))
                    ends = [await tap.finished(e.execution_id, timeout_s=300) for e in alice]
                    starts = [tap.first(e.execution_id, "ExecutionStarted") for e in alice]
                    alice_ms.append(ms(max(e.t for e in ends) - min(s.t for s in starts)))
                    for execution in [*alice, bob]:
                        tap.forget(execution.execution_id)
                    await stack.settle()
        results[limit] = (median(bob_ms), median(alice_ms))
        print(f"  SS share {limit}: bob {bob_ms}, alice {alice_ms}", flush=True)
    (bob_off, alice_off), (bob_on, alice_on) = results[None], results[SHARES[1]]
    return Outcome(
        rows=[
            Row(
                ID,
                f"alice: 2 executions fanning out to {width:,} `noop` nodes; bob: a 2-node "
                f"run requested once her fan-out is made ready; 1 runner, median of {rounds}: "
                "bob's request → finished, and alice's first start → last finish, without / "
                f"with a share of {SHARES[1]} per user",
                "report",
                f"bob {fmt_ms(bob_off)} / {fmt_ms(bob_on)}; alice {fmt_ms(alice_off)} / "
                f"{fmt_ms(alice_on)}",
            )
        ],
        metrics={
            "bob_ms_without": bob_off,
            "bob_ms_with": bob_on,
            "alice_ms_without": alice_off,
            "alice_ms_with": alice_on,
        },
    )
