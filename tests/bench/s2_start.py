"""S2: from ``POST /api/executions`` to the first node's ``NodeStarted``.

One execution at a time (a trigger and one ``noop``), the next posted once the previous one has
finished. The start is the client's clock just before the request goes on the wire, the end the
runner's ``NodeStarted`` stamp of the trigger node: the same machine clock.
"""

from __future__ import annotations

import time

from tests.bench.load import execution_body
from tests.bench.s1_chain import chain
from tests.bench.stack import Bench
from tests.bench.stats import Outcome, Row, combine, fmt_ms, ms, percentile, verdict

ID = "S2"
TARGET_P50_MS = 5.0
TARGET_P99_MS = 20.0


async def run(bench: Bench) -> Outcome:
    runs = 50 if bench.quick else 1000
    body = execution_body(chain(1))
    to_start: list[float] = []
    answered: list[float] = []
    to_requested: list[float] = []
    to_ready: list[float] = []
    async with bench.stack("s2") as stack:
        api = stack.api()
        try:
            async with stack.tap("ExecutionRequested", "NodeReady", "NodeStarted") as tap:
                for run_index in range(runs + 10):  # 10 warm-up runs, not counted
                    posted = time.time()
                    execution_id = await api.request_execution(body)
                    answer = time.time()
                    await tap.finished(execution_id, timeout_s=30)
                    if run_index >= 10:
                        started = tap.first(execution_id, "NodeStarted").t
                        to_start.append(ms(started - posted))
                        answered.append(ms(answer - posted))
                        requested = tap.first(execution_id, "ExecutionRequested").t
                        to_requested.append(ms(requested - posted))
                        ready = tap.first(execution_id, "NodeReady").t
                        to_ready.append(ms(ready - requested))
                    tap.forget(execution_id)
        finally:
            await api.close()
    p50, p99 = percentile(to_start, 0.5), percentile(to_start, 0.99)
    outcome = Outcome(metrics={"p50_ms": p50, "p99_ms": p99})
    outcome.rows.append(
        Row(
            ID,
            f"`POST /api/executions` → first `NodeStarted`, {runs:,} runs one at a time: p50 / p99",
            f"p50 <= {TARGET_P50_MS:g} ms, p99 <= {TARGET_P99_MS:g} ms",
            f"{fmt_ms(p50)} / {fmt_ms(p99)}",
            combine(verdict(p50, TARGET_P50_MS), verdict(p99, TARGET_P99_MS)),
        )
    )
    outcome.details += [
        f"**S2** in steps (p50 / p99): POST → api stamps `ExecutionRequested` "
        f"{fmt_ms(percentile(to_requested, 0.5))} / {fmt_ms(percentile(to_requested, 0.99))}; "
        f"`ExecutionRequested` → scheduler stamps the trigger's `NodeReady` "
        f"{fmt_ms(percentile(to_ready, 0.5))} / {fmt_ms(percentile(to_ready, 0.99))}; "
        f"the POST's answer reaches the client after "
        f"{fmt_ms(percentile(answered, 0.5))} / {fmt_ms(percentile(answered, 0.99))}.",
        "",
    ]
    return outcome
