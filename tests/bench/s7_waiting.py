"""S7: 10,000 executions waiting at once, each in a ``wait`` node; all finish.

Each execution is a trigger, a ``wait`` and a ``noop``. The wait of each one is set, when it is
requested, to end at one common deadline, so that all of them wait at the same time and then all
wake at once. The deadline comes from the submission rate measured on a first small batch.
Whether they really all waited at once is checked from the event stamps (``NodeWaiting`` up,
the wait node's ``NodeSucceeded`` down). The scheduler's peak memory is ``VmHWM`` (peak resident
set) from ``/proc/<pid>/status`` of a scheduler started for this scenario.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from tests.bench.load import execution_body, submit_many
from tests.bench.stack import Bench
from tests.bench.stats import Outcome, Row, combine, verdict

ID = "S7"
TARGET_MB = 500.0


def waiting(ms: int) -> dict[str, Any]:
    return {
        "name": "wait",
        "nodes": [
            {"id": "start", "type": "manual_trigger"},
            {"id": "wait", "type": "wait", "parameters": {"ms": ms}},
            {"id": "done", "type": "noop"},
        ],
        "connections": [{"from": "start", "to": "wait"}, {"from": "wait", "to": "done"}],
    }


def memory_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024  # kB
    raise LookupError(f"{field} not in /proc/{pid}/status")


async def run(bench: Bench) -> Outcome:
    count = 500 if bench.quick else 10_000
    async with bench.stack("s7") as stack:
        port, token = stack.system.api_port, stack.system.token
        scheduler = stack.pid("scheduler")
        baseline_mb = memory_mb(scheduler, "VmHWM")
        async with stack.tap("NodeWaiting", "NodeSucceeded") as tap:
            probe = max(50, count // 20)
            started = time.monotonic()
            probe_ids = await submit_many(port, token, probe, lambda _: execution_body(waiting(1)))
            rate = probe / (time.monotonic() - started)
            for execution_id in probe_ids:
                await tap.finished(execution_id, timeout_s=60)
                tap.forget(execution_id)
            await stack.settle()
            # Everything requested before the deadline, at the probe's rate (an underestimate:
            # the probe's executions ran while it was sent), plus slack.
            deadline = time.time() + count / rate + (3 if bench.quick else 5)

            def body(_: int) -> bytes:
                return execution_body(waiting(max(1, round((deadline - time.time()) * 1000))))

            submitted = time.monotonic()
            ids = await submit_many(port, token, count, body)
            submit_s = time.monotonic() - submitted
            all_requested = time.time()
            rss_waiting_mb = memory_mb(scheduler, "VmRSS")
            finished = 0
            give_up = deadline + 120
            for execution_id in ids:
                with contextlib.suppress(TimeoutError):
                    stamp = await tap.finished(execution_id, max(0.01, give_up - time.time()))
                    finished += stamp.status == "succeeded"
            last_finish = max((s.t for i in ids if (s := tap.done(i)) is not None), default=0.0)
            changes = []
            for execution_id in ids:
                changes += [(s.t, 1) for s in tap.of(execution_id, "NodeWaiting")]
                woke = [s for s in tap.of(execution_id, "NodeSucceeded") if s.node == "wait"]
                changes += [(s.t, -1) for s in woke]
            peak = level = 0
            for _, change in sorted(changes):
                level += change
                peak = max(peak, level)
        peak_mb = memory_mb(scheduler, "VmHWM")
    ok = finished == count and peak == count
    return Outcome(
        rows=[
            Row(
                ID,
                f"{count:,} executions waiting at once in a `wait` node, then all waking: "
                "all finish; scheduler peak memory (VmHWM)",
                f"all finish; <= {TARGET_MB:g} MB (10,000 executions)",
                f"{finished:,} of {count:,} succeeded, {peak:,} waiting at once; {peak_mb:,.0f} MB",
                combine(
                    "pass" if ok else "FAIL (not all waited at once or finished)",
                    verdict(peak_mb, TARGET_MB) if not bench.quick else "pass",
                ),
            )
        ],
        details=[
            f"**S7**: requested in {submit_s:.1f} s ({count / submit_s:,.0f}/s, 16 connections); "
            f"all woke {max(0.0, deadline - all_requested):.1f} s after the last request and "
            f"were finished {last_finish - deadline:.1f} s after the deadline. Scheduler memory: "
            f"{baseline_mb:,.0f} MB peak before the load, {rss_waiting_mb:,.0f} MB resident "
            f"with all waiting, {peak_mb:,.0f} MB peak.",
            "",
        ],
        metrics={"peak_mb": peak_mb},
    )
