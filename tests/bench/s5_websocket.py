"""S5: from an event's stamp to a WebSocket client receiving it, at ~1,000 events/s in total.

Each client follows one execution through the API (``/ws/executions/{id}``, relayed to the
notifier). The executions pace themselves with ``wait`` nodes: a trigger, a first wait that
leaves time for every client to connect, then ``noop`` / ``wait`` pairs (5 events a pair) whose
wait is chosen so that all executions together produce about 1,000 events per second. Only live
events count (stamped after the client's connection was open; the replay of what was stored
before is not what this measures). Latency = receive time - the event's ``time``, one clock.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tests.bench.load import execution_body
from tests.bench.stack import Bench, Stack
from tests.bench.stats import Outcome, Row, fmt_ms, median, percentile, verdict
from websockets.asyncio.client import connect

ID = "S5"
TARGET_P99_MS = 50.0
EVENTS_PER_SECOND = 1000.0
EVENTS_PER_PAIR = 5  # noop: NodeReady, NodeStarted, NodeSucceeded; wait: NodeWaiting, NodeSucceeded


@dataclass
class Round:
    events: int
    span_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rate(self) -> float:
        return self.events / self.span_s if self.span_s else 0.0


def paced(pairs: int, first_wait_ms: int, wait_ms: int) -> dict[str, Any]:
    ids = ["start", "connect"]
    nodes: list[dict[str, Any]] = [
        {"id": "start", "type": "manual_trigger"},
        {"id": "connect", "type": "wait", "parameters": {"ms": first_wait_ms}},
    ]
    for i in range(pairs):
        nodes.append({"id": f"n{i}", "type": "noop"})
        nodes.append({"id": f"w{i}", "type": "wait", "parameters": {"ms": wait_ms}})
        ids += [f"n{i}", f"w{i}"]
    return {
        "name": "paced",
        "nodes": nodes,
        "connections": [{"from": a, "to": b} for a, b in itertools.pairwise(ids)],
    }


async def follow(
    url: str, token: str, gate: asyncio.Semaphore, latencies: list[float], live: list[float]
) -> None:
    """Receive every event of one execution until it ends; record the live ones."""
    async with gate:  # a few handshakes at a time
        ws = await connect(
            url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=30
        )
    async with ws:
        opened = time.time()
        async for message in ws:
            received = time.time()
            event = json.loads(message)
            stamped = datetime.fromisoformat(event["time"]).timestamp()
            if stamped > opened:
                latencies.append((received - stamped) * 1000)
                live.append(stamped)
            if event["type"] == "ExecutionFinished":
                return


async def one_round(stack: Stack, clients: int, body: bytes, timeout_s: float) -> Round:
    latencies: list[float] = []
    live: list[float] = []
    api = stack.api()
    try:
        ids = [await api.request_execution(body) for _ in range(clients)]
    finally:
        await api.close()
    gate = asyncio.Semaphore(10)
    followers = [
        follow(
            f"{stack.system.ws_url}/ws/executions/{execution_id}",
            stack.system.token,
            gate,
            latencies,
            live,
        )
        for execution_id in ids
    ]
    await asyncio.wait_for(asyncio.gather(*followers), timeout=timeout_s)
    span = max(live) - min(live) if len(live) > 1 else 0.0
    return Round(
        events=len(latencies),
        span_s=span,
        p50_ms=percentile(latencies, 0.5),
        p99_ms=percentile(latencies, 0.99),
        max_ms=max(latencies, default=math.inf),
    )


async def run(bench: Bench) -> Outcome:
    clients, duration_s, first_wait_ms = (10, 2.0, 1500) if bench.quick else (100, 15.0, 4000)
    repetitions = 1 if bench.quick else 3
    period_s = EVENTS_PER_PAIR * clients / EVENTS_PER_SECOND  # one pair per execution
    wait_ms = max(1, round(period_s * 1000) - 10)  # the noop and four hops: ~10 ms
    pairs = round(duration_s / period_s)
    body = execution_body(paced(pairs, first_wait_ms, wait_ms))
    async with bench.stack("s5") as stack:
        rounds = [
            await one_round(stack, clients, body, duration_s * 3 + 60) for _ in range(repetitions)
        ]
    p50 = median([r.p50_ms for r in rounds])
    p99 = median([r.p99_ms for r in rounds])
    rate = median([r.rate for r in rounds])
    reps = f", median of {repetitions} rounds" if repetitions > 1 else ""
    return Outcome(
        rows=[
            Row(
                ID,
                f"event → WebSocket client via the API relay, {clients} clients, "
                f"{rate:,.0f} events/s in total for ~{duration_s:g} s{reps}: p50 / p99",
                f"p99 <= {TARGET_P99_MS:g} ms at 1,000 events/s with 100 clients",
                f"{fmt_ms(p50)} / {fmt_ms(p99)}",
                verdict(p99, TARGET_P99_MS) if not bench.quick else "-",
            )
        ],
        details=[
            "**S5** rounds: "
            + "; ".join(
                f"{r.events:,} live events in {r.span_s:.1f} s, p50 {fmt_ms(r.p50_ms)}, "
                f"p99 {fmt_ms(r.p99_ms)}, max {fmt_ms(r.max_ms)}"
                for r in rounds
            )
            + ".",
            "",
        ],
        metrics={"p99_ms": p99, "rate": rate},
    )
