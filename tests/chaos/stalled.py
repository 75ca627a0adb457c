"""Scenario 7: a runner paused (SIGSTOP) past the ack wait, then resumed. Its tasks go to the
other runner, which records each held attempt as ``RunnerLost``; the scheduler makes a new
attempt; the paused runner's late results, sent when it resumes, share the attempts' result ids
and are dropped by the stream. Every execution still finishes once."""

from __future__ import annotations

import asyncio
import socket
import time

from tests.chaos.checks import Expectations, Result, common_check
from tests.chaos.cluster import ACK_WAIT_S, cluster, until
from tests.chaos.record import read_stream
from tests.chaos.scenarios import Env
from tests.chaos.workload import five_nodes, submit_spread, wait_finished

from nodedrop.contracts import ids
from nodedrop.contracts.errors import RUNNER_LOST
from nodedrop.contracts.events import NodeFailed, NodeStarted, NodeSucceeded

#: Every side effect takes this long, so the paused runner surely holds some nodes.
EFFECT_S = 1.0


#: Pauses tried until one lands while the runner holds an attempt; and how long after the
#: signal what it sent before is taken as stored.
PAUSE_TRIES = 10
SETTLE_S = 0.3


async def s7_paused_runner(env: Env) -> Result:
    count = max(10, env.sizes.executions // 5)
    paused_s = ACK_WAIT_S + 3
    result = Result(
        "7. runner paused",
        f"{count} executions x 5 nodes at once, 2 runners, each request {EFFECT_S:g} s",
        f"SIGSTOP one runner for {paused_s:g} s (ack wait {ACK_WAIT_S:g} s), then SIGCONT",
    )
    async with cluster(env.postgres, "s7", runners=2, effect_delay_s=EFFECT_S) as c:
        worker = f"{socket.gethostname()}-{c.pid('runner-1')}"
        workflow = five_nodes(c.side_effects.url)
        started = time.monotonic()
        submitted = await submit_spread(c, workflow, count, 0.5)

        async def held_by_runner_1() -> set[tuple[str, str, int]]:
            """The attempts runner-1 holds now: started there, with no result yet."""
            events = (await read_stream(c.js, c.layout)).events()
            answered = {
                (e.execution_id, e.node, e.attempt)
                for e in events
                if isinstance(e, NodeSucceeded | NodeFailed)
            }
            return {
                (e.execution_id, e.node, e.attempt)
                for e in events
                if isinstance(e, NodeStarted) and e.worker == worker
            } - answered

        async def runner_1_busy() -> bool:
            return bool(await held_by_runner_1())

        # Paused while it holds an attempt: checked again once paused (a node can finish
        # between the check and the signal), and tried again if it held none by then.
        held_at_pause: set[tuple[str, str, int]] = set()
        for attempt in range(1, PAUSE_TRIES + 1):
            await until(runner_1_busy, 30, "a node running on runner-1")
            c.pause("runner-1")
            await asyncio.sleep(SETTLE_S)  # what it sent before the signal is stored
            held_at_pause = await held_by_runner_1()
            if held_at_pause:
                result.notes.append(f"paused holding an attempt at try {attempt}")
                break
            c.resume("runner-1")

        async def taken_from_runner_1() -> bool:
            """Whether another runner recorded one held attempt as lost (waited for, not
            timed: when the redelivery comes depends on the machine)."""
            events = (await read_stream(c.js, c.layout)).events()
            return any(
                isinstance(e, NodeFailed)
                and e.error.type == RUNNER_LOST
                and (e.execution_id, e.node, e.attempt) in held_at_pause
                for e in events
            )

        # Paused at least past the ack wait, and until the fault shows: an attempt it holds
        # recorded lost by the other runner.
        await asyncio.sleep(paused_s - SETTLE_S)
        if held_at_pause:
            await until(taken_from_runner_1, 60, "a held attempt recorded lost")
        c.resume("runner-1")
        await wait_finished(c, set(submitted), 120)
        await asyncio.sleep(EFFECT_S + 1)  # the resumed runner's late results, if any, are sent
        result.took_s = time.monotonic() - started
        record = await common_check(
            c, result, Expectations(submitted, status=dict.fromkeys(submitted, "succeeded"))
        )

    # The attempts runner-1 held through the pause: their one stored result is RunnerLost,
    # and a later attempt succeeded. (A paused runner's open pull request keeps receiving
    # tasks until its credit is used up, so a node can lose more than one attempt to it.)
    events = record.events()
    on_runner_1 = {
        (e.execution_id, e.node, e.attempt)
        for e in events
        if isinstance(e, NodeStarted) and e.worker == worker
    }
    results: dict[str, list[NodeSucceeded | NodeFailed]] = {}
    for e in events:
        if isinstance(e, NodeSucceeded | NodeFailed):
            results.setdefault(e.event_id, []).append(e)
    held = [
        a
        for a in on_runner_1
        if any(
            isinstance(r, NodeFailed) and r.error.type == RUNNER_LOST
            for r in results.get(ids.node_result(*a), [])
        )
    ]
    result.expect(bool(held), "the paused runner held no attempt past the ack wait")
    for execution_id, node, attempt in held:
        stored = results[ids.node_result(execution_id, node, attempt)]
        result.expect(len(stored) == 1, f"{len(stored)} results stored for a held attempt")
        later = [
            r
            for rs in results.values()
            for r in rs
            if (r.execution_id, r.node) == (execution_id, node) and r.attempt > attempt
        ]
        result.expect(
            any(isinstance(r, NodeSucceeded) for r in later),
            f"{execution_id}/{node} did not succeed in a later attempt",
        )
    result.notes.append(
        f"{len(held)} attempts held by the paused runner: each recorded RunnerLost by the "
        "other runner and made again; the late results were dropped (one result per attempt)"
    )
    return result
