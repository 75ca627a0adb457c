"""A peer's submit-and-wait steps (S9's open loop against a peer's endpoint), shared by the
peers that answer a request once the run has finished (DBOS, n8n)."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass

from tests.bench import cpu_cost
from tests.bench.load import open_loop
from tests.bench.stats import ms, percentile

#: What ``open_loop`` sends as a bearer token; the peers ignore it.
NO_TOKEN = "-"
GIVE_UP_P99_MS = 2000.0
KEPT_UP = 0.95


@dataclass
class RateStep:
    rate: float
    sent: int
    answered: int
    achieved: float
    p50_ms: float
    p99_ms: float
    cpu_ms: float  # the peer, its database and the load generator, per run answered

    @property
    def kept_up(self) -> bool:
        return self.answered == self.sent and self.achieved >= KEPT_UP * self.rate


def best_sustained(steps: list[RateStep], p99_ms: float) -> RateStep | None:
    sustained = [s for s in steps if s.kept_up and s.p99_ms <= p99_ms]
    return max(sustained, key=lambda s: s.rate) if sustained else None


def cpu_seconds(*roots: int) -> float:
    """CPU seconds spent so far by the process trees under ``roots`` (a peer, its database) and
    by this process (the load generator)."""
    total = 0.0
    for root in roots:
        for pid in cpu_cost.descendants(root):
            with contextlib.suppress(OSError):  # a process that just exited
                total += cpu_cost.cpu_seconds(pid)
    times = os.times()
    return total + times.user + times.system


async def submit_wait(
    port: int,
    path: str,
    rates: tuple[float, ...],
    *,
    step_s: float,
    connections: int,
    cpu_seconds: Callable[[], float],
    label: str,
) -> list[RateStep]:
    """Open loop at each rate in turn, as S9 drives nodedrop, until the peer falls behind."""
    await open_loop(port, NO_TOKEN, rate=20, duration_s=1, body=lambda _: b"{}", path=path)
    steps: list[RateStep] = []
    for rate in rates:
        before = cpu_seconds()
        loaded = await open_loop(
            port,
            NO_TOKEN,
            rate=rate,
            duration_s=step_s,
            body=lambda _: b"{}",
            connections=connections,
            path=path,
        )
        spent = cpu_seconds() - before
        answered = [r for r in loaded.requests if r.status == 200]
        latencies = [
            ms(r.answered - r.scheduled) if r.status == 200 else math.inf for r in loaded.requests
        ]
        last = max((r.answered for r in answered), default=loaded.start)
        step = RateStep(
            rate=rate,
            sent=len(loaded.requests),
            answered=len(answered),
            achieved=len(answered) / max(step_s, last - loaded.start),
            p50_ms=percentile(latencies, 0.5),
            p99_ms=percentile(latencies, 0.99),
            cpu_ms=1000 * spent / max(len(answered), 1),
        )
        steps.append(step)
        print(
            f"  {label} S9 {rate:g}/s: {step.achieved:.0f}/s answered, p50 "
            f"{step.p50_ms:.1f} ms, p99 {step.p99_ms:.1f} ms, CPU {step.cpu_ms:.1f} ms",
            flush=True,
        )
        if not step.kept_up or step.p99_ms > GIVE_UP_P99_MS:
            break
    return steps
