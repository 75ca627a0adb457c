"""Replay: check a recorded history against the decisions the core makes now, by folding it.

Every scheduler decision records its cause (``Event.cause``, from ``ExecutionStarted`` ``v`` 3
on): the core's call that decided it (``step``, ``tick``, ``resume``, ``admit``, ``queue``,
``dispatch``), at the decision's ``time``, from a state that had folded the execution's events
up to the one the cause names (``after``). The decisions of one call are recorded together, in
the order it made them. So :func:`verify` folds the history as it stands, the way Temporal's
replayer folds a workflow's: for each recorded group of decisions it brings its state to where
the cause says, makes the same call at the same ``now``, and compares what the core decides
with what was recorded, by id (ids are deterministic, :mod:`nodedrop.contracts.ids`). Nothing
here re-implements a rule, and nothing is guessed:

- Inputs (what runners and users record, and the scheduler's own results and proposals, which
  come back to it from the stream) are folded by ``step`` when a cause names them, or, when
  they decided nothing new, when a later cause names a later event: the scheduler steps an
  execution's inputs in stream order. Whatever the core decides for such an input that is not
  in the stream is ``missing``.
- ``resume`` follows a rebuild: the state is then a fresh fold of the history up to the event
  the cause names, the last one the rebuild read (the decider's memo of proposals starts
  empty, as live).
- A decision already recorded under its id is not recorded again (the stream's duplicate
  window): the core's decisions are compared only where first recorded, so a rebuilt
  scheduler deciding again what it decided before verifies.
- A publish that lost the end of its batch leaves a prefix of a call's decisions; the
  scheduler's next call for the execution is then a ``resume``, which decides the rest again
  or, when what it read made them moot, not at all. What it does not decide again is listed in
  :attr:`Verification.lost` (a decision removed from the end of a group reads the same), never
  silently dropped; anywhere else, a decision not recorded is ``missing``.
- What depends on other executions is read from the record, from the cause's own decisions:
  whether a new execution had a concurrency slot (one with an ``ExecutionQueued`` was admitted
  at the time of its ``ExecutionStarted``, and queued on the limit that event names), and
  whether an attempt went to the runners at once (see :class:`RecordedShare`).
- Decision times are the batch's clock, so ``due_at``/``until`` are compared relative to the
  event's own ``time``; ``time`` itself is never compared.

A history recorded before causes were (``ExecutionStarted`` ``v`` below 3) does not say which
inputs each of the scheduler's batches took: :mod:`replay_legacy` reads it by inferring them,
chosen here by the version, as an upcaster would.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from nodedrop.contracts.errors import DEAD_LETTER
from nodedrop.contracts.events import (
    CAUSES_RECORDED_VERSION,
    INPUT_EVENT_TYPES,
    Cause,
    Event,
    ExecutionFinished,
    ExecutionQueued,
    ExecutionStarted,
    NodeLogged,
)
from nodedrop.scheduler.core.decide import admit, dispatch, queue, resume, step, tick
from nodedrop.scheduler.core.fold import evolve
from nodedrop.scheduler.core.replay_legacy import verify_inferred
from nodedrop.scheduler.core.rules import MAX_INPUT_BYTES
from nodedrop.scheduler.core.state import ExecutionState
from nodedrop.scheduler.core.verification import (
    Difference,
    DifferenceKind,
    FromTheRecord,
    Verification,
    clone,
    content,
    describe_change,
    difference,
)

__all__ = [
    "Difference",
    "Verification",
    "causes_recorded",
    "clone",
    "content",
    "describe_change",
    "verify",
]


def verify(
    history: Sequence[tuple[int, Event]], *, max_input_bytes: int = MAX_INPUT_BYTES
) -> Verification:
    """Compare the scheduler decisions recorded in ``history`` (``(seq, event)`` of one
    execution, in stream order) with the decisions the core makes now (with the limit the
    live scheduler had on the events it records, see :func:`step`)."""
    events = [(seq, e) for seq, e in history if not isinstance(e, NodeLogged)]
    if not causes_recorded(events):
        return verify_inferred(history, max_input_bytes=max_input_bytes)
    return _Fold(events, max_input_bytes).run()


def causes_recorded(history: Sequence[tuple[int, Event]]) -> bool:
    """Whether the history's decisions record their causes: its ``ExecutionStarted`` is
    ``v`` 3 or later; an execution that never started (cancelled while queued, a request
    without a plan) says so by its decisions."""
    start = next((e for _, e in history if isinstance(e, ExecutionStarted)), None)
    if start is not None:
        return start.v >= CAUSES_RECORDED_VERSION
    return any(e.cause is not None for _, e in history)


class _Fold:
    def __init__(self, events: list[tuple[int, Event]], limit: int) -> None:
        self.events = events
        self.limit = limit
        self.execution_id = events[0][1].execution_id if events else ""
        self.state: ExecutionState | None = None
        self.result = Verification()
        #: Where each id was first recorded (a later copy is a duplicate).
        self.position: dict[str, int] = {}
        for index, (_, event) in reversed(list(enumerate(events))):
            self.position[event.event_id] = index
        #: Recorded events read so far, by id.
        self.seen: dict[str, Event] = {}
        #: Every input before this position has been folded.
        self.inputs_folded = 0
        #: Decisions a call made beyond the prefix of them it recorded: a publish cut short,
        #: if the execution's next call is a rebuild's ``resume`` (see the module doc).
        self.owed: list[tuple[Event, int]] = []
        #: Decided and not recorded: missing once the execution finished, else awaited.
        self._not_recorded: list[tuple[int, Event, str]] = []
        self.record = FromTheRecord(events)

    def run(self) -> Verification:
        index = 0
        while index < len(self.events):
            seq, event = self.events[index]
            if event.event_id in self.seen:
                self._duplicate(seq, event)
                index += 1
            elif event.cause is None:
                self.seen[event.event_id] = event
                if isinstance(event, ExecutionFinished):
                    self.result.finished = True
                if not isinstance(event, INPUT_EVENT_TYPES):
                    self._differ("unexpected", seq, event, _uncaused(event))
                    self._fold_recorded(event)
                index += 1
            else:
                group = self._group(index)
                self._replay(event.cause, event.time, group)
                index = group[-1] + 1
        self._finish()
        return self.result

    def _next_decision(self, after: int) -> int:
        """The position of the first decision recorded after ``after`` (or the end)."""
        for index in range(after + 1, len(self.events)):
            if self.events[index][1].cause is not None:
                return index
        return len(self.events)

    def _group(self, first: int) -> list[int]:
        """The positions of the decisions of one call: those of the same cause and time from
        ``first`` on, with only inputs or duplicates recorded amid them."""
        cause, time = self.events[first][1].cause, self.events[first][1].time
        group = [first]
        for index in range(first + 1, len(self.events)):
            event = self.events[index][1]
            if event.event_id in self.seen or self.position[event.event_id] != index:
                continue
            if event.cause is None and isinstance(event, INPUT_EVENT_TYPES):
                continue
            if event.cause != cause or event.time != time:
                break
            group.append(index)
        return group

    # ------------------------------------------------------------------ one call
    def _replay(self, cause: Cause, now: datetime, group: list[int]) -> None:
        recorded = [self.events[i] for i in group]
        after = self._resolve(cause.after)
        if after is None or (cause.call == "step" and not self._steppable(after, group[0])):
            detail = f"its cause ({_describe(cause)}) names no input recorded before it"
            self._unexplained(recorded, detail)
            return
        if cause.call == "resume":
            self._rebuild(after)
        else:
            self._owed_missing()
            self._fold_inputs(through=after if cause.call != "step" else after - 1, now=now)
        produced = self._call(cause, now, recorded, after)
        if cause.call == "resume":
            self._settle_owed(produced or [])
        if produced is None:
            detail = f"{cause.call} of an execution never requested"
            self._unexplained(recorded, detail)
            return
        self._compare(cause, recorded, produced, end=self._next_decision(group[-1]))

    def _call(
        self,
        cause: Cause,
        now: datetime,
        recorded: list[tuple[int, Event]],
        after: int,
    ) -> list[Event] | None:
        share = self.record.share(now)
        admitted = self.record.admitted(now)
        limit = self.limit
        if cause.call == "step":
            self.inputs_folded = max(self.inputs_folded, after + 1)
            event = self.events[after][1]
            self.state, decided = step(
                self.state, event, now, max_input_bytes=limit, admitted=admitted, share=share
            )
            return None if self.state is None else self._own(decided)
        state = self.state
        if state is None:
            return None
        match cause.call:
            case "tick":
                decided = tick(state, now, max_input_bytes=limit, share=share)
            case "resume":
                decided = resume(state, now, max_input_bytes=limit, admitted=admitted, share=share)
            case "admit":
                decided = admit(state, now, max_input_bytes=limit, share=share)
            case "dispatch":
                decided = dispatch(state, now, share, max_input_bytes=limit)
            case "queue":
                # The limit that was full is the gate's answer, read from the record.
                limits = [e for _, e in recorded if isinstance(e, ExecutionQueued)]
                if not limits:
                    return []
                full = limits[0]
                decided = queue(state, now, scope=full.scope, key=full.key, limit=full.limit)
        return self._own(decided)

    def _compare(
        self, cause: Cause, recorded: list[tuple[int, Event]], produced: list[Event], *, end: int
    ) -> None:
        # What the stream had already was not stored again (its duplicate window): what was
        # recorded before, or amid the call's publish (a runner's result taking the id of a
        # timeout the call proposes), which ends before the next call's decisions.
        mine = {e.event_id for _, e in recorded}
        expected = [
            e for e in produced if e.event_id in mine or self.position.get(e.event_id, end) >= end
        ]
        by_id = {e.event_id: e for e in expected}
        for seq, event in recorded:
            self.seen[event.event_id] = event
            decided = by_id.pop(event.event_id, None)
            if decided is None:
                detail = f"recorded as decided by {_describe(cause)}, which does not decide it"
                self._differ("unexpected", seq, event, detail)
                self._fold_recorded(event)
            elif content(decided) == content(event):
                self.result.matched += 1
            else:
                self._differ("changed", seq, event, describe_change(decided, event))
            if isinstance(event, ExecutionFinished):
                self.result.finished = True
        if not by_id:
            return
        seq = recorded[-1][0]
        left = [(e, seq) for e in expected if e.event_id in by_id]
        recorded_ids = [e.event_id for _, e in recorded]
        if [e.event_id for e in expected[: len(recorded_ids)]] == recorded_ids:
            self.owed = left  # a prefix was recorded: perhaps a publish cut short
        else:
            for event, at in left:
                self._missing(at, event, f"{_describe(cause)} decides it; not recorded")

    def _settle_owed(self, produced: list[Event]) -> None:
        """Decisions owed by the call before a rebuild's ``resume``: those it does not decide
        again were lost with a publish, then made moot (or removed from the stream)."""
        again = {e.event_id for e in produced}
        self.result.lost += [e for e, _ in self.owed if e.event_id not in again]
        self.owed = []

    # ------------------------------------------------------------------ folding the record
    def fresh_fold(self, through: int) -> ExecutionState | None:
        state: ExecutionState | None = None
        for _, event in self.events[: through + 1]:
            state = evolve(state, event)
        return state

    def _rebuild(self, through: int) -> None:
        self.state = self.fresh_fold(through)
        self.inputs_folded = max(self.inputs_folded, through + 1)

    def _fold_inputs(self, *, through: int, now: datetime) -> None:
        """Step the inputs up to ``through`` not stepped yet: they decided nothing new."""
        for index in range(self.inputs_folded, through + 1):
            seq, event = self.events[index]
            if not isinstance(event, INPUT_EVENT_TYPES) or self.position[event.event_id] != index:
                continue
            self.inputs_folded = index + 1
            self._step_quietly(seq, event, now)

    def _step_quietly(self, seq: int, event: Event, now: datetime) -> None:
        share = self.record.share(now)
        self.state, decided = step(
            self.state,
            event,
            now,
            max_input_bytes=self.limit,
            admitted=self.record.admitted(now),
            share=share,
        )
        for decision in self._own(decided):
            if decision.event_id not in self.seen:
                self._missing(seq, decision, "the core decides it in answer to this input")

    def _fold_recorded(self, event: Event) -> None:
        if self.state is not None and not isinstance(event, INPUT_EVENT_TYPES):
            evolve(self.state, event)

    def _resolve(self, after: str | None) -> int | None:
        if after is None:
            return None
        for event_id in (f"{self.execution_id}.{after}", after):
            if event_id in self.position:
                return self.position[event_id]
        return None

    def _steppable(self, at: int, before: int) -> bool:
        return at < before and isinstance(self.events[at][1], INPUT_EVENT_TYPES)

    def _own(self, decisions: list[Event]) -> list[Event]:
        return [e for e in decisions if e.execution_id == self.execution_id]

    # ------------------------------------------------------------------ reporting
    def _unexplained(self, recorded: list[tuple[int, Event]], detail: str) -> None:
        for seq, event in recorded:
            self.seen[event.event_id] = event
            self._differ("unexpected", seq, event, detail)
            self._fold_recorded(event)
            if isinstance(event, ExecutionFinished):
                self.result.finished = True

    def _duplicate(self, seq: int, recorded: Event) -> None:
        first = self.seen[recorded.event_id]
        if content(first) != content(recorded):
            detail = "recorded again with other content: " + describe_change(first, recorded)
            self._differ("duplicate", seq, recorded, detail)

    def _missing(self, seq: int, event: Event, detail: str) -> None:
        self._not_recorded.append((seq, event, detail))

    def _owed_missing(self) -> None:
        for event, seq in self.owed:
            self._missing(seq, event, "decided, not recorded (and no rebuild followed)")
        self.owed = []

    def _differ(self, kind: DifferenceKind, seq: int, event: Event, detail: str) -> None:
        self.result.differences.append(difference(kind, seq, event, detail))

    def _finish(self) -> None:
        """Step the inputs after the last decision, then report what is decided but never
        recorded: missing in a finished execution, awaited in a running one."""
        self._owed_missing()
        for index in range(self.inputs_folded, len(self.events)):
            seq, event = self.events[index]
            if isinstance(event, INPUT_EVENT_TYPES) and self.position[event.event_id] == index:
                self._step_quietly(seq, event, event.time)
        self.inputs_folded = len(self.events)
        for seq, event, detail in self._not_recorded:
            if self.result.finished:
                self._differ("missing", seq, event, detail)
            else:
                self.result.awaiting.append(event)
        self.result.differences.sort(key=lambda d: d.seq)


def _describe(cause: Cause) -> str:
    return cause.call if cause.after is None else f"{cause.call} after {cause.after}"


def _uncaused(event: Event) -> str:
    """Why ``event``, a decision, has no cause: the dead-letter consumer ends an execution the
    core could not process (not a decision the core made, so it cannot verify); anything else
    was recorded without one."""
    if isinstance(event, ExecutionFinished) and event.error and event.error.type == DEAD_LETTER:
        return (
            "ended by the dead-letter consumer: the scheduler gave up on this execution's "
            "events, so its end is not a decision of the core"
        )
    return "a scheduler decision recorded without its cause"
