"""``nodedrop migrate-log``: copy a log of the first format (one stream ``NODEDROP_EVENTS``,
subjects ``nodedrop.events.<slot>...``) into the partitioned log, once, with every service
stopped (docs/operations.md, "Upgrading to the partitioned log").

Every event is published again, in the order it was stored, to its execution's partition under
its own ``Nats-Msg-Id``; the copy is then counted (each partition must hold as many events as
the former stream held for its executions). Only then is the former stream deleted and the
projection emptied, so that the notifier projects the new log from its start, and the shared
consumers created (the runners' from new events on: a task already answered is not handed out
again). Exit status: 0 done, 1 the copy does not add up (nothing deleted), 2 failed.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from dataclasses import dataclass

from nodedrop.cli import admin

FORMER_STREAM = "NODEDROP_EVENTS"
_FORMER_SUBJECTS = "nodedrop.events.>"


@dataclass(frozen=True)
class MigrationReport:
    events: int
    undecodable: int
    per_partition: dict[str, int]


def migrate(*, keep_former: bool = False) -> int:
    try:
        servers = admin.servers()
        return asyncio.run(_migrate(servers, keep_former=keep_former))
    except Exception as error:
        print(f"nodedrop migrate-log: failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 2


async def _migrate(servers: admin.Servers, *, keep_former: bool) -> int:
    from nodedrop.platform import natsconnect
    from nodedrop.platform.jetstream import StreamSettings, ensure_jetstream

    nc = await natsconnect.connect(
        servers.nats, name="nodedrop migrate-log", max_reconnect_attempts=2
    )
    try:
        js = nc.jetstream()
        settings = StreamSettings.from_env()
        try:
            await js.stream_info(FORMER_STREAM)
        except Exception:
            print(f"no stream {FORMER_STREAM}: nothing to migrate")
            return 0
        report, expected = await copy_log(js, settings)
        print(f"copied {report.events} events into {settings.layout.partitions} partitions "
              f"({report.undecodable} undecodable ones kept as they were)")  # fmt: skip
        if report.per_partition != expected:
            print(f"the copy does not add up: expected {expected}, found {report.per_partition};"
                  f" {FORMER_STREAM} is left as it is", file=sys.stderr)  # fmt: skip
            return 1
        if keep_former:
            print(f"{FORMER_STREAM} kept (--keep-former): services refuse to start until it "
                  "is deleted")  # fmt: skip
            return 0
        await js.delete_stream(FORMER_STREAM)
        await _empty_projection(servers.database_url)
        await ensure_jetstream(js, settings)
        print(f"deleted {FORMER_STREAM}; the projection is rebuilt by the notifier at its start")
        return 0
    finally:
        await nc.close()


async def copy_log(js, settings) -> tuple[MigrationReport, dict[str, int]]:  # type: ignore[no-untyped-def]
    """Copy every message of the former stream into the partition streams (created here
    without consumers); returns what was written and what each partition should now hold."""
    from nodedrop.contracts import codec
    from nodedrop.contracts.routing import event_subject
    from nodedrop.platform.bus import MSG_ID
    from nodedrop.platform.history import read_batches
    from nodedrop.platform.jetstream import ensure_stream

    layout = settings.layout
    for partition in range(layout.partitions):
        await ensure_stream(js, settings, partition)
    before = {s: (await js.stream_info(s)).state.messages for s in layout.streams}
    expected: Counter[str] = Counter(before)
    events = undecodable = 0
    batches = read_batches(
        js, stream=FORMER_STREAM, filter_subject=_FORMER_SUBJECTS, description="migrate-log"
    )
    async for batch in batches:
        acks = []
        for msg in batch:
            try:
                event = codec.decode(msg.data)
            except codec.EventDecodeError:
                undecodable += 1
                continue
            stream = layout.stream_of(event.execution_id)
            acks.append(
                await js.publish_async(
                    event_subject(event),
                    msg.data,
                    stream=stream,
                    headers={MSG_ID: event.event_id},
                )
            )
        for ack in await asyncio.gather(*acks):
            if not ack.duplicate:
                events += 1
                expected[ack.stream] += 1
    after = {s: (await js.stream_info(s)).state.messages for s in layout.streams}
    return MigrationReport(events, undecodable, after), dict(expected)


async def _empty_projection(database_url: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    from nodedrop.notifier.canonical import PROJECTION_TABLES
    from nodedrop.notifier.store import asyncpg_dsn

    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        names = [t.name for t in PROJECTION_TABLES if t.name != "projection_checkpoints"]
        async with conn.transaction():
            await conn.execute(f"TRUNCATE {', '.join(names)}")
            await conn.execute("DELETE FROM projection_checkpoints WHERE name LIKE 'notifier%'")
    finally:
        await conn.close()
