"""S8: S3's open-loop load on a 3-node NATS cluster (R3 streams, 4 partitions) with 1, 2 and 3
schedulers: sustained rate, latency, and CPU per execution of each process.

The cluster is three nats-server processes on loopback (:class:`tests.fixtures.nats_cluster.
NatsCluster`: JetStream with ``sync_interval: always`` on every node, so each stored event is
fsynced by three servers before it is acknowledged); every stream, consumer and bucket has 3
replicas, the log 4 partitions. The services run as processes with the cluster's three URLs: one
api, ``n`` schedulers sharing the partitions by lease, one notifier, two runners. A full run adds
reference series: 1, 2 and 3 schedulers on the same cluster with R1 streams (each partition stored
by one node, no replication). Each series gets a fresh cluster and database, the schedulers'
leases shared out, then:

- *idle*: each process's CPU for a few seconds with nothing to do (leases, heartbeats of the
  replication groups, consumers waiting): the fixed cost;
- *CPU*: a fixed open-loop rate; each process's CPU time (utime + stime from /proc, as
  :mod:`tests.bench.cpu_cost`) from before the load until the notifier has projected all of it,
  divided by the executions completed; also less the idle cost over that time;
- *throughput* (full run): the rate stepped up (10 s a step) until completions fall behind.
  *Kept up*: at least 95 % of the offered rate completed, nothing left unfinished; the *ceiling*
  is the highest completion rate seen. The CPU of each step is counted too, and reported for the
  highest rate kept up (per-execution costs fall as batches grow with the rate).

Latency runs from each request's due time to the scheduler's ``ExecutionFinished`` stamp (no
coordinated omission), as in S3. The schedulers' logs are searched for batches of decisions the
log refused or did not acknowledge: on a replicated stream the leader refuses a publish that
expects a subject's last sequence while another such publish on that subject is in flight, and
every decision a scheduler publishes expects its partition's fence. The whole cluster shares the
machine with the services and the load generator, so the rates say what one machine does; the
CPU per execution is the figure that carries over to a deployment on several.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import nats
from nats.js.errors import BucketNotFoundError, KeyNotFoundError
from tests.bench.cpu_cost import cpu_seconds, descendants
from tests.bench.s3_throughput import GIVE_UP_P99_MS, Load, one_load
from tests.bench.stack import Bench, Services
from tests.bench.stats import Outcome, Row, fmt_ms
from tests.bench.tap import EventTap
from tests.e2e.system import System
from tests.fixtures.nats_cluster import NatsCluster

from nodedrop.contracts import subjects
from nodedrop.contracts.routing import PARTITIONS_ENV
from nodedrop.platform.jetstream import REPLICAS_ENV, StreamSettings, ensure_jetstream
from nodedrop.platform.leases import LEASE_ENV

ID = "S8"
PARTITIONS = 4
REPLICAS = 3
RUNNERS = 2
#: Shorter than the default 10 s so that the leases are shared out within seconds of a start;
#: renewals (every third of it) cost next to nothing.
LEASE_S = 6.0
#: (replicas, schedulers) of each series: R3 with 1, 2, 3 schedulers, and for reference the same
#: with R1 streams on the same cluster (each partition's stream on one node, no replication).
SERIES = ((3, 1), (3, 2), (3, 3), (1, 1), (1, 2), (1, 3))
QUICK_SERIES = ((3, 1), (3, 2))
CPU_RATE = 20.0
CPU_SECONDS = 15.0
IDLE_SECONDS = 5.0
STEP_RATES = (20, 50, 100, 150, 200, 300, 400, 500, 650)
STEP_S = 10.0
#: What the scheduler logs when the log refused or did not acknowledge a batch of decisions.
REFUSED = "decisions failed"


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` in this process's environment meanwhile: the services started then inherit
    them, and the harness's own layout and stream settings follow them."""
    before = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass
class ClusterStack:
    """The services on the cluster, and the processes whose CPU is counted."""

    stack: Services
    cluster: NatsCluster
    schedulers: list[str]
    notifiers: list[str]

    def processes(self) -> dict[str, int]:
        """Process name -> pid, grouped by service in the order reported."""
        system = self.stack.system
        found = {"api": system.processes["api"].pid}
        for name in (*self.schedulers, *self.stack.runners, *self.notifiers):
            found[name] = system.processes[name].pid
        for name, node in self.cluster.nodes.items():
            assert node.pid is not None, f"nats-server {name} is not running"
            found[f"nats-{name}"] = node.pid
        return found

    def log(self, name: str) -> str:
        path = self.stack.system.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextlib.asynccontextmanager
async def cluster_stack(
    bench: Bench, name: str, schedulers: int, replicas: int
) -> AsyncIterator[ClusterStack]:
    """A fresh 3-node cluster and database with the services on it (streams, consumers and
    buckets with ``replicas`` replicas), the schedulers' leases shared out and every runner
    waiting for tasks; everything stopped afterwards."""
    directory = bench.work / name
    directory.mkdir()
    cluster = NatsCluster(directory / "cluster")
    settings = {
        PARTITIONS_ENV: str(PARTITIONS),
        REPLICAS_ENV: str(replicas),
        LEASE_ENV: f"{LEASE_S:g}",
    }
    database_url = ""
    system: System | None = None
    nc = None
    with environment(settings):
        try:
            await cluster.start()
            database_url = await bench.new_database()
            system = System(cluster.url, database_url, directory)
            nc = await nats.connect(cluster.urls, name=f"bench {name}", max_reconnect_attempts=-1)
            # Streams and consumers before any service starts (see Bench.stack).
            await ensure_jetstream(nc.jetstream(), StreamSettings.from_env())
            stack = Services(system, database_url, nc)
            # The api first: it answers /health once connected; the rest then start together.
            stack.start("api")
            scheduler_names = [f"scheduler-{i + 1}" for i in range(schedulers)]
            for scheduler in scheduler_names:
                system.start(scheduler, "scheduler")
            stack.start("notifier")
            await stack.wait_healthy(60.0)
            await stack.set_runners(RUNNERS, timeout_s=60.0)
            await shared_out(stack, "scheduler", schedulers)
            yield ClusterStack(stack, cluster, scheduler_names, ["notifier"])
        finally:
            if nc is not None:
                with contextlib.suppress(Exception):
                    await nc.close()
            if system is not None:
                await asyncio.to_thread(system.stop_all)
            await cluster.aclose()
            if database_url:
                with contextlib.suppress(Exception):
                    await bench.drop_database(database_url)


async def lease_owners(stack: Services, group: str) -> dict[int, str]:
    """Partition -> the member holding its lease, for the partitions held."""
    owners: dict[int, str] = {}
    try:
        kv = await stack.js.key_value(subjects.LEASES_BUCKET)
    except BucketNotFoundError:
        return owners
    for partition in range(stack.layout.partitions):
        with contextlib.suppress(KeyNotFoundError):
            entry = await kv.get(f"{group}.{partition:03d}")
            if entry.value:
                owners[partition] = entry.value.decode()
    return owners


async def shared_out(stack: Services, group: str, members: int, timeout_s: float = 60.0) -> None:
    """Until every partition is held and ``members`` members hold them as evenly as can be
    (leases move a round, a third of the lease time, at a time)."""
    deadline = time.monotonic() + timeout_s
    fair = math.ceil(stack.layout.partitions / members)
    while True:
        owners = await lease_owners(stack, group)
        counts = [list(owners.values()).count(m) for m in set(owners.values())]
        if (
            len(owners) == stack.layout.partitions
            and len(counts) == members
            and max(counts) <= fair
        ):
            return
        if time.monotonic() > deadline:
            system = stack.system
            states = {
                name: process.poll()
                for name, process in system.processes.items()
                if name.startswith(group)
            }
            logs = "".join(
                f"\n----- {name}\n" + (system.log_dir / f"{name}.log").read_text()[-3000:]
                for name in states
            )
            raise TimeoutError(
                f"{group} leases not shared out among {members}: {owners}; "
                f"exit codes {states}{logs}"
            )
        await asyncio.sleep(0.2)


def snapshot(cs: ClusterStack, postgres_pid: int | None) -> dict[str, float]:
    usage = {name: cpu_seconds(pid) for name, pid in cs.processes().items()}
    for name, node in cs.cluster.nodes.items():
        assert node.pid is not None
        usage[f"nats-{name} kernel"] = cpu_seconds(node.pid, "system")
    total = 0.0
    if postgres_pid is not None:
        for pid in descendants(postgres_pid):
            with contextlib.suppress(OSError, ValueError):
                total += cpu_seconds(pid)
    usage["postgresql"] = total
    times = os.times()
    usage["load generator"] = times.user + times.system
    return usage


#: The services and servers a process belongs to, in the order reported.
GROUPS = (
    ("api", r"api"),
    ("scheduler", r"scheduler-\d+"),
    ("runner", r"runner(-\d+)?"),
    ("notifier", r"notifier(-\d+)?"),
    ("nats-server", r"nats-n\d+"),
    ("  of it in the kernel", r"nats-n\d+ kernel"),
    ("postgresql", r"postgresql"),
    ("load generator", r"load generator"),
)
#: The groups a deployment runs (the load generator is the harness).
SYSTEM = ("api", "scheduler", "runner", "notifier", "nats-server", "postgresql")


@dataclass
class Cost:
    """CPU milliseconds per execution completed, each process and by group."""

    executions: int
    load: Load
    per_process: dict[str, float] = field(default_factory=dict)
    #: How long the CPU was counted for (the load, its drain and the projection after it).
    window_s: float = 0.0

    def group(self, title: str) -> list[float]:
        pattern = dict(GROUPS)[title]
        return [v for k, v in self.per_process.items() if re.fullmatch(pattern, k)]

    def total(self, title: str) -> float:
        return sum(self.group(title))

    @property
    def system(self) -> float:
        return sum(self.total(title) for title in SYSTEM)

    def marginal(self, title: str, idle: Cost) -> float:
        """:meth:`total` less what the group spends idle (ms per second) over the window."""
        fixed = idle.total(title) * self.window_s / max(self.executions, 1)
        return self.total(title) - fixed

    def marginal_system(self, idle: Cost) -> float:
        return sum(self.marginal(title, idle) for title in SYSTEM)


async def measure_cpu(
    bench: Bench, cs: ClusterStack, tap: EventTap, rate: float, seconds: float
) -> Cost:
    postgres_pid = bench.postgres.pid
    await cs.stack.settle()
    before = snapshot(cs, postgres_pid)
    started = time.monotonic()
    load = await one_load(cs.stack, tap, rate, seconds)  # waits for the projection too
    after = snapshot(cs, postgres_pid)
    cost = Cost(executions=load.finished, load=load, window_s=time.monotonic() - started)
    for name in before:
        cost.per_process[name] = 1000 * (after[name] - before[name]) / max(load.finished, 1)
    return cost


async def measure_idle(bench: Bench, cs: ClusterStack, seconds: float) -> dict[str, float]:
    """CPU milliseconds per second of each process with nothing to do (leases, heartbeats,
    the replication's and the consumers' own traffic): the fixed cost besides the cost per
    execution."""
    await cs.stack.settle()
    before = snapshot(cs, bench.postgres.pid)
    started = time.monotonic()
    await asyncio.sleep(seconds)
    after = snapshot(cs, bench.postgres.pid)
    took = time.monotonic() - started
    return {name: 1000 * (after[name] - before[name]) / took for name in before}


@dataclass
class Series:
    replicas: int
    schedulers: int
    cost: Cost
    idle: Cost
    loads: list[Load]
    takeovers: dict[str, int]
    lost: int
    #: Batches of the schedulers' decisions the log refused or did not acknowledge.
    refused: int
    #: The CPU of each load stepped up.
    step_costs: list[Cost] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"R{self.replicas}, {self.schedulers} scheduler{'s' if self.schedulers > 1 else ''}"

    @property
    def best_cost(self) -> Cost | None:
        """The CPU of the highest rate stepped up to that was kept up."""
        kept = [x for x in self.step_costs if x.load.kept_up]
        return max(kept, key=lambda x: x.load.rate) if kept else None

    @property
    def kept_up(self) -> Load | None:
        kept = [x for x in self.loads if x.kept_up]
        return max(kept, key=lambda x: x.rate) if kept else None

    @property
    def sustained(self) -> float:
        return max((x.rate for x in self.loads if x.sustained), default=0.0)

    @property
    def ceiling(self) -> float:
        return max(x.achieved for x in self.loads)


async def one_series(bench: Bench, replicas: int, schedulers: int) -> Series:
    quick = bench.quick
    name = f"s8-r{replicas}-{schedulers}"
    async with (
        cluster_stack(bench, name, schedulers, replicas) as cs,
        cs.stack.tap() as tap,
    ):
        await one_load(cs.stack, tap, 10, 1)  # warm-up
        idle = await measure_idle(bench, cs, 2.0 if quick else IDLE_SECONDS)
        step_costs: list[Cost] = []
        if quick:
            cost = await measure_cpu(bench, cs, tap, CPU_RATE, 3.0)
            loads = [cost.load]
        else:
            cost = await measure_cpu(bench, cs, tap, CPU_RATE, CPU_SECONDS)
            loads = []
            for rate in STEP_RATES:
                step = await measure_cpu(bench, cs, tap, rate, STEP_S)
                step_costs.append(step)
                load = step.load
                loads.append(load)
                print(f"  S8 R{replicas}, {schedulers} scheduler(s): {load}", flush=True)
                if not load.kept_up or load.p99_ms > GIVE_UP_P99_MS:
                    break
        print(f"  S8 R{replicas}, {schedulers} scheduler(s), CPU at {cost.load}", flush=True)
        takeovers = {n: cs.log(n).count("took partition") for n in cs.schedulers}
        lost = sum(cs.log(n).count("lease of partition") for n in cs.schedulers)
        refused = sum(cs.log(n).count(REFUSED) for n in cs.schedulers)
    idle_cost = Cost(executions=0, load=cost.load, per_process=idle)
    return Series(
        replicas, schedulers, cost, idle_cost, loads, takeovers, lost, refused, step_costs
    )


async def run(bench: Bench) -> Outcome:
    quick = bench.quick
    series = []
    for replicas, schedulers in QUICK_SERIES if quick else SERIES:
        series.append(await one_series(bench, replicas, schedulers))
    return report(series, quick)


def _ms(value: float) -> str:
    return f"{value:.2f}"


def report(series: list[Series], quick: bool) -> Outcome:
    outcome = Outcome(
        metrics={f"cpu_ms_r{s.replicas}_{s.schedulers}": s.cost.system for s in series}
        | {f"ceiling_r{s.replicas}_{s.schedulers}": s.ceiling for s in series}
    )
    setup = f"3-node NATS cluster ({PARTITIONS} partitions, fsync always)"

    def throughput(s: Series) -> str:
        kept = s.kept_up
        text = f"{s.title}: "
        if kept is None:
            text += "none kept up"
        else:
            text += f"{kept.rate:g}/s p50 {fmt_ms(kept.p50_ms)} p99 {fmt_ms(kept.p99_ms)}"
        return text + f" (ceiling {s.ceiling:.0f}/s; {s.refused} refused batches)"

    outcome.rows.append(
        Row(
            ID,
            (
                f"smoke: {setup}, {CPU_RATE:g}/s for 3 s"
                if quick
                else f"S3's load stepped up (10 s a step) on a {setup}"
            )
            + f", {RUNNERS} runners, R3 streams with 1 / 2 / 3 schedulers"
            + ("" if quick else ", and R1 with the same")
            + ": highest rate kept up, its p50 / p99 (ceiling; batches of decisions the log "
            "refused)",
            "report",
            "; ".join(throughput(s) for s in series),
        )
    )
    outcome.rows.append(
        Row(
            f"{ID} CPU",
            f"the same, CPU ms per execution at {CPU_RATE:g}/s: the system's total "
            "(api / schedulers / runners / notifier / 3 nats-servers / PostgreSQL)",
            "report",
            "; ".join(
                f"{s.title}: {s.cost.system:.1f} ("
                + " / ".join(f"{s.cost.total(t):.1f}" for t in SYSTEM)
                + ")"
                for s in series
            ),
        )
    )
    outcome.details += [
        f"**S8** on a {setup}, one api, one notifier, {RUNNERS} runners, schedulers sharing the "
        "partitions by lease; each series on a fresh cluster. CPU ms per execution completed at "
        f"{CPU_RATE:g}/s (utime + stime of each process over a load and the projection after "
        "it; several processes of a service: their sum, each in brackets); the same less what "
        "each spends with nothing to do over that time; and with nothing to do, CPU ms per "
        "second:",
        "",
        "| series | CPU | " + " | ".join(title.strip() for title, _ in GROUPS) + " | system |",
        "|---|---|" + "---:|" * (len(GROUPS) + 1),
    ]

    def cell(values: list[float]) -> str:
        text = _ms(sum(values))
        if len(values) > 1:
            text += " (" + " + ".join(_ms(v) for v in values) + ")"
        return text

    for s in series:
        gross = [cell(s.cost.group(title)) for title, _ in GROUPS]
        net = [_ms(s.cost.marginal(title, s.idle)) for title, _ in GROUPS]
        idle = [f"{s.idle.total(title):.0f}" for title, _ in GROUPS]
        outcome.details += [
            f"| {s.title} | ms per execution | "
            + " | ".join(gross)
            + f" | **{_ms(s.cost.system)}** |",
            f"| {s.title} | less idle | "
            + " | ".join(net)
            + f" | **{_ms(s.cost.marginal_system(s.idle))}** |",
            f"| {s.title} | idle, ms per s | " + " | ".join(idle) + f" | {s.idle.system:.0f} |",
        ]
        best = s.best_cost
        if best is not None and best.load.rate != s.cost.load.rate:
            outcome.details.append(
                f"| {s.title} | ms per execution at {best.load.rate:g}/s, the highest rate kept "
                "up | "
                + " | ".join(cell(best.group(title)) for title, _ in GROUPS)
                + f" | **{_ms(best.system)}** |"
            )
    outcome.details += [
        "",
        "Measured at "
        + "; ".join(
            f"{s.title}: {s.cost.executions} executions, p50 {fmt_ms(s.cost.load.p50_ms)}, "
            f"p99 {fmt_ms(s.cost.load.p99_ms)}, counted over {s.cost.window_s:.1f} s"
            for s in series
        )
        + ".",
    ]
    outcome.details += [
        "",
        "**S8** loads (*catch-up*: how long the notifier's projection needed afterwards):",
        "",
        "| series | offered | duration | completed | p50 | p99 | unfinished | catch-up |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in series:
        for load in s.loads if quick else [s.cost.load, *s.loads]:
            outcome.details.append(
                f"| {s.title} | {load.rate:g}/s | {load.duration_s:g} s "
                f"| {load.achieved:.0f}/s | {fmt_ms(load.p50_ms)} | {fmt_ms(load.p99_ms)} "
                f"| {load.sent - load.finished} | {load.settle_s:.1f} s |"
            )
    outcome.details += [
        "",
        "Schedulers over each series: partitions taken by each, leases lost, batches of "
        f"decisions the log refused or did not acknowledge (`{REFUSED}` in their logs): "
        + "; ".join(
            f"{s.title}: taken "
            + " + ".join(str(v) for v in s.takeovers.values())
            + f", lost {s.lost}, refused {s.refused}"
            for s in series
        )
        + ".",
        "",
    ]
    return outcome
