"""S1: overhead per node of a sequential chain of ``noop`` nodes, through the whole system.

A chain of a trigger and ``n`` ``noop`` nodes is submitted again and again, one execution after
the other (plus one warm-up run per length, not counted). Overhead per node = (time of the last
node's ``NodeSucceeded`` - time of the trigger's ``NodeSucceeded``) / ``n``: everything the system
adds between one node's end and the next one's end, since a ``noop`` itself does nothing. All
times are event times, stamped by the services on this machine's one clock.

40 nodes is the headline: Windmill's public benchmark runs 40 sequential trivial tasks, at ~30 ms
(Hatchet) to ~2.6 s (Airflow) per task on 2-vCPU machines. 10, 100 and 1,000 nodes show whether
the cost per node grows with the length of the chain.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from tests.bench.load import ApiConnection, execution_body
from tests.bench.stack import Bench
from tests.bench.stats import Outcome, Row, fmt_ms, median, ms, percentile, verdict
from tests.bench.tap import EventTap

ID = "S1"
TARGET_P50_MS = 3.0
STRETCH_P50_MS = 1.5
GROWTH_TOLERANCE = 0.10


def chain(nodes: int) -> dict[str, Any]:
    ids = ["start"] + [f"n{i}" for i in range(nodes)]
    return {
        "name": f"chain of {nodes}",
        "nodes": [{"id": "start", "type": "manual_trigger"}]
        + [{"id": node_id, "type": "noop"} for node_id in ids[1:]],
        "connections": [{"from": a, "to": b} for a, b in itertools.pairwise(ids)],
    }


class ChainRuns:
    """Per-node overhead samples (ms) of ``runs`` executions of one chain, and where the time
    goes between two nodes."""

    def __init__(self) -> None:
        self.per_node: list[float] = []
        self.end_to_end: list[float] = []
        self.to_ready: list[float] = []  # previous NodeSucceeded -> NodeReady
        self.to_started: list[float] = []  # NodeReady -> NodeStarted
        self.running: list[float] = []  # NodeStarted -> NodeSucceeded


async def run_chain(
    api: ApiConnection, tap: EventTap, nodes: int, runs: int, *, warm_up: bool = True
) -> ChainRuns:
    body = execution_body(chain(nodes))
    out = ChainRuns()
    last = f"n{nodes - 1}"
    for run in range(runs + (1 if warm_up else 0)):
        posted = time.time()
        execution_id = await api.request_execution(body)
        finished = await tap.finished(execution_id, timeout_s=30 + nodes * 0.1)
        if finished.status != "succeeded":
            raise RuntimeError(f"chain execution {execution_id} ended {finished.status}")
        succeeded = {s.node: s.t for s in tap.of(execution_id, "NodeSucceeded")}
        if len(succeeded) != nodes + 1:
            raise RuntimeError(f"saw {len(succeeded)} NodeSucceeded of {nodes + 1}")
        if warm_up and run == 0:
            tap.forget(execution_id)
            continue
        out.per_node.append(ms(succeeded[last] - succeeded["start"]) / nodes)
        out.end_to_end.append(ms(finished.t - posted))
        ready = {s.node: s.t for s in tap.of(execution_id, "NodeReady")}
        started = {s.node: s.t for s in tap.of(execution_id, "NodeStarted")}
        for previous, node in itertools.pairwise(["start"] + [f"n{i}" for i in range(nodes)]):
            if node in ready and node in started:
                out.to_ready.append(ms(ready[node] - succeeded[previous]))
                out.to_started.append(ms(started[node] - ready[node]))
                out.running.append(ms(succeeded[node] - started[node]))
        tap.forget(execution_id)
    return out


async def run(bench: Bench) -> Outcome:
    quick = bench.quick
    repetitions, runs = (1, 5) if quick else (3, 20)
    growth = [(10, 3), (100, 2)] if quick else [(10, 20), (100, 10), (1000, 2)]
    outcome = Outcome()
    main: list[ChainRuns] = []
    others: dict[int, list[ChainRuns]] = {nodes: [] for nodes, _ in growth}
    async with bench.stack("s1") as stack:
        api = stack.api()
        try:
            async with stack.tap("NodeReady", "NodeStarted", "NodeSucceeded") as tap:
                # The lengths interleaved, so that a drift of the machine over time hits each
                # of them alike and the comparison between lengths holds.
                for repetition in range(repetitions):
                    first = repetition == 0
                    main.append(await run_chain(api, tap, 40, runs, warm_up=first))
                    for nodes, count in growth:
                        others[nodes].append(await run_chain(api, tap, nodes, count, warm_up=first))
        finally:
            await api.close()
    p50 = median([percentile(r.per_node, 0.5) for r in main])
    p95 = median([percentile(r.per_node, 0.95) for r in main])
    e2e = median([percentile(r.end_to_end, 0.5) for r in main])
    outcome.metrics |= {"p50_ms": p50, "p95_ms": p95, "e2e_ms": e2e}
    reps = f", median of {repetitions} repetitions" if repetitions > 1 else ""
    outcome.rows.append(
        Row(
            ID,
            f"40-node `noop` chain, {runs} runs{reps}: overhead per node p50 / p95",
            f"p50 <= {TARGET_P50_MS:g} ms (stretch {STRETCH_P50_MS:g} ms)",
            f"{fmt_ms(p50)} / {fmt_ms(p95)} (whole run: POST → `ExecutionFinished` {fmt_ms(e2e)})",
            verdict(p50, TARGET_P50_MS, STRETCH_P50_MS),
        )
    )
    growth_p50 = {n: median([percentile(r.per_node, 0.5) for r in rs]) for n, rs in others.items()}
    deviation = max(abs(v / p50 - 1) for v in growth_p50.values())
    outcome.rows.append(
        Row(
            f"{ID}+",
            "chains of "
            + ", ".join(f"{n:,} ({count} runs)" for n, count in growth)
            + f" nodes, interleaved with the 40-node runs{reps}: per node p50",
            f"within {GROWTH_TOLERANCE:.0%} of the 40-node p50",
            ", ".join(f"{n:,}: {fmt_ms(v)}" for n, v in growth_p50.items())
            + f" (max {deviation:+.0%})",
            "-"
            if quick
            else "pass"
            if deviation <= GROWTH_TOLERANCE
            else f"FAIL ({deviation:.0%} off)",
        )
    )
    steps = (
        ("previous node's `NodeSucceeded` → `NodeReady` (scheduler)", "to_ready"),
        ("`NodeReady` → `NodeStarted` (runner)", "to_started"),
        ("`NodeStarted` → `NodeSucceeded` (running the `noop`)", "running"),
    )
    outcome.details += [
        f"**S1**: POST → `ExecutionFinished` of the 40-node chain p50 {fmt_ms(e2e)}. "
        "Where the time between two nodes goes (all 40-node samples):",
        "",
        "| step | p50 | p95 |",
        "|---|---:|---:|",
    ]
    for label, attribute in steps:
        samples = [x for r in main for x in getattr(r, attribute)]
        p50_step, p95_step = percentile(samples, 0.5), percentile(samples, 0.95)
        outcome.details.append(f"| {label} | {fmt_ms(p50_step)} | {fmt_ms(p95_step)} |")
    outcome.details.append("")
    return outcome
