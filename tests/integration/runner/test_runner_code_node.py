"""Code nodes on a real runner: results, NodeLogged lines, CodeError, timeouts and cancels."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from nodedrop.contracts.events import AnyEvent, NodeFailed, NodeLogged, NodeSucceeded

from .harness import Rig, eventually, has_result, results
from .sandboxes import sandbox_pids
from .test_runner_isolation import cancelled, started

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("bwrap") is None,
        reason="bubblewrap (bwrap) is not installed: apt-get install bubblewrap (.ci/run does)",
    ),
]

SPIN = "def main(items, ctx):\n    while True:\n        pass\n"


def logged(events: list[AnyEvent]) -> list[NodeLogged]:
    return [e for e in events if isinstance(e, NodeLogged)]


async def test_output_and_log_lines_are_recorded(rig: Rig) -> None:
    await rig.start_runner()
    source = (
        "def main(item, ctx):\n"
        "    ctx.log.info(f\"doubling {item['n']}\")\n"
        "    return {'n': item['n'] * 2}\n"
    )
    task = rig.ready(
        "code",
        input={"main": [{"n": 1}, {"n": 2}]},
        parameters={"source": source, "mode": "each_item"},
    )
    await rig.publish(task)
    events = await rig.stored(task.execution_id, until=lambda e: has_result(e) and logged(e) != [])
    [result] = results(events)
    assert isinstance(result, NodeSucceeded)
    assert result.output == {"main": [{"n": 2}, {"n": 4}]}
    [log] = logged(events)
    assert [line.message for line in log.lines] == ["doubling 1", "doubling 2"]


async def test_an_exception_fails_the_node_with_the_users_traceback(rig: Rig) -> None:
    await rig.start_runner()
    source = "def main(items, ctx):\n    ctx.log.error('giving up')\n    raise KeyError('total')\n"
    task = rig.ready("code", parameters={"source": source})
    await rig.publish(task)
    events = await rig.stored(task.execution_id, until=lambda e: has_result(e) and logged(e) != [])
    [result] = results(events)
    assert isinstance(result, NodeFailed)
    assert result.error.type == "CodeError"
    assert result.error.message == "KeyError: 'total' (line 3)"
    assert result.error.retryable is False
    assert result.error.stack is not None
    assert 'File "<code>", line 3, in main' in result.error.stack
    assert "nodedrop" not in result.error.stack
    assert [line.message for line in logged(events)[0].lines] == ["giving up"]


async def test_timeout_ms_kills_the_sandbox(rig: Rig) -> None:
    runner = await rig.start_runner()
    task = rig.ready("code", parameters={"source": SPIN}, timeout_ms=500)
    await rig.publish(task)
    [result] = results(await rig.stored(task.execution_id, until=has_result))
    assert isinstance(result, NodeFailed)
    assert result.error.type == "NodeTimeout"
    assert sandbox_pids() == []
    assert runner.busy == 0


async def test_cancel_kills_the_sandbox(rig: Rig) -> None:
    runner = await rig.start_runner()
    task = rig.ready("code", parameters={"source": SPIN})
    await rig.publish(task)
    await rig.stored(task.execution_id, until=started)

    async def sandbox_running() -> bool:
        return sandbox_pids() != []

    await eventually(sandbox_running, within_s=5)
    await rig.publish(cancelled(task.execution_id))

    async def stopped() -> bool:
        return sandbox_pids() == [] and runner.busy == 0

    # The spin would run until the sandbox's CPU limit (30 s): gone well before that, it was
    # the cancel that killed it. (How fast a cancel lands is a matter of machine speed, not
    # checked here.)
    await eventually(stopped, within_s=15)
    await asyncio.sleep(0.2)
    assert not has_result(await rig.stored(task.execution_id))
