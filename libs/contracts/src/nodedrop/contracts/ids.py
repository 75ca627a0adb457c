"""Deterministic event ids.

An event's id is also its ``Nats-Msg-Id``: recording the same decision twice (after a crash or a
redelivery) yields the same id, and JetStream's duplicate window drops the copy. Ids say what the
event is about, never when it was made. Both results of one attempt share an id, so the first
result recorded for an attempt wins.
"""

from __future__ import annotations


def execution_requested(execution_id: str) -> str:
    return f"{execution_id}.requested"


def execution_queued(execution_id: str) -> str:
    """The first time the execution waited for a concurrency slot (one per execution)."""
    return f"{execution_id}.queued"


def execution_started(execution_id: str) -> str:
    return f"{execution_id}.started"


def cancel_requested(execution_id: str) -> str:
    return f"{execution_id}.cancel"


def execution_timed_out(execution_id: str) -> str:
    """The cancel request the scheduler records when the execution's deadline passes."""
    return f"{execution_id}.timeout"


def execution_dead_lettered(execution_id: str) -> str:
    """The request to fail the execution that the scheduler records when a message of it was
    dead-lettered (one per execution, however many of its messages were)."""
    return f"{execution_id}.deadletter"


def execution_finished(execution_id: str) -> str:
    return f"{execution_id}.finished"


def node_ready(execution_id: str, node: str, attempt: int) -> str:
    return f"{execution_id}.{node}.{attempt}.ready"


def node_deferred(execution_id: str, node: str, attempt: int) -> str:
    """The attempt waited for its user's share of the runners (once per attempt)."""
    return f"{execution_id}.{node}.{attempt}.deferred"


def node_waiting(execution_id: str, node: str, attempt: int) -> str:
    return f"{execution_id}.{node}.{attempt}.waiting"


def node_started(execution_id: str, node: str, attempt: int) -> str:
    return f"{execution_id}.{node}.{attempt}.started"


def node_result(execution_id: str, node: str, attempt: int) -> str:
    return f"{execution_id}.{node}.{attempt}.result"


def node_logged(execution_id: str, node: str, attempt: int) -> str:
    return f"{execution_id}.{node}.{attempt}.log"


def node_failure_handled(execution_id: str, node: str, attempt: int) -> str:
    return f"{execution_id}.{node}.{attempt}.handled"


def node_retry(execution_id: str, node: str, attempt: int) -> str:
    return f"{execution_id}.{node}.{attempt}.retry"


def node_cancelled(execution_id: str, node: str, attempt: int) -> str:
    return f"{execution_id}.{node}.{attempt}.cancelled"


def node_skipped(execution_id: str, node: str) -> str:
    return f"{execution_id}.{node}.skipped"


def workflow_called(execution_id: str, node: str, attempt: int) -> str:
    return f"{execution_id}.{node}.{attempt}.call"


def child_started(execution_id: str, node: str, attempt: int, index: int) -> str:
    return f"{execution_id}.{node}.{attempt}.child.{index}"


def child_finished(parent_id: str, child_id: str) -> str:
    """Recorded into the parent (once per child, whoever decides the child's end)."""
    return f"{parent_id}.{child_id}.childfinished"


def parent_cancel(child_id: str) -> str:
    """The cancel the parent's scheduler records into a child when the parent node stops
    waiting for it (the parent ended, the node timed out, a sibling failed)."""
    return f"{child_id}.parentcancel"
