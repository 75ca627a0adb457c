"""The runner's answer to an ``execute_workflow`` attempt, against a stand-in for the saved
workflows (the same ``WorkflowSource`` protocol PostgreSQL's adapter implements)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from nodedrop.contracts.events import ErrorInfo, NodeReady, WorkflowCalled
from nodedrop.runner.subworkflows import SavedWorkflow, WorkflowCaller

T0 = datetime(2026, 12, 7, tzinfo=UTC)
CALLED = {
    "name": "called",
    "nodes": [
        {"id": "start", "type": "manual_trigger"},
        {"id": "on_error", "type": "error_trigger"},
        {"id": "x", "type": "noop"},
    ],
    "connections": [{"from": "start", "to": "x"}, {"from": "on_error", "to": "x"}],
}


class Saved:
    """Saved workflows in memory: ``wf`` of alice, versions 1 and 2."""

    def __init__(self, *, failing: bool = False) -> None:
        self.failing = failing

    async def find(self, workflow_id: str, version: int | None) -> SavedWorkflow | None:
        if self.failing:
            raise OSError("connection refused")
        if workflow_id != "wf" or version not in (None, 1, 2):
            return None
        return SavedWorkflow("wf", version or 2, "alice", CALLED)


def task(depth: int = 0, requester: str | None = "alice", **parameters: Any) -> NodeReady:
    return NodeReady(
        event_id="e",
        execution_id="ex",
        time=T0,
        node="call",
        attempt=2,
        node_type="execute_workflow",
        input={"main": [{"a": 1}, {"a": 2}]},
        parameters={"workflow_id": "wf", "trigger": "start", **parameters},
        requester=requester,
        depth=depth,
    )


async def call(reading: NodeReady, **caller: Any) -> WorkflowCalled | ErrorInfo:
    source = caller.pop("source", Saved())
    return await WorkflowCaller(source, clock=lambda: T0, **caller).call(reading)


async def test_a_call_carries_the_definition_the_version_and_the_inputs() -> None:
    called = await call(task())
    assert isinstance(called, WorkflowCalled)
    assert (called.event_id, called.node, called.attempt) == ("ex.call.2.call", "call", 2)
    assert (called.workflow_id, called.workflow_version, called.trigger) == ("wf", 2, "start")
    assert called.workflow == CALLED
    assert called.inputs == [[{"a": 1}, {"a": 2}]]
    each = await call(task(mode="each_item", concurrency=3, version=1))
    assert isinstance(each, WorkflowCalled)
    assert each.workflow_version == 1
    assert (each.concurrency, each.inputs) == (3, [[{"a": 1}], [{"a": 2}]])


async def test_without_a_trigger_the_first_error_trigger_is_used() -> None:
    called = await call(task(trigger=None))
    assert isinstance(called, WorkflowCalled)
    assert called.trigger == "on_error"


@pytest.mark.parametrize(
    ("reading", "error_type"),
    [
        (task(workflow_id="other"), "WorkflowNotFound"),
        (task(version=3), "WorkflowNotFound"),
        (task(requester="bob"), "WorkflowNotFound"),
        (task(requester=None), "WorkflowNotFound"),
        (task(trigger="x"), "InvalidTrigger"),
        (task(depth=10), "WorkflowDepthExceeded"),
        (task(mode="sometimes"), "InvalidParameters"),
    ],
)
async def test_refusals_are_not_retried(reading: NodeReady, error_type: str) -> None:
    refused = await call(reading)
    assert isinstance(refused, ErrorInfo)
    assert (refused.type, refused.retryable) == (error_type, False)


async def test_another_users_workflow_reads_as_unknown() -> None:
    refused = await call(task(requester="bob"))
    assert isinstance(refused, ErrorInfo)
    assert "alice" not in refused.message
    assert refused.message == "no workflow wf of yours to call"


async def test_the_depth_limit_allows_calls_up_to_it() -> None:
    assert isinstance(await call(task(depth=9), max_depth=10), WorkflowCalled)
    refused = await call(task(depth=10), max_depth=10)
    assert isinstance(refused, ErrorInfo)
    assert "11 deep, over the limit of 10" in refused.message


async def test_an_unreachable_database_may_be_retried() -> None:
    failed = await call(task(), source=Saved(failing=True))
    assert isinstance(failed, ErrorInfo)
    assert (failed.type, failed.retryable) == ("WorkflowSourceError", True)
    without = await call(task(), source=None)
    assert isinstance(without, ErrorInfo)
    assert without.type == "WorkflowSourceUnavailable"


async def test_a_called_webhook_triggers_secret_is_recorded_masked() -> None:
    secret = "a-long-webhook-secret-ending-9f3c"
    hook = {"id": "hook", "type": "webhook_trigger", "parameters": {"secret": secret}}
    hooked: dict[str, Any] = {**CALLED, "nodes": [*CALLED["nodes"], hook]}

    class WithWebhook:
        async def find(self, workflow_id: str, version: int | None) -> SavedWorkflow | None:
            return SavedWorkflow("wf", 2, "alice", hooked)

    called = await call(task(), source=WithWebhook())
    assert isinstance(called, WorkflowCalled)
    assert called.workflow["nodes"][-1]["parameters"]["secret"] == "****9f3c"
    assert hooked["nodes"][-1]["parameters"]["secret"] == secret


@pytest.mark.parametrize(
    ("count", "batch_size", "expected"),
    [(5, 2, [[0, 1], [2, 3], [4]]), (4, 2, [[0, 1], [2, 3]]), (2, 10, [[0, 1]]), (0, 3, [])],
)
async def test_each_item_with_a_batch_size_starts_one_child_per_batch_in_order(
    count: int, batch_size: int, expected: list[list[int]]
) -> None:
    reading = msgspec.structs.replace(
        task(mode="each_item", batch_size=batch_size),
        input={"main": [{"i": i} for i in range(count)]},
    )
    called = await call(reading)
    assert isinstance(called, WorkflowCalled)
    assert [[item["i"] for item in batch] for batch in called.inputs] == expected


class OneDraft:
    """One saved workflow, ``wf`` of alice: a draft saved with problems (a cycle, an unknown
    type), which the api would refuse to run."""

    async def find(self, workflow_id: str, version: int | None) -> SavedWorkflow | None:
        draft = {
            **CALLED,
            "nodes": [*CALLED["nodes"], {"id": "y", "type": "no_such_type"}],
            "connections": [
                *CALLED["connections"],
                {"from": "x", "to": "y"},
                {"from": "y", "to": "x"},
            ],
        }
        return SavedWorkflow("wf", 3, "alice", draft) if workflow_id == "wf" else None


async def test_a_draft_with_problems_is_not_called() -> None:
    refused = await call(task(), source=OneDraft())
    assert isinstance(refused, ErrorInfo)
    assert (refused.type, refused.retryable) == ("InvalidWorkflow", False)
    assert "no_such_type" in refused.message
