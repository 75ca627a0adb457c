"""The chaos suite's oracle (tests/chaos/oracle.py) fed made-up histories, side effects and
projection rows: a correct run passes; a lost side effect, an output the far side never gave, a
duplicate result, a wrong projection row and a fault that did not land each fail."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec
import pytest

from nodedrop.contracts.errors import RUNNER_LOST
from nodedrop.contracts.events import (
    AnyEvent,
    ErrorInfo,
    ExecutionFinished,
    ExecutionStarted,
    NodeFailed,
    NodeReady,
    NodeStarted,
    NodeSucceeded,
)
from nodedrop.runner.nodes.http_request import idempotency_key

if TYPE_CHECKING:
    from tests.chaos import oracle
else:  # pytest puts tests/ on sys.path (tests/conftest.py), not the repository's root
    from chaos import oracle

URL = "http://127.0.0.1:9"
EXECUTION = "01a25095-0774-73d8-b648-7fea83ce2a5c"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def five_nodes() -> dict[str, Any]:
    """The chaos workload's workflow (tests/chaos/workload.py)."""
    retry = {"max_attempts": 3, "initial_interval_ms": 200}
    charge = {"method": "POST", "url": f"{URL}/charge", "json": {"n": "{{ item.n }}"}}
    return {
        "nodes": [
            {"id": "start", "type": "manual_trigger"},
            {"id": "charge", "type": "http_request", "retry": retry,
             "parameters": charge},
            {"id": "enrich", "type": "set", "parameters": {"values": {"charged": True}}},
            {"id": "notify", "type": "http_request", "retry": retry,
             "parameters": {"method": "POST", "url": f"{URL}/notify", "json": {"done": True}}},
            {"id": "done", "type": "noop"},
        ],
        "connections": [
            {"from": "start", "to": "charge"},
            {"from": "charge", "to": "enrich"},
            {"from": "enrich", "to": "notify"},
            {"from": "notify", "to": "done"},
        ],
    }  # fmt: skip


def http_item(answer: dict[str, Any]) -> dict[str, Any]:
    """What the runner outputs for a 200 with ``answer`` (the far side's headers included)."""
    return {
        "status": 200,
        "headers": {
            "server": "BaseHTTP/0.6 Python/3.11.7",
            "date": "Thu, 01 Jan 2026 00:00:00 GMT",
            "content-type": "application/json",
            "content-length": str(len(json.dumps(answer))),
        },
        "body": answer,
        "body_encoding": "json",
    }


@dataclasses.dataclass
class Run:
    """A history, the side effects and the projection rows of one correct execution."""

    events: list[AnyEvent]
    effects: list[oracle.Effect]
    projection: oracle.Projection
    submitted: dict[str, oracle.Submitted]

    def verdict(self) -> oracle.Verdict:
        return oracle.verify(self.submitted, self.events, self.effects, self.projection)


def correct_run(*, runner_lost_on: str | None = None) -> Run:
    """One five-node execution that succeeded; ``runner_lost_on``: that node's first attempt
    was held by a runner that died after sending its request (RunnerLost, then attempt 2)."""
    clock = iter(T0 + timedelta(milliseconds=10 * i) for i in range(1000))

    def meta() -> dict[str, Any]:
        return {"event_id": str(uuid.uuid4()), "execution_id": EXECUTION, "time": next(clock)}

    workflow = five_nodes()
    order = [n["id"] for n in workflow["nodes"]]
    events: list[AnyEvent] = [ExecutionStarted(**meta(), plan=order)]
    effects: list[oracle.Effect] = []
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    items: list[dict[str, Any]] = [{"n": 0}]
    for position, node in enumerate(workflow["nodes"]):
        name = node["id"]
        node_input = {"main": items}
        attempts = 2 if name == runner_lost_on else 1
        for attempt in range(1, attempts + 1):
            events.append(
                NodeReady(**meta(), node=name, attempt=attempt, node_type=node["type"],
                          input=node_input)
            )  # fmt: skip
            started = NodeStarted(**meta(), node=name, attempt=attempt, worker="w")
            events.append(started)
            if node["type"] == "http_request":
                answer = {"ok": True, "request": len(effects) + 1}
                body = {"n": items[0]["n"]} if name == "charge" else {"done": True}
                key = idempotency_key(EXECUTION, name, 0)
                path = f"/{name}"
                effects.append(oracle.Effect(key, path, json.dumps(body).encode(), 200, answer))
                output = [http_item(answer)]
            elif node["type"] == "set":
                output = [{**item, "charged": True} for item in items]
            else:
                output = items
            if attempt < attempts:
                lost = ErrorInfo(type=RUNNER_LOST, message="runner lost")
                events.append(NodeFailed(**meta(), node=name, attempt=attempt, error=lost))
                continue
            result = NodeSucceeded(**meta(), node=name, attempt=attempt, output={"main": output})
            events.append(result)
        rows[(EXECUTION, name)] = {
            "execution_id": EXECUTION, "node": name, "position": position,
            "status": "succeeded", "attempts": attempts, "started_at": started.time,
            "finished_at": result.time, "input": node_input, "output": {"main": output},
            "error": None, "skip_reason": None, "pinned": False,
            "runner_lost": attempts - 1, "wait_until": None,
        }  # fmt: skip
        items = output
    finished = ExecutionFinished(**meta(), status="succeeded")
    events.append(finished)
    execution_row = {
        "id": EXECUTION, "status": "succeeded", "started_at": events[0].time,
        "finished_at": finished.time, "error": None,
    }  # fmt: skip
    projection = oracle.Projection({EXECUTION: execution_row}, rows)
    return Run(events, effects, projection, {EXECUTION: oracle.Submitted(workflow, [{"n": 0}])})


def test_a_correct_run_passes() -> None:
    verdict = correct_run().verdict()
    assert verdict.problems == []
    assert verdict.modelled == 1


def test_a_side_effect_repeated_by_a_new_attempt_passes() -> None:
    verdict = correct_run(runner_lost_on="charge").verdict()
    assert verdict.problems == []
    assert verdict.retried_effects == 1


def test_a_lost_side_effect_fails() -> None:
    """The runner answered 200 without sending: no request, an output nobody gave."""
    run = correct_run()
    run.effects = [e for e in run.effects if e.path != "/notify"]
    verdict = run.verdict()
    assert verdict.lost_effects == 1
    assert any("never happened" in p for p in verdict.problems)


def test_a_faked_answer_fails_even_with_the_request_sent() -> None:
    run = correct_run()
    for i, event in enumerate(run.events):
        if isinstance(event, NodeSucceeded) and event.node == "charge":
            fake = {"main": [http_item({"ok": True})]}
            run.events[i] = msgspec.structs.replace(event, output=fake)
    verdict = run.verdict()
    assert any("charge output" in p for p in verdict.problems)


def test_a_side_effect_repeated_within_one_attempt_fails() -> None:
    run = correct_run()
    run.effects.append(run.effects[0])
    verdict = run.verdict()
    assert verdict.repeated_effects == 1
    assert any("happened 2 times in 1 attempts" in p for p in verdict.problems)


def test_a_result_stored_twice_under_a_new_event_id_fails() -> None:
    run = correct_run()
    result = next(e for e in run.events if isinstance(e, NodeSucceeded) and e.node == "enrich")
    run.events.append(msgspec.structs.replace(result, event_id=str(uuid.uuid4())))
    verdict = run.verdict()
    assert verdict.duplicate_results == 1
    assert any("2 results stored" in p for p in verdict.problems)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("finished_at", None),
        ("status", "running"),
        ("attempts", 2),
        ("output", {"main": [{"n": 1}]}),
        ("input", None),
        ("runner_lost", 1),
        ("started_at", None),
    ],
)
def test_a_wrong_node_row_fails(column: str, value: Any) -> None:
    run = correct_run()
    run.projection.nodes[(EXECUTION, "enrich")][column] = value
    verdict = run.verdict()
    assert verdict.wrong_rows == 1
    assert any(f"enrich {column}" in p or "finished_at NULL" in p for p in verdict.problems)


def test_every_node_row_with_finished_at_null_fails() -> None:
    run = correct_run()
    for row in run.projection.nodes.values():
        row["finished_at"] = None
    assert run.verdict().wrong_rows == 5


@pytest.mark.parametrize(("column", "value"), [("status", "running"), ("finished_at", None)])
def test_a_wrong_execution_row_fails(column: str, value: Any) -> None:
    run = correct_run()
    run.projection.executions[EXECUTION][column] = value
    assert run.verdict().wrong_rows == 1


def test_a_missing_node_row_fails() -> None:
    run = correct_run()
    del run.projection.nodes[(EXECUTION, "done")]
    assert any("no row for node" in p for p in run.verdict().problems)


def test_a_node_that_never_succeeded_fails() -> None:
    run = correct_run()
    run.events = [e for e in run.events if not (isinstance(e, NodeSucceeded) and e.node == "done")]
    assert any("done must succeed" in p for p in run.verdict().problems)


def test_kills_that_landed_pass() -> None:
    kills = [oracle.Kill("runner-1", 10, -9, 11, False), oracle.Kill("runner-1", 11, -9, 12, True)]
    assert oracle.kills_landed(kills, 2) == []


@pytest.mark.parametrize(
    "kill",
    [
        oracle.Kill("runner-1", 10, None, 11, True),  # kill a no-op: still running
        oracle.Kill("runner-1", 10, 0, 11, True),  # ended, but not by the signal
        oracle.Kill("runner-1", 10, -9, None, False),  # never restarted
        oracle.Kill("runner-1", 10, -9, 11, False),  # its replacement is not running
    ],
)
def test_a_fault_that_did_not_land_fails(kill: oracle.Kill) -> None:
    assert oracle.kills_landed([kill], 1)


def test_fewer_kills_than_planned_fail() -> None:
    assert oracle.kills_landed([oracle.Kill("runner-1", 10, -9, 11, True)], 2)
