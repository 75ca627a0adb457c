"""Where the CPU of one execution goes: CPU time per process, divided by executions completed.

``python -m tests.bench.cpu_cost [--rate 200] [--seconds 10] [--nodes 0] [--profile DIR]``

Runs one-node executions (the S3 workload) at a fixed open-loop rate below saturation and reads
each process's CPU time (utime + stime from /proc) before and after: the api, scheduler, runner
and notifier processes, nats-server, every PostgreSQL process, and this load generator. CPU time
per execution barely depends on what else the machine is doing, unlike latencies, so this is
the measurement to optimise against on a busy two-core machine. With ``--profile DIR`` each
service is also sampled by py-spy (installed separately: ``pip install py-spy``) and the
hottest functions by own time are written to ``DIR/<service>.txt``. ``--nodes N`` runs chains of
N ``noop`` nodes after the trigger instead (S1's shape at a low rate: what one hop of a chain
costs), and also reports the CPU per node.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path

from tests.bench.load import execution_body, open_loop
from tests.bench.s1_chain import chain
from tests.bench.stack import Bench, Stack
from tests.bench.stats import fmt_ms, ms, percentile
from tests.bench.tap import EventTap

_TICKS = os.sysconf("SC_CLK_TCK")
#: The events of a one-node execution, in order: the latency between two is one step.
_STEPS = ("ExecutionRequested", "NodeReady", "NodeStarted", "NodeSucceeded", "ExecutionFinished")
SERVICES = ("api", "scheduler", "runner", "notifier")


def cpu_seconds(pid: int, part: str = "all") -> float:
    """utime + stime of ``pid`` and of its waited-for children (``part``: all, user, system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    user, system = utime + cutime, stime + cstime
    return {"all": user + system, "user": user, "system": system}[part] / _TICKS


def descendants(root: int) -> list[int]:
    """``root`` and every process below it (PostgreSQL's postmaster and its backends)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def snapshot(stack: Stack, postgres_pid: int) -> dict[str, float]:
    usage = {name: cpu_seconds(stack.pid(name)) for name in SERVICES}
    nats_pid = stack.nats.pid
    assert nats_pid is not None
    usage["nats-server"] = cpu_seconds(nats_pid)
    usage["  of it in the kernel"] = cpu_seconds(nats_pid, "system")
    total = 0.0
    for pid in descendants(postgres_pid):
        try:
            total += cpu_seconds(pid)
        except OSError:
            continue  # a backend that just exited
    usage["postgresql"] = total
    times = os.times()
    usage["load generator"] = times.user + times.system
    return usage


def _top_functions(raw: Path, limit: int = 25) -> str:
    """Own-time ranking from py-spy's collapsed stacks (``a;b;c count`` per line)."""
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        total += int(count)
        own[stack.rsplit(";", 1)[-1]] += int(count)
    lines = [f"{total} samples"]
    lines += [f"{100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(limit)]
    return "\n".join(lines)


def _step_latencies(tap: EventTap, ids: list[str]) -> dict[str, list[float]]:
    """Milliseconds between consecutive events of each execution (stamped by the services)."""
    steps: dict[str, list[float]] = {}
    for execution_id in ids:
        stamps = [tap.of(execution_id, t) for t in _STEPS]
        if not all(stamps):
            continue
        for (a, first), (b, second) in itertools.pairwise(zip(_STEPS, stamps, strict=True)):
            steps.setdefault(f"{a} -> {b}", []).append(ms(second[0].t - first[0].t))
    return steps


def start_profilers(
    stack: Stack, directory: Path, seconds: float
) -> list[tuple[str, subprocess.Popen[bytes], Path]]:
    """py-spy on each service, sampling only while a thread holds the GIL (CPU, not waits)."""
    directory.mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy")
    assert spy is not None, "pip install py-spy"
    spies = []
    for name in SERVICES:
        raw = directory / f"{name}.raw"
        command = [spy, "record", "--nonblocking", "--gil", "-r", "200", "-f", "raw"]
        command += ["-o", str(raw), "-d", str(int(seconds) + 1), "-p", str(stack.pid(name))]
        spies.append((name, subprocess.Popen(command), raw))
    return spies


async def measure(rate: float, seconds: float, profile: Path | None, nodes: int = 0) -> None:
    bench = Bench(quick=True)
    bench.start()
    try:
        async with bench.stack("cpu") as stack, stack.tap(*_STEPS) as tap:
            body = execution_body(chain(nodes))
            port, token = stack.system.api_port, stack.system.token
            await open_loop(port, token, rate=50, duration_s=1, body=lambda _: body)  # warm-up
            await stack.settle()
            spies = start_profilers(stack, profile, seconds) if profile is not None else []
            postgres_pid = bench.postgres.pid
            assert postgres_pid is not None
            before = snapshot(stack, postgres_pid)
            result = await open_loop(
                stack.system.api_port,
                stack.system.token,
                rate=rate,
                duration_s=seconds,
                body=lambda _: body,
            )
            ids = [r.execution_id for r in result.requests if r.execution_id]
            for _ in range(300):
                if all(tap.done(i) is not None for i in ids):
                    break
                await asyncio.sleep(0.1)
            await stack.settle()
            after = snapshot(stack, postgres_pid)
            finished = sum(1 for i in ids if tap.done(i) is not None)
            # As S3 counts it: from each request's due time, so queueing in the generator counts.
            latencies = [
                ms(stamp.t - r.scheduled) if (stamp := tap.done(r.execution_id)) else float("inf")
                for r in result.requests
                if r.execution_id
            ]
            steps = _step_latencies(tap, ids)
            for name, process, raw in spies:
                process.wait()
                (raw.parent / f"{name}.txt").write_text(_top_functions(raw))
    finally:
        bench.close()
    shape = f"a chain of {nodes} nodes after the trigger" if nodes else "one node"
    print(f"{finished} executions of {shape} at {rate:g}/s for {seconds:g} s")
    print(
        f"end-to-end (due time -> ExecutionFinished): p50 {fmt_ms(percentile(latencies, 0.5))}, "
        f"p99 {fmt_ms(percentile(latencies, 0.99))}"
    )
    for name, values in steps.items():
        print(f"  {name:<45} p50 {fmt_ms(percentile(values, 0.5)):>9}  "
              f"p99 {fmt_ms(percentile(values, 0.99)):>9}")  # fmt: skip
    per_node = nodes + 1  # the trigger is a node too
    print(f"{'process':<20} {'CPU ms / execution':>20} {'CPU ms / node':>14}")
    total = 0.0
    for name in before:
        cost = 1000 * (after[name] - before[name]) / max(finished, 1)
        total += cost if not name.startswith(" ") else 0.0
        print(f"{name:<20} {cost:>20.3f} {cost / per_node:>14.3f}")
    print(f"{'total':<20} {total:>20.3f} {total / per_node:>14.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--profile", type=Path, default=None)
    parser.add_argument("--nodes", type=int, default=0, help="noop nodes chained after the trigger")
    args = parser.parse_args()
    asyncio.run(measure(args.rate, args.seconds, args.profile, args.nodes))


if __name__ == "__main__":
    main()
