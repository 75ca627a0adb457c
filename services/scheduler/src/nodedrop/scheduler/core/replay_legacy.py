"""Replay of a history recorded before the scheduler recorded each decision's cause
(``ExecutionStarted`` ``v`` below 3): the reader :func:`nodedrop.scheduler.core.replay.verify`
chooses for such a history, as an upcaster would. It infers where the live scheduler's batches
began and which inputs each took, since the record does not say.

An execution's history interleaves what runners and users recorded (inputs: the request, starts,
results, cancel requests) with what the scheduler decided. :func:`verify_inferred` plays the
scheduler again over the inputs, with the real :func:`step` and :func:`tick`, and compares every
decision it makes with the recorded one of the same id (ids are deterministic,
:mod:`nodedrop.contracts.ids`).

What the live scheduler was fed is not written down in such a history, so it is reconstructed:

- The scheduler works in batches. Every decision of one batch carries the batch's time (its
  ``now``), and a batch's decisions are recorded after its inputs. So a recorded decision that
  no earlier replay step explains marks a batch at its time ``T``: some prefix of the inputs
  recorded since the previous batch was stepped at ``T``, and due timers fired at ``T``.
- Usually all those inputs were in the batch, then timers fired. But an input can be recorded
  while a batch is being published (it goes to the next batch), a timer set in a batch fires in
  the next one, and a rebuilt execution fires its overdue timers before its inputs. So the
  replay tries those readings in order of likelihood on a copy of its state and keeps the first
  that explains the recorded decisions of that time without deciding anything that was not
  recorded then; if none does, it keeps the usual reading and reports what differs.
- A failed publish records a prefix of its batch's decisions and loses the rest (its tail);
  the scheduler's next batch for the execution is then a rebuild from the stream, which decides
  the tail again or, when what it reads there makes it moot, not at all. So after a batch read
  with a lost tail the rebuild reading is tried first, and a rebuild forgets only that tail:
  what it does not decide again is listed in :attr:`Verification.lost` (a decision removed from
  the end of a batch reads the same), never silently dropped.
- A node timeout the scheduler proposes shares its id with the attempt's result: when the
  runner's result is stored first, the proposal is dropped, and the runner's result is an input.
- Decision times are the batch's clock, so ``due_at``/``until`` are compared relative to the
  event's own ``time``; ``time`` itself is never compared.
- The recorded events of input types (including a scheduler's own results and timeout
  proposals, which come back to it through its consumer) are stepped like any input; the fold
  ignores what it already knows.
- Whether a new execution had a concurrency slot depends on other executions, not on its own
  history, so it is read from the record: one with an ``ExecutionQueued`` was not admitted
  before the time of its ``ExecutionStarted`` (and was queued on the recorded limit), and was
  admitted from then on.
- Whether an attempt went to the runners at once depends on its user's other work, so it is read
  from the record too: an attempt with a ``NodeDeferred`` was deferred when first made ready,
  and goes to the runners (:func:`dispatch`, at the end of a batch) at the time of its
  ``NodeReady``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from nodedrop.contracts.errors import RUNNER_LOST
from nodedrop.contracts.events import (
    INPUT_EVENT_TYPES,
    OUTCOMES_RECORDED_VERSION,
    ChildExecutionFinished,
    Event,
    ExecutionCancelRequested,
    ExecutionFinished,
    ExecutionRequested,
    ExecutionStarted,
    NodeFailed,
    NodeFailureHandled,
    NodeLogged,
    NodeReady,
    NodeStarted,
    NodeSucceeded,
    WorkflowCalled,
)
from nodedrop.scheduler.core.decide import (
    admit,
    dispatch,
    queue,
    resume,
    step,
    tick,
)
from nodedrop.scheduler.core.fold import evolve
from nodedrop.scheduler.core.rules import MAX_INPUT_BYTES
from nodedrop.scheduler.core.state import ExecutionState
from nodedrop.scheduler.core.verification import (
    DifferenceKind,
    FromTheRecord,
    RecordedShare,
    Verification,
    clone,
    content,
    describe_change,
    difference,
)

#: Readings of one batch tried before giving up on explaining it (each costs a state copy).
_MAX_INPUTS_CONSIDERED = 8


def verify_inferred(
    history: Sequence[tuple[int, Event]], *, max_input_bytes: int = MAX_INPUT_BYTES
) -> Verification:
    """Compare the scheduler decisions recorded in ``history`` (``(seq, event)`` of one
    execution, in stream order) with the decisions the core makes when replaying its inputs
    (with the limit the live scheduler had on the events it records, see :func:`step`)."""
    return _Replay(history, max_input_bytes).run()


# ---------------------------------------------------------------------------------------------
# The replay


#: Always recorded by a runner or a user, never decided by the scheduler.
_PLAIN_INPUTS = (ExecutionRequested, NodeStarted, WorkflowCalled, ChildExecutionFinished)
#: How well a reading must fit the record, tried in this order: ``exact``, it decides what the
#: batch recorded and nothing that was not recorded at the batch's time; ``later``, what it
#: decides beyond that is recorded later (a lost publish, re-decided after a rebuild); ``tail``,
#: what it decides beyond that comes after everything the batch recorded (a publish that lost
#: its tail: the next batch is a rebuild, which decides those again or, when what it reads in the
#: stream makes them moot, not at all); ``batch``, it decides what the batch recorded, whatever
#: else.
_Fit = Literal["exact", "later", "tail", "batch"]


@dataclass(frozen=True, slots=True)
class _Reading:
    """One way the scheduler may have handled a batch: which queued inputs it stepped, and
    whether due timers fired before and after them."""

    inputs: int
    tick_before: bool
    tick_after: bool
    #: The scheduler lost a publish, so it rebuilt the execution from the stream and resumed
    #: it: the decisions it had made but not recorded are forgotten, not expected any more.
    rebuild: bool = False


@dataclass(slots=True)
class _Trial:
    reading: _Reading
    state: ExecutionState | None
    produced: list[Event]


class _Replay:
    def __init__(self, history: Sequence[tuple[int, Event]], max_input_bytes: int) -> None:
        self.limit = max_input_bytes
        self.events = [(seq, e) for seq, e in history if not isinstance(e, NodeLogged)]
        self.state: ExecutionState | None = None
        #: Inputs recorded but not stepped yet: (seq, event).
        self.queue: list[tuple[int, Event]] = []
        #: Decisions the core made that no recorded event matched yet: id -> (event, seq).
        self.pending: dict[str, tuple[Event, int]] = {}
        #: Recorded decisions already checked, by id (to tell duplicates).
        self.seen: dict[str, Event] = {}
        #: (time, id) of every recorded event: what a batch at a time did record.
        self.recorded_at = {(e.time, e.event_id) for _, e in self.events}
        #: Where each id was last recorded: a decision lost in a failed publish may be
        #: recorded later, by the rebuilt scheduler.
        self.last_index = {e.event_id: i for i, (_, e) in enumerate(self.events)}
        #: (node, attempt) of every recorded NodeReady: only those attempts ran on a runner.
        self.readied = {(e.node, e.attempt) for _, e in self.events if isinstance(e, NodeReady)}
        #: ... less those that called a workflow: their result is the scheduler's decision.
        self.readied -= {
            (e.node, e.attempt) for _, e in self.events if isinstance(e, WorkflowCalled)
        }
        #: Decisions about other executions (a child's request or cancel, a report to the
        #: parent) are recorded in those executions' histories, not in this one.
        self.execution_id = self.events[0][1].execution_id if self.events else ""
        #: Ids the last batch decided after everything it recorded: the tail of a publish cut
        #: short. The live scheduler then dropped the execution's state, so its next batch for
        #: the execution was a rebuild, which forgot these (and only these) decisions.
        self.lost: set[str] = set()
        self.result = Verification()
        #: The admission read from the record (see the module doc).
        self.record = FromTheRecord(self.events)
        self.queued = self.record.queued
        start = next((e for _, e in self.events if isinstance(e, ExecutionStarted)), None)
        self.result.outcomes_recorded = start is None or start.v >= OUTCOMES_RECORDED_VERSION

    def _share(self, now: datetime) -> RecordedShare:
        return self.record.share(now)

    def _admitted(self, now: datetime) -> bool:
        return self.record.admitted(now)

    # ------------------------------------------------------------------ driving
    def run(self) -> Verification:
        index = 0
        while index < len(self.events):
            seq, event = self.events[index]
            if event.event_id in self.seen:
                self._duplicate(seq, event)
            elif self._plain_input(event):
                # Never a decision. A node timeout the core proposed under its id lost the race
                # for the id (a proposal has its attempt's result's id on purpose): the runner's
                # result was stored first, the proposal dropped as a duplicate.
                self.pending.pop(event.event_id, None)
                self.queue.append((seq, event))
            elif event.event_id in self.pending:
                expected, _ = self.pending[event.event_id]
                if content(expected) != content(event) or expected.time != event.time:
                    # Decided differently, or recorded later than decided: after a lost
                    # publish and a rebuild from the stream, perhaps, whose batch opens here.
                    if not self._explain(index, strict_only=True):
                        self.lost.clear()  # no rebuild opens here: nothing was lost after all
                    expected, _ = self.pending[event.event_id]
                if self._maybe_input(event) and content(expected) != content(event):
                    # A runner's failure under the id of a node timeout the core proposed: the
                    # runner's was stored first and the proposal dropped as a duplicate. What
                    # the scheduler then did is checked against this failure, as an input.
                    del self.pending[event.event_id]
                    self.queue.append((seq, event))
                else:
                    self._match(seq, event)
            elif self._maybe_input(event):
                # Either the scheduler proposed it at a timer, or a runner or user recorded it.
                if not self._explain(index, strict_only=True):
                    self.queue.append((seq, event))
                    index += 1
                    continue
                self._match(seq, event)
            else:
                self._explain(index, strict_only=False)
                if event.event_id in self.pending:
                    self._match(seq, event)
                else:
                    self._unexpected(seq, event)
            index += 1
        self._finish()
        return self.result

    def _plain_input(self, event: Event) -> bool:
        if isinstance(event, _PLAIN_INPUTS):
            return True
        # A runner's success of an attempt it was given (the scheduler never decides those).
        return isinstance(event, NodeSucceeded) and self._ran_on_runner(event)

    def _maybe_input(self, event: Event) -> bool:
        if isinstance(event, ExecutionCancelRequested):
            return True
        # Only a runner records RunnerLost, also for an attempt whose workflow call it had
        # answered already (and whose result is otherwise the scheduler's).
        lost = isinstance(event, NodeFailed) and event.error.type == RUNNER_LOST
        return lost or (isinstance(event, NodeFailed) and self._ran_on_runner(event))

    def _ran_on_runner(self, event: NodeSucceeded | NodeFailed) -> bool:
        if isinstance(event, NodeSucceeded) and (event.pinned or event.reused_from is not None):
            return False
        return (event.node, event.attempt) in self.readied

    # ------------------------------------------------------------------ explaining a batch
    def _explain(self, index: int, *, strict_only: bool) -> bool:
        """Step queued inputs and fire timers at the time of the event at ``index`` so as to
        explain it (see the module doc). Returns whether a reading explained it."""
        seq, event = self.events[index]
        now = event.time
        batch = self._recorded_batch(index)
        readings = self._readings()
        # Perhaps a publish failed: the scheduler then rebuilt the execution from the stream
        # (inputs it had not handled yet included) and resumed it.
        rebuilt = _Reading(len(self.queue), False, False, rebuild=True)
        # After a lost tail the rebuild is the live reading, tried first: the decisions the lost
        # batch still owes may be moot after it, and only a rebuild forgets them.
        candidates = [rebuilt, *readings] if self.lost else [*readings, rebuilt]
        levels: list[_Fit] = ["exact", "later", "tail"]
        if not strict_only:
            levels.append("batch")
        if self._continues_batch(index):
            levels = []  # one batch, one clock reading: a new batch cannot start here
        for fit in levels:
            for reading in candidates:
                trial = self._try(reading, now, index)
                if self._explains(trial, batch, now, index, fit):
                    self._commit(trial, seq, now)
                    return True
        if strict_only:
            return False
        # Nothing explains it: keep the usual reading and let the comparison say what differs.
        self._commit(self._try(readings[0], now, index), seq, now)
        return False

    def _continues_batch(self, index: int) -> bool:
        """Whether the event at ``index`` directly follows a decision of the same time."""
        if index == 0:
            return False
        previous = self.events[index - 1][1]
        if self._plain_input(previous) or self._maybe_input(previous):
            return False
        return previous.time == self.events[index][1].time

    def _readings(self) -> list[_Reading]:
        waiting = min(len(self.queue), _MAX_INPUTS_CONSIDERED)
        readings = []
        for inputs in range(waiting, -1, -1):
            readings.append(_Reading(inputs, tick_before=False, tick_after=True))
            if inputs:
                readings.append(_Reading(inputs, tick_before=False, tick_after=False))
                readings.append(_Reading(inputs, tick_before=True, tick_after=True))
        if waiting < len(self.queue):  # a long backlog: the usual reading first of all
            readings.insert(0, _Reading(len(self.queue), tick_before=False, tick_after=True))
        return readings

    def _recorded_batch(self, index: int) -> list[Event]:
        """The recorded decisions that open at ``index``: consecutive events of the same time up
        to the next input (or possible input)."""
        first = self.events[index][1]
        batch = [first]
        for _, event in self.events[index + 1 :]:
            if event.time != first.time or self._plain_input(event) or self._maybe_input(event):
                break
            if event.event_id not in self.seen:
                batch.append(event)
        return batch

    def _try(self, reading: _Reading, now: datetime, index: int) -> _Trial:
        produced: list[Event] = []
        if reading.rebuild:
            state = None
            for _, event in self.events[:index]:
                state = evolve(state, event)
            if state is not None and not state.finished:
                admitted = self._admitted(now)
                produced += resume(
                    state,
                    now,
                    max_input_bytes=self.limit,
                    admitted=admitted,
                    share=self._share(now),
                )
                produced += self._queue_if_waiting(state, now)
            return _Trial(reading, state, self._own(produced))
        state = clone(self.state)
        share = self._share(now)
        if reading.tick_before and state is not None:
            produced += tick(state, now, max_input_bytes=self.limit, share=share)
        for _, event in self.queue[: reading.inputs]:
            state, decided = self._step(state, event, now)
            produced += decided
        if state is not None and self.queued is not None and self._admitted(now):
            produced += admit(state, now, max_input_bytes=self.limit, share=share)
        if reading.tick_after and state is not None:
            produced += tick(state, now, max_input_bytes=self.limit, share=share)
        if state is not None:
            produced += dispatch(state, now, share, max_input_bytes=self.limit)
        return _Trial(reading, state, self._own(produced))

    def _own(self, decisions: list[Event]) -> list[Event]:
        return [
            e
            for e in decisions
            if e.execution_id == self.execution_id
            and (self.result.outcomes_recorded or not isinstance(e, NodeFailureHandled))
        ]

    def _step(
        self, state: ExecutionState | None, event: Event, now: datetime
    ) -> tuple[ExecutionState | None, list[Event]]:
        admitted = self._admitted(now)
        state, decided = step(
            state,
            event,
            now,
            max_input_bytes=self.limit,
            admitted=admitted,
            share=self._share(now),
        )
        if state is not None:
            decided += self._queue_if_waiting(state, now)
        return state, decided

    def _queue_if_waiting(self, state: ExecutionState, now: datetime) -> list[Event]:
        if self.queued is None or self._admitted(now):
            return []
        limit = self.queued
        return queue(state, now, scope=limit.scope, key=limit.key, limit=limit.limit)

    def _explains(
        self, trial: _Trial, batch: list[Event], now: datetime, index: int, fit: _Fit
    ) -> bool:
        """Every recorded decision of the batch is decided (same id, same content), and (see
        :data:`_Fit`) nothing is decided that was not recorded then, or later."""
        # A decision carries the clock of the batch that decided it: one decided earlier and
        # recorded now was decided again, by a rebuild, so only a rebuild reading explains it.
        decided = (
            {}
            if trial.reading.rebuild
            else {e.event_id: e for e, _ in self.pending.values() if e.time == now}
        )
        decided.update((e.event_id, e) for e in trial.produced)
        for recorded in batch:
            expected = decided.get(recorded.event_id)
            if expected is None or content(expected) != content(recorded):
                return False
        if fit == "exact":
            return all((now, e.event_id) in self.recorded_at for e in trial.produced)
        if fit == "later":
            return all(self.last_index.get(e.event_id, -1) >= index for e in trial.produced)
        if fit == "tail":
            return self._lost_tail(trial, now) is not None
        return True

    def _lost_tail(self, trial: _Trial, now: datetime) -> list[Event] | None:
        """The decisions of ``trial`` not recorded at ``now``, when what was recorded is a
        prefix of them (what a publish cut short leaves); ``None`` when it is not, or when
        nothing was recorded (a batch is known by what it recorded)."""
        published = [(now, e.event_id) in self.recorded_at for e in trial.produced]
        if True not in published:
            return None if published else []
        cut = len(published) - published[::-1].index(True)
        return None if False in published[:cut] else trial.produced[cut:]

    def _commit(self, trial: _Trial, seq: int, now: datetime) -> None:
        self.state = trial.state
        del self.queue[: trial.reading.inputs]
        if trial.reading.rebuild:
            # What a rebuild forgets is what was decided and never recorded: a lost tail. Any
            # other decision still awaited should have been recorded; it stays expected.
            again = {e.event_id for e in trial.produced}
            forgotten = [self.pending.pop(i) for i in self.lost if i in self.pending]
            self.result.lost += [e for e, _ in _in_order(forgotten) if e.event_id not in again]
            # Decided again, with the rebuild's clock.
            self.pending.update((e.event_id, (e, seq)) for e in trial.produced)
        for decision in trial.produced:
            self.pending.setdefault(decision.event_id, (decision, seq))
        self.lost = {e.event_id for e in self._lost_tail(trial, now) or ()}

    # ------------------------------------------------------------------ comparing
    def _match(self, seq: int, recorded: Event) -> None:
        expected, _ = self.pending.pop(recorded.event_id)
        self.seen[recorded.event_id] = recorded
        if content(expected) == content(recorded):
            self.result.matched += 1
        else:
            self._differ("changed", seq, recorded, describe_change(expected, recorded))
        self._follow(seq, recorded)

    def _unexpected(self, seq: int, recorded: Event) -> None:
        self.seen[recorded.event_id] = recorded
        self._differ("unexpected", seq, recorded, "recorded, but the core does not decide it")
        self._follow(seq, recorded)

    def _duplicate(self, seq: int, recorded: Event) -> None:
        first = self.seen[recorded.event_id]
        if content(first) != content(recorded):
            detail = "recorded again with other content: " + describe_change(first, recorded)
            self._differ("duplicate", seq, recorded, detail)

    def _follow(self, seq: int, recorded: Event) -> None:
        """Carry on from what was recorded: inputs are stepped when their batch comes (the
        scheduler receives its own results and proposals too); other decisions are folded."""
        if isinstance(recorded, INPUT_EVENT_TYPES):
            self.queue.append((seq, recorded))
        else:
            self.state = evolve(self.state, recorded)
        if isinstance(recorded, ExecutionFinished):
            self.result.finished = True

    def _differ(self, kind: DifferenceKind, seq: int, event: Event, detail: str) -> None:
        self.result.differences.append(difference(kind, seq, event, detail))

    def _finish(self) -> None:
        """Step what is left (inputs after the last decision) and report what was decided but
        never recorded: missing in a finished execution, awaited in a running one."""
        for seq, event in self.queue:
            self.state, decided = self._step(self.state, event, event.time)
            for decision in self._own(decided):
                self.pending.setdefault(decision.event_id, (decision, seq))
        self.queue.clear()
        for decision, seq in _in_order(self.pending.values()):
            if self.result.finished:
                self._differ("missing", seq, decision, "the core decides it; not recorded")
            else:
                self.result.awaiting.append(decision)


def _in_order(pending: Iterable[tuple[Event, int]]) -> list[tuple[Event, int]]:
    return sorted(pending, key=lambda item: item[1])
