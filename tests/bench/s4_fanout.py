"""S4: a trigger fanning out to 1,000 parallel ``noop`` nodes joined by one ``merge``.

Total time = the scheduler's ``ExecutionStarted`` stamp to its ``ExecutionFinished`` stamp: the
plan is made, 1,000 tasks go out to the runner, 1,000 results come back, the join runs.
"""

from __future__ import annotations

import time
from typing import Any

from tests.bench.load import execution_body
from tests.bench.stack import Bench
from tests.bench.stats import Outcome, Row, fmt_ms, median, ms, verdict

ID = "S4"
TARGET_MS = 1500.0
STRETCH_MS = 1000.0


def fan_out(width: int) -> dict[str, Any]:
    branches = [f"b{i}" for i in range(width)]
    return {
        "name": f"fan-out to {width}",
        "nodes": [{"id": "start", "type": "manual_trigger"}]
        + [{"id": b, "type": "noop"} for b in branches]
        + [{"id": "join", "type": "merge"}],
        "connections": [{"from": "start", "to": b} for b in branches]
        + [{"from": b, "to": "join"} for b in branches],
    }


async def run(bench: Bench) -> Outcome:
    width, runs = (100, 2) if bench.quick else (1000, 3)
    body = execution_body(fan_out(width))
    totals: list[float] = []
    end_to_end: list[float] = []
    async with bench.stack("s4") as stack:
        api = stack.api()
        try:
            async with stack.tap("ExecutionStarted") as tap:
                for run_index in range(runs + 1):  # the first run warms up, not counted
                    posted = time.time()
                    execution_id = await api.request_execution(body)
                    finished = await tap.finished(execution_id, timeout_s=120)
                    if finished.status != "succeeded":
                        raise RuntimeError(f"fan-out {execution_id} ended {finished.status}")
                    started = tap.first(execution_id, "ExecutionStarted")
                    if run_index:
                        totals.append(ms(finished.t - started.t))
                        end_to_end.append(ms(finished.t - posted))
                    tap.forget(execution_id)
                    await stack.settle()
        finally:
            await api.close()
    total = median(totals)
    return Outcome(
        rows=[
            Row(
                ID,
                f"fan-out to {width:,} parallel `noop` nodes and a `merge` join, median of "
                f"{runs} runs: `ExecutionStarted` → `ExecutionFinished`",
                f"<= {TARGET_MS / 1000:g} s (stretch {STRETCH_MS / 1000:g} s)",
                f"{fmt_ms(total)} (whole run: POST → `ExecutionFinished` "
                f"{fmt_ms(median(end_to_end))})",
                verdict(total, TARGET_MS, STRETCH_MS) if width == 1000 else "-",
            )
        ],
        details=[
            "**S4** runs: "
            + ", ".join(fmt_ms(t) for t in totals)
            + f"; POST → `ExecutionFinished` median {fmt_ms(median(end_to_end))}.",
            "",
        ],
        metrics={"total_ms": total, "e2e_ms": median(end_to_end)},
    )
