"""Dead letters against a real nats-server: a message of the events stream that a consumer gives
up on (terminated as undecodable, or past the delivery limit) is kept in the dead-letter
stream, and the execution it belongs to ends ``failed`` with error type ``DeadLetter``."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

import nats
import pytest
from nats.js import JetStreamContext

from nodedrop.contracts import codec, ids, routing, subjects
from nodedrop.contracts.errors import DEAD_LETTER
from nodedrop.contracts.events import (
    ChildExecutionFinished,
    Event,
    ExecutionCancelRequested,
    ExecutionFinished,
    NodeReady,
    NodeSucceeded,
)
from nodedrop.contracts.routing import Layout
from nodedrop.platform.bus import EventPublisher
from nodedrop.platform.history import read_execution
from nodedrop.platform.jetstream import StreamSettings, ensure_dead_letters, ensure_jetstream
from nodedrop.scheduler.dead_letters import DeadLetters

from .test_scheduler_service import (
    chain,
    request,
    running_scheduler,
    scripted_runner,
    succeed,
    wait_finished,
)

pytestmark = pytest.mark.integration


def hold(node: str) -> Callable[[NodeReady], Event | None]:
    """A runner's answers: success for every node but ``node``, which never gets a result."""

    def answer(task: NodeReady) -> Event | None:
        return None if task.node == node else succeed(task)

    return answer


@contextlib.asynccontextmanager
async def acting_on_dead_letters(nats_url: str) -> AsyncIterator[DeadLetters]:
    nc = await nats.connect(nats_url)
    listener = DeadLetters(nc, nc.jetstream(), clock=lambda: datetime.now(UTC))
    task = asyncio.create_task(listener.run())
    try:
        yield listener
    finally:
        listener.stop()
        await task
        await nc.close()


async def dead_letters(js: JetStreamContext, count: int) -> list[dict[str, object]]:
    """The first ``count`` advisories in the dead-letter stream, once there are that many."""
    for _ in range(200):
        info = await js.stream_info(subjects.DEAD_LETTERS_STREAM)
        if info.state.messages >= count:
            break
        await asyncio.sleep(0.05)
    found = []
    for seq in range(1, count + 1):
        msg = await js.get_msg(subjects.DEAD_LETTERS_STREAM, seq)
        found.append({"subject": msg.subject, **json.loads(msg.data or b"{}")})
    return found


async def until_node_ready(js: JetStreamContext, execution_id: str, node: str) -> None:
    for _ in range(200):
        events = [e for _, e in await read_execution(js, execution_id, layout=Layout.from_env())]
        if any(isinstance(e, NodeReady) and e.node == node for e in events):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{node} never became ready")


async def scheduler_consumer(js: JetStreamContext, execution_id: str) -> str:
    """The consumer of the scheduler that owns the execution's partition, named in its fence."""
    layout = routing.Layout.from_env()
    partition = layout.partition_of(execution_id)
    fence = await js.get_last_msg(layout.stream(partition), layout.fence_subject(partition))
    return str(json.loads(fence.data or b"")["consumer"])


def failed_by_dead_letter(events: Sequence[Event]) -> bool:
    finished = [e for e in events if isinstance(e, ExecutionFinished)]
    return (
        len(finished) == 1
        and finished[0].status == "failed"
        and finished[0].error is not None
        and finished[0].error.type == DEAD_LETTER
    )


async def test_an_undecodable_event_of_a_running_execution_fails_it(
    jetstream: JetStreamContext, nats_url: str
) -> None:
    js = jetstream
    await ensure_jetstream(js, StreamSettings.from_env())
    await ensure_dead_letters(js, StreamSettings.from_env())
    workflow = chain({"id": "a", "type": "noop"}, {"id": "b", "type": "noop"})
    async with (
        running_scheduler(nats_url),
        acting_on_dead_letters(nats_url),
        scripted_runner(nats_url, hold("b")),
    ):
        await request(js, "ex-poisoned", workflow)
        await until_node_ready(js, "ex-poisoned", "b")
        garbage = await js.publish(
            routing.execution_subject("ex-poisoned", "NodeSucceeded"), b"\x00 not an event"
        )
        events = await wait_finished(js, "ex-poisoned")
        owner_consumer = await scheduler_consumer(js, "ex-poisoned")
    assert failed_by_dead_letter(events)
    [letter] = await dead_letters(js, 1)
    assert letter["stream_seq"] == garbage.seq
    assert letter["stream"] == garbage.stream == routing.Layout.from_env().stream_of("ex-poisoned")
    assert letter["consumer"] == owner_consumer
    assert str(letter["subject"]).startswith("$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.")


async def test_a_task_past_the_delivery_limit_fails_its_execution(
    jetstream: JetStreamContext, nats_url: str
) -> None:
    js = jetstream
    await ensure_jetstream(
        js, replace(StreamSettings.from_env(), runner_ack_wait_s=0.2, runner_max_deliver=2)
    )
    await ensure_dead_letters(js, StreamSettings.from_env())
    # A runner that runs the trigger, but takes b's task and never answers nor acknowledges
    # it, however often it is delivered.
    runner = await js.pull_subscribe_bind(
        subjects.RUNNER_CONSUMER, stream=routing.Layout.from_env().stream_of("ex-stuck")
    )
    publisher = EventPublisher(js, Layout.from_env())
    async with running_scheduler(nats_url), acting_on_dead_letters(nats_url):
        await request(js, "ex-stuck", chain({"id": "b", "type": "noop"}))
        events: list[Event] = []
        for _ in range(200):
            with contextlib.suppress(nats.errors.TimeoutError):
                for msg in await runner.fetch(1, timeout=0.2):
                    task = codec.decode(msg.data)
                    assert isinstance(task, NodeReady)
                    if task.node == "start":
                        await publisher.publish([succeed(task)])
                        await msg.ack()
            events = [e for _, e in await read_execution(js, "ex-stuck", layout=Layout.from_env())]
            if any(isinstance(e, ExecutionFinished) for e in events):
                break
    assert failed_by_dead_letter(events)
    [letter] = await dead_letters(js, 1)
    assert letter["consumer"] == subjects.RUNNER_CONSUMER
    assert letter["deliveries"] == 2
    assert str(letter["subject"]).startswith("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.")


async def test_a_dead_letter_of_no_execution_is_only_recorded(
    jetstream: JetStreamContext, nats_url: str
) -> None:
    js = jetstream
    await ensure_jetstream(js, StreamSettings.from_env())
    await ensure_dead_letters(js, StreamSettings.from_env())
    async with running_scheduler(nats_url), acting_on_dead_letters(nats_url) as listener:
        garbage = await js.publish(routing.execution_subject("ex-nobody", "NodeFailed"), b"{}")
        [letter] = await dead_letters(js, 1)
        assert letter["stream_seq"] == garbage.seq
        # Acting on it again is harmless: no execution, nothing recorded.
        advisory = await js.get_msg(subjects.DEAD_LETTERS_STREAM, 1)
        assert await listener.handle(advisory.subject or "", advisory.data or b"") is None
    stored = await read_execution(js, "ex-nobody", layout=Layout.from_env())
    assert stored == []  # the garbage does not decode; nothing else was recorded


def advisory(stream: str, stream_seq: int) -> tuple[str, bytes]:
    """A MAX_DELIVERIES advisory of the scheduler's consumer about ``stream_seq``."""
    subject = f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.scheduler-0"
    body = {"stream": stream, "consumer": "scheduler-0", "stream_seq": stream_seq, "deliveries": 10}
    return subject, json.dumps(body).encode()


async def test_a_given_up_dead_letter_cancel_ends_the_execution_without_the_core(
    jetstream: JetStreamContext, nats_url: str
) -> None:
    """The core fails on everything of an execution (a bug): a message of it is dead-lettered,
    then the cancel that was to end it as well. The execution's end is then recorded without
    the core, its parent told first, so nothing holds a concurrency slot or a parent's node
    for good."""
    js = jetstream
    layout = Layout.from_env()
    await ensure_jetstream(js, StreamSettings.from_env())
    publisher = EventPublisher(js, layout)
    await request(
        js,
        "ex-broken",
        chain({"id": "a", "type": "noop"}),
        report_to_parent=True,
        child_index=3,
        parent_execution="ex-parent",
        parent_node="call",
        parent_attempt=2,
    )
    [poison] = await publisher.publish(
        [succeed_event("ex-broken")]  # an input the (broken) core never gets through
    )
    nc = await nats.connect(nats_url)
    try:
        listener = DeadLetters(nc, js, clock=lambda: datetime.now(UTC), publisher=publisher)
        stream = layout.stream_of("ex-broken")

        # The input given up on: the cancel is recorded, not the end (the core may still end it).
        assert await listener.handle(*advisory(stream, poison)) == "ex-broken"
        history = [e for _, e in await read_execution(js, "ex-broken", layout=layout)]
        [cancel] = [e for e in history if isinstance(e, ExecutionCancelRequested)]
        assert not any(isinstance(e, ExecutionFinished) for e in history)
        cancel_seq = (await read_execution(js, "ex-broken", layout=layout))[-1][0]

        # The cancel given up on too: the end, without the core.
        assert await listener.handle(*advisory(stream, cancel_seq)) == "ex-broken"
        history = [e for _, e in await read_execution(js, "ex-broken", layout=layout)]
        assert failed_by_dead_letter(history)
        [report] = [e for _, e in await read_execution(js, "ex-parent", layout=layout)]
        assert isinstance(report, ChildExecutionFinished)
        assert (report.child, report.node, report.attempt, report.index, report.status) == (
            "ex-broken",
            "call",
            2,
            3,
            "failed",
        )
        assert report.error is not None
        assert report.error.type == DEAD_LETTER

        # Acting on it again records nothing more.
        assert await listener.handle(*advisory(stream, cancel_seq)) is None
        assert len(await read_execution(js, "ex-broken", layout=layout)) == len(history)
    finally:
        await nc.close()
    assert cancel.reason == "dead_letter"


def succeed_event(execution_id: str) -> NodeSucceeded:
    return NodeSucceeded(
        event_id=ids.node_result(execution_id, "a", 1),
        execution_id=execution_id,
        time=datetime.now(UTC),
        node="a",
        attempt=1,
        output={"main": [{"json": {}}]},
    )
