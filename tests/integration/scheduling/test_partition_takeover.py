"""Taking a partition over: the new owner's fence refuses every later decision of the old owner
(the stream checks it, whatever the old owner's clock or pauses), and the old owner then stops
deciding for that partition."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import nats
import pytest
from nats.js import JetStreamContext

from nodedrop.contracts import ids
from nodedrop.contracts.events import ExecutionRequested, ExecutionStarted, NodeReady
from nodedrop.contracts.routing import Layout
from nodedrop.platform.bus import EventPublisher
from nodedrop.platform.history import read_execution
from nodedrop.platform.jetstream import StreamSettings, ensure_jetstream
from nodedrop.scheduler.main import open_scheduler
from nodedrop.scheduler.service import Scheduler

pytestmark = pytest.mark.integration

LAYOUT = Layout(2)
SETTINGS = StreamSettings(layout=LAYOUT)
WORKFLOW = {
    "name": "one node",
    "nodes": [{"id": "start", "type": "manual_trigger"}, {"id": "a", "type": "noop"}],
    "connections": [{"from": "start", "to": "a"}],
}


def execution_in(partition: int, name: str) -> str:
    return next(
        f"{name}-{i}" for i in range(10_000) if LAYOUT.partition_of(f"{name}-{i}") == partition
    )


@contextlib.asynccontextmanager
async def scheduler(nats_url: str, owner: str) -> AsyncIterator[Scheduler]:
    nc = await nats.connect(nats_url)
    try:
        made, _ = await open_scheduler(nc, SETTINGS, owner=owner)
        yield made
    finally:
        await nc.close()


async def requested(js: JetStreamContext, execution_id: str) -> None:
    await EventPublisher(js, LAYOUT).publish(
        [
            ExecutionRequested(
                event_id=ids.execution_requested(execution_id),
                execution_id=execution_id,
                time=datetime.now(UTC),
                workflow=WORKFLOW,
                requested_by="test",
                trigger="start",
            )
        ]
    )


async def test_an_old_owner_is_fenced_and_gives_the_partition_up(
    jetstream: JetStreamContext, nats_url: str
) -> None:
    await ensure_jetstream(jetstream, SETTINGS)
    execution_id = execution_in(1, "ex-fenced")
    await requested(jetstream, execution_id)
    async with scheduler(nats_url, "old") as old, scheduler(nats_url, "new") as new:
        await old.take(1)
        await new.take(1)  # as if the old owner were paused past its lease
        # The old owner now decides on the request (a rebuild, as after a redelivery): its
        # decisions are refused by the stream, and it gives the partition up.
        old._stale.add(execution_id)
        await old.handle([])
        assert old.partitions == []
        assert [
            type(e) for _, e in await read_execution(jetstream, execution_id, layout=LAYOUT)
        ] == [ExecutionRequested]
        new._stale.add(execution_id)
        await new.handle([])
        assert new.partitions == [1]
    history = [e for _, e in await read_execution(jetstream, execution_id, layout=LAYOUT)]
    assert [type(e) for e in history] == [ExecutionRequested, ExecutionStarted, NodeReady]


async def test_a_takeover_names_the_new_owner_and_removes_the_old_consumer(
    jetstream: JetStreamContext, nats_url: str
) -> None:
    await ensure_jetstream(jetstream, SETTINGS)
    async with scheduler(nats_url, "first") as first, scheduler(nats_url, "second") as second:
        await first.take(0)
        fence = await jetstream.get_last_msg(LAYOUT.stream(0), LAYOUT.fence_subject(0))
        first_consumer = json.loads(fence.data or b"")["consumer"]
        await second.take(0)
        fence = await jetstream.get_last_msg(LAYOUT.stream(0), LAYOUT.fence_subject(0))
        taken = json.loads(fence.data or b"")
        assert taken["owner"] == "second"
        names = [c.name async for c in _consumers(jetstream, LAYOUT.stream(0))]
        assert taken["consumer"] in names
        assert first_consumer not in names


async def _consumers(js: JetStreamContext, stream: str):  # type: ignore[no-untyped-def]
    for info in await js.consumers_info(stream):
        yield info
