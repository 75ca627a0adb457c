"""Scenario family 9: the system on a 3-node NATS cluster (:class:`NatsCluster`, every stream
and bucket with 3 replicas, the log in 4 partitions) with several schedulers sharing the
partitions by lease, 2 notifiers and 2 runners, under one fault each:

- 9a. a scheduler SIGKILLed: its leases expire, the others take its partitions over;
- 9b. a scheduler SIGSTOPped until the others took its partitions, then SIGCONT: it finds its
  leases lost (and its fence superseded);
- 9c. the leader of a partition's stream SIGKILLed: a new one is elected; restarted later;
- 9d. a follower SIGKILLed (a node made to lead none of the streams and consumers first),
  restarted once the log moved on without it: it catches up to the leaders' last sequence;
- 9e. schedulers added and removed: one at first, a second and a third join (partitions move to
  them), then one is stopped gracefully (its partitions move to the others).

The load lasts until the fault has been injected and seen to land (each step waits for the
condition it needs, with a generous deadline, never a fixed time), then the common check runs
(:func:`tests.chaos.checks.common_check`). Each scenario also proves its fault landed (the
process died by the signal, the partitions moved, the leader changed, the node caught up): a
scenario whose fault did nothing fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
from tests.chaos.checks import Expectations, Result, common_check
from tests.chaos.cluster import ACK_WAIT_S, Cluster, Postgres, until
from tests.chaos.scenarios import Env, Sizes
from tests.chaos.sideeffects import SideEffectServer
from tests.chaos.workload import five_nodes, wait_finished
from tests.e2e.system import System, free_port
from tests.fixtures.nats_cluster import NatsCluster

from nodedrop.embedded import EmbeddedNats
from nodedrop.platform.jetstream import StreamSettings, ensure_jetstream
from nodedrop.platform.retry import retry_unavailable

PARTITIONS = 4
#: Short leases (production default 10 s), so that a dead scheduler's partitions move soon.
LEASE_S = 3.0
#: Deadline of each wait for a condition: only ever reached when something is wrong.
WAIT_S = 90.0

TOOK = re.compile(
    r"took partition (\d+) over \(fence \d+; inputs from seq \d+; previous owner (\S+)\)"
)
HANDED_BACK = re.compile(r"handed partition (\d+) back")
LOST = re.compile(r"lease of partition (\d+) lost")


@dataclass(kw_only=True)
class Replicated(Cluster):
    """A :class:`Cluster` whose log lives on the nodes of :attr:`nodes` (``nats`` is never
    started: the single-server levers do not apply here)."""

    nodes: NatsCluster
    schedulers: list[str] = field(default_factory=list)

    def kill_nats(self) -> None:
        raise RuntimeError("the log is on a cluster: kill one of its nodes")

    def restart_nats(self) -> None:
        raise RuntimeError("the log is on a cluster: restart one of its nodes")

    # ------------------------------------------------------------------ schedulers
    def log(self, name: str) -> str:
        path = self.work / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def add_scheduler(self) -> str:
        name = f"scheduler-{len(self.schedulers) + 1}"
        self.system.start(name, "scheduler")
        self.schedulers.append(name)
        return name

    def owned(self, name: str) -> set[int]:
        """The partitions scheduler ``name`` holds by its log: taken over, not handed back or
        lost since."""
        text = self.log(name)
        changes = [(m.start(), int(m[1]), True) for m in TOOK.finditer(text)]
        changes += [(m.start(), int(m[1]), False) for m in HANDED_BACK.finditer(text)]
        changes += [(m.start(), int(m[1]), False) for m in LOST.finditer(text)]
        held: set[int] = set()
        for _, partition, taken in sorted(changes):
            (held.add if taken else held.discard)(partition)
        return held

    def taken_since(self, since: dict[str, int]) -> set[int]:
        """Partitions taken over (from a previous owner) in the logs of the schedulers of
        ``since`` past the offsets it gives (name -> characters already seen)."""
        return {
            int(p)
            for name, offset in since.items()
            for p, previous in TOOK.findall(self.log(name)[offset:])
            if previous != "none"
        }

    def offsets(self, names: list[str]) -> dict[str, int]:
        return {name: len(self.log(name)) for name in names}

    async def all_shared(self) -> None:
        """Until every running scheduler holds a partition (their leases shared out) and has
        started its cron firer: the faults meet schedulers at work, not still starting (a
        scheduler whose start-up request times out exits, to be restarted by its supervisor,
        which the common check would count as a crash)."""
        running = [n for n in self.schedulers if n in self.system.processes]

        async def shared() -> bool:
            return all(self.owned(n) and "cron firer running" in self.log(n) for n in running)

        await until(shared, WAIT_S, f"partitions shared out to {running}")

    async def taken_over(self, partitions: set[int], since: dict[str, int]) -> float:
        async def taken() -> bool:
            return partitions <= self.taken_since(since)

        return await until(taken, WAIT_S, f"takeover of {sorted(partitions)} by {list(since)}")

    # ------------------------------------------------------------------ nodes
    async def last_seqs_of(self) -> dict[str, int]:
        return {s: (await self.js.stream_info(s)).state.last_seq for s in self.layout.streams}

    async def moved_on(self, since: dict[str, int], events: int) -> None:
        """Until the streams hold ``events`` more messages than at ``since``."""

        async def moved() -> bool:
            return sum((await self.last_seqs_of()).values()) >= sum(since.values()) + events

        await until(moved, WAIT_S, f"{events} messages stored")

    async def caught_up(self, name: str) -> float:
        """Until node ``name`` stores every partition's stream up to the last seq its leader
        had when this was first asked (the load goes on: a follower is always a little behind
        the leader's last seq *now*, and comparing with that passed only in a lull)."""
        targets: dict[str, int] = {}

        async def check() -> bool:
            for stream in self.layout.streams:
                if stream not in targets:
                    leader = await self.nodes.stream_leader(stream)
                    theirs = await self.nodes.stream_detail(leader, stream) if leader else None
                    if theirs is None:
                        return False
                    targets[stream] = int(theirs["state"]["last_seq"])
                mine = await self.nodes.stream_detail(name, stream)
                if mine is None or int(mine["state"]["last_seq"]) < targets[stream]:
                    return False
            return True

        return await until(check, WAIT_S, f"{name} caught up with every stream")

    async def node_seqs(self, name: str) -> int:
        """The stream sequences node ``name`` stores, added over the partitions."""
        total = 0
        for stream in self.layout.streams:
            detail = await self.nodes.stream_detail(name, stream)
            total += int((detail or {}).get("state", {}).get("last_seq", 0))
        return total


@contextlib.asynccontextmanager
async def replicated(
    postgres: Postgres,
    name: str,
    *,
    schedulers: int = 3,
    notifiers: int = 2,
    runners: int = 2,
    effect_delay_s: float = 0.0,
) -> AsyncIterator[Replicated]:
    """A fresh 3-node cluster and database with the services on it: 1 api, ``schedulers``
    schedulers, ``notifiers`` notifiers, ``runners`` runners, and a side-effect server;
    everything stopped and removed afterwards."""
    work = Path(tempfile.mkdtemp(prefix=f"nodedrop-chaos-{name}-"))
    os.chmod(work, 0o711)
    nodes = NatsCluster(work / "nats-cluster")
    await nodes.start()
    database_url = await postgres.new_database()
    env = {
        "NODEDROP_HTTP_ALLOW_PRIVATE": "true",
        "NODEDROP_RUNNER_ACK_WAIT_S": str(ACK_WAIT_S),
        "NODEDROP_PARTITIONS": str(PARTITIONS),
        "NODEDROP_STREAM_REPLICAS": "3",
        "NODEDROP_LEASE_S": str(LEASE_S),
    }
    system = System(nodes.url, database_url, work, extra_env=env)
    # Every node: the harness's own reads fail over as the services' do.
    nc = await nats.connect(nodes.urls, name=f"chaos {name}", max_reconnect_attempts=-1)
    http = httpx.AsyncClient(base_url=system.base_url, headers=system.headers, timeout=10)
    effects = SideEffectServer(effect_delay_s)
    effects.start()
    settings = StreamSettings.from_env({**os.environ, **env})
    result = Replicated(
        # Stack wants a server of its own; this one is never started (see Replicated).
        nats=EmbeddedNats(work / "unused-nats"),
        system=system,
        database_url=database_url,
        nc=nc,
        work=work,
        postgres=postgres,
        http=http,
        side_effects=effects,
        layout=settings.layout,
        nodes=nodes,
    )
    try:
        # A cluster just formed can time out creating its first replicated streams.
        await retry_unavailable(
            lambda: ensure_jetstream(nc.jetstream(), settings), what="creating the log", attempts=10
        )
        ports = [system.notifier_port] + [free_port() for _ in range(notifiers - 1)]
        urls = ",".join(f"http://127.0.0.1:{port}" for port in ports)
        system.start("api", env={"NODEDROP_NOTIFIER_URL": urls})
        for _ in range(schedulers):
            result.add_scheduler()
        for index, port in enumerate(ports, 1):
            process = "notifier" if index == 1 else f"notifier-{index}"
            system.start(process, "notifier", env={"NODEDROP_NOTIFIER_PORT": str(port)})
        await result.wait_healthy(60)
        await result.set_runners(runners, timeout_s=60)
        yield result
    finally:
        await http.aclose()
        await asyncio.to_thread(system.stop_all)
        effects.stop()
        with contextlib.suppress(Exception):
            await nc.close()
        await nodes.aclose()
        with contextlib.suppress(Exception):
            await postgres.drop_database(database_url)
        if os.environ.get("NODEDROP_CHAOS_KEEP"):
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


Inject = Callable[[Replicated, Result], Awaitable[str]]


async def run_under_load(
    c: Replicated, result: Result, sizes: Sizes, inject: Inject, timeout_s: float = 180
) -> None:
    """Submit executions at the scenario's rate while ``inject`` runs, and on until it has
    returned and at least ``sizes.executions`` were submitted; wait for them all; the common
    check. ``inject`` returns the description of the fault and records its proofs."""
    workflow = five_nodes(c.side_effects.url)
    rate = sizes.executions / sizes.spread_s
    done = asyncio.Event()
    submitted: dict[str, dict[str, Any]] = {}

    async def load() -> None:
        started = time.monotonic()
        while not done.is_set() or len(submitted) < sizes.executions:
            execution_id = await c.submit(workflow, input=[{"n": len(submitted)}])
            submitted[execution_id] = workflow
            delay = started + len(submitted) / rate - time.monotonic()
            await asyncio.sleep(max(0.0, delay))

    started = time.monotonic()
    loading = asyncio.create_task(load())
    try:
        result.faults = await inject(c, result)
    finally:
        done.set()
        await loading
    await wait_finished(c, set(submitted), timeout_s)
    result.took_s = time.monotonic() - started
    await common_check(
        c, result, Expectations(submitted, status=dict.fromkeys(submitted, "succeeded"))
    )
    result.notes.append(f"{len(submitted)} executions submitted (load on until the fault landed)")
    # How rough the recovery was, from the services' logs.
    failed_takeovers = c.log_lines("failed; handing it back")
    dead_letters = c.log_lines("dead letter: consumer")
    refused = c.log_lines("decisions failed (")
    result.notes.append(
        f"logs: {failed_takeovers} takeovers failed, {dead_letters} dead letters, "
        f"{refused} decision batches not recorded and rebuilt"
    )


def _load(sizes: Sizes, schedulers: str) -> str:
    rate = sizes.executions / sizes.spread_s
    return (
        f">= {sizes.executions} executions x 5 nodes at {rate:g}/s during the fault; 3-node "
        f"cluster, R3, {PARTITIONS} partitions; {schedulers}, 2 notifiers, 2 runners"
    )


def _died_by(process: subprocess.Popen[bytes], sig: int) -> bool:
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(10)
    return process.returncode == -sig


# ---------------------------------------------------------------------------- 9a
async def s9a_scheduler_killed(env: Env) -> Result:
    result = Result("9a. cluster: scheduler killed", _load(env.sizes, "3 schedulers"), "")

    async def inject(c: Replicated, r: Result) -> str:
        await c.all_shared()
        victim = "scheduler-1"
        held = c.owned(victim)
        since = c.offsets([n for n in c.schedulers if n != victim])
        process = c.system.processes[victim]
        c.kill(victim)
        if not _died_by(process, signal.SIGKILL):
            r.problems.append(f"{victim} did not die by SIGKILL")
            return "SIGKILL 1 of 3 schedulers: it did not die"
        took = await c.taken_over(held, since)
        r.notes.append(f"its partitions {sorted(held)} taken over by the others in {took:.1f} s")
        return f"SIGKILL 1 of 3 schedulers (lease {LEASE_S:g} s)"

    async with replicated(env.postgres, "s9a", runners=2, effect_delay_s=0.3) as c:
        await run_under_load(c, result, env.sizes, inject)
    return result


# ---------------------------------------------------------------------------- 9b
async def s9b_scheduler_paused(env: Env) -> Result:
    result = Result("9b. cluster: scheduler paused", _load(env.sizes, "3 schedulers"), "")

    async def inject(c: Replicated, r: Result) -> str:
        await c.all_shared()
        victim = "scheduler-2"
        held = c.owned(victim)
        since = c.offsets([n for n in c.schedulers if n != victim])
        seen = len(c.log(victim))
        c.pause(victim)
        try:
            # Paused until the others hold what it held: past its leases, however long.
            took = await c.taken_over(held, since)
        finally:
            c.resume(victim)

        async def lost() -> bool:
            return held <= {int(p) for p in LOST.findall(c.log(victim)[seen:])}

        await until(lost, WAIT_S, f"{victim} finding its leases lost")
        r.notes.append(
            f"its partitions {sorted(held)} taken over in {took:.1f} s while it was stopped; "
            "resumed, it logged each lease lost"
        )
        return "SIGSTOP 1 of 3 schedulers until the others took its partitions, then SIGCONT"

    async with replicated(env.postgres, "s9b", runners=2, effect_delay_s=0.3) as c:
        await run_under_load(c, result, env.sizes, inject)
    return result


# ---------------------------------------------------------------------------- 9c
async def s9c_leader_killed(env: Env) -> Result:
    result = Result("9c. cluster: stream leader killed", _load(env.sizes, "3 schedulers"), "")

    async def inject(c: Replicated, r: Result) -> str:
        await c.all_shared()
        stream = c.layout.stream(0)
        leader = await c.nodes.wait_stream_leader(stream)
        process = c.nodes.node(leader).process
        assert process is not None
        at_kill = await c.last_seqs_of()
        c.nodes.kill(leader)
        r.expect(process.returncode == -signal.SIGKILL, f"{leader} did not die by SIGKILL")
        started = time.monotonic()
        elected = await c.nodes.wait_stream_leader(stream, other_than=leader)
        r.expect(elected != leader, "no new leader")
        r.notes.append(f"new leader of {stream} {elected} after {time.monotonic() - started:.1f} s")
        await c.moved_on(at_kill, 50)
        await c.nodes.restart(leader)
        await c.caught_up(leader)
        r.expect(
            await c.node_seqs(leader) > sum(at_kill.values()),
            f"{leader} restarted without what was stored while it was down",
        )
        return f"SIGKILL the leader of {stream}; restarted once 50 messages were stored without it"

    async with replicated(env.postgres, "s9c", runners=2, effect_delay_s=0.3) as c:
        await run_under_load(c, result, env.sizes, inject)
    return result


# ---------------------------------------------------------------------------- 9d
async def s9d_follower_killed(env: Env) -> Result:
    result = Result("9d. cluster: follower killed", _load(env.sizes, "3 schedulers"), "")

    async def inject(c: Replicated, r: Result) -> str:
        await c.all_shared()
        meta = await c.nodes.meta_leader()
        victim = next(n for n in reversed(c.nodes.names) if n != meta)
        await c.nodes.make_follower(victim)
        led = await c.nodes.led_by(victim)
        r.expect(not led, f"{victim} still leads {led}")
        process = c.nodes.node(victim).process
        assert process is not None
        at_kill = await c.last_seqs_of()
        c.nodes.kill(victim)
        r.expect(process.returncode == -signal.SIGKILL, f"{victim} did not die by SIGKILL")
        await c.moved_on(at_kill, 50)
        await c.nodes.restart(victim)
        took = await c.caught_up(victim)
        stored = await c.node_seqs(victim)
        r.expect(
            stored > sum(at_kill.values()),
            f"{victim} restarted without what was stored while it was down",
        )
        r.notes.append(
            f"{victim} caught up with every stream's leader {took:.1f} s after its restart "
            f"({stored - sum(at_kill.values())} messages stored while it was down)"
        )
        return (
            "SIGKILL a follower (leading no stream or consumer); restarted once 50 "
            "messages were stored without it"
        )

    async with replicated(env.postgres, "s9d", runners=2, effect_delay_s=0.3) as c:
        await run_under_load(c, result, env.sizes, inject)
    return result


# ---------------------------------------------------------------------------- 9e
async def s9e_schedulers_added_removed(env: Env) -> Result:
    result = Result(
        "9e. cluster: schedulers added and removed", _load(env.sizes, "1 to 3 schedulers"), ""
    )

    async def inject(c: Replicated, r: Result) -> str:
        every = set(range(PARTITIONS))

        async def first_holds_all() -> bool:
            return c.owned("scheduler-1") == every

        await until(first_holds_all, WAIT_S, "scheduler-1 holding every partition")
        for _ in range(2):
            since = c.offsets(c.schedulers)
            joining = c.add_scheduler()

            async def moved(joining: str = joining, since: dict[str, int] = since) -> bool:
                return bool(c.taken_since({joining: since.get(joining, 0)}))

            took = await until(moved, WAIT_S, f"a partition moved to {joining}")
            r.notes.append(f"{joining} took a partition over {took:.1f} s after it started")
        # The one leaving: the second, once it holds a partition.
        leaving = "scheduler-2"

        async def holds() -> bool:
            return bool(c.owned(leaving))

        await until(holds, WAIT_S, f"{leaving} holding a partition")
        since = c.offsets([n for n in c.schedulers if n != leaving])
        before = len(c.log(leaving))
        process = c.system.processes[leaving]
        await asyncio.to_thread(c.system.stop, leaving)
        r.expect(process.returncode == 0, f"{leaving} exited {process.returncode} on SIGTERM")
        handed = {int(p) for p in HANDED_BACK.findall(c.log(leaving)[before:])}
        r.expect(bool(handed), f"{leaving} handed nothing back")
        r.expect(not c.owned(leaving), f"{leaving} still held {c.owned(leaving)}")
        took = await c.taken_over(handed, since)
        r.notes.append(f"{sorted(handed)} handed back on SIGTERM, taken over in {took:.1f} s")
        return "start with 1 scheduler; add a 2nd and a 3rd; SIGTERM the 2nd"

    async with replicated(env.postgres, "s9e", schedulers=1, runners=2, effect_delay_s=0.3) as c:
        await run_under_load(c, result, env.sizes, inject)
    return result


#: Left out of ``make chaos QUICK=1`` (CI) unless asked for by ``--only``.
NOT_QUICK = frozenset({"9a", "9d"})

SCENARIOS: list[Callable[[Env], Awaitable[Result]]] = [
    s9a_scheduler_killed,
    s9b_scheduler_paused,
    s9c_leader_killed,
    s9d_follower_killed,
    s9e_schedulers_added_removed,
]
