"""Firing saved workflows on their cron schedules.

The api keeps one entry per scheduled workflow in the key-value bucket ``nodedrop_schedules``
(:mod:`nodedrop.platform.schedules`). :class:`CronFirer` watches the bucket, keeps the
schedules in memory and, at each due tick, records an ``ExecutionRequested`` for it.

Once per tick, with any number of scheduler copies:

1. a tick is *claimed* before it is recorded: the key ``fired.<workflow>.<node>`` holds the last
   fired tick and is advanced with a compare-and-swap (``create`` / ``update(last=revision)``);
   only the copy whose swap succeeds records the tick, a copy that finds the tick (or a later
   one) already claimed does nothing. This holds however late a copy is;
2. the tick's execution id is deterministic (``sched-<uuid5(workflow, node, tick)>``) and so is
   the event id (its ``Nats-Msg-Id``): a repeat within the stream's duplicate window is stored
   once anyway.

If recording fails after the claim, the claim is put back and the tick is tried again on the
next pass (while it is within the grace period). A copy killed between its claim and its
publish (a few milliseconds) loses that tick: a tick runs at most once.

Missed ticks (the scheduler was down, or busy): of the ticks due since the last fired one, only
the most recent is fired, and only if it is at most ``grace`` old (default 5 minutes,
``NODEDROP_SCHEDULE_GRACE_S``); the others are skipped and logged. A tick at or before the time
its schedule was saved never fires. See :func:`plan_ticks`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import msgspec
import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from nodedrop.contracts import cron as cron_rules
from nodedrop.contracts import ids
from nodedrop.contracts.events import ExecutionRequested
from nodedrop.platform import schedules
from nodedrop.platform.bus import EventPublisher, PublishError
from nodedrop.platform.retry import retry_unavailable
from nodedrop.platform.schedules import ScheduleEntry

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
TriggerKey = tuple[str, str]  # (workflow_id, node_id)

DEFAULT_GRACE = timedelta(minutes=5)
#: After a failed record, wait this long before trying the tick again.
_RETRY_AFTER = timedelta(seconds=1)
_CLAIM_ATTEMPTS = 5


def utc_now() -> datetime:
    return datetime.now(UTC)


# ------------------------------------------------------------------------------ the rule


@dataclass(frozen=True)
class TickPlan:
    """What to do about one trigger's ticks at ``now``."""

    #: The tick to fire now, if any.
    fire: datetime | None
    #: First and last tick (inclusive) that are due but will never fire.
    skipped: tuple[datetime, datetime] | None
    #: The first tick after ``now``.
    next_due: datetime


def plan_ticks(cron: str, after: datetime, now: datetime, grace: timedelta) -> TickPlan:
    """The missed-tick rule. Of the ticks in ``(after, now]`` (``after``: the last fired tick,
    or when the schedule was saved), fire the most recent one if it is at most ``grace`` old;
    every other one is skipped."""
    next_due = cron_rules.next_fire_after(cron, now)
    first = cron_rules.next_fire_after(cron, after)
    if first > now:
        return TickPlan(fire=None, skipped=None, next_due=first)
    latest = cron_rules.last_fire_at_or_before(cron, now)
    if now - latest > grace:
        return TickPlan(fire=None, skipped=(first, latest), next_due=next_due)
    skipped = None
    if first < latest:
        skipped = (first, cron_rules.last_fire_at_or_before(cron, latest - timedelta(minutes=1)))
    return TickPlan(fire=latest, skipped=skipped, next_due=next_due)


# ------------------------------------------------------------------------------ the service


@dataclass
class _Trigger:
    cron: str
    #: Ticks at or before this are done with (fired, skipped, or before the schedule existed).
    after: datetime
    due: datetime

    def advance(self, after: datetime) -> None:
        if after > self.after:
            self.after = after
            self.due = cron_rules.next_fire_after(self.cron, after)


class CronFirer:
    def __init__(
        self,
        js: JetStreamContext,
        *,
        clock: Clock = utc_now,
        grace: timedelta = DEFAULT_GRACE,
        max_sleep_s: float = 30.0,
        publisher: EventPublisher | None = None,
        replicas: int = 1,
    ) -> None:
        self._js = js
        self._replicas = replicas  # of the schedules bucket, when this creates it
        self._clock = clock
        self._grace = grace
        self._max_sleep_s = max_sleep_s
        self._publisher = publisher or EventPublisher(js)
        self._kv: KeyValue | None = None
        self._entries: dict[str, ScheduleEntry] = {}
        self._triggers: dict[TriggerKey, _Trigger] = {}
        self._stopping = asyncio.Event()
        self._changed = asyncio.Event()
        self._loaded = asyncio.Event()
        #: The clock's reading at the start of the last pass over the triggers that finished.
        self._looked_at: datetime | None = None
        self._looked = asyncio.Event()

    # -------------------------------------------------------------- control

    @property
    def workflow_ids(self) -> set[str]:
        """The scheduled workflows known to this copy."""
        return set(self._entries)

    def entry(self, workflow_id: str) -> ScheduleEntry | None:
        """The schedule this copy follows for ``workflow_id``, if any."""
        return self._entries.get(workflow_id)

    async def loaded(self) -> None:
        """Returns once the entries stored when the firer started are in memory."""
        await self._loaded.wait()

    async def looked_at(self, moment: datetime) -> None:
        """Returns once a pass over the triggers has finished that read the clock at ``moment``
        or later: every tick due by then is fired, or claimed by another copy. (A test that
        moves a fake clock waits for this instead of sleeping.)"""
        while self._looked_at is None or self._looked_at < moment:
            self._looked.clear()
            await self._looked.wait()

    def stop(self) -> None:
        self._stopping.set()
        self._changed.set()

    def wake(self) -> None:
        """Look at the clock again now (tests move a fake clock)."""
        self._changed.set()

    async def run(self) -> None:
        # A cluster electing a leader (a node died as the scheduler started) answers 503 or
        # nothing for a while: wait for it rather than take the scheduler down.
        self._kv = await retry_unavailable(
            lambda: schedules.open_bucket(self._js, self._replicas),
            what="open the schedules bucket",
            attempts=20,
        )
        kv = self._kv
        watcher = await retry_unavailable(
            lambda: kv.watch(schedules.ENTRY_KEYS), what="watch the schedules", attempts=20
        )
        following = asyncio.create_task(self._follow(watcher), name="schedules watcher")
        log.info("cron firer running (grace %s)", self._grace)
        try:
            while not self._stopping.is_set():
                if following.done():
                    following.result()  # the watcher failed: let the service restart
                self._changed.clear()
                await self.fire_due()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), self._sleep_s())
        finally:
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following
            with contextlib.suppress(nats.errors.Error):
                await watcher.stop()  # type: ignore[no-untyped-call]  # nats-py: untyped

    def _sleep_s(self) -> float:
        if not self._triggers:
            return self._max_sleep_s
        soonest = min(t.due for t in self._triggers.values())
        wait = (soonest - self._clock()).total_seconds()
        return min(max(wait, 0.0), self._max_sleep_s)

    # -------------------------------------------------------------- entries

    async def _follow(self, watcher: KeyValue.KeyWatcher) -> None:
        async for update in watcher:
            if update is None:  # the stored entries have all been delivered
                self._loaded.set()
                continue
            workflow_id = schedules.workflow_id_of(update.key)
            if update.operation in {"DEL", "PURGE"} or not update.value:
                self._forget(workflow_id)
            else:
                try:
                    entry = schedules.decode_entry(update.value)
                except (msgspec.DecodeError, ValueError) as error:
                    log.error("schedule %s is unreadable, ignored: %s", update.key, error)
                    self._forget(workflow_id)
                    continue
                await self._learn(entry)
            self._changed.set()

    def _forget(self, workflow_id: str) -> None:
        if self._entries.pop(workflow_id, None) is not None:
            log.info("schedule of workflow %s removed", workflow_id)
        for key in [k for k in self._triggers if k[0] == workflow_id]:
            del self._triggers[key]

    async def _learn(self, entry: ScheduleEntry) -> None:
        workflow_id = entry.workflow_id
        self._entries[workflow_id] = entry
        crons = {t.node_id: t.cron for t in entry.triggers}
        for key in [k for k in self._triggers if k[0] == workflow_id and k[1] not in crons]:
            del self._triggers[key]
        for node_id, cron in crons.items():
            key = (workflow_id, node_id)
            known = self._triggers.get(key)
            after = max(entry.saved_at, known.after if known else entry.saved_at)
            if known is None:
                claimed = await self._claimed(key)
                if claimed is not None:
                    after = max(after, claimed)
            try:
                due = cron_rules.next_fire_after(cron, after)
            except ValueError as error:  # checked when saved, so only a hand-written entry
                log.error("schedule %s/%s has a bad cron %r: %s", *key, cron, error)
                self._triggers.pop(key, None)
                continue
            self._triggers[key] = _Trigger(cron=cron, after=after, due=due)
        log.info(
            "schedule of workflow %s version %s: %s",
            workflow_id,
            entry.version,
            ", ".join(f"{t.node_id} {t.cron!r}" for t in entry.triggers),
        )

    # -------------------------------------------------------------- firing

    async def fire_due(self) -> list[str]:
        """Fire every trigger whose tick is due (per the missed-tick rule); return the ids of the
        executions this copy recorded."""
        now = self._clock()
        recorded: list[str] = []
        for key, trigger in list(self._triggers.items()):
            if trigger.due > now or self._triggers.get(key) is not trigger:
                continue
            plan = plan_ticks(trigger.cron, trigger.after, now, self._grace)
            if plan.skipped is not None:
                first, last = plan.skipped
                log.warning(
                    "schedule %s/%s: missed ticks %s to %s skipped (older than the %s grace "
                    "period, or superseded by a later tick)",
                    *key,
                    schedules.tick_iso(first),
                    schedules.tick_iso(last),
                    self._grace,
                )
                trigger.advance(last)
            if plan.fire is None:
                continue
            execution_id = await self._fire(key, trigger, plan.fire)
            if execution_id is not None:
                recorded.append(execution_id)
        self._looked_at = now
        self._looked.set()
        return recorded

    async def _fire(self, key: TriggerKey, trigger: _Trigger, tick: datetime) -> str | None:
        entry = self._entries.get(key[0])
        if entry is None:
            return None
        try:
            claim = await self._claim(key, tick)
        except (nats.errors.Error, OSError) as error:
            log.warning("schedule %s/%s: claiming tick %s failed: %r", *key, tick, error)
            trigger.due = self._clock() + _RETRY_AFTER
            return None
        if isinstance(claim, datetime):  # another copy has it (or a later tick)
            trigger.advance(claim)
            return None
        execution_id = schedules.execution_id(key[0], key[1], tick)
        tick_text = schedules.tick_iso(tick)
        event = ExecutionRequested(
            event_id=ids.execution_requested(execution_id),
            execution_id=execution_id,
            time=self._clock(),
            workflow=entry.workflow,
            requested_by=entry.owner,
            mode="trigger",
            trigger=key[1],
            input=[{"scheduled_at": tick_text}],
            workflow_id=entry.workflow_id,
            workflow_version=entry.version,
        )
        try:
            await self._publisher.publish([event])
        except PublishError as error:
            log.warning("schedule %s/%s: recording tick %s failed: %s", *key, tick_text, error)
            await self._release(key, claim)
            trigger.due = self._clock() + _RETRY_AFTER
            return None
        trigger.advance(tick)
        log.info("schedule %s/%s: tick %s -> execution %s", *key, tick_text, execution_id)
        return execution_id

    # -------------------------------------------------------------- claims

    async def _claimed(self, key: TriggerKey) -> datetime | None:
        """The last tick fired for the trigger, by any copy (None if none, or unreadable)."""
        assert self._kv is not None
        try:
            current = await self._kv.get(schedules.fired_key(*key))
        except KeyNotFoundError:
            return None
        except (nats.errors.Error, OSError) as error:
            log.warning("schedule %s/%s: reading its last tick failed: %r", *key, error)
            return None
        return _tick_of(current.value)

    async def _claim(self, key: TriggerKey, tick: datetime) -> _Claim | datetime:
        """Advance the trigger's claim to ``tick``. Returns the claim made, or the tick already
        claimed (at or after ``tick``) when another copy was first."""
        assert self._kv is not None
        name = schedules.fired_key(*key)
        value = schedules.tick_iso(tick).encode()
        for _ in range(_CLAIM_ATTEMPTS):
            try:
                current = await self._kv.get(name)
            except KeyNotFoundError:
                current = None
            previous = _tick_of(current.value) if current is not None else None
            if previous is not None and previous >= tick:
                return previous
            try:
                if current is None:
                    revision = await self._kv.create(name, value)
                else:
                    revision = await self._kv.update(name, value, last=current.revision)
            except KeyWrongLastSequenceError:
                continue  # changed under us: look again
            return _Claim(revision=revision, previous=current.value if current else None)
        # Lost the race every time: others are claiming it.
        return tick

    async def _release(self, key: TriggerKey, claim: _Claim) -> None:
        """Undo a claim whose tick could not be recorded, unless someone claimed since."""
        assert self._kv is not None
        name = schedules.fired_key(*key)
        try:
            if claim.previous is None:
                await self._kv.delete(name, last=claim.revision)
            else:
                await self._kv.update(name, claim.previous, last=claim.revision)
        except (nats.errors.Error, OSError) as error:
            log.error("schedule %s/%s: could not release a claim, tick lost: %r", *key, error)


@dataclass(frozen=True)
class _Claim:
    revision: int
    previous: bytes | None


def _tick_of(value: bytes | None) -> datetime | None:
    if not value:
        return None
    try:
        return schedules.parse_tick(value.decode())
    except (UnicodeDecodeError, ValueError):
        return None
