"""S3: one-node executions under open-loop load: sustained completion rate and end-to-end p99.

Requests are due at fixed times (``rate`` per second) whatever the system does; a request's
latency runs from its due time to the scheduler's ``ExecutionFinished`` stamp, so a request that
waited for a free connection, or was sent late because the machine was busy, is charged for it
(no coordinated omission). An execution that does not finish within the drain time counts as an
infinitely late sample.

- the headline: 30 s at the target rate, one runner;
- stepping up: 10 s per rate, from 100/s up until completions fall behind; the highest rate
  completed in full with p99 <= 100 ms is the *max sustained* rate, the highest completion rate
  seen the *ceiling*; with 1, 2 and 4 runner processes.

Between two loads the harness waits until the notifier has projected everything, so that each
load starts on a machine without a backlog.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

from tests.bench.load import execution_body, open_loop
from tests.bench.s1_chain import chain
from tests.bench.stack import Bench, Services, Stack
from tests.bench.stats import Outcome, Row, combine, fmt_ms, ms, percentile, verdict
from tests.bench.tap import EventTap

ID = "S3"
TARGET_RATE = 500.0
STRETCH_RATE = 1000.0
TARGET_P99_MS = 100.0
STEP_RATES = (100, 200, 300, 400, 500, 650, 800, 1000, 1250, 1500)
#: Stepping stops at a rate not kept up with, or whose p99 is beyond this.
GIVE_UP_P99_MS = 2000.0
#: A load is kept up with when at least this share of the offered rate completes.
KEPT_UP = 0.95


@dataclass
class Load:
    runners: int
    rate: float
    duration_s: float
    sent: int
    finished: int
    achieved: float  # completions per second
    p50_ms: float
    p99_ms: float
    settle_s: float = 0.0

    @property
    def kept_up(self) -> bool:
        return self.finished == self.sent and self.achieved >= KEPT_UP * self.rate

    @property
    def sustained(self) -> bool:
        return self.kept_up and self.p99_ms <= TARGET_P99_MS

    def __str__(self) -> str:
        return (
            f"{self.runners} runner(s), {self.rate:g}/s for {self.duration_s:g} s: "
            f"{self.achieved:.0f}/s completed, p50 {fmt_ms(self.p50_ms)}, "
            f"p99 {fmt_ms(self.p99_ms)}, {self.sent - self.finished} unfinished"
        )


async def one_load(stack: Services, tap: EventTap, rate: float, duration_s: float) -> Load:
    body = execution_body(chain(0))
    result = await open_loop(
        stack.system.api_port,
        stack.system.token,
        rate=rate,
        duration_s=duration_s,
        body=lambda _: body,
    )
    pending = {r.execution_id for r in result.requests if r.execution_id}
    deadline = time.time() + max(10.0, duration_s)
    while pending and time.time() < deadline:
        pending = {i for i in pending if tap.done(i) is None}
        await asyncio.sleep(0.1)
    latencies: list[float] = []
    last = result.start
    for request in result.requests:
        stamp = tap.done(request.execution_id) if request.execution_id else None
        if stamp is None:
            latencies.append(math.inf)
        else:
            latencies.append(ms(stamp.t - request.scheduled))
            last = max(last, stamp.t)
        if request.execution_id:
            tap.forget(request.execution_id)
    finished = sum(1 for x in latencies if not math.isinf(x))
    load = Load(
        runners=len(stack.runners),
        rate=rate,
        duration_s=duration_s,
        sent=len(result.requests),
        finished=finished,
        achieved=finished / max(duration_s, last - result.start),
        p50_ms=percentile(latencies, 0.5),
        p99_ms=percentile(latencies, 0.99),
    )
    load.settle_s = await stack.settle()
    return load


async def step_up(
    stack: Stack, tap: EventTap, rates: tuple[float, ...], step_s: float
) -> list[Load]:
    loads = []
    for rate in rates:
        load = await one_load(stack, tap, rate, step_s)
        loads.append(load)
        print(f"  S3 {load}", flush=True)
        if not load.kept_up or load.p99_ms > GIVE_UP_P99_MS:
            break
    return loads


def _max_sustained(loads: list[Load]) -> float:
    return max((x.rate for x in loads if x.sustained), default=0.0)


def _sustained_text(loads: list[Load]) -> str:
    best = _max_sustained(loads)
    return f"{best:.0f}/s" if best else f"< {loads[0].rate:.0f}/s"


async def run(bench: Bench) -> Outcome:
    quick = bench.quick
    rate = 100.0 if quick else TARGET_RATE
    duration = 3.0 if quick else 30.0
    scaling: dict[int, list[Load]] = {}
    # A fresh system for each series, so that none starts with what the previous one left.
    async with bench.stack("s3") as stack, stack.tap() as tap:
        await one_load(stack, tap, 50, 1)  # warm-up
        headline = await one_load(stack, tap, rate, duration)
        print(f"  S3 headline: {headline}", flush=True)
    for runners in (1, 2) if quick else (1, 2, 4):
        async with bench.stack(f"s3-{runners}") as stack, stack.tap() as tap:
            await stack.set_runners(runners)
            await one_load(stack, tap, 50, 1)  # warm-up
            if quick:
                scaling[runners] = [await one_load(stack, tap, rate, 2.0)]
            else:
                scaling[runners] = await step_up(stack, tap, STEP_RATES, 10.0)
    outcome = Outcome(metrics={"rate": headline.achieved, "p99_ms": headline.p99_ms})
    headline_verdict = combine(
        verdict(headline.achieved, TARGET_RATE * KEPT_UP, STRETCH_RATE * KEPT_UP, higher=True),
        verdict(headline.p99_ms, TARGET_P99_MS),
    )
    sustained = {r: _sustained_text(loads) for r, loads in scaling.items()}
    ceiling = {r: max(x.achieved for x in loads) for r, loads in scaling.items()}
    outcome.rows.append(
        Row(
            ID,
            f"one-node executions, open loop {duration:g} s at {rate:g}/s, 1 runner: "
            "completion rate, end-to-end p99",
            f">= {TARGET_RATE:g}/s (stretch {STRETCH_RATE:g}/s), p99 <= {TARGET_P99_MS:g} ms",
            f"{headline.achieved:.0f}/s, p99 {fmt_ms(headline.p99_ms)}"
            + (
                f" ({headline.sent - headline.finished} unfinished)" if not headline.kept_up else ""
            ),
            "-" if quick else headline_verdict,
        )
    )
    best = max(_max_sustained(loads) for loads in scaling.values())
    outcome.rows.append(
        Row(
            f"{ID}+",
            (
                f"smoke: {rate:g}/s for 2 s with "
                if quick
                else "stepping up the rate (10 s a step) with "
            )
            + " / ".join(str(r) for r in scaling)
            + " runner processes: max sustained rate with p99 <= 100 ms (ceiling)",
            f">= {TARGET_RATE:g}/s",
            ", ".join(f"{r}: {sustained[r]} ({ceiling[r]:.0f}/s)" for r in scaling),
            "-" if quick else verdict(best, TARGET_RATE, STRETCH_RATE, higher=True),
        )
    )
    outcome.details += [
        "**S3** loads (latency from the due time of each request to `ExecutionFinished`; "
        "*catch-up*: how long the notifier's projection needed afterwards):",
        "",
        "| runners | offered | duration | completed | p50 | p99 | unfinished | catch-up |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for load in [headline] + [x for loads in scaling.values() for x in loads]:
        outcome.details.append(
            f"| {load.runners} | {load.rate:g}/s | {load.duration_s:g} s | {load.achieved:.0f}/s "
            f"| {fmt_ms(load.p50_ms)} | {fmt_ms(load.p99_ms)} | {load.sent - load.finished} "
            f"| {load.settle_s:.1f} s |"
        )
    outcome.details.append("")
    return outcome
