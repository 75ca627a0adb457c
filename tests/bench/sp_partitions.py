"""SP: S3's open-loop load on 1, 2, 4 and 8 partitions of the log, embedded server, 2 runners.

Each partition is a stream of its own, stored (and fsynced, with ``sync_interval: always``) one
message after another; several streams overlap their writes. This is what the default of
``NODEDROP_PARTITIONS`` was chosen by: for each count, a fresh system, then the rate stepped up
(10 s a step) until completions fall behind; the highest rate completed in full with p99 <= 100
ms is the max sustained rate, the highest completion rate the ceiling.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from tests.bench.s3_throughput import Load, one_load, step_up
from tests.bench.stack import Bench
from tests.bench.stats import Outcome, Row, fmt_ms

from nodedrop.contracts.routing import PARTITIONS_ENV

ID = "SP"
COUNTS = (1, 2, 4, 8)
RATES = (200, 300, 400, 500, 650, 800, 1000, 1250)
RUNNERS = 2


@contextlib.contextmanager
def partitions(count: int) -> Iterator[None]:
    """The services started meanwhile (and the layout the harness creates) use ``count``."""
    before = os.environ.get(PARTITIONS_ENV)
    os.environ[PARTITIONS_ENV] = str(count)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(PARTITIONS_ENV, None)
        else:
            os.environ[PARTITIONS_ENV] = before


def _best(loads: list[Load]) -> tuple[float, float]:
    sustained = max((x.rate for x in loads if x.sustained), default=0.0)
    return sustained, max(x.achieved for x in loads)


async def run(bench: Bench) -> Outcome:
    quick = bench.quick
    counts = (1, 4) if quick else COUNTS
    series: dict[int, list[Load]] = {}
    for count in counts:
        with partitions(count):
            async with bench.stack(f"sp-{count}") as stack, stack.tap() as tap:
                await stack.set_runners(RUNNERS)
                await one_load(stack, tap, 50, 1)  # warm-up
                if quick:
                    series[count] = [await one_load(stack, tap, 100, 2.0)]
                else:
                    series[count] = await step_up(stack, tap, RATES, 10.0)
                for load in series[count]:
                    print(f"  SP {count} partitions: {load}", flush=True)
    best = {count: _best(loads) for count, loads in series.items()}
    outcome = Outcome(metrics={f"sustained_{c}": s for c, (s, _) in best.items()})
    outcome.rows.append(
        Row(
            ID,
            ("smoke: 100/s for 2 s" if quick else "S3's load stepped up")
            + f", {RUNNERS} runners, on "
            + " / ".join(str(c) for c in series)
            + " partitions: max sustained rate with p99 <= 100 ms (ceiling)",
            "report",
            ", ".join(
                f"{c}: {s:.0f}/s ({ceiling:.0f}/s)" if s else f"{c}: - ({ceiling:.0f}/s)"
                for c, (s, ceiling) in best.items()
            ),
        )
    )
    outcome.details += [
        "**SP** loads by partition count:",
        "",
        "| partitions | offered | completed | p50 | p99 | unfinished |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for count, loads in series.items():
        for load in loads:
            outcome.details.append(
                f"| {count} | {load.rate:g}/s | {load.achieved:.0f}/s | {fmt_ms(load.p50_ms)} "
                f"| {fmt_ms(load.p99_ms)} | {load.sent - load.finished} |"
            )
    outcome.details.append("")
    return outcome
