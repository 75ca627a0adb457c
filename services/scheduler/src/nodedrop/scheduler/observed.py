"""What a recorded batch of decisions adds to the metrics (nodedrop.platform.metrics)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from nodedrop.contracts.events import Event, ExecutionFinished, ExecutionStarted
from nodedrop.platform.metrics import (
    EXECUTION_DURATION,
    EXECUTIONS_FINISHED,
    EXECUTIONS_STARTED,
)
from nodedrop.scheduler.core import ExecutionState


def count_recorded(decisions: Iterable[Event], states: Mapping[str, ExecutionState]) -> None:
    """Count the starts and ends among ``decisions``, once they are recorded. An end's duration
    runs from its execution's start, as ``states`` (before the ended ones are dropped) knows it;
    an execution that ended without starting (cancelled while queued) has none."""
    for event in decisions:
        if isinstance(event, ExecutionStarted):
            EXECUTIONS_STARTED.inc()
        elif isinstance(event, ExecutionFinished):
            EXECUTIONS_FINISHED.labels(event.status).inc()
            state = states.get(event.execution_id)
            if state is not None and state.started_at is not None:
                seconds = (event.time - state.started_at).total_seconds()
                EXECUTION_DURATION.labels(event.status).observe(max(seconds, 0.0))
