"""POST /api/executions/{id}/rerun against a real event log: what a rerun request records, and
its rejections. The first execution's history is written to the stream as the scheduler and the
runners would have recorded it (no scheduler runs here)."""

from __future__ import annotations

import copy
import dataclasses
from datetime import timedelta
from typing import Any

import pytest

from nodedrop.api.eventlog import EventLog
from nodedrop.contracts import ids
from nodedrop.contracts.events import (
    OUTCOMES_RECORDED_VERSION,
    ErrorInfo,
    ExecutionFinished,
    ExecutionRequested,
    ExecutionStarted,
    FailureOutcome,
    FinalStatus,
    NodeFailed,
    NodeFailureHandled,
    NodeReady,
    NodeSkipped,
    NodeSucceeded,
    SkipReason,
)
from nodedrop.contracts.items import PortItems
from nodedrop.contracts.routing import Layout

from .harness import T0, Api
from .users import client_for, create_user

pytestmark = pytest.mark.integration

# start -> a -> b -> c -> d, and a side branch start -> side.
CHAIN: dict[str, Any] = {
    "name": "chain",
    "nodes": [
        {"id": "start", "type": "manual_trigger"},
        {"id": "a", "type": "noop"},
        {"id": "b", "type": "noop"},
        {"id": "c", "type": "noop"},
        {"id": "d", "type": "noop"},
        {"id": "side", "type": "set", "parameters": {"values": {"side": True}}},
    ],
    "connections": [
        {"from": "start", "to": "a"},
        {"from": "a", "to": "b"},
        {"from": "b", "to": "c"},
        {"from": "c", "to": "d"},
        {"from": "start", "to": "side"},
    ],
}


def out(node: str) -> PortItems:
    return {"main": [{"from": node}]}


@dataclasses.dataclass
class History:
    """Records an execution's events the way the scheduler and the runners would."""

    api: Api
    execution_id: str
    step: int = 0

    def _time(self) -> Any:
        self.step += 1
        return T0 + timedelta(milliseconds=self.step)

    async def _append(self, event: Any) -> None:
        await self.api.resources.events.append(event)

    async def started(self, plan: list[str], *, outcomes_recorded: bool = False) -> None:
        """``outcomes_recorded``: as today's scheduler records (each failure's outcome after
        it); else as one before that did, whose failures a reader judges itself."""
        await self._append(
            ExecutionStarted(
                event_id=ids.execution_started(self.execution_id),
                execution_id=self.execution_id,
                time=self._time(),
                plan=plan,
                v=OUTCOMES_RECORDED_VERSION if outcomes_recorded else 1,
            )
        )

    async def ready(self, node: str, attempt: int = 1) -> None:
        await self._append(
            NodeReady(
                event_id=ids.node_ready(self.execution_id, node, attempt),
                execution_id=self.execution_id,
                time=self._time(),
                node=node,
                attempt=attempt,
                node_type="noop",
                input={"main": [{}]},
            )
        )

    async def succeeded(
        self, node: str, output: PortItems | None = None, *, attempt: int = 1, **extra: Any
    ) -> None:
        if attempt:
            await self.ready(node, attempt)
        await self._append(
            NodeSucceeded(
                event_id=ids.node_result(self.execution_id, node, attempt),
                execution_id=self.execution_id,
                time=self._time(),
                node=node,
                attempt=attempt,
                output=output if output is not None else out(node),
                **extra,
            )
        )

    async def failed(
        self, node: str, attempt: int = 1, *, outcome: FailureOutcome | None = None
    ) -> None:
        """``outcome``: the scheduler's, recorded after the failure (histories started with
        ``outcomes_recorded``)."""
        await self.ready(node, attempt)
        error = ErrorInfo(type="Boom", message=f"{node} failed")
        failed_at = self._time()
        await self._append(
            NodeFailed(
                event_id=ids.node_result(self.execution_id, node, attempt),
                execution_id=self.execution_id,
                time=failed_at,
                node=node,
                attempt=attempt,
                error=error,
            )
        )
        if outcome is not None:
            await self._append(
                NodeFailureHandled(
                    event_id=ids.node_failure_handled(self.execution_id, node, attempt),
                    execution_id=self.execution_id,
                    time=self._time(),
                    node=node,
                    attempt=attempt,
                    outcome=outcome,
                    error=error,
                    failed_at=failed_at,
                )
            )

    async def skipped(self, node: str, reason: SkipReason = "no_input") -> None:
        await self._append(
            NodeSkipped(
                event_id=ids.node_skipped(self.execution_id, node),
                execution_id=self.execution_id,
                time=self._time(),
                node=node,
                reason=reason,
            )
        )

    async def finished(self, status: FinalStatus) -> None:
        await self._append(
            ExecutionFinished(
                event_id=ids.execution_finished(self.execution_id),
                execution_id=self.execution_id,
                time=self._time(),
                status=status,
            )
        )


async def request(api: Api, workflow: dict[str, Any], **body: Any) -> History:
    response = await api.client.post(
        "/api/executions", json={"workflow": workflow, "input": [{"n": 1}], **body}
    )
    assert response.status_code == 202, response.text
    return History(api, response.json()["id"])


async def chain_that_failed_at_c(api: Api) -> History:
    """The first execution: start, a, b and side succeeded, c failed, d was skipped."""
    history = await request(api, CHAIN)
    await history.started(["start", "a", "b", "c", "d", "side"])
    for node in ("start", "a", "side", "b"):
        await history.succeeded(node)
    await history.failed("c")
    await history.skipped("d", "execution_failed")
    await history.finished("failed")
    return history


async def rerun(api: Api, execution_id: str, from_node: str) -> ExecutionRequested:
    response = await api.client.post(
        f"/api/executions/{execution_id}/rerun", json={"from_node": from_node}
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body == {"id": body["id"], "status": "queued", "rerun_of": execution_id}
    assert response.headers["Location"] == f"/api/executions/{body['id']}"
    [(event, _)] = await api.stream_events(body["id"])
    assert isinstance(event, ExecutionRequested)
    return event


async def test_rerun_from_the_failed_node_reuses_everything_upstream_of_it(api: Api) -> None:
    first = await chain_that_failed_at_c(api)
    [(original, _)] = [
        (e, s) for e, s in await api.stream_events(first.execution_id)
        if isinstance(e, ExecutionRequested)
    ]  # fmt: skip

    event = await rerun(api, first.execution_id, "c")

    assert event.rerun_of == first.execution_id
    assert event.reused_outputs == {n: out(n) for n in ("start", "a", "b", "side")}
    assert event.requested_by == "admin"
    # The same request again: snapshot, mode, trigger, input, timeout.
    assert (event.workflow, event.mode, event.trigger, event.input, event.timeout_ms) == (
        original.workflow,
        "trigger",
        "start",
        [{"n": 1}],
        original.timeout_ms,
    )
    # The new execution is readable at once, linked to the first.
    got = (await api.client.get(f"/api/executions/{event.execution_id}")).json()
    assert (got["status"], got["rerun_of"]) == ("queued", first.execution_id)


async def test_rerun_from_an_earlier_node_runs_it_and_everything_downstream(api: Api) -> None:
    first = await chain_that_failed_at_c(api)

    event = await rerun(api, first.execution_id, "a")

    assert event.reused_outputs == {"start": out("start"), "side": out("side")}
    assert (await rerun(api, first.execution_id, "start")).reused_outputs == {}


async def test_nodes_below_one_that_runs_again_are_not_reused(api: Api) -> None:
    """`flaky` failed (on_error continue) and runs again, so `joined` (below it) runs again too,
    although it succeeded. `cond` sent nothing to `no`: `no` was skipped and will be again, so
    `after` (below `yes` and `no`) keeps its recorded output."""
    workflow = copy.deepcopy(CHAIN)
    workflow["nodes"] += [
        {"id": "flaky", "type": "noop", "on_error": "continue"},
        {"id": "joined", "type": "merge"},
        {"id": "cond", "type": "if", "parameters": {"condition": "{{ true }}"}},
        {"id": "yes", "type": "noop"},
        {"id": "no", "type": "noop"},
        {"id": "after", "type": "merge"},
    ]
    workflow["connections"] += [
        {"from": "start", "to": "flaky"},
        {"from": "start", "to": "joined"},
        {"from": "flaky", "to": "joined"},
        {"from": "start", "to": "cond"},
        {"from": "cond", "output": "true", "to": "yes"},
        {"from": "cond", "output": "false", "to": "no"},
        {"from": "yes", "to": "after"},
        {"from": "no", "to": "after"},
    ]
    first = await request(api, workflow)
    plan = [node["id"] for node in workflow["nodes"]]
    await first.started(plan)
    for node in ("start", "a", "b", "c", "d", "side", "joined", "yes", "after"):
        await first.succeeded(node)
    await first.succeeded("cond", {"true": [{"n": 1}], "false": []})
    await first.failed("flaky")
    await first.skipped("no")
    await first.finished("partial")

    event = await rerun(api, first.execution_id, "d")

    assert set(event.reused_outputs) == {"start", "a", "b", "c", "side", "cond", "yes", "after"}
    assert event.reused_outputs["cond"] == {"true": [{"n": 1}], "false": []}


async def test_only_the_current_attempts_result_counts(api: Api) -> None:
    """`a` failed, then succeeded on its retry; `b` is pinned (pinned again, nothing carried)."""
    workflow = copy.deepcopy(CHAIN)
    workflow["nodes"][2]["pinned_output"] = {"main": [{"pinned": 1}]}
    first = await request(api, workflow)
    await first.started(["start", "a", "b", "c", "d", "side"], outcomes_recorded=True)
    await first.succeeded("start")
    await first.failed("a", attempt=1, outcome="retry")
    await first.succeeded("a", {"main": [{"try": 2}]}, attempt=2)
    await first.succeeded("b", {"main": [{"pinned": 1}]}, attempt=0, pinned=True)
    await first.succeeded("side")
    await first.failed("c", outcome="fail")
    await first.finished("failed")

    event = await rerun(api, first.execution_id, "c")

    assert event.reused_outputs == {
        "start": out("start"),
        "a": {"main": [{"try": 2}]},
        "side": out("side"),
    }


async def test_a_rerun_of_a_rerun_reuses_what_the_rerun_reused(api: Api) -> None:
    first = await chain_that_failed_at_c(api)
    second_request = await rerun(api, first.execution_id, "c")
    second = History(api, second_request.execution_id)
    await second.started(["start", "a", "b", "c", "d", "side"])
    for node in ("start", "a", "b", "side"):
        await second.succeeded(node, attempt=0, reused_from=first.execution_id)
    await second.succeeded("c")
    await second.failed("d")
    await second.finished("failed")

    third = await rerun(api, second.execution_id, "d")

    assert third.rerun_of == second.execution_id
    assert third.reused_outputs == {n: out(n) for n in ("start", "a", "b", "c", "side")}


async def test_a_saved_workflow_is_rerun_as_it_was_recorded(api: Api) -> None:
    created = await api.client.post("/api/workflows", json=CHAIN)
    workflow_id = created.json()["id"]
    response = await api.client.post("/api/executions", json={"workflow_id": workflow_id})
    first = History(api, response.json()["id"])
    await first.started(["start", "a", "b", "c", "d", "side"])
    for node in ("start", "a", "b", "c", "d", "side"):
        await first.succeeded(node)
    await first.finished("succeeded")
    edited = copy.deepcopy(CHAIN)
    edited["nodes"][3] = {"id": "c", "type": "set", "parameters": {"values": {"edited": 1}}}
    assert (await api.client.put(f"/api/workflows/{workflow_id}", json=edited)).status_code == 200

    event = await rerun(api, first.execution_id, "c")

    assert (event.workflow_id, event.workflow_version) == (workflow_id, 1)
    assert event.workflow["nodes"][3] == {"id": "c", "type": "noop"}


async def test_a_node_mode_execution_is_rerun_with_its_input(api: Api) -> None:
    first = await request(api, CHAIN, mode="node", node="c", input={"main": [{"given": 1}]})
    await first.started(["c"])
    await first.failed("c")
    await first.finished("failed")

    event = await rerun(api, first.execution_id, "c")

    assert (event.mode, event.node, event.input, event.reused_outputs) == (
        "node",
        "c",
        {"main": [{"given": 1}]},
        {},
    )
    response = await api.client.post(
        f"/api/executions/{first.execution_id}/rerun", json={"from_node": "b"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "from_node"]


async def test_events_name_the_user_who_asked(api: Api) -> None:
    first = await chain_that_failed_at_c(api)
    event = await rerun(api, first.execution_id, "c")

    for execution_id in (first.execution_id, event.execution_id):
        response = await api.client.get(f"/api/executions/{execution_id}/events")
        events = response.json()["events"]
        assert [(e["type"], e["actor"]) for e in events if e["actor"] is not None] == [
            ("ExecutionRequested", "admin")
        ]
    first_events = (await api.client.get(f"/api/executions/{first.execution_id}/events")).json()
    assert all("actor" in e for e in first_events["events"])


async def test_the_user_who_asks_for_the_rerun_is_recorded(api: Api) -> None:
    alice = await create_user(api, "alice")
    async with client_for(api.app, alice.key) as as_alice:
        response = await as_alice.post(
            "/api/executions", json={"workflow": CHAIN, "input": [{"n": 1}]}
        )
        first = History(api, response.json()["id"])
        await first.started(["start", "a", "b", "c", "d", "side"])
        await first.succeeded("start")
        await first.failed("a")
        await first.finished("failed")

        response = await as_alice.post(
            f"/api/executions/{first.execution_id}/rerun", json={"from_node": "a"}
        )
        assert response.status_code == 202, response.text
        rerun_id = response.json()["id"]
        events = (await as_alice.get(f"/api/executions/{rerun_id}/events")).json()["events"]

    [(requested, _)] = await api.stream_events(rerun_id)
    assert isinstance(requested, ExecutionRequested)
    assert requested.requested_by == alice.id
    assert [(e["type"], e["actor"]) for e in events] == [("ExecutionRequested", alice.id)]


# ------------------------------------------------------------------------------ rejections


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"from_node": "ghost"}, ["body", "from_node"]),
        ({}, ["body", "from_node"]),
        ({"from_node": "c", "extra": 1}, ["body", "extra"]),
    ],
    ids=["unknown node", "missing", "unknown field"],
)
async def test_a_bad_body_is_422_naming_the_field(
    api: Api, body: dict[str, Any], loc: list[str]
) -> None:
    first = await chain_that_failed_at_c(api)
    before = await api.stream_count()

    response = await api.client.post(f"/api/executions/{first.execution_id}/rerun", json=body)

    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == loc
    assert await api.stream_count() == before


async def test_a_node_outside_the_plan_is_422(api: Api) -> None:
    workflow = copy.deepcopy(CHAIN)
    workflow["nodes"] += [
        {"id": "hook", "type": "webhook_trigger"},
        {"id": "hooked", "type": "noop"},
    ]
    workflow["connections"] += [{"from": "hook", "to": "hooked"}]
    first = await request(api, workflow, trigger="start")
    await first.started(["start", "a", "b", "c", "d", "side"])
    await first.finished("cancelled")

    response = await api.client.post(
        f"/api/executions/{first.execution_id}/rerun", json={"from_node": "hooked"}
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "from_node"]
    assert "'hooked' is not a node of execution" in response.json()["detail"][0]["msg"]


async def test_an_unknown_execution_is_404(api: Api) -> None:
    for execution_id in ("nope", "bad.id"):
        response = await api.client.post(
            f"/api/executions/{execution_id}/rerun", json={"from_node": "c"}
        )
        assert response.status_code == 404


async def test_an_execution_that_has_not_finished_is_409(api: Api) -> None:
    first = await request(api, CHAIN)
    await first.started(["start", "a", "b", "c", "d", "side"])
    await first.succeeded("start")
    before = await api.stream_count()

    response = await api.client.post(
        f"/api/executions/{first.execution_id}/rerun", json={"from_node": "a"}
    )

    assert response.status_code == 409
    assert "has not finished" in response.json()["detail"]
    assert await api.stream_count() == before


async def test_a_rerun_too_large_for_one_event_is_413(api: Api) -> None:
    first = await request(api, CHAIN)
    await first.started(["start", "a", "b", "c", "d", "side"])
    await first.succeeded("start", {"main": [{"blob": "x" * 1_500}]})
    await first.failed("a")
    await first.finished("failed")
    resources = api.resources
    small = EventLog(
        resources.nc, resources.nc.jetstream(), max_msg_size=2_000, layout=Layout.from_env()
    )
    api.app.state.resources = dataclasses.replace(resources, events=small)
    before = await api.stream_count()

    response = await api.client.post(
        f"/api/executions/{first.execution_id}/rerun", json={"from_node": "a"}
    )

    assert response.status_code == 413
    assert "at most 2000" in response.json()["detail"]
    assert await api.stream_count() == before
