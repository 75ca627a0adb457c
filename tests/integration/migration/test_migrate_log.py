"""``nodedrop migrate-log``'s copy: a log of the first format (one stream) copied into the
partitioned log, each event in its execution's partition, in order, once."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime

import pytest
from nats.js import JetStreamContext
from nats.js.api import StreamConfig

from nodedrop.cli.migrate_log import FORMER_STREAM, copy_log
from nodedrop.contracts import codec
from nodedrop.contracts.events import ExecutionRequested, ExecutionStarted
from nodedrop.contracts.routing import Layout
from nodedrop.platform.history import read_execution
from nodedrop.platform.jetstream import LayoutError, StreamSettings, ensure_jetstream

pytestmark = pytest.mark.integration


def _former_subject(execution_id: str, event_type: str) -> str:
    return (
        f"nodedrop.events.{zlib.crc32(execution_id.encode()) % 16:02d}.{execution_id}.{event_type}"
    )


async def _former_log(js: JetStreamContext, count: int) -> list[str]:
    await js.add_stream(StreamConfig(name=FORMER_STREAM, subjects=["nodedrop.events.>"]))
    ids = [f"ex-{i}" for i in range(count)]
    now = datetime.now(UTC)
    for execution_id in ids:
        requested = ExecutionRequested(
            event_id=f"{execution_id}.requested",
            execution_id=execution_id,
            time=now,
            workflow={"nodes": [], "connections": []},
            requested_by="someone",
        )
        started = ExecutionStarted(
            event_id=f"{execution_id}.started", execution_id=execution_id, time=now, plan=["a"]
        )
        for event in (requested, started):
            subject = _former_subject(execution_id, type(event).__name__)
            await js.publish(subject, codec.encode(event))
    return ids


async def test_a_former_log_stops_services_until_it_is_migrated(
    jetstream: JetStreamContext,
) -> None:
    await _former_log(jetstream, 3)
    with pytest.raises(LayoutError, match="migrate-log"):
        await ensure_jetstream(jetstream, StreamSettings())


@pytest.mark.parametrize("partitions", [1, 3])
async def test_every_event_is_copied_once_to_its_partition_in_order(
    jetstream: JetStreamContext, partitions: int
) -> None:
    ids = await _former_log(jetstream, 40)
    settings = StreamSettings(layout=Layout(partitions))
    report, expected = await copy_log(jetstream, settings)
    assert report.events == 80
    assert report.per_partition == expected
    assert sum(report.per_partition.values()) == 80
    for execution_id in ids:
        stored = await read_execution(jetstream, execution_id, layout=settings.layout)
        assert [type(e).__name__ for _, e in stored] == ["ExecutionRequested", "ExecutionStarted"]
    # A second run (interrupted and started again, within the duplicate window) adds nothing.
    again, _ = await copy_log(jetstream, settings)
    assert again.events == 0
    assert again.per_partition == report.per_partition
