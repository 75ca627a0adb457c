"""Terminal view of one execution, built from its public events (docs/api.md).

Pure: :meth:`ExecutionView.apply` decodes an event (:func:`nodedrop.contracts.codec.from_public`),
folds it into the execution's history with the one fold every reader shares
(:mod:`nodedrop.contracts.history_fold`) and turns it into the line to print;
:meth:`ExecutionView.summary` gives the final table; ``nodedrop run`` does the printing. What a
node's status is, this module never decides: it shows what the fold says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nodedrop.contracts import codec, history_fold
from nodedrop.contracts.events import (
    ChildExecutionFinished,
    ChildExecutionStarted,
    Event,
    ExecutionCancelRequested,
    ExecutionFinished,
    ExecutionQueued,
    ExecutionRequested,
    ExecutionStarted,
    NodeDeferred,
    NodeFailed,
    NodeFailureHandled,
    NodeRetryScheduled,
    NodeSkipped,
    NodeSucceeded,
    NodeWaiting,
    WorkflowCalled,
)

#: The label of lines about the execution as a whole rather than one node.
EXECUTION = "(execution)"

_COLORS = {
    "succeeded": "32",  # green
    "failed": "31",  # red
    "timed_out": "31",
    "partial": "33",  # yellow
    "retrying": "33",
    "running": "36",  # cyan
    "queued": "34",  # blue
    "skipped": "2",  # dim
    "cancelled": "2",
    "pending": "2",
}
_MAX_DETAIL = 160


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def clock(value: Any) -> str:
    """``HH:MM:SS.mmm`` in local time, or the raw value if it is no ISO time."""
    moment = parse_time(value)
    if moment is None:
        return str(value or "")[:12]
    if moment.tzinfo is not None:
        moment = moment.astimezone()
    return moment.strftime("%H:%M:%S.%f")[:-3]


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 0.001:
        return "<1 ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m {rest:02d}s"


def one_line(text: str, limit: int = _MAX_DETAIL) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= limit else first[: limit - 3] + "..."


def error_text(error: Any) -> str:
    """``Type: message`` from an event's ``{"type", "message", "stack"}``."""
    if not isinstance(error, dict):
        return "" if error is None else one_line(str(error))
    kind = str(error.get("type") or "Error")
    message = one_line(str(error.get("message") or ""))
    return f"{kind}: {message}" if message else kind


def items_text(output: Any) -> str:
    """``main: 2 items`` from a node's output ``{port: [items]}``."""
    if not isinstance(output, dict):
        return ""
    parts = []
    for port, items in output.items():
        count = len(items) if isinstance(items, list) else 0
        parts.append(f"{port}: {count} item{'' if count == 1 else 's'}")
    return ", ".join(parts)


_OUTCOME_DETAIL = {
    "again": "runner lost, made again",
    "retry": "will be retried",
    "fail": "the execution fails",
    "continue": "the execution continues",
    "error_output": "error sent to its error output",
}


@dataclass
class NodeState:
    """One node's row of the summary: the fold's view of it, and the last detail shown."""

    node: str
    status: str = "pending"
    attempts: int = 0
    started: datetime | None = None
    finished: datetime | None = None
    detail: str = ""

    @property
    def seconds(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return max((self.finished - self.started).total_seconds(), 0.0)


class ExecutionView:
    """One execution's history folded as its events arrive, and how to show it."""

    def __init__(self, execution_id: str, *, color: bool = False) -> None:
        self.execution_id = execution_id
        self.color = color
        self.requested: datetime | None = None
        self._history: history_fold.History | None = None
        #: What the last line about each node said beside its status.
        self._details: dict[str, str] = {}
        #: When each node's first attempt started: its duration runs from there.
        self._first_start: dict[str, datetime] = {}
        self._width = len(EXECUTION)

    @property
    def finished(self) -> bool:
        return self._history is not None and self._history.finished

    @property
    def status(self) -> str | None:
        """The execution's final status; None until it has finished."""
        return self._history.execution.status if self.finished and self._history else None

    @property
    def error(self) -> str:
        return "" if self._history is None else error_text(self._history.execution.error)

    @property
    def finished_at(self) -> datetime | None:
        return None if self._history is None else self._history.execution.finished_at

    @property
    def nodes(self) -> dict[str, NodeState]:
        """The plan's nodes in plan order, as the fold has them."""
        if self._history is None:
            return {}
        return {
            name: NodeState(
                name,
                node.status,
                node.attempts,
                self._first_start.get(name),
                node.finished_at,
                self._details.get(name, ""),
            )
            for name, node in self._history.nodes.items()
        }

    def apply(self, public: Mapping[str, Any]) -> str | None:
        """Take one event into the view; the line that reports it, or None if it says nothing
        a user needs to see (an event the fold passes over, a runner's failure whose outcome
        the next event says)."""
        try:
            event = codec.from_public(public)
        except codec.EventDecodeError:
            # A type newer than this release: shown by name, folded by nobody here.
            node = public.get("node")
            attempt = public.get("attempt")
            number = attempt if isinstance(attempt, int) else None
            kind = str(public.get("type", ""))
            return self._line(public, node, kind, number, "") if isinstance(node, str) else None
        if isinstance(event, ExecutionRequested):
            if self._history is None:
                self._history = history_fold.History(event)
                self.requested = history_fold.utc(event.time)
            detail = f"trigger {event.trigger}" if event.trigger else ""
            return self._line(public, EXECUTION, "requested", None, detail)
        history = self._history
        if history is None:
            return None  # Nothing to fold into: a stream always begins with the request.
        changed = history_fold.evolve(history, event)
        if isinstance(event, history_fold.NODE_EVENTS):
            node = history.nodes.get(event.node)
            if node is None or not changed:
                return None
            if isinstance(event, NodeFailed) and history.execution.outcomes_recorded:
                return None  # Its NodeFailureHandled follows: what the scheduler made of it.
            if node.started_at is not None:
                self._first_start.setdefault(event.node, node.started_at)
            detail = self._details[event.node] = _node_detail(event)
            attempt = getattr(event, "attempt", None)
            return self._line(public, event.node, node.status, attempt, detail)
        return self._execution_line(public, history, event)

    def _execution_line(
        self, public: Mapping[str, Any], history: history_fold.History, event: Event
    ) -> str | None:
        if isinstance(event, ExecutionQueued):
            detail = f"{event.scope} {event.key}: {event.limit} running (its limit)"
            return self._line(public, EXECUTION, "waiting", None, detail)
        if isinstance(event, ExecutionStarted):
            self._width = max([self._width, *(len(name) for name in history.nodes)])
            detail = f"{len(history.nodes)} nodes"
            return self._line(public, EXECUTION, "started", None, detail)
        if isinstance(event, ExecutionCancelRequested):
            return self._line(public, EXECUTION, "cancelling", None, event.reason or "")
        if isinstance(event, ExecutionFinished):
            status = history.execution.status
            return self._line(public, EXECUTION, status, None, self.error)
        return None

    def _line(
        self,
        public: Mapping[str, Any],
        label: str,
        status: str,
        attempt: int | None,
        detail: str,
    ) -> str:
        width = max(self._width, 12)
        number = f"#{attempt}" if attempt is not None else ""
        parts = [
            clock(public.get("time")),
            label.ljust(width),
            self._paint(status, 10),
            number.ljust(3),
        ]
        if detail:
            parts.append(detail)
        return "  ".join(parts).rstrip()

    def _paint(self, status: str, width: int = 0) -> str:
        padded = status.ljust(width)
        code = _COLORS.get(status)
        if not self.color or code is None:
            return padded
        return f"\x1b[{code}m{status}\x1b[0m{padded[len(status) :]}"

    def summary(self) -> str:
        """The final table: one row per node in plan order, then the execution's outcome."""
        headers = ("node", "status", "attempts", "duration", "detail")
        rows = [
            (s.node, s.status, str(s.attempts), duration(s.seconds), s.detail)
            for s in self.nodes.values()
        ]
        widths = [
            max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
            for i, h in enumerate(headers)
        ]
        lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
        lines.append("  ".join("-" * w for w in widths))
        for row in rows:
            cells = [row[0].ljust(widths[0]), self._paint(row[1], widths[1])]
            cells += [row[2].rjust(widths[2]), row[3].rjust(widths[3]), row[4]]
            lines.append("  ".join(cells).rstrip())
        total = None
        if self.requested is not None and self.finished_at is not None:
            total = (self.finished_at - self.requested).total_seconds()
        outcome = self._paint(self.status or "unfinished")
        tail = f"execution {self.execution_id} {outcome}"
        if total is not None:
            tail += f" in {duration(max(total, 0.0))}"
        if self.error:
            tail += f": {self.error}"
        lines += ["", tail]
        return "\n".join(lines)


def _node_detail(event: history_fold.NodeEvent) -> str:
    """What a line about a node event says beside the node's status."""
    if isinstance(event, NodeDeferred):
        return f"{event.key} has {event.limit} on the runners (their share)"
    if isinstance(event, NodeWaiting):
        return f"until {clock(event.until.isoformat())}"
    if isinstance(event, NodeSucceeded):
        items = items_text(event.output)
        if event.reused_from is not None:
            return f"reused from {event.reused_from}; {items}" if items else "reused"
        if event.pinned:
            return f"pinned; {items}" if items else "pinned"
        return items
    if isinstance(event, NodeFailed):
        return error_text(history_fold.error_dict(event.error))
    if isinstance(event, NodeFailureHandled):
        outcome = _OUTCOME_DETAIL.get(event.outcome, event.outcome)
        return f"{error_text(history_fold.error_dict(event.error))} ({outcome})"
    if isinstance(event, NodeRetryScheduled):
        return f"attempt {event.attempt + 1} in {duration(event.delay_ms / 1000)}"
    if isinstance(event, NodeSkipped):
        return event.reason
    if isinstance(event, WorkflowCalled):
        return f"calls {event.workflow_id} ({event.mode})"
    if isinstance(event, ChildExecutionStarted):
        return f"child {event.index}: {event.child}"
    if isinstance(event, ChildExecutionFinished):
        return f"child {event.index}: {event.child} {event.status}"
    return ""
