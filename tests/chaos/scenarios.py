"""The fault-injection scenarios of issue 9. Each returns a :class:`Result` (one table row);
the common check (:mod:`tests.chaos.checks`) ends every scenario that runs executions."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from tests.chaos.checks import Expectations, Result, common_check
from tests.chaos.cluster import ACK_WAIT_S, Cluster, Killed, Postgres, cluster, until
from tests.chaos.oracle import kills_landed, kills_summary
from tests.chaos.record import read_stream
from tests.chaos.workload import five_nodes, submit_spread, wait_finished

from nodedrop.contracts.events import NodeFailed, NodeStarted, NodeSucceeded


@dataclass(frozen=True)
class Sizes:
    executions: int
    #: Seconds over which the executions are submitted.
    spread_s: float
    #: Faults injected in the repeated-fault scenarios.
    faults: int

    @classmethod
    def of(cls, quick: bool) -> Sizes:
        return cls(30, 6.0, 2) if quick else cls(100, 15.0, 5)


@dataclass
class Env:
    postgres: Postgres
    sizes: Sizes


Fault = Callable[[Cluster], Awaitable[str]]


async def under_load(
    cluster: Cluster, result: Result, sizes: Sizes, faults: Fault, *, effect_timeout_s: float = 180
) -> None:
    """Submit the load while ``faults`` runs, wait for every execution, run the common check.
    ``faults`` returns the description of what it injected."""
    workflow = five_nodes(cluster.side_effects.url)
    started = time.monotonic()
    load = asyncio.create_task(submit_spread(cluster, workflow, sizes.executions, sizes.spread_s))
    result.faults = await faults(cluster)
    submitted = await load
    await wait_finished(cluster, set(submitted), effect_timeout_s)
    result.took_s = time.monotonic() - started
    await common_check(
        cluster,
        result,
        Expectations(submitted, status=dict.fromkeys(submitted, "succeeded")),
    )


@dataclass
class Kills:
    """The kills a scenario made, observed from the process objects."""

    planned: int
    made: list[Killed] = field(default_factory=list)
    #: Attempts (execution, node, attempt) the killed runner held when it was killed.
    held: set[tuple[str, str, int]] = field(default_factory=set)

    def check(self, result: Result) -> None:
        """The fault landed: every kill killed, every replacement runs; the table's cell."""
        observed = [k.observed() for k in self.made]
        result.problems.extend(kills_landed(observed, self.planned))
        result.faults = f"{result.faults}: {kills_summary(observed)}"


def repeated_kill(
    name: str,
    service: str,
    every_s: float,
    kills: Kills,
    restart_after_s: float,
    *,
    when_busy: bool = False,
) -> Fault:
    """SIGKILL ``name`` every ``every_s`` seconds, ``kills.planned`` times, restarting it
    ``restart_after_s`` later; ``when_busy``: each kill waits until the runner holds an attempt
    (started, no result yet), recorded in ``kills.held``."""

    async def inject(cluster: Cluster) -> str:
        for _ in range(kills.planned):
            await asyncio.sleep(every_s)
            if when_busy:
                kills.held |= await _busy(cluster, name)
            kills.made.append(cluster.kill_observed(name))
            await asyncio.sleep(restart_after_s)
            cluster.restart_observed(kills.made[-1], service)
        return (
            f"SIGKILL {service} every {every_s:g} s ({kills.planned} times), restarted "
            f"{restart_after_s:g} s later"
        )

    return inject


async def _busy(cluster: Cluster, name: str) -> set[tuple[str, str, int]]:
    """Until runner ``name`` holds an attempt (started on it, no result stored yet), for at most
    10 s (the load may be over); the attempts it holds."""
    worker = f"{socket.gethostname()}-{cluster.pid(name)}"
    held: set[tuple[str, str, int]] = set()

    async def holds() -> bool:
        events = (await read_stream(cluster.js, cluster.layout)).events()
        done = {
            (e.execution_id, e.node, e.attempt)
            for e in events
            if isinstance(e, NodeSucceeded | NodeFailed)
        }
        started = {
            (e.execution_id, e.node, e.attempt)
            for e in events
            if isinstance(e, NodeStarted) and e.worker == worker
        }
        held.update(started - done)
        return bool(held)

    with contextlib.suppress(TimeoutError):
        await until(holds, 10, f"{name} holding an attempt")
    return held


# ---------------------------------------------------------------------------- 1 and 2
async def s1_runner_kills(env: Env) -> Result:
    sizes = env.sizes
    result = Result("1. runner killed", _load(sizes, "2 runners"), "")
    kills = Kills(sizes.faults)
    async with cluster(env.postgres, "s1", runners=2, effect_delay_s=0.3) as c:
        inject = repeated_kill("runner-1", "runner", 3, kills, 0.5, when_busy=True)
        await under_load(c, result, sizes, inject)
        kills.check(result)
        lost = await _runner_lost(c)
        recorded = {(f.execution_id, f.node, f.attempt) for f in lost}
        # The fault landed where it matters: what the killed runner held went to the ack wait
        # and another runner recorded it lost (a result sent just before the kill aside).
        result.expect(
            bool(recorded & kills.held),
            f"none of the {len(kills.held)} attempts held by the killed runner recorded RunnerLost",
        )
        result.notes.append(
            f"{len(kills.held)} attempts held by runner-1 when killed, "
            f"{len(recorded & kills.held)} of them recorded RunnerLost; {len(lost)} RunnerLost "
            f"in all, each made again; {c.refused} submits refused (503) and retried"
        )
    return result


def _service_kills(label: str, service: str) -> Callable[[Env], Awaitable[Result]]:
    async def scenario(env: Env) -> Result:
        sizes = env.sizes
        result = Result(label, _load(sizes, "2 runners"), "")
        kills = Kills(sizes.faults)
        async with cluster(env.postgres, service, runners=2, effect_delay_s=0.3) as c:
            await under_load(c, result, sizes, repeated_kill(service, service, 3, kills, 0.5))
            kills.check(result)
            result.notes.append(f"{c.refused} submits refused (503) and retried")
        return result

    scenario.__name__ = f"s2_{service}_kills"
    return scenario


s2_scheduler_kills = _service_kills("2a. scheduler killed", "scheduler")
s2_notifier_kills = _service_kills("2b. notifier killed", "notifier")


# ---------------------------------------------------------------------------- 3
async def s3_nats_kill(env: Env) -> Result:
    sizes = env.sizes
    result = Result("3. nats-server killed", _load(sizes, "2 runners"), "")
    snapshot = []

    async def inject(c: Cluster) -> str:
        await asyncio.sleep(sizes.spread_s / 2)
        # Everything stored (hence acknowledged) up to now must survive the crash.
        snapshot.extend((await read_stream(c.js, c.layout)).messages)
        c.kill_nats()
        await asyncio.sleep(10)
        await asyncio.to_thread(c.restart_nats)
        return "SIGKILL nats-server mid-run, restarted on the same port and store after 10 s"

    async with cluster(env.postgres, "s3", runners=2, effect_delay_s=0.3) as c:
        workflow = five_nodes(c.side_effects.url)
        started = time.monotonic()
        load = asyncio.create_task(submit_spread(c, workflow, sizes.executions, sizes.spread_s))
        result.faults = await inject(c)
        submitted = await load
        await wait_finished(c, set(submitted), 180)
        result.took_s = time.monotonic() - started
        await common_check(
            c,
            result,
            Expectations(
                submitted, status=dict.fromkeys(submitted, "succeeded"), snapshot=snapshot
            ),
        )
        result.notes.append(f"{len(snapshot)} messages stored before the kill, all checked after")
        resent = c.log_lines("not recorded (send") + c.log_lines("decisions failed (")
        result.notes.append(
            f"{resent} publishes that failed were sent again with the same ids (logs)"
        )
    return result


# ---------------------------------------------------------------------------- 4
async def s4_postgres(env: Env) -> Result:
    sizes = env.sizes
    result = Result("4. PostgreSQL faults", _load(sizes, "2 runners"), "")
    terminated = 0

    async def inject(c: Cluster) -> str:
        nonlocal terminated
        rounds = max(2, sizes.faults)
        for i in range(rounds):
            await asyncio.sleep(5 if i else 2)
            if i == rounds // 2:
                await asyncio.to_thread(c.postgres.crash_and_restart, 2.0)
            else:
                terminated += await c.postgres.terminate_connections(c.database_url)
        return (
            f"pg_terminate_backend of every connection every 5 s ({rounds - 1} "
            f"round{'s' if rounds > 2 else ''}, {terminated} sessions ended); one immediate "
            "stop (SIGQUIT), restarted after 2 s"
        )

    if env.postgres.embedded is None:
        result.problems.append("needs the harness's own embedded PostgreSQL")
        return result
    async with cluster(env.postgres, "s4", runners=2, effect_delay_s=0.3) as c:
        await under_load(c, result, _stretched(sizes), inject)
        retried = c.log_lines("writing the projection failed; retrying the same batch")
        result.notes.append(f"the notifier retried {retried} batches in place (logs)")
    return result


def _stretched(sizes: Sizes) -> Sizes:
    """The same number of executions spread over as long as the PostgreSQL faults last."""
    return Sizes(sizes.executions, max(sizes.spread_s, 5.0 * max(2, sizes.faults)), sizes.faults)


# ---------------------------------------------------------------------------- helpers
def _load(sizes: Sizes, runners: str) -> str:
    return f"{sizes.executions} executions x 5 nodes over {sizes.spread_s:g} s, {runners}"


async def _runner_lost(c: Cluster) -> list[NodeFailed]:
    from nodedrop.contracts.errors import RUNNER_LOST

    return list((await read_stream(c.js, c.layout)).failures(RUNNER_LOST))


__all__ = ["ACK_WAIT_S", "Env", "Sizes"]
