"""What a recorded batch adds to the scheduler's metrics (nodedrop.scheduler.observed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from prometheus_client import REGISTRY

from nodedrop.contracts.events import ExecutionFinished, ExecutionStarted
from nodedrop.scheduler.observed import count_recorded

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_starts_and_ends_are_counted_and_an_end_gets_its_duration() -> None:
    started = sample("nodedrop_executions_started_total")
    failed = sample("nodedrop_executions_finished_total", status="failed")
    durations = sample("nodedrop_execution_duration_seconds_sum", status="failed")
    timed = sample("nodedrop_execution_duration_seconds_count", status="failed")
    states: dict[str, Any] = {
        "e1": SimpleNamespace(started_at=T0),
        "e2": SimpleNamespace(started_at=None),  # cancelled while queued: never started
    }
    count_recorded(
        [
            ExecutionStarted(event_id="s1", execution_id="e3", time=T0, plan=["a"]),
            ExecutionFinished(
                event_id="f1", execution_id="e1", time=T0 + timedelta(seconds=2.5), status="failed"
            ),
            ExecutionFinished(event_id="f2", execution_id="e2", time=T0, status="failed"),
        ],
        states,
    )
    assert sample("nodedrop_executions_started_total") == started + 1
    assert sample("nodedrop_executions_finished_total", status="failed") == failed + 2
    # one duration: the execution that never started has none
    assert sample("nodedrop_execution_duration_seconds_count", status="failed") == timed + 1
    assert sample("nodedrop_execution_duration_seconds_sum", status="failed") == durations + 2.5
