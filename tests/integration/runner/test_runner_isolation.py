"""Real stops on a runner: a node over its timeout is stopped and recorded as NodeTimeout, a
cancel stops running nodes within 1 s (docs/architecture.md, "Execution semantics", rules 6
and 8), whether the node is a built-in in the event loop or a custom node blocking its worker
process; and a node that misbehaves fails its attempt, never the runner."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
import pytest

from nodedrop.contracts import ids
from nodedrop.contracts.events import (
    AnyEvent,
    ExecutionFinished,
    NodeCancelled,
    NodeFailed,
    NodeStarted,
    NodeSucceeded,
)
from nodedrop.contracts.items import PortItems
from nodedrop.platform.jetstream import StreamSettings
from nodedrop.runner.isolation import WorkerStartError
from nodedrop.runner.main import open_runner
from nodedrop.runner.nodes import NodeContext, NodeRegistry, load_registry
from nodedrop.runner.worker import Runner

from . import plugins_for_tests as plugins
from .harness import Rig, eventually, has_result, results
from .plugins_for_tests import node

pytestmark = pytest.mark.integration

#: The contract's promise for cancels.
CANCEL_WITHIN_S = 1.0


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def cancelled(execution_id: str, node: str = "n1", attempt: int = 1) -> NodeCancelled:
    return NodeCancelled(
        event_id=ids.node_cancelled(execution_id, node, attempt),
        execution_id=execution_id,
        time=datetime.now(UTC),
        node=node,
        attempt=attempt,
    )


def finished(execution_id: str) -> ExecutionFinished:
    return ExecutionFinished(
        event_id=ids.execution_finished(execution_id),
        execution_id=execution_id,
        time=datetime.now(UTC),
        status="cancelled",
    )


def started(events: list[AnyEvent]) -> bool:
    return any(isinstance(e, NodeStarted) for e in events)


def one_result(events: list[AnyEvent]) -> NodeSucceeded | NodeFailed:
    [result] = results(events)
    return result


@pytest.fixture
def registry(probe: Any) -> NodeRegistry:
    """Built-ins, the probe and the test plugins, as entry points would register them."""
    registry = load_registry()
    registry.register(probe)
    registry.register(SlowRead())
    for cls in plugins.ALL:
        registry.register(node(cls))
    return registry


class SlowRead:
    """An in-loop node awaiting a network read that never comes (``parameters["port"]``)."""

    type = "slow_read"

    def __init__(self) -> None:
        self.reading = 0

    async def run(self, ctx: NodeContext, node_input: PortItems, parameters: Any) -> PortItems:
        reader, writer = await asyncio.open_connection("127.0.0.1", parameters["port"])
        self.reading += 1
        try:
            await reader.read(1)
        finally:
            self.reading -= 1
            writer.close()
        return {"main": []}


async def worker_pid(rig: Rig, runner: Runner) -> int:
    """The pid of the worker that runs a fresh ``sync_echo`` on ``runner``."""
    task = rig.ready("sync_echo", input={"main": [{}]})
    await rig.publish(task)
    result = one_result(await rig.stored(task.execution_id, until=has_result))
    assert isinstance(result, NodeSucceeded)
    pid: int = result.output["main"][0]["pid"]
    assert pid in runner.processes.pids
    return pid


async def test_sync_and_async_custom_nodes_run_in_worker_processes(rig: Rig) -> None:
    runner = await rig.start_runner(concurrency=4, processes=2)
    assert len(runner.processes.pids) == 2  # started with the runner
    sync = rig.ready("sync_echo", input={"main": [{"a": 1}]})
    asynchronous = rig.ready("async_echo", input={"main": [{"a": 2}]}, attempt=3)
    await rig.publish(sync, asynchronous)

    first = one_result(await rig.stored(sync.execution_id, until=has_result))
    second = one_result(await rig.stored(asynchronous.execution_id, until=has_result))
    assert isinstance(first, NodeSucceeded)
    assert isinstance(second, NodeSucceeded)
    assert first.output["main"][0]["a"] == 1
    assert first.output["main"][0]["pid"] in runner.processes.pids
    assert first.output["main"][0]["pid"] != os.getpid()
    assert second.output == {"main": [{"a": 2, "attempt": 3}]}
    await eventually(rig.all_acked)


async def test_a_blocking_node_times_out_in_time_while_the_runner_goes_on(rig: Rig) -> None:
    runner = await rig.start_runner(concurrency=4, processes=2)
    idle = set(runner.processes.pids)
    blocking = rig.ready("sleeper", parameters={"s": 30}, timeout_ms=300)
    await rig.publish(blocking)
    await rig.stored(blocking.execution_id, until=started)
    # Meanwhile the runner's loop is free: a built-in and another custom node complete.
    noop = rig.ready("noop")
    echo = rig.ready("sync_echo", input={"main": [{}]})
    await rig.publish(noop, echo)
    noop_done = one_result(await rig.stored(noop.execution_id, until=has_result))
    echo_done = one_result(await rig.stored(echo.execution_id, until=has_result))
    assert isinstance(noop_done, NodeSucceeded)
    assert isinstance(echo_done, NodeSucceeded)
    [victim] = idle - {echo_done.output["main"][0]["pid"]}

    found = await rig.stored(blocking.execution_id, until=has_result)
    failed = one_result(found)
    assert isinstance(failed, NodeFailed)
    assert (failed.error.type, failed.error.retryable) == ("NodeTimeout", True)
    node_started = next(e for e in found if isinstance(e, NodeStarted))
    # Not before its timeout; stopped by the runner (not the node's 30 s, nor the scheduler's
    # backstop at timeout + 2 s), however busy the machine.
    assert 0.3 <= (failed.time - node_started.time).total_seconds() < 2.3
    assert noop_done.time < failed.time  # done while the blocking node still ran
    assert echo_done.time < failed.time

    async def killed() -> bool:
        return not alive(victim)

    await eventually(killed)  # really stopped, not left running
    assert victim not in {await worker_pid(rig, runner) for _ in range(3)}  # replaced
    assert len(runner.processes.pids) == 2
    await eventually(rig.all_acked)


async def test_cancel_stops_a_cpu_loop_within_a_second_and_records_nothing(rig: Rig) -> None:
    runner = await rig.start_runner(concurrency=2, processes=1)
    [spinning] = runner.processes.pids
    task = rig.ready("spinner")
    await rig.publish(task)
    await rig.stored(task.execution_id, until=started)
    await asyncio.sleep(0.2)  # deep in its loop
    assert runner.busy == 1

    began = time.monotonic()
    await rig.publish(cancelled(task.execution_id))

    async def stopped() -> bool:
        return not alive(spinning) and runner.busy == 0

    await eventually(stopped, within_s=2 * CANCEL_WITHIN_S)
    took = time.monotonic() - began
    assert took < CANCEL_WITHIN_S, took
    await eventually(rig.all_acked, within_s=1.0)
    await asyncio.sleep(0.2)
    assert not has_result(await rig.stored(task.execution_id))
    # A fresh worker took its place.
    assert await worker_pid(rig, runner) != spinning
    assert runner.processes.started == 2


async def test_execution_finished_stops_its_custom_and_built_in_nodes_within_a_second(
    rig: Rig,
) -> None:
    runner = await rig.start_runner(concurrency=4, processes=2)
    workers = set(runner.processes.pids)
    execution_id = uuid.uuid4().hex
    doomed = [
        rig.ready("sleeper", execution_id=execution_id, node="sleeps", parameters={"s": 30}),
        rig.ready("async_blocker", execution_id=execution_id, node="blocks"),
        rig.ready("wait", execution_id=execution_id, node="waits", parameters={"ms": 60_000}),
    ]
    await rig.publish(*doomed)

    async def all_running() -> bool:
        return runner.busy == 3

    await eventually(all_running)
    await asyncio.sleep(0.1)
    began = time.monotonic()
    await rig.publish(finished(execution_id))

    async def stopped() -> bool:
        return runner.busy == 0 and not any(alive(pid) for pid in workers)

    await eventually(stopped, within_s=2 * CANCEL_WITHIN_S)
    assert time.monotonic() - began < CANCEL_WITHIN_S
    await eventually(rig.all_acked)
    assert not has_result(await rig.stored(execution_id))


async def test_cancel_stops_a_wait_on_a_runner_within_a_second(rig: Rig) -> None:
    runner = await rig.start_runner()
    task = rig.ready("wait", parameters={"ms": 60_000})
    await rig.publish(task)
    await rig.stored(task.execution_id, until=started)
    began = time.monotonic()
    await rig.publish(cancelled(task.execution_id))

    async def idle() -> bool:
        return runner.busy == 0

    await eventually(idle, within_s=2 * CANCEL_WITHIN_S)
    assert time.monotonic() - began < CANCEL_WITHIN_S
    await eventually(rig.all_acked)
    assert not has_result(await rig.stored(task.execution_id))


async def test_cancel_stops_an_in_loop_node_awaiting_a_slow_read_within_a_second(
    rig: Rig, registry: NodeRegistry
) -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the node hangs up
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        slow_read = registry.get("slow_read")
        assert isinstance(slow_read, SlowRead)
        runner = await rig.start_runner()
        task = rig.ready("slow_read", parameters={"port": port})
        await rig.publish(task)

        async def reading() -> bool:
            return slow_read.reading == 1

        await eventually(reading)
        began = time.monotonic()
        await rig.publish(cancelled(task.execution_id))

        async def stopped() -> bool:
            return slow_read.reading == 0 and runner.busy == 0

        await eventually(stopped, within_s=2 * CANCEL_WITHIN_S)
        assert time.monotonic() - began < CANCEL_WITHIN_S
        await eventually(rig.all_acked)
        assert not has_result(await rig.stored(task.execution_id))
    finally:
        server.close()
        await server.wait_closed()


async def test_a_worker_that_exits_fails_the_node_as_worker_crashed(rig: Rig) -> None:
    runner = await rig.start_runner(processes=1)
    [first] = runner.processes.pids
    task = rig.ready("exiter")
    await rig.publish(task)
    failed = one_result(await rig.stored(task.execution_id, until=has_result))
    assert isinstance(failed, NodeFailed)
    assert (failed.error.type, failed.error.retryable) == ("WorkerCrashed", True)
    assert "exited with code 1" in failed.error.message
    assert await worker_pid(rig, runner) != first
    await eventually(rig.all_acked)


async def test_an_exception_fails_the_node_with_type_message_and_stack(rig: Rig) -> None:
    await rig.start_runner()
    task = rig.ready("raiser", input={"main": [{"no": "id"}]})
    await rig.publish(task)
    failed = one_result(await rig.stored(task.execution_id, until=has_result))
    assert isinstance(failed, NodeFailed)
    assert (failed.error.type, failed.error.retryable) == ("ValueError", True)
    assert failed.error.message == "order without id: {'no': 'id'}"
    assert failed.error.stack is not None
    assert "plugins_for_tests.py" in failed.error.stack
    assert "in _check_order" in failed.error.stack


@pytest.mark.parametrize("kind", ["string", "list", "none"])
async def test_output_that_is_not_ports_of_objects_fails_as_invalid_output(
    rig: Rig, kind: str
) -> None:
    await rig.start_runner()
    task = rig.ready("bad_output", parameters={"kind": kind})
    await rig.publish(task)
    failed = one_result(await rig.stored(task.execution_id, until=has_result))
    assert isinstance(failed, NodeFailed)
    assert (failed.error.type, failed.error.retryable) == ("InvalidOutput", False)


async def test_no_worker_process_outlives_the_runner(rig: Rig) -> None:
    runner = await rig.start_runner(concurrency=4, processes=3)
    pids = runner.processes.pids
    assert len(pids) == 3
    execution_id = uuid.uuid4().hex
    await rig.publish(rig.ready("spinner", execution_id=execution_id))

    async def spinning() -> bool:
        return runner.busy == 1

    await eventually(spinning)
    await asyncio.sleep(0.1)
    await runner.stop(grace_s=0.1)
    assert runner.processes.pids == []
    assert [pid for pid in pids if alive(pid)] == []


async def test_a_plugin_that_does_not_load_stops_the_runner_at_start(
    rig: Rig, registry: NodeRegistry
) -> None:
    registry.register(node(plugins.BrokenInit))
    nc = await nats.connect(rig.nats_url)
    try:
        runner = open_runner(nc, registry, StreamSettings.from_env(), processes=2)
        with pytest.raises(WorkerStartError, match="missing configuration"):
            await runner.start()
        assert runner.processes.pids == []
        assert runner.busy == 0
    finally:
        await nc.close()


async def test_a_runner_process_runs_entry_point_plugins_in_its_worker_processes(
    rig: Rig, tmp_path: Path
) -> None:
    """``python -m nodedrop.runner`` with a plugin installed (a distribution's metadata on the
    path, as pip would leave it): the plugin runs in a worker, a blocking attempt times out in
    time, and no worker outlives SIGTERM."""
    dist = tmp_path / "nodedrop_test_plugins-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: nodedrop-test-plugins\n")
    module = plugins.SyncEcho.__module__
    (dist / "entry_points.txt").write_text(
        f"[nodedrop.nodes]\necho = {module}:SyncEcho\nsleep = {module}:Sleeper\n"
    )
    path = [str(tmp_path), *(p or os.getcwd() for p in sys.path)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(path),
        "NODEDROP_NATS_URL": rig.nats_url,
        "NODEDROP_RUNNER_CONCURRENCY": "4",
        "NODEDROP_RUNNER_PROCESSES": "1",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "nodedrop.runner", env=env, stderr=asyncio.subprocess.PIPE
    )
    try:
        echo = rig.ready("sync_echo", input={"main": [{}]})
        blocking = rig.ready("sleeper", parameters={"s": 30}, timeout_ms=300)
        await rig.publish(echo, blocking)
        echoed = one_result(await rig.stored(echo.execution_id, until=has_result, within_s=20))
        assert isinstance(echoed, NodeSucceeded)
        worker = echoed.output["main"][0]["pid"]
        assert worker not in (os.getpid(), process.pid)
        found = await rig.stored(blocking.execution_id, until=has_result, within_s=5)
        failed = one_result(found)
        assert isinstance(failed, NodeFailed)
        assert failed.error.type == "NodeTimeout"
        node_started = next(e for e in found if isinstance(e, NodeStarted))
        # Stopped at its timeout by the runner, not after its 30 s (however busy the machine).
        assert (failed.time - node_started.time).total_seconds() < 2.3
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 10)
    assert process.stderr is not None
    log = (await process.stderr.read()).decode()
    assert code == 0, log
    assert "1 worker processes for 2 custom node types" in log
    assert not alive(worker)
