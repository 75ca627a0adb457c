"""The worker processes of custom node types, driven directly (no NATS): whatever the node does,
the attempt ends, the code is really stopped and the pool stays usable."""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from nodedrop.contracts import ids
from nodedrop.contracts.events import ErrorInfo, NodeReady
from nodedrop.runner.attempt import run_attempt
from nodedrop.runner.isolation import ProcessPool, RemoteNodeError, WorkerStartError
from nodedrop.runner.nodes import NodeContext, NodeRegistry
from nodedrop.runner.nodes.builtins import builtin_nodes

from . import plugins_for_tests as plugins
from .harness import eventually
from .plugins_for_tests import node

pytestmark = pytest.mark.integration

CTX = NodeContext("exec-1", "n1", 1, "start")
#: Killing a worker is a signal: far less than this, even on a loaded machine.
STOP_WITHIN_S = 0.25


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def gone(pid: int, within_s: float = 2.0) -> float:
    """Seconds until ``pid`` no longer exists (killed and reaped)."""
    began = time.monotonic()
    while alive(pid):
        if time.monotonic() - began > within_s:
            raise AssertionError(f"process {pid} still exists after {within_s} s")
        await asyncio.sleep(0.002)
    return time.monotonic() - began


@pytest.fixture
async def pool() -> AsyncIterator[ProcessPool]:
    pool = ProcessPool(2)
    await pool.start(preload=[node(cls).target for cls in plugins.ALL])
    try:
        yield pool
    finally:
        pids = pool.pids
        await pool.stop()
        assert not [pid for pid in pids if alive(pid)]


async def echo_pid(pool: ProcessPool) -> int:
    output: Any = await pool.run(node(plugins.SyncEcho), CTX, {"main": [{}]}, {})
    pid: int = output["main"][0]["pid"]
    return pid


async def test_sync_and_async_run_both_work(pool: ProcessPool) -> None:
    sync: Any = await pool.run(node(plugins.SyncEcho), CTX, {"main": [{"a": 1}]}, {})
    pid = sync["main"][0]["pid"]
    assert sync == {"main": [{"a": 1, "pid": pid, "calls": 1, "node": "n1"}]}
    assert pid in pool.pids
    asynchronous = await pool.run(node(plugins.AsyncEcho), CTX, {"main": [{"a": 1}]}, {})
    assert asynchronous == {"main": [{"a": 1, "attempt": 1}]}


async def test_a_node_class_is_instantiated_once_per_worker() -> None:
    pool = ProcessPool(1)
    counts = []
    try:
        for _ in range(3):
            output: Any = await pool.run(node(plugins.SyncEcho), CTX, {"main": [{}]}, {})
            counts.append(output["main"][0]["calls"])
    finally:
        await pool.stop()
    assert counts == [1, 2, 3]


async def test_an_exception_fails_with_its_class_message_and_the_plugins_stack(
    pool: ProcessPool,
) -> None:
    before = set(pool.pids)
    with pytest.raises(RemoteNodeError) as raised:
        await pool.run(node(plugins.Raiser), CTX, {"main": [{"no": "id"}]}, {})
    error = raised.value
    assert (error.type, error.retryable) == ("ValueError", True)
    assert error.message == "order without id: {'no': 'id'}"
    assert error.stack is not None
    assert "plugins_for_tests.py" in error.stack
    assert "in _check_order" in error.stack
    assert "in run" in error.stack
    assert set(pool.pids) == before  # an exception is an answer: the worker stays


async def test_a_node_error_keeps_its_type_and_retryability(pool: ProcessPool) -> None:
    with pytest.raises(RemoteNodeError) as raised:
        await pool.run(node(plugins.Refuser), CTX, {}, {})
    assert (raised.value.type, raised.value.message, raised.value.retryable) == (
        "QuotaExceeded",
        "try tomorrow",
        False,
    )


async def test_sys_exit_is_an_error_of_the_node_not_the_end_of_the_worker(
    pool: ProcessPool,
) -> None:
    before = set(pool.pids)
    with pytest.raises(RemoteNodeError) as raised:
        await pool.run(node(plugins.Quitter), CTX, {}, {})
    assert raised.value.type == "SystemExit"
    assert set(pool.pids) == before


@pytest.mark.parametrize(
    ("plugin", "how"), [(plugins.Exiter, "exited with code 1"), (plugins.Segfaulter, "SIGSEGV")]
)
async def test_a_worker_that_dies_fails_the_attempt_as_worker_crashed_and_is_replaced(
    pool: ProcessPool, plugin: type, how: str
) -> None:
    started = pool.started
    with pytest.raises(RemoteNodeError) as raised:
        await pool.run(node(plugin), CTX, {}, {})
    assert (raised.value.type, raised.value.retryable) == ("WorkerCrashed", True)
    assert how in raised.value.message
    assert repr(plugin.spec.type) in raised.value.message  # type: ignore[attr-defined]
    for _ in range(3):
        assert await echo_pid(pool) in pool.pids
    assert pool.started == started + 1


@pytest.mark.parametrize("plugin", [plugins.Sleeper, plugins.AsyncBlocker, plugins.Spinner])
async def test_cancelling_an_attempt_kills_its_worker_at_once(
    pool: ProcessPool, plugin: type
) -> None:
    before = set(pool.pids)
    running = asyncio.create_task(pool.run(node(plugin), CTX, {}, {}))
    await asyncio.sleep(0.2)  # well into the node's code
    busy = before - {await echo_pid(pool)}  # the other worker still answers meanwhile
    [victim] = busy
    began = time.monotonic()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert time.monotonic() - began < STOP_WITHIN_S
    assert await gone(victim) < STOP_WITHIN_S
    # A fresh worker takes its place and the pool works as before.
    pids = {await echo_pid(pool) for _ in range(4)}
    assert victim not in pids
    for _ in range(600):  # the victim's reaping (process.wait) runs in the background
        if len(pool.pids) == 2:
            break
        await asyncio.sleep(0.05)
    assert len(pool.pids) == 2
    assert victim not in pool.pids


async def test_a_timeout_stops_a_blocking_node_in_time(pool: ProcessPool) -> None:
    began = time.monotonic()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await pool.run(node(plugins.Sleeper), CTX, {}, {"s": 30})
    assert 0.3 <= time.monotonic() - began < 0.3 + STOP_WITHIN_S


async def test_killing_a_worker_kills_what_it_started(pool: ProcessPool, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    running = asyncio.create_task(
        pool.run(node(plugins.Forker), CTX, {}, {"pid_file": str(pid_file)})
    )

    async def written() -> bool:
        return pid_file.exists() and bool(pid_file.read_text())

    await eventually(written)
    grandchild = int(pid_file.read_text())
    assert alive(grandchild)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running

    async def grandchild_gone() -> bool:
        # Not our child, so nobody may have reaped it yet: a zombie is dead enough.
        return not alive(grandchild) or _zombie(grandchild)

    await eventually(grandchild_gone, within_s=2)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


async def test_a_nodes_stdout_and_stdin_do_not_touch_the_protocol(pool: ProcessPool) -> None:
    output = await pool.run(node(plugins.Noisy), CTX, {}, {})
    assert output == {"main": [{"stdin": ""}]}
    assert await echo_pid(pool) in pool.pids


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("string", "not str"),
        ("none", "not NoneType"),
        ("list", "not list"),
        ("scalar_item", "item 0 must be a JSON object"),
        ("complex", "not JSON"),
        ("tuple", "must hold a list"),
    ],
)
async def test_output_that_is_not_ports_of_json_objects_is_invalid(
    pool: ProcessPool, kind: str, expected: str
) -> None:
    with pytest.raises(RemoteNodeError) as raised:
        await pool.run(node(plugins.BadOutput), CTX, {}, {"kind": kind})
    assert (raised.value.type, raised.value.retryable) == ("InvalidOutput", False)
    assert expected in raised.value.message


async def test_output_larger_than_an_event_may_carry_is_invalid(pool: ProcessPool) -> None:
    with pytest.raises(RemoteNodeError) as raised:
        await pool.run(node(plugins.BadOutput), CTX, {}, {"kind": "big"}, max_output_bytes=50_000)
    assert raised.value.type == "InvalidOutput"
    assert "50000" in raised.value.message


async def test_the_worker_does_not_see_the_runners_settings(
    pool: ProcessPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NODEDROP_ADMIN_TOKEN", "secret")
    fresh = ProcessPool(1)
    try:
        output: Any = await fresh.run(node(plugins.Environment), CTX, {}, {})
    finally:
        await fresh.stop()
    names = output["main"][0]["names"]
    assert "PATH" in names
    assert not [name for name in names if name.startswith("NODEDROP_")]


async def test_a_memory_limit_fails_a_hungry_node_with_memory_error() -> None:
    pool = ProcessPool(1, memory_limit_bytes=512 * 1024 * 1024)
    try:
        with pytest.raises(RemoteNodeError) as raised:
            await pool.run(node(plugins.Hog), CTX, {}, {"mb": 1024})
        assert raised.value.type == "MemoryError"
        assert await pool.run(node(plugins.Hog), CTX, {}, {"mb": 16}) == {
            "main": [{"size": 16 * 1024 * 1024}]
        }
    finally:
        await pool.stop()


async def test_attempts_beyond_the_pool_size_wait_for_a_worker() -> None:
    pool = ProcessPool(1)
    try:
        began = time.monotonic()
        await asyncio.gather(
            *(pool.run(node(plugins.Sleeper), CTX, {}, {"s": 0.2}) for _ in range(3))
        )
        assert time.monotonic() - began >= 0.6
        assert pool.started == 1
    finally:
        await pool.stop()


async def test_a_class_that_does_not_load_stops_the_start_and_leaves_no_process() -> None:
    pool = ProcessPool(2)
    with pytest.raises(WorkerStartError, match="missing configuration"):
        await pool.start(preload=[node(plugins.SyncEcho).target, node(plugins.BrokenInit).target])
    assert pool.pids == []


async def test_stop_kills_busy_and_idle_workers_and_reaps_them() -> None:
    pool = ProcessPool(2)
    await pool.start()
    pids = pool.pids
    assert len(pids) == 2
    running = asyncio.create_task(pool.run(node(plugins.Spinner), CTX, {}, {}))
    await asyncio.sleep(0.1)
    await pool.stop()
    assert pool.pids == []
    assert not [pid for pid in pids if alive(pid)]
    with pytest.raises(RemoteNodeError):
        await running  # its worker was killed under it
    with pytest.raises(RuntimeError, match="stopped"):
        await pool.run(node(plugins.SyncEcho), CTX, {}, {})


def ready(node_type: str, **fields: Any) -> NodeReady:
    return NodeReady(
        event_id=ids.node_ready("exec-1", "n1", 1),
        execution_id="exec-1",
        time=datetime.now(UTC),
        node="n1",
        attempt=1,
        node_type=node_type,
        input=fields.pop("input", {"main": [{"x": 1}]}),
        **fields,
    )


async def test_run_attempt_maps_worker_outcomes_like_in_loop_ones(pool: ProcessPool) -> None:
    registry = NodeRegistry(
        [
            *builtin_nodes(),
            *(node(cls) for cls in (plugins.SyncEcho, plugins.Spinner, plugins.BadOutput)),
        ]
    )
    succeeded = await run_attempt(registry, ready("sync_echo"), processes=pool)
    assert isinstance(succeeded, dict)
    assert succeeded["main"][0]["x"] == 1

    began = time.monotonic()
    timed_out = await run_attempt(registry, ready("spinner", timeout_ms=300), processes=pool)
    assert isinstance(timed_out, ErrorInfo)
    assert (timed_out.type, timed_out.retryable) == ("NodeTimeout", True)
    assert time.monotonic() - began < 0.3 + STOP_WITHIN_S

    invalid = await run_attempt(
        registry, ready("bad_output", parameters={"kind": "list"}), processes=pool
    )
    assert isinstance(invalid, ErrorInfo)
    assert (invalid.type, invalid.retryable) == ("InvalidOutput", False)


async def test_without_a_pool_a_custom_node_never_runs_in_process() -> None:
    registry = NodeRegistry([node(plugins.SyncEcho)])
    outcome = await run_attempt(registry, ready("sync_echo"))
    assert isinstance(outcome, ErrorInfo)
    assert outcome.type == "RuntimeError"
    assert "worker process" in outcome.message


async def test_the_process_boundary_costs_little_per_attempt(pool: ProcessPool) -> None:
    """Median round trip of a tiny attempt through a worker, against the same call in-process
    (printed with -s; the bound is far above what it measures, for loaded machines)."""
    echo = node(plugins.SyncEcho)
    in_process = plugins.SyncEcho()
    node_input = {"main": [{"a": 1}]}
    await pool.run(echo, CTX, node_input, {})  # warm
    remote, local = [], []
    for _ in range(200):
        began = time.perf_counter()
        await pool.run(echo, CTX, node_input, {})
        remote.append(time.perf_counter() - began)
        began = time.perf_counter()
        in_process.run(CTX, node_input, {})
        local.append(time.perf_counter() - began)
    overhead_us = (statistics.median(remote) - statistics.median(local)) * 1e6
    os.write(2, f"\nprocess boundary: median {overhead_us:.0f} us per attempt\n".encode())
    assert overhead_us < 5_000


_ORPHAN_SCRIPT = """
import asyncio, sys
from nodedrop.runner.isolation import ProcessPool
from nodedrop.runner.nodes import NodeContext
from nodedrop.runner.nodes.registry import PluginNode

async def main():
    pool = ProcessPool(2)
    await pool.start()
    spinner = PluginNode("spinner", sys.argv[1])
    ctx = NodeContext("e", "n", 1)
    runs = [asyncio.create_task(pool.run(spinner, ctx, {}, {})) for _ in range(2)]
    await asyncio.sleep(0.2)
    print(" ".join(map(str, pool.pids)), flush=True)
    await asyncio.gather(*runs)

asyncio.run(main())
"""


async def test_busy_workers_die_with_a_runner_that_is_killed_outright() -> None:
    """SIGKILL gives the runner no chance to stop its pool, and a spinning worker never reads
    its closed pipe: the kernel kills the workers (PR_SET_PDEATHSIG)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p or os.getcwd() for p in sys.path)}
    runner = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _ORPHAN_SCRIPT,
        node(plugins.Spinner).target,
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert runner.stdout is not None
        line = await asyncio.wait_for(runner.stdout.readline(), 30)
        pids = [int(pid) for pid in line.split()]
        assert len(pids) == 2
        assert all(alive(pid) for pid in pids)
    finally:
        runner.kill()
        await runner.wait()

    async def orphans_gone() -> bool:
        return all(not alive(pid) or _zombie(pid) for pid in pids)

    await eventually(orphans_gone, within_s=2)
