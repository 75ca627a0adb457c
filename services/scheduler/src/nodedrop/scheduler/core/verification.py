"""What replay reports, and what both its readers share: comparing a recorded decision with
the one the core makes now, the runner shares read from the record, copies of a state.

:mod:`replay` verifies a history that records each decision's cause by folding it;
:mod:`replay_legacy` reads an older one by inferring the scheduler's batches. Both report a
:class:`Verification`.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from nodedrop.contracts.events import (
    Event,
    ExecutionQueued,
    ExecutionStarted,
    NodeDeferred,
    NodeReady,
    type_name,
)
from nodedrop.scheduler.core.decide import ShareFull
from nodedrop.scheduler.core.state import Call, ExecutionState, NodeState

DifferenceKind = Literal["changed", "missing", "unexpected", "duplicate"]


@dataclass(frozen=True, slots=True)
class Difference:
    """One place where the record and today's core disagree."""

    kind: DifferenceKind
    #: Stream sequence of the recorded event; for a missing decision, of the event after which
    #: the core would have recorded it.
    seq: int
    event_type: str
    node: str | None
    attempt: int | None
    detail: str

    def __str__(self) -> str:
        where = f"seq {self.seq}: {self.event_type}"
        if self.node is not None:
            where += f" {self.node}"
        if self.attempt is not None:
            where += f"#{self.attempt}"
        return f"{where}: {self.kind}: {self.detail}"


@dataclass(slots=True)
class Verification:
    #: Recorded scheduler decisions that match what the core decides now.
    matched: int = 0
    differences: list[Difference] = field(default_factory=list)
    #: Decisions the core would make that are not recorded yet, in an execution that has not
    #: finished (the scheduler may simply not have got there).
    awaiting: list[Event] = field(default_factory=list)
    #: Decisions a publish lost from the end of a batch that the scheduler, rebuilt from the
    #: stream, did not make again: what it read there made them moot (a failure recorded
    #: before them ended the execution, say). A decision removed from the end of a batch reads
    #: the same, so they are listed here rather than passed over.
    lost: list[Event] = field(default_factory=list)
    finished: bool = False
    #: The history records each failure's outcome (``ExecutionStarted`` ``v`` 2). An older one
    #: does not: the outcomes the core decides now are not compared.
    outcomes_recorded: bool = True

    @property
    def ok(self) -> bool:
        return not self.differences


#: Fields that say nothing the decision chose: ids and times, its cause (checked by the
#: replay, not compared), and a task's ``requester`` (a copy of the request's
#: ``requested_by``, absent from tasks recorded before it was added).
_NOT_DECIDED = frozenset({"event_id", "time", "v", "cause", "requester"})


def content(event: Event) -> dict[str, object]:
    """What a decision says, for comparison: every field but its id, ``time``, schema version
    and cause, with times as offsets from the event's own ``time`` (a batch's clock differs
    from one run to the next, the delay it decided does not)."""
    said: dict[str, object] = {"type": type_name(event)}
    for name in event.__struct_fields__:
        if name in _NOT_DECIDED:
            continue
        value = getattr(event, name)
        said[name] = value - event.time if isinstance(value, datetime) else value
    return said


def describe_change(expected: Event, recorded: Event) -> str:
    want, got = content(expected), content(recorded)
    parts = [
        f"{name}: expected {_short(want.get(name))}, recorded {_short(got.get(name))}"
        for name in sorted(want.keys() | got.keys())
        if want.get(name) != got.get(name)
    ]
    return "; ".join(parts)


def _short(value: object, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def node_of(event: Event) -> tuple[str | None, int | None]:
    node = getattr(event, "node", None)
    attempt = getattr(event, "attempt", None)
    return (node if isinstance(node, str) else None, attempt if isinstance(attempt, int) else None)


def difference(kind: DifferenceKind, seq: int, event: Event, detail: str) -> Difference:
    node, attempt = node_of(event)
    return Difference(kind, seq, type_name(event), node, attempt, detail)


class RecordedShare:
    """The user's share of the runners as the live scheduler found it, read from the record
    at the time ``now`` of the call being replayed: it depends on the user's other work, not
    on this history. An attempt with a ``NodeDeferred`` was deferred when first made ready,
    and went to the runners at the time of its ``NodeReady``."""

    def __init__(
        self,
        deferred: dict[tuple[str, int], NodeDeferred],
        ready_at: dict[tuple[str, int], datetime],
        now: datetime,
    ) -> None:
        self._deferred = deferred
        self._ready_at = ready_at
        self.now = now

    def take(self, state: ExecutionState, node: str, attempt: int) -> ShareFull | None:
        deferred = self._deferred.get((node, attempt))
        if deferred is None:
            return None
        full = ShareFull(deferred.key, deferred.limit)
        if state.deferred.get(node) != attempt:
            return full  # first made ready: deferred, as recorded
        ready_at = self._ready_at.get((node, attempt))
        return None if ready_at is not None and ready_at <= self.now else full


class FromTheRecord:
    """What depends on other executions, read from one history: whether a new execution had a
    concurrency slot (one with an ``ExecutionQueued`` was admitted at the time of its
    ``ExecutionStarted``, queued on the limit that event names until then), and the user's
    share of the runners (:class:`RecordedShare`)."""

    def __init__(self, events: Sequence[tuple[int, Event]]) -> None:
        self.queued = next((e for _, e in events if isinstance(e, ExecutionQueued)), None)
        start = next((e for _, e in events if isinstance(e, ExecutionStarted)), None)
        self.started_at = start.time if start is not None else None
        self._deferred = {(e.node, e.attempt): e for _, e in events if isinstance(e, NodeDeferred)}
        self._ready_at = {
            (e.node, e.attempt): e.time for _, e in events if isinstance(e, NodeReady)
        }

    def admitted(self, now: datetime) -> bool:
        return self.queued is None or (self.started_at is not None and now >= self.started_at)

    def share(self, now: datetime) -> RecordedShare:
        return RecordedShare(self._deferred, self._ready_at, now)


def clone(state: ExecutionState | None) -> ExecutionState | None:
    """A copy of ``state`` that the core can change without touching the original: nodes, the
    memo and every list, dict or set are copied; the plan, the request and events are
    immutable."""
    if state is None:
        return None
    copied = copy.copy(state)
    for spec in dataclasses.fields(state):
        value = getattr(state, spec.name)
        if spec.name == "nodes":
            copied.nodes = {node_id: _clone_node(node) for node_id, node in value.items()}
        elif spec.name == "memo":
            copied.memo = state.memo.copy()
        elif isinstance(value, list | dict | set):
            setattr(copied, spec.name, copy.copy(value))
    return copied


def _clone_node(node: NodeState) -> NodeState:
    copied = copy.copy(node)
    if node.call is not None:
        copied.call = Call(node.call.called, dict(node.call.started), dict(node.call.finished))
    return copied
