"""The scheduler service: the thin adapter around the pure core.

For each batch of input events it loads, folds, decides, records, then acknowledges:

1. take what the consumer has (no waiting for a batch to fill);
2. fold each event into its execution's state with ``core.step``; an execution not in memory
   (after a restart, or a redelivery) is first rebuilt from its history in the stream and
   ``core.resume``d, so a decision lost in a crash is made again;
3. fire due timers with ``core.tick``;
4. record all decisions in one batch of publishes (deterministic ``Nats-Msg-Id``s: nothing is
   recorded twice), together with the set of unfinished executions;
5. only then acknowledge the inputs. If recording fails, the inputs are redelivered and the
   executions concerned are rebuilt from the stream before they are touched again.

Recording is pipelined: while one batch waits for its publishes to be stored (each an fsync on
the server), the next batch is decided and recorded, up to ``max_in_flight`` batches. An
execution is in at most one batch in flight: its further inputs and timers wait until that
batch is recorded (or has failed and the execution is to be rebuilt), so every execution's
decisions are still made from a state whose earlier decisions are recorded or known lost.

The scheduler decides only for the partitions it owns (:mod:`nodedrop.scheduler.partitions`):
each with its fence, its own consumer and its set of unfinished executions. Every decision is
published under its partition's fence; a batch the stream refuses for a fence that moved on
means the partition was taken over, and it is dropped here with everything of it in memory.

A new execution starts only once it has a slot of every concurrency limit that applies to it
(:mod:`nodedrop.scheduler.admission`); until then it is queued, and the queue is tried again
whenever an execution ends here, and every half second (slots given back by other schedulers).

A node attempt goes to the runners only within its user's share of them
(:mod:`nodedrop.scheduler.shares`); beyond it, the attempt is deferred and made ready, at the end
of a batch, once one of the user's attempts has ended.

The scheduler never waits on PostgreSQL. All state is per execution, keyed by execution id.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from nodedrop.contracts import codec
from nodedrop.contracts.codec import EventDecodeError
from nodedrop.contracts.events import Event, ExecutionFinished, ExecutionRequested
from nodedrop.platform.bus import FencedError
from nodedrop.platform.consumerlag import Sampled
from nodedrop.platform.event_log import Delivery, EventLog
from nodedrop.platform.key_values import KeyValueStore
from nodedrop.platform.logsetup import bind
from nodedrop.platform.metrics import (
    EXECUTIONS_ACTIVE,
    SCHEDULER_BATCH_SIZE,
    SCHEDULER_DECIDE_SECONDS,
    SCHEDULER_RECORD_SECONDS,
)
from nodedrop.scheduler.active import DEFAULT_SNAPSHOT_INTERVAL_S, ActiveExecutions
from nodedrop.scheduler.admission import Claim, ConcurrencyGate, KvGate, claims_of
from nodedrop.scheduler.core import (
    ExecutionState,
    admit,
    dispatch,
    evolve,
    next_wakeup,
    queue,
    resume,
    step,
    tick,
)
from nodedrop.scheduler.core.rules import MAX_INPUT_BYTES
from nodedrop.scheduler.observed import count_recorded
from nodedrop.scheduler.partitions import Ownership, fence_holds, take_over
from nodedrop.scheduler.shares import RunnerShares
from nodedrop.scheduler.snapshot_store import SnapshotStore

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

#: How often queued executions are tried again without an execution ending here.
ADMISSION_INTERVAL_S = 0.5


def utc_now() -> datetime:
    return datetime.now(UTC)


class RecentlyFinished:
    """Ids of executions that ended lately: their late events are dropped without a lookup."""

    def __init__(self, size: int = 100_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def add(self, execution_id: str) -> None:
        self._ids[execution_id] = None
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)

    def __contains__(self, execution_id: object) -> bool:
        return execution_id in self._ids


@dataclass
class _Owned:
    ownership: Ownership
    active: ActiveExecutions


@dataclass
class _Batch:
    now: datetime
    decisions: list[Event] = field(default_factory=list)
    #: Inputs to acknowledge once the decisions are recorded.
    inputs: list[Delivery] = field(default_factory=list)
    #: Executions seen for the first time: listed as unfinished with the decisions.
    new: list[str] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)
    #: Listed as unfinished, but their history says finished (or is gone, pruned): a crash
    #: came between recording the end and unlisting them.
    unlist: list[str] = field(default_factory=list)
    #: Concurrency limits found full in this batch: further new executions under them are
    #: queued without asking the gate again (a flood costs one lookup per batch).
    full: dict[tuple[str, str], Claim] = field(default_factory=dict)


class Scheduler:
    """Decides for the partitions it owns, over the event log ``log`` and the key-value store
    ``kv`` (its snapshots and, unless ``gate`` is given, the shared concurrency slots)."""

    def __init__(
        self,
        log: EventLog,
        kv: KeyValueStore,
        *,
        clock: Clock = utc_now,
        batch_size: int = 512,
        history_concurrency: int = 16,
        max_in_flight: int = 8,
        snapshot_interval_s: float = DEFAULT_SNAPSHOT_INTERVAL_S,
        owner: str | None = None,
        gate: ConcurrencyGate | None = None,
        max_concurrent_per_user: int | None = None,
        max_running_nodes_per_user: int | None = None,
        max_input_bytes: int = MAX_INPUT_BYTES,
    ) -> None:
        self._log = log
        self._kv = kv
        self._clock = clock
        self._batch_size = batch_size
        self._history_limit = asyncio.Semaphore(history_concurrency)
        self._layout = log.layout
        self._limit = max_input_bytes
        #: Names this process in fences, consumers and snapshot keys: unique per start.
        self.owner = owner or uuid.uuid4().hex[:12]
        self._takeovers = 0
        self._snapshot_interval_s = snapshot_interval_s
        self._owned: dict[int, _Owned] = {}
        self._states: dict[str, ExecutionState] = {}
        self._finished = RecentlyFinished()
        self._wakeups: list[tuple[datetime, str]] = []
        self._scheduled: dict[str, datetime] = {}
        #: Executions whose in-memory state may be behind the stream (a failed record).
        self._stale: set[str] = set()
        self._stopping = asyncio.Event()
        #: Batches being recorded, and how many of them hold each execution.
        self._records: set[asyncio.Task[None]] = set()
        self._max_in_flight = max_in_flight
        self._in_flight: dict[str, int] = {}
        #: Inputs of executions in flight, in arrival order: decided once those are recorded.
        self._held: list[tuple[Delivery, Event]] = []
        #: Executions whose timer fell due while they were in flight.
        self._deferred_ticks: set[str] = set()
        self._consumer = log.input_feed(capacity=2 * batch_size)
        self._running = False
        #: Concurrency limits: the gate (by default the shared one, opened at the first
        #: takeover), the per-user limit, and the executions queued here in arrival order.
        self._gate = gate
        self._per_user = max_concurrent_per_user
        self._queued: dict[str, list[Claim]] = {}
        #: How many of them wait on each limit: a new execution under one waits behind them.
        self._waiting_on: Counter[tuple[str, str]] = Counter()
        self._next_admission = 0.0
        #: Each user's share of the runners (no limit: every attempt goes at once).
        self._shares = RunnerShares(max_running_nodes_per_user)

    @property
    def active_count(self) -> int:
        return len(self._states)

    @property
    def partitions(self) -> list[int]:
        """The partitions this scheduler owns now."""
        return sorted(self._owned)

    def consumers(self) -> list[Sampled]:
        """The consumers of the partitions owned now, for the lag metrics."""
        return [
            Sampled("scheduler", partition, owned.ownership.stream, owned.ownership.consumer)
            for partition, owned in sorted(self._owned.items())
        ]

    def stop(self) -> None:
        self._stopping.set()

    async def run(self, partitions: Iterable[int] | None = None) -> None:
        """Take ``partitions`` over (by default all) and decide for them until stopped."""
        self._running = True
        try:
            for partition in range(self._layout.partitions) if partitions is None else partitions:
                await self.take(partition)
            await self.handle([])
            while not self._stopping.is_set():
                await self.turn()
        finally:
            self._running = False
            await self.drain()
            await self._consumer.stop()
            for owned in self._owned.values():
                await owned.active.close()
            self._owned.clear()

    async def turn(
        self, limit: int | None = None, wait_s: float | None = None, *, wait: bool = False
    ) -> None:
        """One turn of the loop: take up to ``limit`` inputs (by default a batch) that are
        waiting, or come within ``wait_s`` (by default until the next timer, at most 1 s);
        decide on them, on due timers and on what earlier records held back; record the
        decisions (in the background, or awaited with ``wait``)."""
        msgs = await self._consumer.next_batch(
            self._batch_size if limit is None else limit,
            self._wait_s() if wait_s is None else wait_s,
        )
        for batch in _isolating_redeliveries(msgs):
            await self._handle_or_give_back(batch, wait=wait)
        while self._released_work():
            await self._handle_or_give_back([], wait=wait)

    def next_timer(self) -> datetime | None:
        """When the earliest timer of an execution in memory is due."""
        return min(self._scheduled.values(), default=None)

    async def take(self, partition: int) -> None:
        """Become ``partition``'s owner: fence it, read its unfinished executions (rebuilt
        before anything else is decided for them) and read its inputs."""
        self._takeovers += 1
        if self._gate is None:
            self._gate = KvGate(self._kv, self._has_finished)
        ownership = await take_over(self._log, partition, owner=self.owner)
        active = ActiveExecutions(
            self._log,
            SnapshotStore(self._kv, partition, f"{self.owner}{self._takeovers}"),
            partition=partition,
            consumer=ownership.consumer,
            snapshot_interval_s=self._snapshot_interval_s,
            on_lost=lambda: self._lose_soon(partition),
        )
        await active.open()
        self._owned[partition] = _Owned(ownership, active)
        self._stale.update(await active.ids())
        await self._consumer.add(ownership.stream, ownership.consumer)
        self._consumer.wake()  # its unfinished executions are to be rebuilt now

    async def release(self, partition: int) -> None:
        """Hand ``partition`` back on purpose: stop taking its inputs, let what is being
        recorded finish, store its snapshot, then forget it (its next owner takes over from
        there)."""
        owned = self._owned.get(partition)
        if owned is None:
            return
        for msg in await self._consumer.remove(owned.ownership.stream):
            asyncio.get_running_loop().create_task(_nak_quietly(msg))
        await self.drain()
        with contextlib.suppress(Exception):
            await owned.active.snapshot()
        await self._forget_partition(partition)
        log.info("handed partition %d back", partition)

    def _lose_soon(self, partition: int) -> None:
        asyncio.get_running_loop().create_task(self.lose(partition))

    async def lose(self, partition: int) -> None:
        """Stop deciding for ``partition`` (taken over by another process): forget everything
        of it. Its inputs delivered here stay unacknowledged on a consumer the new owner
        deletes."""
        if partition not in self._owned:
            return
        log.error("partition %d was taken over by another scheduler: no longer deciding for it",
                  partition)  # fmt: skip
        await self._forget_partition(partition)

    async def _forget_partition(self, partition: int) -> None:
        owned = self._owned.pop(partition, None)
        if owned is None:
            return
        await self._consumer.remove(owned.ownership.stream)
        await owned.active.close()
        mine = self._layout.partition_of
        for execution_id in [i for i in self._states if mine(i) == partition]:
            self._states.pop(execution_id, None)
            self._scheduled.pop(execution_id, None)
            self._shares.forget(execution_id)
        self._stale = {i for i in self._stale if mine(i) != partition}
        for execution_id in [i for i in self._queued if mine(i) == partition]:
            self._dequeue(execution_id)
        self._held = [(m, e) for m, e in self._held if mine(e.execution_id) != partition]
        self._deferred_ticks = {i for i in self._deferred_ticks if mine(i) != partition}

    def _owns(self, execution_id: str) -> bool:
        return self._layout.partition_of(execution_id) in self._owned

    async def drain(self) -> None:
        """Wait until every batch in flight is recorded (or has failed)."""
        while self._records:
            await asyncio.gather(*self._records, return_exceptions=True)

    async def _handle_or_give_back(self, msgs: list[Delivery], *, wait: bool = False) -> None:
        try:
            await self.handle(msgs, wait=wait)
        except _BatchFailedError as failure:  # e.g. a history read timed out while NATS was away
            log.exception("a batch of %d events failed; redelivering it", len(failure.msgs))
            await self._give_back(failure.msgs)

    async def _give_back(self, msgs: list[Delivery]) -> None:
        """Have a failed batch redelivered, and forget what it may have half-applied: its
        executions are rebuilt from the stream before they are touched again."""
        for msg in msgs:
            with contextlib.suppress(EventDecodeError):
                execution_id = codec.decode(msg.data).execution_id
                self._states.pop(execution_id, None)
                self._shares.forget(execution_id)
                self._stale.add(execution_id)
            with contextlib.suppress(Exception):
                await msg.nak(delay=_redelivery_delay_s(msg))
        await asyncio.sleep(0.5)

    # ------------------------------------------------------------------ one batch
    async def handle(self, msgs: list[Delivery], *, wait: bool = True) -> None:
        """Decide on ``msgs`` (and on held inputs now free, stale executions, due timers) and
        record the decisions: awaited with ``wait``, else in the background once fewer than
        ``max_in_flight`` batches are in flight. Raises :class:`_BatchFailedError` with the
        messages to give back if deciding failed."""
        while len(self._records) >= self._max_in_flight:
            await asyncio.wait(self._records, return_when=asyncio.FIRST_COMPLETED)
        batch = _Batch(self._clock())
        work = self._release_held()
        for msg in msgs:
            try:
                event = codec.decode(msg.data)
            except EventDecodeError:
                log.error(
                    "dropping an undecodable message on %s (seq %s)",
                    msg.subject,
                    msg.metadata.sequence.stream,
                )
                await msg.term()
                continue
            if event.execution_id in self._in_flight:
                self._held.append((msg, event))
            else:
                work.append((msg, event))
        if msgs:
            SCHEDULER_BATCH_SIZE.observe(len(msgs))
        try:
            with SCHEDULER_DECIDE_SECONDS.time():
                await self._decide_batch(batch, work)
        except Exception as error:
            raise _BatchFailedError([msg for msg, _ in work]) from error
        if not (batch.decisions or batch.inputs or batch.touched or batch.unlist):
            return  # (a rebuilt execution with nothing to decide yet still needs its timers)
        # From here to the registration below nothing awaits: no other batch can take up
        # these executions before they count as in flight.
        record = asyncio.create_task(self._record(batch))
        self._records.add(record)
        for execution_id in batch.touched:
            self._in_flight[execution_id] = self._in_flight.get(execution_id, 0) + 1
        record.add_done_callback(lambda _: self._recorded(record, batch))
        if wait:
            await record

    def _recorded(self, record: asyncio.Task[None], batch: _Batch) -> None:
        self._records.discard(record)
        for execution_id in batch.touched:
            left = self._in_flight.pop(execution_id, 1) - 1
            if left:
                self._in_flight[execution_id] = left
        if not record.cancelled() and (error := record.exception()) is not None:
            log.error("recording a batch failed unexpectedly", exc_info=error)
        if (self._held or self._deferred_ticks or self._dispatchable()) and self._running:
            self._consumer.wake()  # the loop decides what this record held back

    def _release_held(self) -> list[tuple[Delivery, Event]]:
        """Held inputs whose executions are no longer in flight, in arrival order."""
        free = [(m, e) for m, e in self._held if e.execution_id not in self._in_flight]
        if free:
            self._held = [(m, e) for m, e in self._held if e.execution_id in self._in_flight]
        return free

    def _released_work(self) -> bool:
        """Whether a finished record left held inputs or deferred timers free to decide."""
        return (
            any(e.execution_id not in self._in_flight for _, e in self._held)
            or any(i not in self._in_flight for i in self._deferred_ticks)
            or self._dispatchable()
        )

    async def _decide_batch(self, batch: _Batch, work: list[tuple[Delivery, Event]]) -> None:
        stale = {i for i in self._stale if i not in self._in_flight}
        rebuilt = await self._rebuild(stale, batch.now)
        self._stale -= stale  # only once rebuilt: a failed read leaves them to the next batch
        for execution_id, state, recovered in rebuilt:
            batch.touched.add(execution_id)
            batch.decisions.extend(recovered)
            if state is not None:
                self._states[execution_id] = state
            else:
                batch.unlist.append(execution_id)
        for msg, event in work:
            await self._decide(msg, event, batch)
        for execution_id in self._due(batch.now):
            state = self._states.get(execution_id)
            if state is not None:
                ticked = tick(state, batch.now, share=self._shares, max_input_bytes=self._limit)
                self._shares.observe(execution_id, ticked)
                batch.decisions.extend(ticked)
                batch.touched.add(execution_id)
        await self._admit_queued(batch)
        self._dispatch_deferred(batch)

    async def _decide(self, msg: Delivery, event: Event, batch: _Batch) -> None:
        with bind(execution_id=event.execution_id):
            await self._decide_one(msg, event, batch)

    async def _decide_one(self, msg: Delivery, event: Event, batch: _Batch) -> None:
        execution_id = event.execution_id
        owned = self._owned.get(self._layout.partition_of(execution_id))
        if owned is None:
            return  # lost meanwhile: never acknowledged here
        batch.inputs.append(msg)
        if execution_id in self._finished:
            return
        state = self._states.get(execution_id)
        if state is None and (
            not isinstance(event, ExecutionRequested)
            or msg.metadata.num_delivered > 1
            or msg.metadata.sequence.stream <= owned.ownership.replayed_through
        ):
            # Not seen since this process started: the stream knows what happened.
            [(_, state, recovered)] = await self._rebuild([execution_id], batch.now)
            batch.decisions.extend(recovered)
            batch.touched.add(execution_id)
            if state is None:
                return
            self._states[execution_id] = state
        full: Claim | None = None
        if state is None and isinstance(event, ExecutionRequested):
            full = await self._acquire(execution_id, event, batch.full)
        try:
            # A result gives its attempt's place back before the step, which may use it.
            self._shares.observe(execution_id, [event])
            state, decided = step(
                state,
                event,
                batch.now,
                admitted=full is None,
                share=self._shares,
                max_input_bytes=self._limit,
            )
            if state is not None and full is not None:
                decided += self._queue(state, batch.now, full)
            self._shares.observe(execution_id, decided)
        except Exception:  # a bug must not stop every other execution
            log.exception("deciding on %s of %s failed", type(event).__name__, execution_id)
            self._states.pop(execution_id, None)
            self._shares.forget(execution_id)
            batch.inputs.remove(msg)
            await msg.nak(delay=_redelivery_delay_s(msg))
            return
        if state is None:
            return
        if execution_id not in self._states:
            batch.new.append(execution_id)
            self._states[execution_id] = state
        batch.decisions.extend(decided)
        batch.touched.add(execution_id)

    async def _record(self, batch: _Batch) -> None:
        """Record the batch's decisions, then acknowledge its inputs (or have them redelivered
        and the executions rebuilt, if recording failed)."""
        with SCHEDULER_RECORD_SECONDS.time():
            await self._record_batch(batch)
        EXECUTIONS_ACTIVE.set(len(self._states))

    async def _record_batch(self, batch: _Batch) -> None:
        ended = [i for i in batch.touched if (s := self._states.get(i)) is not None and s.finished]
        fences = {p: owned.ownership.fence for p, owned in self._owned.items()}
        try:
            # not only batch.new: an execution rebuilt after a failed batch is listed too
            for execution_id in batch.touched:
                if execution_id in self._states:
                    self._active_of(execution_id).add(execution_id)
            await self._log.publish(batch.decisions, fences=fences)
        except FencedError as error:
            log.warning("a batch was refused under a fence: %r", error)
            await self._check_fences(batch)
            self._forget(batch)
            return
        except Exception as error:  # PublishError mostly; also an event too large to send
            log.warning(
                "recording %d decisions failed (%r); will rebuild %d executions",
                len(batch.decisions),
                error,
                len(batch.touched),
            )
            self._forget(batch)
            return
        count_recorded(batch.decisions, self._states)
        for msg in batch.inputs:
            await msg.ack()
        await self._release(ended)
        for execution_id in ended:
            self._states.pop(execution_id, None)
            self._scheduled.pop(execution_id, None)
            self._shares.forget(execution_id)
            self._finished.add(execution_id)
        for execution_id in batch.touched - set(ended):
            self._schedule(execution_id)
        for execution_id in ended + batch.unlist:
            with contextlib.suppress(KeyError):
                self._active_of(execution_id).remove(execution_id)

    def _active_of(self, execution_id: str) -> ActiveExecutions:
        """The set of the execution's partition (KeyError: not owned here any more)."""
        return self._owned[self._layout.partition_of(execution_id)].active

    def _forget(self, batch: _Batch) -> None:
        """A batch not recorded: its executions are rebuilt before they are touched again, and
        its inputs (of partitions still owned) come again."""
        for execution_id in batch.touched:
            self._states.pop(execution_id, None)
            self._shares.forget(execution_id)
        self._stale.update(i for i in batch.touched if self._owns(i))
        for msg in batch.inputs:
            asyncio.get_running_loop().create_task(_nak_quietly(msg))

    async def _check_fences(self, batch: _Batch) -> None:
        """After a refused batch: give up each partition of it whose fence moved on."""
        partitions = {self._layout.partition_of(i) for i in batch.touched}
        for partition in partitions:
            owned = self._owned.get(partition)
            if owned is None:
                continue
            try:
                holds = await fence_holds(self._log, owned.ownership)
            except Exception:
                log.warning("fence of partition %d not read", partition, exc_info=True)
                continue
            if not holds:
                await self.lose(partition)

    async def _rebuild(
        self,
        execution_ids: Iterable[str],
        now: datetime,
    ) -> list[tuple[str, ExecutionState | None, list[Event]]]:
        async def one(execution_id: str) -> tuple[str, ExecutionState | None]:
            async with self._history_limit:
                history = await self._log.history(execution_id)
            state: ExecutionState | None = None
            for _, event in history:
                state = evolve(state, event)
            if state is not None and state.finished:
                self._finished.add(execution_id)
                return execution_id, None
            if state is not None:
                self._shares.sync(state)
            return execution_id, state

        read = await asyncio.gather(*(one(i) for i in execution_ids))
        # Those not started yet ask for their slots one by one, in the order they were
        # requested (first come, first served, as when they were new).
        rebuilt: list[tuple[str, ExecutionState | None, list[Event]]] = []
        for execution_id, state in sorted(read, key=_request_order):
            if state is None:
                rebuilt.append((execution_id, None, []))
                continue
            full = None if state.started else await self._acquire(execution_id, state.request)
            if full is None:
                resumed = resume(state, now, share=self._shares, max_input_bytes=self._limit)
                self._shares.observe(execution_id, resumed)
                rebuilt.append((execution_id, state, resumed))
            else:
                waiting = resume(
                    state, now, admitted=False, max_input_bytes=self._limit
                ) + self._queue(state, now, full)
                rebuilt.append((execution_id, state, waiting))
        return rebuilt

    # ------------------------------------------------------------------ timers
    def _schedule(self, execution_id: str) -> None:
        state = self._states.get(execution_id)
        wakeup = next_wakeup(state) if state is not None else None
        if wakeup is None:
            self._scheduled.pop(execution_id, None)
        elif self._scheduled.get(execution_id) != wakeup:
            self._scheduled[execution_id] = wakeup
            heapq.heappush(self._wakeups, (wakeup, execution_id))
            if self._wakeups[0][1] == execution_id and self._running:
                # The loop may be waiting for messages past this, the earliest timer now
                # (recorded in the background while it waited).
                self._consumer.wake()

    def _due(self, now: datetime) -> list[str]:
        due = []
        while self._wakeups and self._wakeups[0][0] <= now:
            wakeup, execution_id = heapq.heappop(self._wakeups)
            if self._scheduled.get(execution_id) != wakeup:
                continue
            del self._scheduled[execution_id]
            if execution_id in self._in_flight:
                self._deferred_ticks.add(execution_id)  # fired once its batch is recorded
            else:
                due.append(execution_id)
        free = [i for i in self._deferred_ticks if i not in self._in_flight]
        self._deferred_ticks.difference_update(free)
        return due + free

    def _wait_s(self) -> float:
        """How long the consumer may wait for messages before a timer is due (at most 1 s)."""
        if any(i not in self._in_flight for i in self._stale):
            return 0.0
        longest = ADMISSION_INTERVAL_S if self._queued else 1.0
        if not self._wakeups:
            return longest
        return min(max((self._wakeups[0][0] - self._clock()).total_seconds(), 0.0), longest)

    # ------------------------------------------------------------------ concurrency limits
    def _claims(self, request: ExecutionRequested) -> list[Claim]:
        return claims_of(request, per_user=self._per_user)

    async def _acquire(
        self,
        execution_id: str,
        request: ExecutionRequested,
        known_full: dict[tuple[str, str], Claim] | None = None,
    ) -> Claim | None:
        """A slot of every limit of a new execution: None if taken, else the full limit (one
        of ``known_full``, found full earlier in the batch, without asking the gate)."""
        claims = self._claims(request)
        if not claims or self._gate is None:
            return None
        known_full = {} if known_full is None else known_full
        for claim in claims:
            if (claim.scope, claim.key) in known_full:
                return known_full[(claim.scope, claim.key)]
            if self._waiting_on[(claim.scope, claim.key)] and execution_id not in self._queued:
                return claim  # first come, first served: it waits behind those queued here
        full = await self._gate.acquire(execution_id, claims)
        if full is not None:
            known_full[(full.scope, full.key)] = full
        return full

    def _queue(self, state: ExecutionState, now: datetime, full: Claim) -> list[Event]:
        """Queue an execution without a slot here (tried again by :meth:`_admit_queued`)."""
        if state.execution_id not in self._queued:
            claims = self._claims(state.request)
            self._queued[state.execution_id] = claims
            self._waiting_on.update((c.scope, c.key) for c in claims)
        return queue(state, now, scope=full.scope, key=full.key, limit=full.limit)

    async def _admit_queued(self, batch: _Batch) -> None:
        """Start the queued executions that have a slot now, in the order they came; once a
        limit is found full, the others waiting on it are not asked this round."""
        loop_time = asyncio.get_running_loop().time()
        if not self._queued or self._gate is None or loop_time < self._next_admission:
            return
        self._next_admission = loop_time + ADMISSION_INTERVAL_S
        full: set[tuple[str, str]] = set()
        for execution_id, claims in list(self._queued.items()):
            if execution_id in self._in_flight:
                continue
            state = self._states.get(execution_id)
            if state is None or state.started or state.finished:
                # Ended, or forgotten: if it is to be rebuilt, the rebuild queues it again.
                self._dequeue(execution_id)
                continue
            if any((c.scope, c.key) in full for c in claims):
                continue
            blocked = await self._gate.acquire(execution_id, claims)
            if blocked is not None:
                full.add((blocked.scope, blocked.key))
                continue
            self._dequeue(execution_id)
            admitted = admit(state, batch.now, share=self._shares, max_input_bytes=self._limit)
            self._shares.observe(execution_id, admitted)
            batch.decisions.extend(admitted)
            batch.touched.add(execution_id)

    # ------------------------------------------------------------------ shares of the runners
    def _dispatch_deferred(self, batch: _Batch) -> None:
        """Make ready the deferred attempts of users with room on the runners again, each
        user's oldest first (an execution being recorded waits for its record)."""
        for user, executions in self._shares.waiting():
            for execution_id in executions:
                if execution_id in self._in_flight:
                    continue
                state = self._states.get(execution_id)
                made_ready = (
                    []
                    if state is None
                    else dispatch(state, batch.now, self._shares, max_input_bytes=self._limit)
                )
                if made_ready:
                    self._shares.observe(execution_id, made_ready)
                    batch.decisions.extend(made_ready)
                    batch.touched.add(execution_id)
                if not self._shares.has_room(user):
                    break  # full again: the rest keep their turn
                # Nothing left to make ready (or nothing it can: its input grew too large, and
                # that failure is on its way): no longer waiting for room.
                self._shares.done_waiting(execution_id)

    def _dispatchable(self) -> bool:
        """Whether a user with room on the runners has deferred attempts that can go now."""
        return any(
            any(i not in self._in_flight for i in executions)
            for _, executions in self._shares.waiting()
        )

    def _dequeue(self, execution_id: str) -> None:
        claims = self._queued.pop(execution_id, None)
        if claims is not None:
            self._waiting_on.subtract((c.scope, c.key) for c in claims)

    async def _release(self, ended: list[str]) -> None:
        """Give back the slots of executions whose end is recorded; and try the queue again
        at once. A slot not given back (NATS away) is found by the gate when its limit is
        full (the execution's end is in the log)."""
        for execution_id in ended:
            self._dequeue(execution_id)
            state = self._states.get(execution_id)
            claims = self._claims(state.request) if state is not None else []
            if not claims or self._gate is None:
                continue
            try:
                await self._gate.release(execution_id, claims)
            except Exception as error:
                log.warning("slots of %s not given back (%r)", execution_id, error)
            self._next_admission = 0.0
            if self._queued and self._running:
                self._consumer.wake()

    async def _has_finished(self, execution_id: str) -> bool:
        """Whether the execution's end is in the log (or its history is gone altogether)."""
        if await self._log.has_event(execution_id, ExecutionFinished):
            return True
        return not await self._log.has_event(execution_id, ExecutionRequested)


def _request_order(rebuilt: tuple[str, ExecutionState | None]) -> tuple[datetime, str]:
    execution_id, state = rebuilt
    return (
        state.request.time if state is not None else datetime.min.replace(tzinfo=UTC)
    ), execution_id


class _BatchFailedError(Exception):
    """Deciding on a batch failed; ``msgs`` are to be redelivered."""

    def __init__(self, msgs: list[Delivery]) -> None:
        super().__init__(f"a batch of {len(msgs)} inputs failed")
        self.msgs = msgs


def _isolating_redeliveries(msgs: Sequence[Delivery]) -> list[list[Delivery]]:
    """The new messages as one batch, and each redelivered message as a batch of its own: a
    batch fails as a whole, so a poison message redelivered with the rest would fail them
    with it every time, and they would reach the delivery limit together. Alone, only the
    poison does, and is dead-lettered (:mod:`nodedrop.scheduler.dead_letters`)."""
    fresh = [m for m in msgs if (m.metadata.num_delivered or 1) <= 1]
    again = [[m] for m in msgs if (m.metadata.num_delivered or 1) > 1]
    return [fresh, *again] if fresh or not again else again


async def _nak_quietly(msg: Delivery) -> None:
    with contextlib.suppress(Exception):
        await msg.nak(delay=_redelivery_delay_s(msg))


def _redelivery_delay_s(msg: Delivery) -> float:
    """Backing off: 0.5 s after the first failure, doubling up to 10 s (with the consumer's
    ``max_deliver`` of 10, a message that always fails is dead-lettered after about a minute,
    while a few seconds of NATS trouble cost a healthy one only a couple of deliveries)."""
    deliveries = msg.metadata.num_delivered or 1
    return float(min(0.5 * 2 ** (deliveries - 1), 10.0))
