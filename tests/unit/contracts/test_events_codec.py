"""The event catalogue on the wire: round trips, immutability, the public shape, stored samples,
deterministic ids and subjects.

``event_samples/v1/<EventType>.json`` are encodings recorded once from :data:`SAMPLES` and
committed. They stand for events already stored in JetStream: they must keep decoding to the same
values for as long as the catalogue lives. Never regenerate or edit them; when a field is added,
record samples of the new shape in a new ``v2`` folder next to them. To record samples of a new
event type: ``.venv/bin/python tests/unit/contracts/test_events_codec.py``, which writes only the
files that are missing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from nodedrop.contracts import ids, routing
from nodedrop.contracts.codec import EventDecodeError, decode, encode, from_public, to_public
from nodedrop.contracts.events import (
    EVENT_TYPES,
    OUTCOMES_RECORDED_VERSION,
    SCHEDULER_ACTOR,
    Cause,
    ChildExecutionFinished,
    ChildExecutionStarted,
    ErrorInfo,
    Event,
    ExecutionCancelRequested,
    ExecutionFinished,
    ExecutionQueued,
    ExecutionRequested,
    ExecutionStarted,
    LogLine,
    NodeCancelled,
    NodeDeferred,
    NodeFailed,
    NodeFailureHandled,
    NodeLogged,
    NodeReady,
    NodeRetryScheduled,
    NodeSkipped,
    NodeStarted,
    NodeSucceeded,
    NodeWaiting,
    WorkflowCalled,
    type_name,
)

SAMPLES_DIR = Path(__file__).parent / "event_samples" / "v1"
EXECUTION = "01JD3Z7Q8X9ABCDEF0123456"
T0 = datetime(2026, 11, 26, 10, 0, 0, 123456, tzinfo=UTC)
WORKFLOW = {
    "name": "Order sync",
    "nodes": [
        {"id": "start", "type": "manual_trigger"},
        {"id": "fetch", "type": "http_request", "parameters": {"url": "https://x.example"}},
    ],
    "connections": [{"from": "start", "to": "fetch"}],
}
ERROR = ErrorInfo(type="HttpServerError", message="503", stack="Traceback ...", retryable=False)

#: One event of every type with every field set to a value other than its default, so that
#: renaming or retyping any field breaks the decoding of the committed samples.
SAMPLES: dict[str, Event] = {
    "ExecutionRequested": ExecutionRequested(
        event_id=ids.execution_requested(EXECUTION),
        execution_id=EXECUTION,
        time=T0,
        v=1,
        workflow=WORKFLOW,
        requested_by="user-1",
        mode="node",
        trigger="start",
        node="fetch",
        input={"main": [{"order": 1}, {"order": 2}]},
        timeout_ms=60_000,
        workflow_id="wf-1",
        workflow_version=3,
        rerun_of="01JD3Z7Q8X9ABCDEF0000000",
    ),
    "ExecutionQueued": ExecutionQueued(
        event_id=ids.execution_queued(EXECUTION),
        execution_id=EXECUTION,
        time=T0 + timedelta(microseconds=500),
        scope="workflow",
        key="wf-1",
        limit=5,
    ),
    "ExecutionStarted": ExecutionStarted(
        event_id=ids.execution_started(EXECUTION),
        execution_id=EXECUTION,
        time=T0 + timedelta(milliseconds=1),
        plan=["start", "fetch"],
    ),
    "NodeReady": NodeReady(
        event_id=ids.node_ready(EXECUTION, "fetch", 2),
        execution_id=EXECUTION,
        time=T0 + timedelta(milliseconds=2),
        node="fetch",
        attempt=2,
        node_type="http_request",
        input={"main": [{"order": 1}]},
        parameters={"url": "https://x.example", "method": "POST"},
        timeout_ms=10_000,
        trigger="start",
    ),
    "NodeDeferred": NodeDeferred(
        event_id=ids.node_deferred(EXECUTION, "fetch", 3),
        execution_id=EXECUTION,
        time=T0 + timedelta(milliseconds=2),
        node="fetch",
        attempt=3,
        key="user-1",
        limit=64,
    ),
    "NodeWaiting": NodeWaiting(
        event_id=ids.node_waiting(EXECUTION, "pause", 1),
        execution_id=EXECUTION,
        time=T0 + timedelta(milliseconds=2),
        node="pause",
        attempt=1,
        input={"main": [{"order": 1}]},
        until=T0 + timedelta(seconds=30),
    ),
    "NodeStarted": NodeStarted(
        event_id=ids.node_started(EXECUTION, "fetch", 2),
        execution_id=EXECUTION,
        time=T0 + timedelta(milliseconds=3),
        node="fetch",
        attempt=2,
        worker="runner-7",
    ),
    "NodeSucceeded": NodeSucceeded(
        event_id=ids.node_result(EXECUTION, "fetch", 2),
        execution_id=EXECUTION,
        time=T0 + timedelta(milliseconds=4),
        node="fetch",
        attempt=2,
        output={"main": [{"status": 200, "body": {"total": 120.5, "items": [1, 2]}}], "x": []},
        pinned=True,
    ),
    "NodeFailed": NodeFailed(
        event_id=ids.node_result(EXECUTION, "fetch", 1),
        execution_id=EXECUTION,
        time=T0 + timedelta(milliseconds=5),
        node="fetch",
        attempt=1,
        error=ERROR,
    ),
    "NodeLogged": NodeLogged(
        event_id=ids.node_logged(EXECUTION, "fetch", 2),
        execution_id=EXECUTION,
        time=T0 + timedelta(milliseconds=4),
        node="fetch",
        attempt=2,
        lines=[LogLine(time=T0 + timedelta(milliseconds=3), level="warning", message="slow")],
    ),
    "NodeFailureHandled": NodeFailureHandled(
        event_id=ids.node_failure_handled(EXECUTION, "fetch", 1),
        execution_id=EXECUTION,
        time=T0 + timedelta(milliseconds=5),
        node="fetch",
        attempt=1,
        outcome="retry",
        error=ERROR,
        failed_at=T0 + timedelta(milliseconds=4),
    ),
    "NodeRetryScheduled": NodeRetryScheduled(
        event_id=ids.node_retry(EXECUTION, "fetch", 1),
        execution_id=EXECUTION,
        time=T0 + timedelta(milliseconds=6),
        node="fetch",
        attempt=1,
        delay_ms=200,
        due_at=T0 + timedelta(milliseconds=206),
    ),
    "NodeSkipped": NodeSkipped(
        event_id=ids.node_skipped(EXECUTION, "notify"),
        execution_id=EXECUTION,
        time=T0 + timedelta(milliseconds=7),
        node="notify",
        reason="no_input",
    ),
    "NodeCancelled": NodeCancelled(
        event_id=ids.node_cancelled(EXECUTION, "fetch", 3),
        execution_id=EXECUTION,
        time=T0 + timedelta(milliseconds=8),
        node="fetch",
        attempt=3,
    ),
    "ExecutionCancelRequested": ExecutionCancelRequested(
        event_id=ids.cancel_requested(EXECUTION),
        execution_id=EXECUTION,
        time=T0 + timedelta(milliseconds=9),
        requested_by="user-1",
        reason="changed my mind",
    ),
    "ExecutionFinished": ExecutionFinished(
        event_id=ids.execution_finished(EXECUTION),
        execution_id=EXECUTION,
        time=T0 + timedelta(seconds=1),
        status="failed",
        error=ErrorInfo(type="HttpServerError", message="503"),
    ),
    "WorkflowCalled": WorkflowCalled(
        event_id=ids.workflow_called(EXECUTION, "call", 2),
        execution_id=EXECUTION,
        time=T0 + timedelta(milliseconds=10),
        node="call",
        attempt=2,
        workflow_id="wf-2",
        workflow_version=4,
        workflow=WORKFLOW,
        trigger="start",
        mode="each_item",
        concurrency=3,
        inputs=[[{"order": 1}], [{"order": 2}]],
    ),
    "ChildExecutionStarted": ChildExecutionStarted(
        event_id=ids.child_started(EXECUTION, "call", 2, 1),
        execution_id=EXECUTION,
        time=T0 + timedelta(milliseconds=11),
        node="call",
        attempt=2,
        index=1,
        child="5f3c0e1d2b4a69788796a5b4c3d2e1f0",
    ),
    "ChildExecutionFinished": ChildExecutionFinished(
        event_id=ids.child_finished(EXECUTION, "5f3c0e1d2b4a69788796a5b4c3d2e1f0"),
        execution_id=EXECUTION,
        time=T0 + timedelta(milliseconds=12),
        node="call",
        attempt=2,
        index=1,
        child="5f3c0e1d2b4a69788796a5b4c3d2e1f0",
        status="partial",
        output=[{"order": 2, "done": True}],
        error=ErrorInfo(type="HttpServerError", message="503"),
    ),
}

#: The smallest valid event of every type: only the required fields.
MINIMAL: dict[str, Event] = {
    "ExecutionRequested": ExecutionRequested(
        event_id="e", execution_id="x", time=T0, workflow={}, requested_by="u"
    ),
    "ExecutionQueued": ExecutionQueued(
        event_id="e", execution_id="x", time=T0, scope="user", key="u", limit=1
    ),
    "ExecutionStarted": ExecutionStarted(event_id="e", execution_id="x", time=T0, plan=[]),
    "NodeReady": NodeReady(
        event_id="e", execution_id="x", time=T0, node="n", attempt=1, node_type="noop", input={}
    ),
    "NodeDeferred": NodeDeferred(
        event_id="e", execution_id="x", time=T0, node="n", attempt=1, key="u", limit=1
    ),
    "NodeWaiting": NodeWaiting(
        event_id="e", execution_id="x", time=T0, node="n", attempt=1, input={}, until=T0
    ),
    "NodeStarted": NodeStarted(event_id="e", execution_id="x", time=T0, node="n", attempt=1),
    "NodeSucceeded": NodeSucceeded(
        event_id="e", execution_id="x", time=T0, node="n", attempt=1, output={}
    ),
    "NodeFailed": NodeFailed(
        event_id="e",
        execution_id="x",
        time=T0,
        node="n",
        attempt=1,
        error=ErrorInfo(type="E", message=""),
    ),
    "NodeLogged": NodeLogged(
        event_id="e", execution_id="x", time=T0, node="n", attempt=1, lines=[]
    ),
    "NodeFailureHandled": NodeFailureHandled(
        event_id="e",
        execution_id="x",
        time=T0,
        node="n",
        attempt=1,
        outcome="fail",
        error=ErrorInfo(type="E", message=""),
        failed_at=T0,
    ),
    "NodeRetryScheduled": NodeRetryScheduled(
        event_id="e", execution_id="x", time=T0, node="n", attempt=1, delay_ms=0, due_at=T0
    ),
    "NodeSkipped": NodeSkipped(
        event_id="e", execution_id="x", time=T0, node="n", reason="cancelled"
    ),
    "NodeCancelled": NodeCancelled(event_id="e", execution_id="x", time=T0, node="n", attempt=1),
    "ExecutionCancelRequested": ExecutionCancelRequested(
        event_id="e", execution_id="x", time=T0, requested_by="u"
    ),
    "ExecutionFinished": ExecutionFinished(
        event_id="e", execution_id="x", time=T0, status="succeeded"
    ),
    "WorkflowCalled": WorkflowCalled(
        event_id="e",
        execution_id="x",
        time=T0,
        node="n",
        attempt=1,
        workflow_id="w",
        workflow_version=1,
        workflow={},
        trigger="t",
        mode="wait",
    ),
    "ChildExecutionStarted": ChildExecutionStarted(
        event_id="e", execution_id="x", time=T0, node="n", attempt=1, index=0, child="c"
    ),
    "ChildExecutionFinished": ChildExecutionFinished(
        event_id="e",
        execution_id="x",
        time=T0,
        node="n",
        attempt=1,
        index=0,
        child="c",
        status="succeeded",
    ),
}

EVENT_TYPE_NAMES = [cls.__name__ for cls in EVENT_TYPES]


def sample_path(name: str) -> Path:
    return SAMPLES_DIR / f"{name}.json"


def write_missing_samples() -> list[Path]:
    """Record the samples of event types that have none yet; existing ones are never touched."""
    SAMPLES_DIR.mkdir(parents=True, exist_ok=True)
    written = []
    for name, event in SAMPLES.items():
        path = sample_path(name)
        if not path.exists():
            path.write_bytes(encode(event) + b"\n")
            written.append(path)
    return written


def fields_of(event: msgspec.Struct) -> tuple[str, ...]:
    return type(event).__struct_fields__


# ------------------------------------------------------------------------------ the catalogue


def test_samples_cover_every_event_type() -> None:
    assert list(SAMPLES) == EVENT_TYPE_NAMES
    assert list(MINIMAL) == EVENT_TYPE_NAMES
    assert [type_name(event) for event in SAMPLES.values()] == EVENT_TYPE_NAMES
    assert [type_name(event) for event in MINIMAL.values()] == EVENT_TYPE_NAMES


#: Fields added to the catalogue after the v1 samples were stored (all with defaults).
ADDED_AFTER_V1 = {
    "trace_context",
    "upstream",
    "reused_outputs",
    "reused_from",
    "requester",
    "credentials",
    "parent_execution",
    "parent_node",
    "parent_attempt",
    "child_index",
    "report_to_parent",
    "depth",
    "error_handler",
    "cause",
}


@pytest.mark.parametrize("name", EVENT_TYPE_NAMES)
def test_full_samples_set_every_field(name: str) -> None:
    """Every field differs from its default, so every field is in the encoding."""
    encoded = json.loads(encode(SAMPLES[name]))
    # The schema version is left out while it is the default, 1; fields added after the v1
    # samples were stored are absent from them, as from every event stored before.
    optional = {"v", *ADDED_AFTER_V1}
    assert set(encoded) == {"type", *fields_of(SAMPLES[name])} - optional


# ------------------------------------------------------------------------------ codec


@pytest.mark.parametrize("events", [SAMPLES, MINIMAL], ids=["full", "minimal"])
@pytest.mark.parametrize("name", EVENT_TYPE_NAMES)
def test_round_trip(events: dict[str, Event], name: str) -> None:
    event = events[name]

    decoded = decode(encode(event))

    assert type(decoded) is type(event)
    assert decoded == event
    assert encode(decoded) == encode(event)


@pytest.mark.parametrize("name", EVENT_TYPE_NAMES)
def test_encoding_is_json_tagged_by_type(name: str) -> None:
    encoded = json.loads(encode(SAMPLES[name]))

    assert encoded["type"] == name
    assert encoded["execution_id"] == EXECUTION
    assert encoded["event_id"] == SAMPLES[name].event_id


def test_time_is_encoded_as_utc_iso_8601() -> None:
    encoded = json.loads(encode(SAMPLES["NodeRetryScheduled"]))

    assert encoded["time"] == "2026-11-26T10:00:00.129456Z"
    assert encoded["due_at"] == "2026-11-26T10:00:00.329456Z"


def test_unknown_fields_are_ignored_so_older_readers_decode_newer_events() -> None:
    encoded = json.loads(encode(SAMPLES["NodeSucceeded"]))
    encoded["added_in_a_later_version"] = {"anything": [1, 2]}

    assert decode(json.dumps(encoded).encode()) == SAMPLES["NodeSucceeded"]


def test_schema_version_defaults_to_1_and_is_kept_when_set() -> None:
    event = MINIMAL["NodeStarted"]
    assert event.v == 1
    assert "v" not in json.loads(encode(event))

    newer = msgspec.structs.replace(event, v=2)
    assert decode(encode(newer)).v == 2


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage",
        b"\xff\xfe",
        b"null",
        b"[]",
        b'"NodeStarted"',
        b"{}",
        b'{"type": "NodeExploded", "event_id": "e", "execution_id": "x", '
        b'"time": "2026-11-26T10:00:00Z"}',
        b'{"type": "Event", "event_id": "e", "execution_id": "x", "time": "2026-11-26T10:00:00Z"}',
        b'{"type": "NodeStarted", "event_id": "e", "execution_id": "x", '
        b'"time": "2026-11-26T10:00:00Z"}',
        b'{"type": "NodeStarted", "event_id": "e", "execution_id": "x", '
        b'"time": "2026-11-26T10:00:00Z", "node": "n", "attempt": "one"}',
        b'{"type": "NodeStarted", "event_id": "e", "execution_id": "x", '
        b'"time": "yesterday", "node": "n", "attempt": 1}',
        b'{"type": "NodeSkipped", "event_id": "e", "execution_id": "x", '
        b'"time": "2026-11-26T10:00:00Z", "node": "n", "reason": "bored"}',
        b'{"type": "NodeStarted", "event_id": "e", "execution_id": "x", '
        b'"time": "2026-11-26T10:00:00Z", "node": "n", "attempt": 1',
    ],
    ids=[
        "empty",
        "garbage",
        "not-utf8",
        "null",
        "array",
        "string",
        "no-type",
        "unknown-type",
        "base-class",
        "missing-field",
        "wrong-field-type",
        "bad-time",
        "bad-literal",
        "truncated",
    ],
)
def test_decode_rejects_what_is_not_an_event(data: bytes) -> None:
    with pytest.raises(EventDecodeError):
        decode(data)


def test_decode_error_is_a_value_error_with_the_cause() -> None:
    with pytest.raises(ValueError, match="NodeExploded") as info:
        decode(b'{"type": "NodeExploded"}')

    assert isinstance(info.value, EventDecodeError)
    assert isinstance(info.value.__cause__, msgspec.DecodeError)


# ------------------------------------------------------------------------------ immutability


@pytest.mark.parametrize("name", EVENT_TYPE_NAMES)
def test_events_are_immutable(name: str) -> None:
    event = SAMPLES[name]
    before = encode(event)

    for field in fields_of(event):
        with pytest.raises(AttributeError):
            setattr(event, field, None)
    with pytest.raises(AttributeError):
        event.new_field = 1  # type: ignore[attr-defined]
    assert encode(event) == before


def test_error_info_is_immutable() -> None:
    with pytest.raises(AttributeError):
        ERROR.message = "changed"  # type: ignore[misc]
    assert ERROR.message == "503"


def test_replace_makes_a_new_event() -> None:
    event = SAMPLES["NodeStarted"]
    assert isinstance(event, NodeStarted)

    moved = msgspec.structs.replace(event, attempt=3)

    assert (event.attempt, moved.attempt) == (2, 3)
    assert moved != event


# ------------------------------------------------------------------------------ public shape

CONTRACT_KEYS = {"seq", "type", "time", "execution_id", "node", "attempt", "data"}


def test_public_shape_of_a_node_event() -> None:
    public = to_public(SAMPLES["NodeSucceeded"], seq=17)

    assert public == {
        "seq": 17,
        "type": "NodeSucceeded",
        "time": "2026-11-26T10:00:00.127456Z",
        "execution_id": EXECUTION,
        "node": "fetch",
        "attempt": 2,
        "event_id": f"{EXECUTION}.fetch.2.result",
        "v": 1,
        "actor": None,
        "data": {
            "output": {
                "main": [{"status": 200, "body": {"total": 120.5, "items": [1, 2]}}],
                "x": [],
            },
            "pinned": True,
        },
    }


def test_public_shape_of_an_execution_event() -> None:
    public = to_public(SAMPLES["ExecutionFinished"], seq=99)

    assert public == {
        "seq": 99,
        "type": "ExecutionFinished",
        "time": "2026-11-26T10:00:01.123456Z",
        "execution_id": EXECUTION,
        "node": None,
        "attempt": None,
        "event_id": f"{EXECUTION}.finished",
        "v": 1,
        "actor": None,
        "data": {"status": "failed", "error": {"type": "HttpServerError", "message": "503"}},
    }


@pytest.mark.parametrize("name", ["ExecutionRequested", "ExecutionCancelRequested"])
def test_public_shape_names_the_user_who_caused_the_event(name: str) -> None:
    public = to_public(SAMPLES[name], seq=1)

    assert public["actor"] == "user-1"
    assert public["data"]["requested_by"] == "user-1"


def test_what_the_scheduler_asks_for_itself_has_no_actor() -> None:
    timeout = msgspec.structs.replace(
        SAMPLES["ExecutionCancelRequested"], requested_by=SCHEDULER_ACTOR, reason="timed_out"
    )

    assert to_public(timeout, seq=1)["actor"] is None


def test_v1_events_decode_without_reuse_and_reuse_round_trips() -> None:
    requested = decode(sample_path("ExecutionRequested").read_bytes())
    succeeded = decode(sample_path("NodeSucceeded").read_bytes())
    assert isinstance(requested, ExecutionRequested)
    assert isinstance(succeeded, NodeSucceeded)
    assert (requested.reused_outputs, succeeded.reused_from) == ({}, None)

    rerun = msgspec.structs.replace(requested, reused_outputs={"start": {"main": [{"a": 1}]}})
    reused = msgspec.structs.replace(succeeded, pinned=False, reused_from="first")

    assert decode(encode(rerun)) == rerun
    assert decode(encode(reused)) == reused
    assert to_public(reused, seq=2)["data"]["reused_from"] == "first"


def test_public_shape_of_a_node_event_without_attempt() -> None:
    public = to_public(SAMPLES["NodeSkipped"], seq=3)

    assert (public["node"], public["attempt"], public["data"]) == (
        "notify",
        None,
        {"reason": "no_input"},
    )


@pytest.mark.parametrize("events", [SAMPLES, MINIMAL], ids=["full", "minimal"])
@pytest.mark.parametrize("name", EVENT_TYPE_NAMES)
def test_public_shape_of_every_event(events: dict[str, Event], name: str) -> None:
    event = events[name]

    public = to_public(event, seq=5)

    # The contract's keys, plus event_id, v and actor (documented additions).
    assert set(public) == CONTRACT_KEYS | {"event_id", "v", "actor"}
    assert (public["seq"], public["type"], public["execution_id"]) == (
        5,
        name,
        event.execution_id,
    )
    assert datetime.fromisoformat(public["time"]) == event.time
    assert public["node"] == getattr(event, "node", None)
    assert public["attempt"] == getattr(event, "attempt", None)
    # Everything else is in data, and nothing is there twice.
    envelope = {"event_id", "execution_id", "time", "v", "node", "attempt"}
    assert set(public["data"]) <= set(fields_of(event)) - envelope
    assert set(public["data"]) >= set(json.loads(encode(event))) - envelope - {"type"}
    # Clients get plain JSON, and can decode it back into the event.
    assert json.loads(json.dumps(public)) == public
    assert from_public(json.loads(json.dumps(public))) == event


def test_a_public_event_keeps_its_schema_version() -> None:
    started = ExecutionStarted(
        event_id="e", execution_id=EXECUTION, time=T0, plan=["a"], v=OUTCOMES_RECORDED_VERSION
    )
    public = to_public(started, seq=2)
    assert public["v"] == OUTCOMES_RECORDED_VERSION
    assert from_public(public) == started
    # An older server sent no `v`: version 1.
    assert from_public({k: v for k, v in public.items() if k != "v"}).v == 1


@pytest.mark.parametrize(
    "public",
    [
        {"type": "NodeSomethingNew", "event_id": "e", "execution_id": "x", "data": {}},
        {"type": "ExecutionFinished", "event_id": "e", "execution_id": "x", "data": None},
        {"type": "ExecutionStarted", "event_id": "e", "execution_id": "x", "data": {}},
    ],
    ids=["unknown type", "no data", "missing field"],
)
def test_a_public_shape_that_is_no_event_is_refused(public: dict[str, Any]) -> None:
    with pytest.raises(EventDecodeError):
        from_public(public)


# ------------------------------------------------------------------------------ stored samples


def test_every_event_type_has_a_committed_sample() -> None:
    assert sorted(p.stem for p in SAMPLES_DIR.glob("*.json")) == sorted(EVENT_TYPE_NAMES)


@pytest.mark.parametrize("name", EVENT_TYPE_NAMES)
def test_committed_sample_still_decodes_to_the_same_event(name: str) -> None:
    stored = sample_path(name).read_bytes()

    decoded = decode(stored)

    assert type(decoded).__name__ == name
    assert decoded == SAMPLES[name]
    assert to_public(decoded, seq=1) == to_public(SAMPLES[name], seq=1)


# ------------------------------------------------------------------------------ ids


def all_ids(execution: str, node: str, attempt: int) -> dict[str, str]:
    return {
        "requested": ids.execution_requested(execution),
        "started": ids.execution_started(execution),
        "cancel": ids.cancel_requested(execution),
        "finished": ids.execution_finished(execution),
        "node_ready": ids.node_ready(execution, node, attempt),
        "node_started": ids.node_started(execution, node, attempt),
        "node_result": ids.node_result(execution, node, attempt),
        "node_retry": ids.node_retry(execution, node, attempt),
        "node_cancelled": ids.node_cancelled(execution, node, attempt),
        "node_skipped": ids.node_skipped(execution, node),
    }


def test_ids_are_deterministic_and_known() -> None:
    # Recorded ids are Nats-Msg-Ids: a format change would let a redelivered decision through
    # the duplicate window, so the format is pinned here.
    assert all_ids("ex1", "fetch", 2) == {
        "requested": "ex1.requested",
        "started": "ex1.started",
        "cancel": "ex1.cancel",
        "finished": "ex1.finished",
        "node_ready": "ex1.fetch.2.ready",
        "node_started": "ex1.fetch.2.started",
        "node_result": "ex1.fetch.2.result",
        "node_retry": "ex1.fetch.2.retry",
        "node_cancelled": "ex1.fetch.2.cancelled",
        "node_skipped": "ex1.fetch.skipped",
    }
    assert all_ids("ex1", "fetch", 2) == all_ids("ex1", "fetch", 2)


@pytest.mark.parametrize("node", ["fetch", "requested", "started", "cancel", "finished", "ready"])
def test_ids_of_different_events_never_collide(node: str) -> None:
    """Even when a node is named like an execution-level event."""
    produced = [
        *all_ids("ex1", node, 1).values(),
        *all_ids("ex1", node, 2).values(),
        *all_ids("ex1", "other", 1).values(),
        *all_ids("ex2", node, 1).values(),
    ]
    # ex1/node/1: 10 ids; attempt 2 adds its 5 attempt-level ids (the execution-level ones and
    # node_skipped are the same); another node adds its 6 node-level ids; ex2 adds all 10.
    assert len(set(produced)) == 10 + 5 + 6 + 10


def test_both_results_of_one_attempt_share_an_id() -> None:
    succeeded = SAMPLES["NodeSucceeded"]
    failed = msgspec.structs.replace(SAMPLES["NodeFailed"], attempt=2)
    assert isinstance(succeeded, NodeSucceeded)
    assert isinstance(failed, NodeFailed)

    result_id = ids.node_result(EXECUTION, "fetch", 2)

    assert succeeded.event_id == result_id
    assert ids.node_result(failed.execution_id, failed.node, failed.attempt) == result_id
    assert ids.node_result(EXECUTION, "fetch", 3) != result_id
    assert ids.node_started(EXECUTION, "fetch", 2) != result_id


# ------------------------------------------------------------------------------ subjects


@pytest.mark.parametrize(
    ("execution_id", "expected"),
    [("exec-1", 217), (EXECUTION, 116), ("ex", 19), ("a", 67)],
)
def test_slot_is_stable(execution_id: str, expected: int) -> None:
    # crc32, not hash(): the same in every process and every Python version.
    assert routing.slot_of(execution_id) == expected


def test_slots_are_three_digits_in_range_and_all_used() -> None:
    seen = {routing.slot_token(routing.slot_of(f"execution-{i}")) for i in range(20_000)}

    assert seen == {f"{n:03d}" for n in range(routing.SLOTS)}
    assert routing.SLOTS == 256


@pytest.mark.parametrize("name", EVENT_TYPE_NAMES)
def test_event_subject_holds_slot_execution_and_type(name: str) -> None:
    event = SAMPLES[name]

    subject = routing.event_subject(event)

    assert subject == f"nodedrop.log.116.{EXECUTION}.{name}"
    assert routing.execution_id_of(subject) == EXECUTION
    assert routing.is_event_subject(subject)


@pytest.mark.parametrize("execution_id", ["exec-1", EXECUTION, "a", "0b9f1c2e-uuid-like-id"])
def test_execution_id_of_inverts_event_subject(execution_id: str) -> None:
    event = msgspec.structs.replace(MINIMAL["ExecutionFinished"], execution_id=execution_id)

    subject = routing.event_subject(event)

    assert subject.split(".")[2] == routing.slot_token(routing.slot_of(execution_id))
    assert routing.execution_id_of(subject) == execution_id
    assert routing.execution_id_of(routing.execution_subject(execution_id)) == execution_id


def test_execution_subject_covers_the_event_subjects_of_that_execution() -> None:
    wildcard = routing.execution_subject(EXECUTION)

    assert wildcard == f"nodedrop.log.116.{EXECUTION}.>"
    assert routing.event_subject(SAMPLES["NodeReady"]).startswith(wildcard[:-1])
    assert routing.execution_subject(EXECUTION, "NodeReady") == routing.event_subject(
        SAMPLES["NodeReady"]
    )


def test_type_filters() -> None:
    assert routing.all_events() == "nodedrop.log.>"
    assert routing.events_of_type(NodeReady) == "nodedrop.log.*.*.NodeReady"
    assert routing.events_of_type("NodeFailed") == "nodedrop.log.*.*.NodeFailed"
    assert routing.node_ready_subjects() == routing.events_of_type(NodeReady)


if __name__ == "__main__":
    write_missing_samples()


def test_a_decisions_cause_stays_out_of_its_public_shape() -> None:
    decided = msgspec.structs.replace(
        SAMPLES["ExecutionFinished"], cause=Cause(call="step", after="a.1.result")
    )
    assert b'"cause":{"call":"step","after":"a.1.result"}' in encode(decided)  # stored
    assert to_public(decided, seq=99) == to_public(SAMPLES["ExecutionFinished"], seq=99)
