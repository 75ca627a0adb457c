"""A big definition (or body) is handled off the event loop: the api answers meanwhile."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest

from nodedrop.api import definitions, drafts, entry, offload
from nodedrop.api.routes import webhooks, workflows
from nodedrop.contracts import workflow as workflow_module

from .harness import Api

pytestmark = pytest.mark.integration


def big_definition(nodes: int = 400, fan_out: int = 3) -> dict[str, Any]:
    return {
        "name": "Big",
        "nodes": [{"id": "n0", "type": "manual_trigger"}]
        + [
            {"id": f"n{i}", "type": "set", "parameters": {"values": {"x": "{{ item.a }}"}}}
            for i in range(1, nodes)
        ],
        "connections": [
            {"from": f"n{i}", "to": f"n{j}"}
            for i in range(nodes)
            for j in range(i + 1, min(i + 1 + fan_out, nodes))
        ],
    }


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/workflows", big_definition()),
        ("/api/executions", {"workflow": big_definition()}),
    ],
)
async def test_health_answers_while_a_big_definition_is_validated(
    api: Api, monkeypatch: pytest.MonkeyPatch, path: str, body: dict[str, Any]
) -> None:
    validating = threading.Event()
    health_answered = threading.Event()
    answered_meanwhile: list[bool] = []
    validate = workflow_module.validate_workflow

    def held_validation(*args: Any, **kwargs: Any) -> Any:
        validating.set()
        # On the event loop this wait would block /health too, and time out.
        answered_meanwhile.append(health_answered.wait(timeout=10))
        return validate(*args, **kwargs)

    # A save validates through the drafts module, a run's definition through definitions.
    monkeypatch.setattr(definitions, "validate_workflow", held_validation)
    monkeypatch.setattr(drafts, "validate_workflow", held_validation)
    request = asyncio.create_task(api.client.post(path, json=body))
    assert await asyncio.to_thread(validating.wait, 10)
    health = await api.client.get("/health")
    assert health.status_code == 200
    health_answered.set()
    response = await request
    assert response.status_code in (201, 202), response.text
    assert answered_meanwhile == [True]


async def test_a_small_definition_is_validated_as_before(
    api: Api, workflow: dict[str, Any]
) -> None:
    created = await api.client.post("/api/workflows", json=workflow)
    assert created.status_code == 201, created.text
    invalid = await api.client.post("/api/workflows", json={**workflow, "nodes": []})
    assert invalid.status_code == 422
    big = big_definition()
    big["nodes"][5]["type"] = "no_such_type"
    refused = await api.client.post("/api/workflows", json=big)
    assert refused.status_code == 422
    assert ["body", "nodes", 5, "type"] in [p["loc"] for p in refused.json()["detail"]]


def large_body_definition() -> dict[str, Any]:
    """A definition over both thresholds: nodes + connections, and bytes of JSON."""
    definition = big_definition(nodes=1000)
    assert len(json.dumps(definition, separators=(",", ":"))) > offload.OFF_LOOP_BYTES
    return definition


def record_threads(
    monkeypatch: pytest.MonkeyPatch, module: object, name: str, threads: dict[str, set[int]]
) -> None:
    """``module.name``, wrapped to note which threads it runs on under ``threads[name]``."""
    original: Callable[..., Any] = getattr(module, name)

    def recorded(*args: Any, **kwargs: Any) -> Any:
        threads.setdefault(name, set()).add(threading.get_ident())
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, recorded)


async def test_every_heavy_step_of_saving_a_big_definition_is_off_the_loop(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Decoding the body, dumping the checked model back to JSON, encoding it for the database
    # and building the answer each took 10 to 80 ms of a 2,000-node definition on the loop.
    threads: dict[str, set[int]] = {}
    record_threads(monkeypatch, entry, "decode_json", threads)
    record_threads(monkeypatch, definitions, "_checked", threads)
    record_threads(monkeypatch, drafts, "stored_definition", threads)
    record_threads(monkeypatch, workflows, "workflow_out", threads)
    big = large_body_definition()
    created = await api.client.post("/api/workflows", json=big)
    assert created.status_code == 201, created.text
    replaced = await api.client.put(f"/api/workflows/{created.json()['id']}", json=big)
    assert replaced.status_code == 200, replaced.text
    assert set(threads) == {"decode_json", "_checked", "stored_definition", "workflow_out"}
    loop_thread = threading.get_ident()
    assert all(loop_thread not in ran_on for ran_on in threads.values()), threads
    # What is stored is what was encoded in the thread.
    assert replaced.json()["nodes"] == big["nodes"]
    assert len(replaced.json()["connections"]) == len(big["connections"])


async def test_a_big_inline_definition_is_decoded_and_dumped_off_the_loop(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: dict[str, set[int]] = {}
    record_threads(monkeypatch, entry, "decode_json", threads)
    record_threads(monkeypatch, definitions, "_checked", threads)
    accepted = await api.client.post("/api/executions", json={"workflow": large_body_definition()})
    assert accepted.status_code == 202, accepted.text
    assert set(threads) == {"decode_json", "_checked"}
    assert threading.get_ident() not in threads["decode_json"] | threads["_checked"]


async def test_a_big_webhook_body_is_decoded_off_the_loop(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    hooked = {
        "name": "Hooked",
        "nodes": [{"id": "hook", "type": "webhook_trigger"}, {"id": "done", "type": "noop"}],
        "connections": [{"from": "hook", "to": "done"}],
    }
    created = await api.client.post("/api/workflows", json=hooked)
    assert created.status_code == 201, created.text
    threads: dict[str, set[int]] = {}
    record_threads(monkeypatch, webhooks, "webhook_input", threads)
    small = {"rows": [1]}
    large = {"rows": list(range(20_000))}
    assert len(json.dumps(small, separators=(",", ":"))) < offload.OFF_LOOP_BYTES
    assert len(json.dumps(large, separators=(",", ":"))) > offload.OFF_LOOP_BYTES
    for body in (small, large):
        accepted = await api.client.post(f"/webhooks/{created.json()['id']}/hook", json=body)
        assert accepted.status_code == 202, accepted.text
    loop_thread = threading.get_ident()
    # The small body on the loop (handing it over costs more), the large one elsewhere.
    assert loop_thread in threads["webhook_input"]
    assert len(threads["webhook_input"] - {loop_thread}) == 1
