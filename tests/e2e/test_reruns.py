"""Audit and recovery through the real system: rerun from a node (reused outputs are not run
again), node mode on recorded outputs (also reused and stored-by-reference ones), and the user
named on the events."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from nodedrop.client import AsyncClient, Conflict, Event, Execution, NotFound, ValidationFailed

from .conftest import running_system
from .system import System

if TYPE_CHECKING:  # pytest gives the class as a fixture (see tests/fixtures/http_server.py)
    from tests.fixtures.http_server import LocalHttpServer, Request

pytestmark = pytest.mark.e2e


# conftest's `api` talks to this module's system.
@pytest.fixture(scope="module")
async def system(pg_server_url: str) -> AsyncIterator[System]:
    async with running_system(pg_server_url, {"NODEDROP_HTTP_ALLOW_PRIVATE": "true"}) as started:
        yield started


def fails_once(request: Request) -> tuple[int, dict[str, int]]:
    """Answers 500 to the first request, then 200 with the number of the call."""
    return (500 if request.number == 1 else 200), {"call": request.number}


@pytest.fixture
def flaky_server(local_http_server: type[LocalHttpServer]) -> Iterator[LocalHttpServer]:
    with local_http_server(fails_once) as server:
        yield server


def chain(server: LocalHttpServer) -> dict[str, Any]:
    """start -> a -> b -> c (http, fails once; on_error continue) -> d, and start -> side ->
    side2. The first run ends partial: c failed, d got no input."""
    return {
        "name": "chain with a side branch",
        "nodes": [
            {"id": "start", "type": "manual_trigger"},
            {"id": "a", "type": "set", "parameters": {"values": {"a": True}}},
            {"id": "b", "type": "set", "parameters": {"values": {"b": True}}},
            {
                "id": "c",
                "type": "http_request",
                "parameters": {"method": "GET", "url": f"{server.url}/flaky"},
                "on_error": "continue",
            },
            {"id": "d", "type": "set", "parameters": {"values": {"d": "{{ item.body.call }}"}}},
            {"id": "side", "type": "noop"},
            {"id": "side2", "type": "noop"},
        ],
        "connections": [
            {"from": "start", "to": "a"},
            {"from": "a", "to": "b"},
            {"from": "b", "to": "c"},
            {"from": "c", "to": "d"},
            {"from": "start", "to": "side"},
            {"from": "side", "to": "side2"},
        ],
    }


async def rerun(api: AsyncClient, execution_id: str, from_node: str) -> str:
    accepted = await api.rerun(execution_id, from_node)
    assert accepted.rerun_of == execution_id
    return accepted.id


async def submit(api: AsyncClient, **request: Any) -> str:
    return (await api.submit(**request)).id


async def finished(api: AsyncClient, execution_id: str) -> Execution:
    return await api.wait_for(execution_id, 30)


def nodes_with(events: list[Event], kind: str) -> list[str]:
    return sorted(e.node or "" for e in events if e.type == kind)


async def test_rerun_from_the_failed_node_reuses_what_ran_before_it(
    api: AsyncClient, flaky_server: LocalHttpServer
) -> None:
    first_id = await submit(api, workflow=chain(flaky_server), input=[{"n": 1}])
    first = await finished(api, first_id)
    assert first.status == "partial"
    assert (first.nodes["c"].status, first.nodes["d"].status) == ("failed", "skipped")

    rerun_id = await rerun(api, first_id, "c")
    second = await finished(api, rerun_id)

    assert (second.status, second.rerun_of) == ("succeeded", first_id)
    assert {node: row.status for node, row in second.nodes.items()} == dict.fromkeys(
        ["start", "a", "b", "c", "d", "side", "side2"], "succeeded"
    )
    # Only c and d ran; the others say they reused the first execution's outputs.
    events = await api.events(rerun_id)
    assert nodes_with(events, "NodeStarted") == ["c", "d"]
    reused = {e.node or "": e for e in events if e.type == "NodeSucceeded" and e.attempt == 0}
    assert sorted(reused) == ["a", "b", "side", "side2", "start"]
    assert {e.data["reused_from"] for e in reused.values()} == {first_id}
    assert second.nodes["b"].output == first.nodes["b"].output
    assert (second.nodes["d"].output or {})["main"][0]["d"] == 2  # the server's second call
    assert len(flaky_server.requests()) == 2
    # Who asked: the request names the user, the rest is the system's.
    actors = [(e.type, e.actor) for e in events if e.actor is not None]
    assert actors == [("ExecutionRequested", "admin")]


async def test_a_saved_workflow_is_rerun_from_its_recorded_snapshot(
    api: AsyncClient,
) -> None:
    definition: dict[str, Any] = {
        "name": "edited later",
        "nodes": [
            {"id": "start", "type": "manual_trigger"},
            {"id": "a", "type": "set", "parameters": {"values": {"v": 1}}},
            {"id": "b", "type": "set", "parameters": {"values": {"seen": "{{ item.v }}"}}},
        ],
        "connections": [{"from": "start", "to": "a"}, {"from": "a", "to": "b"}],
    }
    workflow_id = (await api.create_workflow(definition)).id
    first_id = await submit(api, workflow_id=workflow_id)
    assert (await finished(api, first_id)).status == "succeeded"
    definition["nodes"][1]["parameters"]["values"]["v"] = 2
    definition["nodes"][2]["parameters"]["values"]["seen"] = "edited"
    assert (await api.update_workflow(workflow_id, definition)).version == 2

    for from_node in ("b", "a"):
        second = await finished(api, await rerun(api, first_id, from_node))
        assert second.status == "succeeded"
        assert (second.workflow_id, second.workflow_version) == (workflow_id, 1)
        assert second.nodes["b"].output == {"main": [{"v": 1, "seen": 1}]}


async def test_rerun_refusals(api: AsyncClient) -> None:
    workflow = {
        "name": "slow",
        "nodes": [
            {"id": "start", "type": "manual_trigger"},
            {"id": "pause", "type": "wait", "parameters": {"ms": 60_000}},
        ],
        "connections": [{"from": "start", "to": "pause"}],
    }
    running = await submit(api, workflow=workflow)

    with pytest.raises(Conflict):
        await api.rerun(running, "pause")
    assert (await api.cancel(running)).cancel_requested
    assert (await finished(api, running)).status == "cancelled"

    with pytest.raises(ValidationFailed) as unknown_node:
        await api.rerun(running, "ghost")
    assert unknown_node.value.problems[0].loc == ("body", "from_node")
    with pytest.raises(NotFound):
        await api.rerun("no-such-execution", "pause")
    # The cancel names the user who asked for it.
    events = await api.events(running)
    assert [e.type for e in events if e.actor == "admin"] == [
        "ExecutionRequested",
        "ExecutionCancelRequested",
    ]


# ------------------------------------------------------------------------------ node mode


async def test_node_mode_takes_a_parent_output_that_a_rerun_reused(
    api: AsyncClient, flaky_server: LocalHttpServer
) -> None:
    workflow_id = (await api.create_workflow(chain(flaky_server))).id
    first_id = await submit(api, workflow_id=workflow_id, input=[{"n": 7}])
    assert (await finished(api, first_id)).status == "partial"
    # c failed in the only finished execution: d has no recorded input yet.
    with pytest.raises(ValidationFailed) as refused:
        await api.submit(workflow_id, mode="node", node="d")
    [problem] = refused.value.problems
    assert (problem.loc, "parent node 'c'" in problem.message) == (("body", "input"), True)
    second_id = await rerun(api, first_id, "c")
    second = await finished(api, second_id)
    assert second.status == "succeeded"

    # d's parent c ran (with success) in the latest finished execution, the rerun; c's parent b
    # was reused there. d first: running c in node mode makes that run c's latest output.
    for node, parent in (("d", "c"), ("c", "b")):
        execution_id = await submit(api, workflow_id=workflow_id, mode="node", node=node)
        node_run = await finished(api, execution_id)
        assert node_run.status == "succeeded", node_run
        [requested] = [e for e in await api.events(execution_id) if e.type == "ExecutionRequested"]
        assert requested.data["input"] == second.nodes[parent].output
        assert nodes_with(await api.events(execution_id), "NodeStarted") == [node]


async def test_node_mode_and_rerun_take_outputs_stored_by_reference(
    api: AsyncClient,
) -> None:
    """The trigger's output is over 256 KiB: it is stored in the object store and recorded as a
    reference, which node mode and a rerun pass on as it is and the runner expands."""
    items = [{"n": i, "padding": "x" * 500} for i in range(600)]
    definition = {
        "name": "large parent",
        "nodes": [
            {"id": "start", "type": "manual_trigger"},
            {"id": "child", "type": "set", "parameters": {"values": {"seen": True}}},
        ],
        "connections": [{"from": "start", "to": "child"}],
    }
    workflow_id = (await api.create_workflow(definition)).id
    first = await finished(api, await submit(api, workflow_id=workflow_id, input=items))
    assert first.status == "succeeded"
    [reference] = (first.nodes["start"].output or {})["main"]
    assert reference["$nodedrop_ref"]["count"] == 600

    node_id = await submit(api, workflow_id=workflow_id, mode="node", node="child")
    rerun_id = await rerun(api, first.id, "child")

    for execution_id in (node_id, rerun_id):
        assert (await finished(api, execution_id)).status == "succeeded"
        whole = await api.node_output(execution_id, "child")
        assert whole["main"] == [{**item, "seen": True} for item in items]
    rerun_events = await api.events(rerun_id)
    assert nodes_with(rerun_events, "NodeStarted") == ["child"]
