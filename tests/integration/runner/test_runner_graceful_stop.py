"""A runner's graceful stop costs no attempt: the tasks it holds but has not started (custom
nodes waiting for a worker process) go back at once and run on another runner as if first
delivered, with no ``RunnerLost``; the running ones get the grace period. A runner that dies
mid-node still costs that node its attempt (``RunnerLost``)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from nodedrop.contracts import subjects
from nodedrop.contracts.errors import RUNNER_LOST
from nodedrop.contracts.events import AnyEvent, NodeFailed, NodeReady, NodeStarted, NodeSucceeded
from nodedrop.platform.jetstream import StreamSettings

from . import plugins_for_tests as plugins
from .harness import Rig, eventually, has_result, results
from .plugins_for_tests import node

pytestmark = pytest.mark.integration

#: Starts a runner process with extra settings (environment variables).
Spawn = Callable[..., Awaitable[asyncio.subprocess.Process]]


def started(events: list[AnyEvent]) -> list[NodeStarted]:
    return [e for e in events if isinstance(e, NodeStarted)]


def count_started(count: int) -> Callable[[list[AnyEvent]], bool]:
    return lambda events: len(started(events)) == count


def count_results(count: int) -> Callable[[list[AnyEvent]], bool]:
    return lambda events: len(results(events)) == count


def of_node(events: list[AnyEvent], node: str) -> list[AnyEvent]:
    return [e for e in events if getattr(e, "node", None) == node]


RUNNING = "running"
WAITING = ("waiting1", "waiting2")


async def hold_three_sleepers(
    rig: Rig, running_s: float, waiting_s: float = 0.5, running_until: Path | None = None
) -> str:
    """Three sleeper tasks of one execution, all held by the one runner taking tasks, which has
    one worker process: ``running`` runs in it, the two ``waiting`` wait for it (unclaimed)."""
    execution_id = uuid.uuid4().hex

    def sleeper(node: str, seconds: float, until: Path | None = None) -> NodeReady:
        parameters: dict[str, Any] = {"s": seconds}
        if until is not None:
            parameters["until"] = str(until)
        return rig.ready("sleeper", execution_id=execution_id, node=node, parameters=parameters)

    await rig.publish(sleeper(RUNNING, running_s, running_until))
    await rig.stored(execution_id, until=count_started(1), within_s=30)
    await rig.publish(*(sleeper(node, waiting_s) for node in WAITING))

    async def all_held() -> bool:
        return (await rig.consumer()).ack_pending == 3

    await eventually(all_held)
    return execution_id


def ran_once_as_attempt_1(events: list[AnyEvent], node: str, worker: str) -> None:
    """Claimed once, by ``worker``, and succeeded, under attempt 1: it cost nothing."""
    mine = of_node(events, node)
    assert [(e.worker, e.attempt) for e in started(mine)] == [(worker, 1)]
    [result] = results(mine)
    assert isinstance(result, NodeSucceeded), result
    assert result.attempt == 1


async def test_a_task_handed_back_before_it_started_runs_as_a_first_delivery(rig: Rig) -> None:
    task = rig.ready("probe")
    await rig.publish(task)
    # What a stopping runner does with a task it holds unstarted: give it back (twice here).
    grab = await rig.js.pull_subscribe_bind(
        consumer=subjects.RUNNER_CONSUMER, stream=rig.layout.stream_of(task.execution_id)
    )
    for delivery in (1, 2):
        [msg] = await grab.fetch(1, timeout=5)
        assert msg.metadata.num_delivered == delivery
        await msg.nak()
    await grab.unsubscribe()

    await rig.start_runner()
    found = await rig.stored(task.execution_id, until=has_result, within_s=10)
    assert rig.probe.runs == [(task.execution_id, "n1", 1)]
    ran_once_as_attempt_1(found, "n1", "runner-1")
    await eventually(rig.all_acked)


@pytest.mark.parametrize(
    "stream_settings",
    [dataclasses.replace(StreamSettings.from_env(), runner_ack_wait_s=600.0)],
    ids=["ack-wait-600s"],
)
async def test_a_stopping_runner_hands_back_unstarted_tasks_at_once(
    rig: Rig, tmp_path: Path
) -> None:
    """Stopped with a long grace period, the runner gives the two waiting tasks back at once
    (another runner runs them to the end while the first still runs its node) and lets its
    running node finish."""
    rig.registry.register(node(plugins.Sleeper))
    first = await rig.start_runner(concurrency=3, processes=1)
    # The running node ends when the test creates this file, not after some seconds: "at once"
    # means before it ended, however slow the machine.
    gate = tmp_path / "running-may-end"
    execution_id = await hold_three_sleepers(rig, running_s=300, running_until=gate)

    async def all_held() -> bool:
        return first.busy == 3

    await eventually(all_held)
    await rig.start_runner(concurrency=3, processes=2)
    stopping = asyncio.create_task(first.stop(grace_s=300))
    # Handed back, not left to come back when the ack wait runs out: that is ten minutes here,
    # and the test gives up after one.
    found = await rig.stored(execution_id, until=count_results(2), within_s=60)
    assert sorted(r.node for r in results(found)) == sorted(WAITING)  # running still runs
    assert not stopping.done(), "the runner stopped before its running node ended"
    gate.touch()
    await asyncio.wait_for(stopping, 60)

    found = await rig.stored(execution_id, until=count_results(3))
    ran_once_as_attempt_1(found, RUNNING, "runner-1")
    for waiting in WAITING:
        ran_once_as_attempt_1(found, waiting, "runner-2")
    await eventually(rig.all_acked)


# ------------------------------------------------------------- runner processes


@pytest.fixture
def plugin_path(tmp_path: Path) -> str:
    """A PYTHONPATH on which ``python -m nodedrop.runner`` finds the Sleeper as an installed
    plugin (a distribution's metadata, as pip would leave it)."""
    dist = tmp_path / "nodedrop_test_plugins-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: nodedrop-test-plugins\n")
    (dist / "entry_points.txt").write_text(
        f"[nodedrop.nodes]\nsleep = {plugins.Sleeper.__module__}:Sleeper\n"
    )
    return os.pathsep.join([str(tmp_path), *(p or os.getcwd() for p in sys.path)])


@pytest.fixture
async def spawn(rig: Rig, plugin_path: str) -> AsyncIterator[Spawn]:
    """Starts runner processes (one worker process, 3 slots), SIGKILLs what is left at the end."""
    processes: list[asyncio.subprocess.Process] = []

    async def start(**settings: str) -> asyncio.subprocess.Process:
        env = {
            **os.environ,
            "PYTHONPATH": plugin_path,
            "NODEDROP_NATS_URL": rig.nats_url,
            "NODEDROP_RUNNER_CONCURRENCY": "3",
            "NODEDROP_RUNNER_PROCESSES": "1",
            **settings,
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "nodedrop.runner", env=env, stderr=asyncio.subprocess.PIPE
        )
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.returncode is None:
            process.kill()
            await process.wait()


def runner_lost(events: list[AnyEvent], node: str) -> None:
    """The attempt was started, then its runner went: RunnerLost (the scheduler makes another)."""
    [lost] = results(of_node(events, node))
    assert isinstance(lost, NodeFailed), lost
    assert (lost.attempt, lost.error.type) == (1, RUNNER_LOST)
    assert "already started" in lost.error.message


async def test_sigterm_hands_back_unstarted_tasks_at_once_and_running_ones_after_the_grace(
    rig: Rig, spawn: Spawn
) -> None:
    """SIGTERM, grace period 1 s (NODEDROP_RUNNER_GRACE_S): the two waiting tasks go back at
    once and run on another runner at no cost; the running node does not finish in time, so it
    goes back after the grace period and costs its attempt (RunnerLost)."""
    rig.registry.register(node(plugins.Sleeper))
    process = await spawn(NODEDROP_RUNNER_GRACE_S="1")
    # The running node would sleep far longer than any wait below: the process ending at all
    # shows the grace period cut it short (how soon is the machine's business, not the test's).
    execution_id = await hold_three_sleepers(rig, running_s=3600)
    [claimed] = started(await rig.stored(execution_id))
    await rig.start_runner(processes=2)

    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 60) == 0
    found = await rig.stored(execution_id, until=count_results(3), within_s=60)
    runner_lost(found, RUNNING)
    assert [e.worker for e in started(of_node(found, RUNNING))] == [claimed.worker]
    for waiting in WAITING:
        ran_once_as_attempt_1(found, waiting, "runner-1")
    assert process.stderr is not None
    log = (await process.stderr.read()).decode()
    assert "handed back 2 tasks not started" in log, log
    await eventually(rig.all_acked)


async def test_sigkill_mid_node_costs_that_attempt_and_only_that_one(
    rig: Rig, spawn: Spawn
) -> None:
    """A runner killed mid-node: its running attempt is RunnerLost on the next runner (the
    scheduler then makes another); the tasks it held unstarted just run. Held past the ack
    wait before the kill, none was taken from it: waiting tasks are heartbeated too."""
    rig.registry.register(node(plugins.Sleeper))
    process = await spawn(NODEDROP_RUNNER_ACK_WAIT_S="2")
    execution_id = await hold_three_sleepers(rig, running_s=60)
    await asyncio.sleep(2.5)
    assert (await rig.consumer()).redelivered == 0
    [claimed] = started(await rig.stored(execution_id))
    await rig.start_runner(processes=2, heartbeat_s=0.5)  # the ack wait is 2 s now

    process.kill()
    await process.wait()
    found = await rig.stored(execution_id, until=count_results(3), within_s=10)
    runner_lost(found, RUNNING)
    assert [e.worker for e in started(of_node(found, RUNNING))] == [claimed.worker]
    for waiting in WAITING:
        ran_once_as_attempt_1(found, waiting, "runner-1")
    await eventually(rig.all_acked)
