"""Every service's /metrics, /livez and /readyz, against the four real services."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from .system import SERVICES, System
from .test_pipeline import linear, projected, run_to_end, submit

pytestmark = pytest.mark.e2e

#: What each service's /readyz checks.
CHECKS = {
    "api": {"nats", "database"},
    "scheduler": {"nats", "leases"},
    "runner": {"nats", "runner"},
    "notifier": {"nats", "database", "leases"},
}


async def samples(system: System, name: str) -> dict[tuple[str, frozenset[Any]], float]:
    """The service's /metrics, as {(sample name, its labels): value}."""
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"{system.ops_url(name)}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


async def ready(system: System, name: str) -> dict[str, Any]:
    """/readyz of the service once it answers 200 (a service may still be taking leases)."""
    async with httpx.AsyncClient(timeout=10) as http:
        for _ in range(600):
            response = await http.get(f"{system.ops_url(name)}/readyz")
            if response.status_code == 200:
                body: dict[str, Any] = response.json()
                return body
            assert response.status_code == 503, response.text
            await asyncio.sleep(0.05)
    raise AssertionError(f"{name} never became ready: {response.text}")


async def until(condition: Any, what: str) -> None:
    for _ in range(600):
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(what)


@pytest.mark.parametrize("name", SERVICES)
async def test_every_service_is_live_and_says_what_makes_it_ready(
    system: System, name: str
) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        live = await http.get(f"{system.ops_url(name)}/livez")
    assert live.status_code == 200
    assert live.json() == {"status": "ok"}
    body = await ready(system, name)
    assert body["status"] == "ready"
    assert set(body["checks"]) == CHECKS[name]
    assert body["checks"]["nats"] == "connected"
    if "leases" in body["checks"]:  # the only member: it holds every partition
        assert body["checks"]["leases"].startswith("holds ")
        assert "partitions: 0" in body["checks"]["leases"]


async def test_an_execution_shows_in_the_counters_of_the_scheduler_and_the_runner(
    client: httpx.AsyncClient, system: System
) -> None:
    def value(found: dict[tuple[str, frozenset[Any]], float], name: str, **labels: str) -> float:
        return found.get((name, frozenset(labels.items())), 0.0)

    scheduler_before = await samples(system, "scheduler")
    runner_before = await samples(system, "runner")
    execution_id, _ = await run_to_end(client, system, linear({"id": "a", "type": "noop"}))
    await projected(client, execution_id)

    scheduler = await samples(system, "scheduler")
    started = "nodedrop_executions_started_total"
    assert value(scheduler, started) == value(scheduler_before, started) + 1
    finished = "nodedrop_executions_finished_total"
    assert value(scheduler, finished, status="succeeded") == (
        value(scheduler_before, finished, status="succeeded") + 1
    )
    took = "nodedrop_execution_duration_seconds_count"
    assert value(scheduler, took, status="succeeded") == (
        value(scheduler_before, took, status="succeeded") + 1
    )
    assert value(scheduler, "nodedrop_scheduler_batch_size_count") > 0
    assert value(scheduler, "nodedrop_publish_seconds_count") > 0
    api = await samples(system, "api")
    assert value(api, "nodedrop_publish_seconds_count") > 0  # the ExecutionRequested

    runner = await samples(system, "runner")
    attempts = "nodedrop_node_attempts_total"
    # two nodes ran: the trigger and the noop
    for node_type in ("manual_trigger", "noop"):
        labels = {"node_type": node_type, "result": "succeeded"}
        assert value(runner, attempts, **labels) == value(runner_before, attempts, **labels) + 1
    assert value(runner, "nodedrop_runner_slots") == 64
    assert value(runner, "nodedrop_runner_slots_busy") == 0

    for name in SERVICES:  # no execution id in any label
        assert execution_id not in json.dumps(sorted(map(str, await samples(system, name))))


async def test_the_notifier_counts_websocket_clients_and_reports_the_projections_lag(
    client: httpx.AsyncClient, system: System
) -> None:
    execution_id, _ = await run_to_end(client, system, linear({"id": "a", "type": "noop"}))
    await projected(client, execution_id)
    clients: tuple[str, frozenset[Any]] = ("nodedrop_websocket_clients", frozenset())
    assert (await samples(system, "notifier"))[clients] == 0

    # A socket on an execution still running stays open, waiting for its next event.
    waiting = await submit(
        client, linear({"id": "nap", "type": "wait", "parameters": {"ms": 60_000}})
    )
    url = f"{system.ws_url}/ws/executions/{waiting}"
    async with websockets.connect(url, additional_headers=system.headers):

        async def one_open() -> bool:
            return (await samples(system, "notifier"))[clients] == 1

        await until(one_open, "the open socket was never counted")

    async def none_open() -> bool:
        return (await samples(system, "notifier"))[clients] == 0

    await until(none_open, "the closed socket is still counted")
    cancelled = await client.post(f"/api/executions/{waiting}/cancel")
    assert cancelled.status_code == 202, cancelled.text
    notifier = await samples(system, "notifier")
    lag = [key for key in notifier if key[0] == "nodedrop_projection_lag_events"]
    assert lag, "no projection lag reported"
    assert all(notifier[key] >= 0 for key in lag)
    assert any(key[0] == "nodedrop_projection_lag_seconds" for key in notifier)


async def test_durable_consumers_lag_is_sampled_per_partition(system: System) -> None:
    async def sampled(name: str, consumer: str) -> bool:
        found = await samples(system, name)
        return any(
            key[0] == "nodedrop_consumer_pending_messages" and ("consumer", consumer) in key[1]
            for key in found
        )

    await until(lambda: sampled("runner", "runners"), "runners' consumers not sampled")
    await until(lambda: sampled("scheduler", "scheduler"), "scheduler's consumers not sampled")
    await until(lambda: sampled("notifier", "notifier"), "notifier's consumers not sampled")


async def test_the_operator_endpoints_answer_unknown_paths_and_methods_clearly(
    system: System,
) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        missing = await http.get(f"{system.ops_url('runner')}/nothing")
        posted = await http.post(f"{system.ops_url('scheduler')}/metrics")
    assert missing.status_code == 404
    assert "/metrics" in missing.json()["detail"]
    assert posted.status_code == 405
