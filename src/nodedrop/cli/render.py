"""Terminal view of one execution, built from its public events (docs/api.md).

Pure: :meth:`ExecutionView.apply` turns an event into the line to print and
:meth:`ExecutionView.summary` gives the final table; ``nodedrop run`` does the printing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

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
    """The state of one execution's nodes as its events arrive, and how to show it."""

    def __init__(self, execution_id: str, *, color: bool = False) -> None:
        self.execution_id = execution_id
        self.color = color
        self.nodes: dict[str, NodeState] = {}
        self.status: str | None = None
        self.error: str = ""
        self.requested: datetime | None = None
        self.finished_at: datetime | None = None
        self._width = len(EXECUTION)

    @property
    def finished(self) -> bool:
        return self.status is not None

    def _node(self, node_id: str) -> NodeState:
        state = self.nodes.get(node_id)
        if state is None:  # not in the plan we saw (a reconnect after ExecutionStarted)
            state = self.nodes[node_id] = NodeState(node_id)
            self._width = max(self._width, len(node_id))
        return state

    def apply(self, event: dict[str, Any]) -> str | None:
        """Take one event into the view; the line that reports it, or None if it says nothing
        a user needs to see."""
        kind = str(event.get("type", ""))
        raw_data = event.get("data")
        data: dict[str, Any] = raw_data if isinstance(raw_data, dict) else {}
        when = parse_time(event.get("time"))
        node_id = event.get("node")
        attempt = event.get("attempt") if isinstance(event.get("attempt"), int) else None

        if kind == "ExecutionRequested":
            self.requested = when
            trigger = data.get("trigger")
            detail = f"trigger {trigger}" if trigger else ""
            return self._line(event, EXECUTION, "requested", None, detail)
        if kind == "ExecutionQueued":
            limit = data.get("limit")
            detail = f"{data.get('scope')} {data.get('key')}: {limit} running (its limit)"
            return self._line(event, EXECUTION, "waiting", None, detail)
        if kind == "ExecutionStarted":
            plan = data.get("plan")
            if isinstance(plan, list):
                for planned in plan:
                    self._node(str(planned))
            if self.requested is None:
                self.requested = when
            return self._line(event, EXECUTION, "started", None, f"{len(self.nodes)} nodes")
        if kind == "ExecutionCancelRequested":
            reason = str(data.get("reason") or "")
            return self._line(event, EXECUTION, "cancelling", None, reason)
        if kind == "ExecutionFinished":
            self.status = str(data.get("status") or "unknown")
            self.error = error_text(data.get("error"))
            self.finished_at = when
            return self._line(event, EXECUTION, self.status, None, self.error)
        if not isinstance(node_id, str):
            return None
        state = self._node(node_id)
        if attempt is not None:
            state.attempts = max(state.attempts, attempt)
        if not self._node_event(state, kind, data, when, attempt):
            return self._line(event, node_id, kind, attempt, "")
        return self._line(event, node_id, state.status, attempt, state.detail)

    def _node_event(
        self,
        state: NodeState,
        kind: str,
        data: dict[str, Any],
        when: datetime | None,
        attempt: int | None,
    ) -> bool:
        """Apply a node event to ``state``; False if the type is unknown here."""
        if kind == "NodeReady":
            state.status, state.detail = "queued", ""
        elif kind == "NodeDeferred":
            state.status = "waiting"
            state.detail = f"{data.get('key')} has {data.get('limit')} on the runners (their share)"
        elif kind == "NodeStarted":
            state.status, state.detail, state.finished = "running", "", None
            if state.started is None:
                state.started = when
        elif kind == "NodeSucceeded":
            state.status, state.finished = "succeeded", when
            state.detail = items_text(data.get("output"))
            if data.get("pinned"):
                state.detail = f"pinned; {state.detail}" if state.detail else "pinned"
            if state.started is None:
                state.started = when
        elif kind == "NodeFailed":
            state.status, state.finished = "failed", when
            state.detail = error_text(data.get("error"))
        elif kind == "NodeFailureHandled":
            # The scheduler's outcome of the failure: tried again, or failed for good.
            outcome = str(data.get("outcome") or "")
            again = outcome in ("again", "retry")
            state.status = "retrying" if again else "failed"
            state.finished = None if again else state.finished
            state.detail = _OUTCOME_DETAIL.get(outcome, outcome)
        elif kind == "NodeRetryScheduled":
            state.status, state.finished = "retrying", None
            delay = data.get("delay_ms")
            state.detail = f"attempt {(attempt or state.attempts) + 1}"
            if isinstance(delay, int | float):
                state.detail += f" in {duration(delay / 1000)}"
        elif kind == "NodeSkipped":
            state.status, state.finished = "skipped", when
            state.detail = str(data.get("reason") or "")
        elif kind == "NodeCancelled":
            state.status, state.finished, state.detail = "cancelled", when, ""
        else:
            return False
        return True

    def _line(
        self, event: dict[str, Any], label: str, status: str, attempt: int | None, detail: str
    ) -> str:
        width = max(self._width, 12)
        number = f"#{attempt}" if attempt is not None else ""
        parts = [
            clock(event.get("time")),
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
