"""The fault-injection scenarios of issue 9. Each returns a :class:`Result` (one table row);
the common check (:mod:`tests.chaos.checks`) ends every scenario that runs executions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tests.chaos.checks import Expectations, Result, common_check
from tests.chaos.cluster import ACK_WAIT_S, Cluster, Postgres, cluster
from tests.chaos.record import read_stream
from tests.chaos.workload import five_nodes, submit_spread, wait_finished


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


def repeated_kill(
    name: str, service: str, every_s: float, times: int, restart_after_s: float
) -> Fault:
    async def inject(cluster: Cluster) -> str:
        for _ in range(times):
            await asyncio.sleep(every_s)
            cluster.kill(name)
            await asyncio.sleep(restart_after_s)
            cluster.restart(name, service)
        return (
            f"SIGKILL {service} every {every_s:g} s, {times} times, restarted "
            f"{restart_after_s:g} s later"
        )

    return inject


# ---------------------------------------------------------------------------- 1 and 2
async def s1_runner_kills(env: Env) -> Result:
    sizes = env.sizes
    result = Result("1. runner killed", _load(sizes, "2 runners"), "")
    async with cluster(env.postgres, "s1", runners=2, effect_delay_s=0.3) as c:
        await under_load(
            c, result, sizes, repeated_kill("runner-1", "runner", 3, sizes.faults, 0.5)
        )
        lost = len(await _runner_lost(c))
        result.notes.append(f"{lost} attempts recorded RunnerLost and made again")
    return result


def _service_kills(label: str, service: str) -> Callable[[Env], Awaitable[Result]]:
    async def scenario(env: Env) -> Result:
        sizes = env.sizes
        result = Result(label, _load(sizes, "2 runners"), "")
        async with cluster(env.postgres, service, runners=2, effect_delay_s=0.3) as c:
            kills = repeated_kill(service, service, 3, sizes.faults, 0.5)
            await under_load(c, result, sizes, kills)
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


async def _runner_lost(c: Cluster) -> list[object]:
    from nodedrop.contracts.errors import RUNNER_LOST

    return list((await read_stream(c.js, c.layout)).failures(RUNNER_LOST))


__all__ = ["ACK_WAIT_S", "Env", "Sizes"]
