"""Scenario 5: events republished, some after the duplicate window, and delivered out of order.

While executions run, a tenth of the events stored so far are sent again in shuffled order:
half with their original ``Nats-Msg-Id`` (the stream drops them: the duplicate window), half
without one (stored again, as a publisher's retry after the window would be). Every consumer
thus gets copies of old events after newer ones. Once everything has finished, the duplicate
window (10 s here, for every service) is waited out, the runners are restarted (so they know
nothing of the executions), and another tenth of all events is republished with their
original ids, newest first: now they are stored again. Then:

- the executions finish as they would have, each once, with no node run twice per attempt;
- the projection is the same as before the late copies (every column but ``last_seq``, which
  records how far into the stream a row was last looked at), and equals a rebuild;
- the scheduler's fold of each execution's history with the copies equals the fold without.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterable
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
from tests.chaos.checks import Expectations, Result, common_check
from tests.chaos.cluster import Cluster, asyncpg_dsn, cluster
from tests.chaos.record import Stored, StreamRecord, read_stream
from tests.chaos.scenarios import Env
from tests.chaos.workload import five_nodes, submit_spread, wait_finished

from nodedrop.contracts.events import AnyEvent
from nodedrop.platform.bus import MSG_ID
from nodedrop.scheduler.core import ExecutionState, evolve

SHARE = 0.10
#: The stream's duplicate window in this scenario (every service is given it): short, so that
#: republishing after it does not take the production default's 2 minutes.
WINDOW_S = 10.0


class Republisher:
    def __init__(self, cluster: Cluster, seed: int = 9) -> None:
        self._js = cluster.js
        self._random = random.Random(seed)
        self.copies: set[tuple[str, int]] = set()  # (stream, sequence) of the copies stored
        self.dropped = 0  # copies the duplicate window dropped
        self.sent = 0

    async def republish(self, messages: list[Stored], *, keep_ids: bool | None) -> None:
        """Send ``SHARE`` of ``messages`` again in shuffled order; ``keep_ids``: with the
        original ``Nats-Msg-Id`` (None: every other one)."""
        chosen = self._random.sample(messages, max(1, int(len(messages) * SHARE)))
        self._random.shuffle(chosen)
        for i, message in enumerate(chosen):
            with_id = keep_ids if keep_ids is not None else i % 2 == 0
            headers = {MSG_ID: message.msg_id} if with_id and message.msg_id else None
            # To the partition stream the original is stored in (its execution's).
            ack = await self._js.publish(
                message.subject, message.data, stream=message.stream, headers=headers
            )
            self.sent += 1
            if ack.duplicate:
                self.dropped += 1
            else:
                self.copies.add((ack.stream, ack.seq))


async def s5_republished(env: Env) -> Result:
    sizes = env.sizes
    result = Result(
        "5. republished and reordered",
        f"{sizes.executions} executions x 5 nodes over {sizes.spread_s:g} s, 2 runners",
        "",
    )
    window = {"NODEDROP_DUPLICATE_WINDOW_S": str(WINDOW_S)}
    async with cluster(env.postgres, "s5", runners=2, effect_delay_s=0.1, extra_env=window) as c:
        publisher = Republisher(c)
        started = time.monotonic()
        workflow = five_nodes(c.side_effects.url)
        load = asyncio.create_task(submit_spread(c, workflow, sizes.executions, sizes.spread_s))
        seen: dict[str, int] = {}  # per partition stream: the last sequence read
        while not load.done():  # live: copies of what is stored so far, in shuffled order
            await asyncio.sleep(1.0)
            stored = (await read_stream(c.js, c.layout)).messages
            fresh = [m for m in stored if m.seq > seen.get(m.stream, 0)]
            fresh = [m for m in fresh if m.key not in publisher.copies]
            for m in fresh:
                seen[m.stream] = max(seen.get(m.stream, 0), m.seq)
            if fresh:
                await publisher.republish(fresh, keep_ids=None)
        submitted = await load
        await wait_finished(c, set(submitted), 120)
        last_event_at = time.monotonic()
        live_sent, live_dropped = publisher.sent, publisher.dropped

        # After the duplicate window: the same ids are stored again, and reach runners started
        # since, which know nothing of the executions that ended before.
        await c.settle()
        before = await projection(c)
        stored = (await read_stream(c.js, c.layout)).messages
        originals = [m for m in stored if m.key not in publisher.copies]
        last_original: dict[str, int] = {}  # per partition stream
        for m in originals:
            last_original[m.stream] = max(last_original.get(m.stream, 0), m.seq)
        for name in list(c.runners):
            c.system.stop(name)
            c.restart(name, "runner")
        await c.set_runners(len(c.runners))
        await asyncio.sleep(max(0.0, WINDOW_S + 1 - (time.monotonic() - last_event_at)))
        await publisher.republish(originals[::-1], keep_ids=True)
        late_sent = publisher.sent - live_sent
        await asyncio.sleep(2)  # the consumers see the copies
        result.took_s = time.monotonic() - started
        record = await common_check(
            c,
            result,
            Expectations(
                submitted,
                status=dict.fromkeys(submitted, "succeeded"),
                injected_seqs=frozenset(publisher.copies),
            ),
        )
        after = await projection(c)
        changed = [key for key in before if before[key] != after.get(key)]
        result.expect(not changed, f"projection rows changed by the copies: {changed[:3]}")
        result.expect(len(before) == len(after), "rows added by the copies")
        differing = states_differ(await read_stream(c.js, c.layout), publisher.copies)
        result.expect(not differing, f"folds changed by the copies: {differing[:3]}")
        decided = [
            m.key
            for m in record.messages
            if m.seq > last_original.get(m.stream, 0) and m.key not in publisher.copies
        ]
        result.expect(not decided, f"{len(decided)} events recorded in answer to late copies")
    result.faults = (
        f"{live_sent} events republished while running ({live_sent - live_dropped} "
        f"stored again without their id, the rest dropped by the duplicate window), shuffled; "
        f"then {late_sent} after the window with their ids, newest first"
    )
    return result


async def projection(c: Cluster) -> dict[tuple[str, ...], tuple[Any, ...]]:
    """Every execution and node row, keyed, without ``last_seq``."""
    connection = await asyncpg.connect(asyncpg_dsn(c.database_url))
    try:
        rows: dict[tuple[str, ...], tuple[Any, ...]] = {}
        for record in await connection.fetch("SELECT * FROM executions"):
            values = dict(record)
            values.pop("last_seq")
            rows[("execution", values["id"])] = tuple(sorted(values.items()))
        for record in await connection.fetch("SELECT * FROM node_executions"):
            values = dict(record)
            values.pop("last_seq")
            key = ("node", values["execution_id"], values["node"])
            rows[key] = tuple(sorted(values.items()))
        return rows
    finally:
        await connection.close()


def states_differ(record: StreamRecord, copies: set[tuple[str, int]]) -> list[str]:
    """Executions whose scheduler fold with the copies differs from the fold without them
    (an execution's events are all in one partition stream, in its order)."""
    histories: dict[str, list[tuple[tuple[str, int], AnyEvent]]] = {}
    for message in record.messages:
        if message.event is not None:
            histories.setdefault(message.event.execution_id, []).append(
                (message.key, message.event)
            )
    differing = []
    for execution_id, history in histories.items():
        with_copies = _summary(_fold(e for _, e in history))
        without = _summary(_fold(e for key, e in history if key not in copies))
        if with_copies != without:
            differing.append(execution_id)
    return differing


def _fold(events: Iterable[AnyEvent]) -> ExecutionState | None:
    state: ExecutionState | None = None
    for event in events:
        state = evolve(state, event)
    return state


def _summary(state: ExecutionState | None) -> object:
    if state is None:
        return None
    nodes = {
        name: (node.status, node.attempt, node.output, node.error, node.skip_reason)
        for name, node in state.nodes.items()
    }
    return (state.finished, state.final_status, state.failure, state.cancel_requested, nodes)
