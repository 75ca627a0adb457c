"""SF: failover times on a 3-node NATS cluster (R3 streams, 4 partitions), under a steady load.

Two schedulers share the partitions by lease (``NODEDROP_LEASE_S``, S8's 6 s), two runners run
the nodes, S3's one-node workflow is submitted at a steady rate, and one fault at a time is
injected while it runs:

- *scheduler SIGKILL*: the partitions of the killed scheduler wait for their leases to expire,
  then the other takes them over (fence, consumer, active set rebuilt from snapshot and tail);
- *scheduler SIGTERM*: a graceful stop hands its partitions back at once;
- *stream leader SIGKILL*: the nats-server leading partition 0's stream dies; the two others
  elect a new leader, the clients fail over to them.

For each: how long until the partitions are held again (or the stream has a leader again),
and what the executions submitted around the fault saw: the longest time from submission to
``ExecutionFinished`` (no coordinated omission, as S3) against the p50 before the fault, and
whether every one finished. These are the times an operator plans for; they are reported, not
asserted, and on 2 shared cores they include the machine's contention.
"""

from __future__ import annotations

import asyncio
import math
import re
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tests.bench.load import execution_body, open_loop
from tests.bench.s1_chain import chain
from tests.bench.s8_cluster import LEASE_S, ClusterStack, cluster_stack, lease_owners, shared_out
from tests.bench.stack import Bench
from tests.bench.stats import Outcome, Row, fmt_ms, ms, percentile
from tests.bench.tap import EventTap

from nodedrop.contracts.events import ExecutionFinished
from nodedrop.platform.history import read_execution

ID = "SF"
RATE = 20.0
#: Load before the fault, and after it until the executions around it are done.
BEFORE_S = 4.0
AFTER_S = 20.0
QUICK_AFTER_S = 12.0


@dataclass
class Failover:
    fault: str
    #: Seconds from the fault until the partitions were held again / the stream led again.
    recovered_s: float
    #: Submission to finish, milliseconds: median before the fault, worst after it.
    p50_before_ms: float
    worst_after_ms: float
    #: Accepted executions that never finished, and submissions the api refused.
    unfinished: int
    refused: int
    submitted: int


async def _load_around(
    cs: ClusterStack,
    tap: EventTap,
    after_s: float,
    fault: Callable[[], Awaitable[float]],
) -> tuple[float, float, float, int, int, int]:
    """Steady load; ``fault`` runs ``BEFORE_S`` into it and returns its recovery time."""
    body = execution_body(chain(0))
    stack = cs.stack
    loading = asyncio.create_task(
        open_loop(
            stack.system.api_port,
            stack.system.token,
            rate=RATE,
            duration_s=BEFORE_S + after_s,
            body=lambda _: body,
        )
    )
    await asyncio.sleep(BEFORE_S)
    fault_at = time.time()
    recovered_s = await fault()
    result = await loading
    pending = {r.execution_id for r in result.requests if r.execution_id}
    deadline = time.time() + 60
    while pending and time.time() < deadline:
        pending = {i for i in pending if tap.done(i) is None}
        await asyncio.sleep(0.2)
    # The tap (a subscription) may miss what was published while its server changed: the log
    # says whether they finished.
    finished_in_log = set()
    for execution_id in pending:
        history = await read_execution(stack.js, execution_id, layout=stack.layout)
        if any(isinstance(e, ExecutionFinished) for _, e in history):
            finished_in_log.add(execution_id)
    before: list[float] = []
    after: list[float] = []
    refused = unfinished = 0
    for request in result.requests:
        if not request.execution_id:
            refused += 1  # not accepted (e.g. a 503 while the stream had no leader)
            continue
        stamp = tap.done(request.execution_id)
        if stamp is None and request.execution_id in finished_in_log:
            continue  # finished, when is not known: counted in neither
        latency = math.inf if stamp is None else ms(stamp.t - request.scheduled)
        unfinished += stamp is None
        (before if request.scheduled < fault_at else after).append(latency)
        tap.forget(request.execution_id)
    return (
        recovered_s,
        percentile(before, 0.5),
        max(after, default=math.inf),
        unfinished,
        refused,
        len(result.requests),
    )


async def _until(check: Callable[[], Awaitable[bool]], timeout_s: float = 120.0) -> float:
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > timeout_s:
            return math.inf
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def _scheduler_fault(
    cs: ClusterStack, name: str, sig: signal.Signals
) -> Callable[[], Awaitable[float]]:
    async def fault() -> float:
        # Leases name members by a random id: the killed one is whoever holds what its log says
        # it took over.
        owners = await lease_owners(cs.stack, "scheduler")
        taken = {int(p) for p in re.findall(r"took partition (\d+) over", cs.log(name))}
        member = next(owners[p] for p in taken if p in owners)
        held = {p for p, owner in owners.items() if owner == member}
        cs.stack.system.processes[name].send_signal(sig)
        started = time.monotonic()

        async def taken_over() -> bool:
            now = await lease_owners(cs.stack, "scheduler")
            return all(p in now and now[p] != member for p in held)

        await _until(taken_over)
        return time.monotonic() - started

    return fault


def _leader_fault(cs: ClusterStack) -> Callable[[], Awaitable[float]]:
    async def fault() -> float:
        stream = cs.stack.layout.stream(0)
        leader = await cs.cluster.wait_stream_leader(stream)
        cs.cluster.kill(leader)
        started = time.monotonic()
        await cs.cluster.wait_stream_leader(stream, other_than=leader)
        took = time.monotonic() - started
        await cs.cluster.restart(leader)
        return took

    return fault


async def run(bench: Bench) -> Outcome:
    after_s = QUICK_AFTER_S if bench.quick else AFTER_S
    results: list[Failover] = []
    faults: list[tuple[str, Callable[[ClusterStack], Callable[[], Awaitable[float]]]]] = [
        ("scheduler SIGKILL", lambda cs: _scheduler_fault(cs, "scheduler-1", signal.SIGKILL)),
    ]
    if not bench.quick:
        faults += [
            ("scheduler SIGTERM", lambda cs: _scheduler_fault(cs, "scheduler-1", signal.SIGTERM)),
            ("stream leader SIGKILL", _leader_fault),
        ]
    for title, make_fault in faults:
        name = "sf-" + title.split()[0] + "-" + title.split()[-1].lower()
        async with cluster_stack(bench, name, 2, 3) as cs, cs.stack.tap() as tap:
            try:
                await shared_out(cs.stack, "scheduler", 2)
            except TimeoutError:
                for n in cs.schedulers:
                    print(f"===== {n}\n{cs.log(n)[-6000:]}", flush=True)
                raise
            measured = await _load_around(cs, tap, after_s, make_fault(cs))
        result = Failover(title, *measured)
        print(f"  SF {title}: {result}", flush=True)
        results.append(result)
    return _report(results)


def _report(results: list[Failover]) -> Outcome:
    def one(r: Failover) -> str:
        what = "led again" if "leader" in r.fault else "partitions held again"
        return (
            f"{r.fault}: {what} after {r.recovered_s:.1f} s; "
            f"worst execution {fmt_ms(r.worst_after_ms)} (p50 before {fmt_ms(r.p50_before_ms)}); "
            f"{r.refused} of {r.submitted} submissions refused, "
            f"{r.unfinished} accepted unfinished"
        )

    outcome = Outcome(
        metrics={f"recovered_s_{i}": r.recovered_s for i, r in enumerate(results)}
        | {f"worst_ms_{i}": r.worst_after_ms for i, r in enumerate(results)}
    )
    outcome.rows.append(
        Row(
            ID,
            f"failover on a 3-node NATS cluster (R3, 4 partitions, fsync always), 2 schedulers "
            f"(lease {LEASE_S:g} s), 2 runners, {RATE:g} executions/s: time until the fault is "
            "repaired, the worst submission-to-finish of the executions after it",
            "report",
            "; ".join(one(r) for r in results),
        )
    )
    return outcome
