"""``python -m nodedrop.runner`` as real processes: two share the work, SIGTERM stops each."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid

import pytest

from nodedrop.contracts.events import NodeStarted, NodeSucceeded

from .harness import Rig, results

pytestmark = pytest.mark.integration


async def test_two_runner_processes_share_the_work_and_stop_on_sigterm(rig: Rig) -> None:
    env = {
        **os.environ,
        "NODEDROP_NATS_URL": rig.nats_url,
        "NODEDROP_RUNNER_CONCURRENCY": "1",
    }
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "nodedrop.runner", env=env, stderr=asyncio.subprocess.PIPE
        )
        for _ in range(2)
    ]
    try:
        execution_id = uuid.uuid4().hex
        tasks = [
            rig.ready("wait", execution_id=execution_id, node=f"w{i}", parameters={"ms": 200})
            for i in range(6)
        ]
        await rig.publish(*tasks)
        found = await rig.stored(execution_id, until=lambda ev: len(results(ev)) == 6, within_s=90)
        assert all(isinstance(r, NodeSucceeded) for r in results(found))
        workers = {e.worker for e in found if isinstance(e, NodeStarted)}
        assert workers == {f"{os.uname().nodename}-{p.pid}" for p in processes}
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        codes = [await asyncio.wait_for(p.wait(), 60) for p in processes]
    assert codes == [0, 0]
    for process in processes:
        assert process.stderr is not None
        log = (await process.stderr.read()).decode()
        assert "stopped" in log, log
