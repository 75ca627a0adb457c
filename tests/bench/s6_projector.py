"""S6: the notifier's projector replaying stored events into PostgreSQL.

The events are published straight into a fresh stream (``EventPublisher``, as the services
record them): realistic histories of executions of 3, 10 and 30 nodes, with a failed attempt and
its retry each (``nodedrop.notifier.testing.History``). Then a notifier starts on an empty
database and the harness polls its checkpoint. The rate is taken from the first checkpoint to the
last sequence, so the process start (imports, connections) is not in it; the time from the
process start is reported too.
"""

from __future__ import annotations

import asyncio
import itertools
import time

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
from tests.bench.stack import Bench, asyncpg_dsn
from tests.bench.stats import Outcome, Row, verdict

from nodedrop.contracts.events import AnyEvent
from nodedrop.contracts.routing import Layout
from nodedrop.notifier.store import checkpoint_name
from nodedrop.notifier.testing import History
from nodedrop.platform.bus import EventPublisher

ID = "S6"
TARGET_RATE = 10_000.0
BATCH = 1000


def histories(total: int) -> list[AnyEvent]:
    events: list[AnyEvent] = []
    for i, nodes in zip(itertools.count(), itertools.cycle((3, 10, 30))):
        if len(events) >= total:
            return events
        events += History(f"replay-{i:07d}", step_ms=2).typical(nodes).events
    raise AssertionError("unreachable")


async def run(bench: Bench) -> Outcome:
    wanted = 20_000 if bench.quick else 200_000
    async with bench.stack("s6", services=()) as stack:
        events = histories(wanted)
        publisher = EventPublisher(stack.js, Layout.from_env(), timeout_s=120)
        started = time.monotonic()
        for i in range(0, len(events), BATCH):
            await publisher.publish(events[i : i + BATCH])
        publish_s = time.monotonic() - started
        last = await stack.last_seq()
        checkpoints = [checkpoint_name(p) for p in range(stack.layout.partitions)]
        connection = await asyncpg.connect(asyncpg_dsn(stack.database_url))
        try:
            launched = time.monotonic()
            stack.start("notifier")
            first_seq, first_at = 0, 0.0
            while True:
                # The partitions' checkpoints added up, as ``last`` adds their last sequences.
                seq = int(
                    await connection.fetchval(
                        "SELECT sum(last_seq) FROM projection_checkpoints "
                        "WHERE name = ANY($1::text[])",
                        checkpoints,
                    )
                    or 0
                )
                now = time.monotonic()
                if seq and not first_seq:
                    first_seq, first_at = seq, now
                if seq >= last:
                    break
                if now - launched > 900:
                    raise TimeoutError(f"projection at {seq} of {last} after 900 s")
                if stack.system.processes["notifier"].poll() is not None:
                    raise RuntimeError("notifier exited:\n" + stack.system.logs("notifier"))
                await asyncio.sleep(0.05)
            done = time.monotonic()
        finally:
            await connection.close()
    rate = (last - first_seq) / (done - first_at) if done > first_at else 0.0
    return Outcome(
        rows=[
            Row(
                ID,
                f"projector replaying {last:,} stored events into PostgreSQL (fresh database)",
                f">= {TARGET_RATE:,.0f} events/s (200,000 events)",
                f"{rate:,.0f} events/s",
                verdict(rate, TARGET_RATE, higher=True) if not bench.quick else "-",
            )
        ],
        details=[
            f"**S6**: {last:,} events of {len({e.execution_id for e in events}):,} executions "
            f"published in {publish_s:.1f} s ({last / publish_s:,.0f} events/s, batches of "
            f"{BATCH}); projected {done - launched:.1f} s after the notifier process was "
            f"started ({last / (done - launched):,.0f} events/s including its start).",
            "",
        ],
        metrics={"rate": rate},
    )
