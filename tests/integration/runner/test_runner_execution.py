"""Runners executing nodes: results, errors, timeouts, concurrency and sharing the work."""

from __future__ import annotations

import time
import uuid
from datetime import datetime

import nats
import pytest
from nats.aio.msg import Msg

from nodedrop.contracts import ids
from nodedrop.contracts.events import AnyEvent, NodeFailed, NodeStarted, NodeSucceeded, type_name
from nodedrop.contracts.routing import execution_subject

from .harness import Rig, eventually, has_result, results

pytestmark = pytest.mark.integration


async def test_noop_records_started_then_succeeded_and_acks(rig: Rig) -> None:
    runner = await rig.start_runner(concurrency=4)
    task = rig.ready("noop", input={"main": [{"a": 1}], "other": [{"b": 2}]})
    await rig.publish(task)

    found = await rig.stored(task.execution_id, until=has_result)
    assert [type_name(e) for e in found] == ["NodeReady", "NodeStarted", "NodeSucceeded"]
    started, succeeded = found[1], found[2]
    assert isinstance(started, NodeStarted)
    assert isinstance(succeeded, NodeSucceeded)
    assert started.event_id == ids.node_started(task.execution_id, "n1", 1)
    assert started.worker == runner.worker_id
    assert succeeded.event_id == ids.node_result(task.execution_id, "n1", 1)
    assert (succeeded.node, succeeded.attempt) == ("n1", 1)
    assert succeeded.output == {"main": [{"a": 1}, {"b": 2}]}
    assert started.time <= succeeded.time
    assert succeeded.time.tzinfo is not None
    await eventually(rig.all_acked)


async def test_stop_and_error_fails_with_its_type_not_retryable(rig: Rig) -> None:
    await rig.start_runner()
    task = rig.ready(
        "stop_and_error", parameters={"error_type": "OrderMissing", "message": "no order"}
    )
    await rig.publish(task)

    [failed] = results(await rig.stored(task.execution_id, until=has_result))
    assert isinstance(failed, NodeFailed)
    assert (failed.error.type, failed.error.message) == ("OrderMissing", "no order")
    assert failed.error.retryable is False
    assert failed.error.stack is not None
    await eventually(rig.all_acked)


async def test_an_output_holding_a_nul_character_fails_the_node_not_retryable(rig: Rig) -> None:
    # The definition holds no NUL (the API refuses one), but an expression can make one. The
    # projection cannot store it (jsonb): recorded, the output would read differently from
    # /events and from the projection.
    await rig.start_runner()
    task = rig.ready(
        "set", parameters={"values": {"v": '{{ "a\\x00b" }}'}}, input={"main": [{"n": 1}]}
    )
    await rig.publish(task)

    [failed] = results(await rig.stored(task.execution_id, until=has_result))
    assert isinstance(failed, NodeFailed)
    assert (failed.error.type, failed.error.retryable) == ("InvalidOutput", False)
    assert "NUL character" in failed.error.message
    assert "main[0].v" in failed.error.message
    await eventually(rig.all_acked)


async def test_a_nul_character_in_an_error_message_is_recorded_as_u_fffd(rig: Rig) -> None:
    await rig.start_runner()
    task = rig.ready(
        "stop_and_error", parameters={"error_type": "Missing", "message": "no\x00order"}
    )
    await rig.publish(task)

    [failed] = results(await rig.stored(task.execution_id, until=has_result))
    assert isinstance(failed, NodeFailed)
    assert failed.error.message == "no\ufffdorder"
    assert failed.error.stack is not None
    assert "\x00" not in failed.error.stack


async def test_unknown_node_type_fails_not_retryable(rig: Rig) -> None:
    await rig.start_runner()
    task = rig.ready("no_such_type")
    await rig.publish(task)

    [failed] = results(await rig.stored(task.execution_id, until=has_result))
    assert isinstance(failed, NodeFailed)
    assert (failed.error.type, failed.error.retryable) == ("UnknownNodeType", False)


async def test_a_node_over_its_timeout_fails_with_node_timeout_in_time(rig: Rig) -> None:
    await rig.start_runner()
    task = rig.ready("probe", parameters={"ms": 5_000}, timeout_ms=200)
    # Watch the events arrive live: plain NATS sees every publish to the stream's subjects.
    arrivals: dict[str, float] = {}

    async def on_event(msg: Msg) -> None:
        arrivals.setdefault(msg.subject.rsplit(".", 1)[-1], time.monotonic())

    watcher = await nats.connect(rig.nats_url)
    try:
        await watcher.subscribe(execution_subject(task.execution_id), cb=on_event)
        await watcher.flush()
        await rig.publish(task)
        found = await rig.stored(task.execution_id, until=has_result)
    finally:
        await watcher.close()

    [failed] = results(found)
    assert isinstance(failed, NodeFailed)
    assert (failed.error.type, failed.error.retryable) == ("NodeTimeout", True)
    started = next(e for e in found if isinstance(e, NodeStarted))
    recorded = (failed.time - started.time).total_seconds()
    observed = arrivals["NodeFailed"] - arrivals["NodeStarted"]
    # Not before the timeout; and the runner stopped it, long before the node's 5 s and before
    # the scheduler's backstop (timeout + 2 s). How soon after the timeout is the machine's
    # speed, not the behaviour: that is for the benchmarks.
    assert 0.2 <= recorded < 2.0, recorded
    assert observed < 2.0, observed
    assert rig.probe.running == 0  # the node's code was really stopped


async def test_concurrency_is_bounded_per_runner(rig: Rig) -> None:
    await rig.start_runner(concurrency=2)
    execution_id = uuid.uuid4().hex
    tasks = [
        rig.ready("wait", execution_id=execution_id, node=f"w{i}", parameters={"ms": 300})
        for i in range(5)
    ]
    await rig.publish(*tasks)

    found = await rig.stored(execution_id, until=lambda ev: len(results(ev)) == 5, within_s=10)
    assert all(isinstance(r, NodeSucceeded) for r in results(found))
    spans = _spans(found)
    assert len(spans) == 5
    assert _most_at_once(spans) == 2
    first_start = min(start for start, _ in spans.values())
    last_end = max(end for _, end in spans.values())
    assert (last_end - first_start).total_seconds() >= 0.9  # three rounds of 300 ms
    await eventually(rig.all_acked)


async def test_two_runners_share_the_work_and_run_each_task_once(rig: Rig) -> None:
    first = await rig.start_runner(concurrency=2)
    second = await rig.start_runner(concurrency=2)
    execution_id = uuid.uuid4().hex
    tasks = [
        rig.ready("probe", execution_id=execution_id, node=f"p{i}", parameters={"ms": 100})
        for i in range(12)
    ]
    await rig.publish(*tasks)

    found = await rig.stored(execution_id, until=lambda ev: len(results(ev)) == 12, within_s=10)
    assert sorted(rig.probe.runs) == sorted((execution_id, f"p{i}", 1) for i in range(12))
    workers = [e.worker for e in found if isinstance(e, NodeStarted)]
    assert set(workers) == {first.worker_id, second.worker_id}
    assert rig.probe.most_at_once <= 4
    await eventually(rig.all_acked)


def _spans(found: list[AnyEvent]) -> dict[str, tuple[datetime, datetime]]:
    """node -> (started, finished), from the recorded event times."""
    starts = {e.node: e.time for e in found if isinstance(e, NodeStarted)}
    ends = {e.node: e.time for e in found if isinstance(e, NodeSucceeded | NodeFailed)}
    return {node: (starts[node], ends[node]) for node in starts}


def _most_at_once(spans: dict[str, tuple[datetime, datetime]]) -> int:
    # A slot is freed after the result is recorded, so a start never ties with an end.
    marks = sorted([(s, 1) for s, _ in spans.values()] + [(e, -1) for _, e in spans.values()])
    running = most = 0
    for _, step in marks:
        running += step
        most = max(most, running)
    return most
