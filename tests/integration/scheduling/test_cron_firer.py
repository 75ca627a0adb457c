"""The cron firer against a real nats-server, with a fake clock: one ExecutionRequested per tick
with the tick's id and input, once even with two firers, none after the schedule is deleted,
and the missed-tick rule after downtime."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from nodedrop.contracts import codec
from nodedrop.contracts.events import Event, ExecutionRequested
from nodedrop.contracts.routing import Layout, is_event_subject
from nodedrop.platform import schedules
from nodedrop.platform.bus import EventPublisher
from nodedrop.platform.jetstream import StreamSettings, ensure_jetstream
from nodedrop.platform.schedules import ScheduledTrigger, ScheduleEntry
from nodedrop.scheduler.cron import CronFirer

pytestmark = pytest.mark.integration

#: Saved half a minute past 10:00: the first tick of "* * * * *" is 10:01.
SAVED = datetime(2026, 11, 26, 10, 0, 30, tzinfo=UTC)
TICK = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
WORKFLOW: dict[str, Any] = {
    "name": "every minute",
    "nodes": [
        {"id": "tick", "type": "schedule_trigger", "parameters": {"cron": "* * * * *"}},
        {"id": "next", "type": "noop"},
    ],
    "connections": [{"from": "tick", "to": "next"}],
}


def minute(n: int) -> datetime:
    return TICK + timedelta(minutes=n)


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class CountingPublisher(EventPublisher):
    """Counts what this firer itself publishes (the stream would drop a duplicate id)."""

    def __init__(self, js: JetStreamContext) -> None:
        super().__init__(js)
        self.published: list[str] = []

    async def publish(
        self,
        events: Sequence[Event],
        headers: dict[str, str] | None = None,
        *,
        fences: Mapping[int, int] | None = None,
    ) -> list[int]:
        self.published.extend(e.execution_id for e in events)
        return await super().publish(events, headers, fences=fences)


def entry(workflow_id: str = "wf1", cron: str = "* * * * *", version: int = 1) -> ScheduleEntry:
    return ScheduleEntry(
        workflow_id=workflow_id,
        version=version,
        owner="alice",
        workflow=WORKFLOW,
        triggers=[ScheduledTrigger(node_id="tick", cron=cron)],
        saved_at=SAVED,
    )


async def requested(js: JetStreamContext) -> list[ExecutionRequested]:
    """Every request in the log, in the order the server stored them (across partitions)."""
    found: list[tuple[datetime, ExecutionRequested]] = []
    for stream in Layout.from_env().streams:
        last = (await js.stream_info(stream)).state.last_seq
        for seq in range(1, last + 1):
            raw = await js.get_msg(stream, seq)
            assert raw.data is not None
            assert raw.time is not None
            if not is_event_subject(raw.subject or ""):
                continue  # a partition's fence
            event = codec.decode(raw.data)
            if isinstance(event, ExecutionRequested):
                found.append((raw.time, event))
    return [event for _, event in sorted(found, key=lambda found: found[0])]


async def eventually(check: Callable[[], Any], within_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def count_is(js: JetStreamContext, expected: int) -> None:
    # Called after ``move``, which waits for a pass of each firer at the new time: whatever
    # they were going to record by then is in the stream.
    assert len(await requested(js)) == expected


@pytest.fixture
async def kv(jetstream: JetStreamContext) -> KeyValue:
    await ensure_jetstream(jetstream, StreamSettings.from_env())
    return await schedules.open_bucket(jetstream)


@contextlib.asynccontextmanager
async def running(
    js: JetStreamContext,
    clock: FakeClock,
    *,
    grace: timedelta = timedelta(minutes=5),
    publisher: EventPublisher | None = None,
) -> AsyncIterator[CronFirer]:
    firer = CronFirer(js, clock=clock, grace=grace, max_sleep_s=0.05, publisher=publisher)
    task = asyncio.create_task(firer.run())
    try:
        await asyncio.wait_for(firer.loaded(), 5)
        yield firer
    finally:
        firer.stop()
        await asyncio.wait_for(task, 5)


async def save(kv: KeyValue, value: ScheduleEntry) -> None:
    await kv.put(schedules.entry_key(value.workflow_id), schedules.encode_entry(value))


async def move(clock: FakeClock, firers: Sequence[CronFirer], to: datetime) -> None:
    """The clock at ``to``, and each firer done with a pass at that time (not a fixed sleep:
    under load a pass may take long, and an absence seen too early proves nothing)."""
    clock.now = to
    for firer in firers:
        firer.wake()
    for firer in firers:
        await asyncio.wait_for(firer.looked_at(to), 30)


async def test_one_request_per_tick_with_its_id_and_input(
    jetstream: JetStreamContext, kv: KeyValue
) -> None:
    clock = FakeClock(SAVED + timedelta(seconds=5))
    await save(kv, entry())
    async with running(jetstream, clock) as firer:
        await eventually(lambda: "wf1" in firer.workflow_ids)
        await move(clock, [firer], SAVED + timedelta(seconds=6))
        assert await requested(jetstream) == []  # 10:00 was before the schedule was saved

        await move(clock, [firer], minute(1) + timedelta(milliseconds=20))
        await count_is(jetstream, 1)
        await move(clock, [firer], minute(2) + timedelta(seconds=1))
        await count_is(jetstream, 2)

    first, second = await requested(jetstream)
    for event, tick in ((first, minute(1)), (second, minute(2))):
        assert event.execution_id == schedules.execution_id("wf1", "tick", tick)
        assert event.event_id == f"{event.execution_id}.requested"
        assert event.input == [{"scheduled_at": schedules.tick_iso(tick)}]
        assert event.trigger == "tick"
        assert event.mode == "trigger"
        assert event.requested_by == "alice"
        assert event.workflow_id == "wf1"
        assert event.workflow_version == 1
        assert event.workflow == WORKFLOW
    claim = await kv.get(schedules.fired_key("wf1", "tick"))
    assert claim.value == b"2026-11-26T10:02:00Z"


async def test_two_firers_fire_each_tick_once(jetstream: JetStreamContext, kv: KeyValue) -> None:
    clock = FakeClock(SAVED)
    await save(kv, entry())
    one, two = CountingPublisher(jetstream), CountingPublisher(jetstream)
    async with (
        running(jetstream, clock, publisher=one) as a,
        running(jetstream, clock, publisher=two) as b,
    ):
        await eventually(lambda: "wf1" in a.workflow_ids and "wf1" in b.workflow_ids)
        for n in (1, 2, 3, 4):
            await move(clock, [a, b], minute(n))
            await count_is(jetstream, n)
    ids = [e.execution_id for e in await requested(jetstream)]
    assert ids == [schedules.execution_id("wf1", "tick", minute(n)) for n in (1, 2, 3, 4)]
    # The claim, not the duplicate window, kept the second copy from publishing.
    assert sorted(one.published + two.published) == sorted(ids)


async def test_a_late_copy_does_not_fire_a_claimed_tick(
    jetstream: JetStreamContext, kv: KeyValue
) -> None:
    """Beyond the duplicate window only the claim counts: a copy starting after a tick was fired
    (still within grace) leaves it alone."""
    clock = FakeClock(SAVED)
    await save(kv, entry(cron="0 * * * *"))
    async with running(jetstream, clock) as firer:
        await move(clock, [firer], minute(60))
        await count_is(jetstream, 1)
    # 11:00 fired 4 minutes ago: past the 2-minute duplicate window, within the 5-minute grace.
    clock.now = minute(64)
    late = CountingPublisher(jetstream)
    async with running(jetstream, clock, publisher=late) as copy:
        await move(clock, [copy], minute(64) + timedelta(seconds=1))
    assert late.published == []
    await count_is(jetstream, 1)


async def test_a_deleted_schedule_stops(jetstream: JetStreamContext, kv: KeyValue) -> None:
    clock = FakeClock(SAVED)
    await save(kv, entry())
    async with running(jetstream, clock) as firer:
        await eventually(lambda: "wf1" in firer.workflow_ids)
        await move(clock, [firer], minute(1))
        await count_is(jetstream, 1)
        await kv.delete(schedules.entry_key("wf1"))
        await eventually(lambda: "wf1" not in firer.workflow_ids)
        for n in (2, 3):
            await move(clock, [firer], minute(n))
        await count_is(jetstream, 1)


async def test_an_updated_schedule_follows_the_new_cron(
    jetstream: JetStreamContext, kv: KeyValue
) -> None:
    clock = FakeClock(SAVED)
    await save(kv, entry())
    async with running(jetstream, clock) as firer:
        await move(clock, [firer], minute(1))
        await count_is(jetstream, 1)
        await save(kv, entry(cron="*/5 * * * *", version=2))
        await eventually(lambda: getattr(firer.entry("wf1"), "version", None) == 2)
        for n in (2, 3, 4):
            await move(clock, [firer], minute(n))
        await count_is(jetstream, 1)
        await move(clock, [firer], minute(5))
        await count_is(jetstream, 2)
    last = (await requested(jetstream))[-1]
    assert last.workflow_version == 2
    assert last.execution_id == schedules.execution_id("wf1", "tick", minute(5))


async def test_missed_ticks_after_downtime(
    jetstream: JetStreamContext, kv: KeyValue, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="nodedrop.scheduler.cron")
    clock = FakeClock(SAVED)
    grace = timedelta(seconds=20)
    await save(kv, entry())
    async with running(jetstream, clock, grace=grace) as firer:
        await move(clock, [firer], minute(1))
        await count_is(jetstream, 1)

    # Down from 10:01 to 10:04:10: 10:04 is 10 s old (within grace), 10:02 and 10:03 are skipped.
    clock.now = minute(4) + timedelta(seconds=10)
    async with running(jetstream, clock, grace=grace) as firer:
        # A pass after the stored schedule was loaded (the first may come before it).
        await move(clock, [firer], minute(4) + timedelta(seconds=11))
        await count_is(jetstream, 2)
        assert "10:02:00Z to 2026-11-26T10:03:00Z" in caplog.text
        caplog.clear()

        # The clock jumps while running: 10:07 is 30 s old at 10:07:30, past grace: nothing.
        await move(clock, [firer], minute(7) + timedelta(seconds=30))
        await count_is(jetstream, 2)
        assert "10:05:00Z to 2026-11-26T10:07:00Z" in caplog.text

        # The next tick fires as usual.
        await move(clock, [firer], minute(8) + timedelta(seconds=1))
        await count_is(jetstream, 3)

    ticks = [e.input for e in await requested(jetstream)]
    assert ticks == [[{"scheduled_at": schedules.tick_iso(minute(n))}] for n in (1, 4, 8)]
