"""``execute_workflow`` through the real system: each mode, a child's failure under the node's
``on_error``, cancel propagation, the depth limit with a workflow that calls itself, a workflow
that is not the caller's, and ``nodedrop audit --verify`` on parent and child histories."""

from __future__ import annotations

import asyncio
import io
import signal
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from nodedrop.cli.audit import AuditRequest, read_history, report
from nodedrop.contracts.events import ExecutionRequested

from .conftest import running_system
from .system import System
from .test_audit import audit_process
from .through_client import finished, library

if TYPE_CHECKING:  # pytest gives the class as a fixture (see tests/fixtures/http_server.py)
    from tests.fixtures.http_server import LocalHttpServer, Request

pytestmark = pytest.mark.e2e


def child_workflow(name: str = "child", middle: dict[str, Any] | None = None) -> dict[str, Any]:
    """A saved workflow: trigger ``ct`` then one node (by default a set that marks items)."""
    node = middle or {"id": "mark", "type": "set", "parameters": {"values": {"child": True}}}
    return {
        "name": name,
        "nodes": [{"id": "ct", "type": "manual_trigger"}, node],
        "connections": [{"from": "ct", "to": node["id"]}],
    }


def caller(workflow_id: str, mode: str = "wait", **node: Any) -> dict[str, Any]:
    parameters = {"workflow_id": workflow_id, "trigger": "ct", "mode": mode}
    parameters.update(node.pop("parameters", {}))
    return {
        "name": "caller",
        "nodes": [
            {"id": "start", "type": "manual_trigger"},
            {"id": "call", "type": "execute_workflow", "parameters": parameters, **node},
            {"id": "after", "type": "noop"},
        ],
        "connections": [{"from": "start", "to": "call"}, {"from": "call", "to": "after"}],
    }


async def save(client: httpx.AsyncClient, workflow: dict[str, Any]) -> str:
    response = await client.post("/api/workflows", json=workflow)
    assert response.status_code == 201, response.text
    workflow_id: str = response.json()["id"]
    return workflow_id


async def run(client: httpx.AsyncClient, workflow: dict[str, Any], items: list[Any]) -> str:
    return (await library(client).submit(workflow=workflow, input=items)).id


async def child_workflow_id(client: httpx.AsyncClient) -> str:
    return await save(client, child_workflow())


async def test_wait_mode_outputs_the_childs_output_and_links_parent_and_child(
    client: httpx.AsyncClient, system: System
) -> None:
    child_wf = await child_workflow_id(client)
    parent_id = await run(client, caller(child_wf), [{"n": 1}, {"n": 2}])
    parent = await finished(client, parent_id)
    assert parent["status"] == "succeeded", parent
    call = parent["nodes"]["call"]
    assert call["output"] == {"main": [{"n": 1, "child": True}, {"n": 2, "child": True}]}
    [child_id] = call["children"]
    assert [c["id"] for c in parent["children"]] == [child_id]
    assert parent["children"][0]["node"] == "call"
    assert parent["children"][0]["workflow_id"] == child_wf
    child = await finished(client, child_id)
    assert child["status"] == "succeeded"
    assert (child["parent_execution_id"], child["parent_node"]) == (parent_id, "call")
    assert child["workflow_id"] == child_wf
    assert child["requested_by"] == parent["requested_by"]
    # `nodedrop audit --verify` shows the tree and verifies both histories against the core.
    shown = await asyncio.to_thread(audit_process, system.nats_url, parent_id, "--verify")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert f"  {parent_id} succeeded  verified\n" in shown.stdout
    assert f"    call -> {child_id} succeeded  verified\n" in shown.stdout
    shown = await asyncio.to_thread(audit_process, system.nats_url, child_id, "--verify")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert f"started by {parent_id} (node call)" in shown.stdout


async def test_fire_and_forget_outputs_the_child_id_at_once(client: httpx.AsyncClient) -> None:
    waiting_child = child_workflow(
        middle={"id": "pause", "type": "wait", "parameters": {"ms": 1500}}
    )
    child_wf = await save(client, waiting_child)
    parent = await finished(client, await run(client, caller(child_wf, "fire_and_forget"), [{}]))
    assert parent["status"] == "succeeded"
    [item] = parent["nodes"]["call"]["output"]["main"]
    assert item["workflow_id"] == child_wf
    # The parent did not wait: the child is still running when the parent has finished.
    child = (await client.get(f"/api/executions/{item['execution_id']}")).json()
    assert child.get("finished_at") is None
    child = await finished(client, item["execution_id"])
    assert child["status"] == "succeeded"
    assert child["parent_execution_id"] == parent["id"]


async def test_each_item_runs_one_child_per_item_and_keeps_item_order(
    client: httpx.AsyncClient,
) -> None:
    child_wf = await child_workflow_id(client)
    workflow = caller(child_wf, "each_item", parameters={"concurrency": 2})
    items = [{"i": i} for i in range(5)]
    parent = await finished(client, await run(client, workflow, items))
    assert parent["status"] == "succeeded", parent
    assert parent["nodes"]["call"]["output"]["main"] == [{"i": i, "child": True} for i in range(5)]
    assert len(parent["nodes"]["call"]["children"]) == 5
    assert len(parent["children"]) == 5


async def test_each_item_with_a_batch_size_runs_one_child_per_batch(
    client: httpx.AsyncClient,
) -> None:
    child_wf = await child_workflow_id(client)
    workflow = caller(child_wf, "each_item", parameters={"concurrency": 2, "batch_size": 2})
    items = [{"i": i} for i in range(5)]
    parent = await finished(client, await run(client, workflow, items))
    assert parent["status"] == "succeeded", parent
    assert parent["nodes"]["call"]["output"]["main"] == [{"i": i, "child": True} for i in range(5)]
    assert len(parent["nodes"]["call"]["children"]) == 3


async def test_a_failed_child_is_the_nodes_failure_under_its_on_error(
    client: httpx.AsyncClient,
) -> None:
    failing = child_workflow(middle={"id": "boom", "type": "stop_and_error"})
    child_wf = await save(client, failing)
    parent = await finished(client, await run(client, caller(child_wf), [{}]))
    assert parent["status"] == "failed"
    assert parent["nodes"]["call"]["error"]["type"] == "ChildExecutionFailed"
    assert "StopAndError" in parent["nodes"]["call"]["error"]["message"]
    tolerant = caller(child_wf, on_error="continue")
    parent = await finished(client, await run(client, tolerant, [{}]))
    assert parent["status"] == "partial"
    assert parent["nodes"]["after"]["status"] == "skipped"


async def test_cancelling_the_parent_cancels_its_running_child(client: httpx.AsyncClient) -> None:
    slow = child_workflow(middle={"id": "pause", "type": "wait", "parameters": {"ms": 60_000}})
    child_wf = await save(client, slow)
    parent_id = await run(client, caller(child_wf), [{}])
    child_id = await first_child(client, parent_id)
    response = await client.post(f"/api/executions/{parent_id}/cancel")
    assert response.status_code == 202, response.text
    assert (await finished(client, parent_id))["status"] == "cancelled"
    assert (await finished(client, child_id))["status"] == "cancelled"


async def test_a_timeout_of_the_calling_node_cancels_its_child(client: httpx.AsyncClient) -> None:
    slow = child_workflow(middle={"id": "pause", "type": "wait", "parameters": {"ms": 60_000}})
    child_wf = await save(client, slow)
    parent_id = await run(client, caller(child_wf, timeout_ms=500), [{}])
    child_id = await first_child(client, parent_id)
    parent = await finished(client, parent_id)
    assert parent["nodes"]["call"]["error"]["type"] == "NodeTimeout"
    assert (await finished(client, child_id))["status"] == "cancelled"


async def test_a_workflow_that_calls_itself_stops_at_the_depth_limit(
    client: httpx.AsyncClient,
) -> None:
    workflow_id = await save(client, child_workflow())
    recursive = caller(workflow_id) | {"name": "recursive"}
    recursive["nodes"][0]["id"] = "ct"
    recursive["connections"][0]["from"] = "ct"
    response = await client.put(f"/api/workflows/{workflow_id}", json=recursive)
    assert response.status_code == 200, response.text
    root_id = await run(client, recursive, [{}])
    root = await finished(client, root_id, timeout_s=60)
    assert root["status"] == "failed"
    # Down the chain of children to the deepest: ten calls deep, the eleventh is refused.
    chain = [root]
    while chain[-1]["children"]:
        chain.append(await finished(client, chain[-1]["children"][0]["id"], timeout_s=60))
    assert len(chain) == 11
    deepest = chain[-1]["nodes"]["call"]["error"]
    assert deepest["type"] == "WorkflowDepthExceeded"
    assert "limit of 10" in deepest["message"]


async def test_a_workflow_that_is_not_the_callers_is_not_found(client: httpx.AsyncClient) -> None:
    parent = await finished(client, await run(client, caller("no-such-workflow"), [{}]))
    assert parent["status"] == "failed"
    assert parent["nodes"]["call"]["error"]["type"] == "WorkflowNotFound"


async def first_child(client: httpx.AsyncClient, parent_id: str) -> str:
    for _ in range(400):
        body = (await client.get(f"/api/executions/{parent_id}")).json()
        children = (body.get("nodes", {}).get("call") or {}).get("children")
        if children:
            child_id: str = children[0]
            return child_id
        await asyncio.sleep(0.05)
    raise AssertionError(f"{parent_id} started no child")


async def test_a_parent_waiting_on_children_survives_a_killed_scheduler(
    client: httpx.AsyncClient, system: System
) -> None:
    """SIGKILL the scheduler while the parent waits on its children (each a 1.5 s wait on the
    scheduler's own timer): after the restart the parent finishes, each child was started once,
    and the parent's history still verifies."""
    pausing = child_workflow(middle={"id": "pause", "type": "wait", "parameters": {"ms": 1500}})
    child_wf = await save(client, pausing)
    workflow = caller(child_wf, "each_item", parameters={"concurrency": 2})
    parent_id = await run(client, workflow, [{"i": i} for i in range(4)])
    await first_child(client, parent_id)
    await asyncio.to_thread(system.stop, "scheduler", signal.SIGKILL)
    await asyncio.sleep(0.5)
    system.start("scheduler")
    await asyncio.to_thread(system.wait_healthy)
    parent = await finished(client, parent_id, timeout_s=90)
    assert parent["status"] == "succeeded", parent
    assert parent["nodes"]["call"]["output"]["main"] == [{"i": i} for i in range(4)]
    children = parent["children"]
    assert len(children) == 4
    assert len({c["id"] for c in children}) == 4
    assert {c["status"] for c in children} == {"succeeded"}
    for child in children:
        recorded = await read_history(system.nats_url, child["id"])
        requests = [e for _, e in recorded if isinstance(e, ExecutionRequested)]
        assert len(requests) == 1
    out = io.StringIO()
    history = await read_history(system.nats_url, parent_id)
    assert report(AuditRequest(parent_id, verify=True), history, out) == 0, out.getvalue()


def error_workflow(name: str = "on failure") -> dict[str, Any]:
    return {
        "name": name,
        "nodes": [
            {"id": "failed", "type": "error_trigger"},
            {"id": "note", "type": "set", "parameters": {"values": {"handled": True}}},
        ],
        "connections": [{"from": "failed", "to": "note"}],
    }


async def executions_of(client: httpx.AsyncClient, workflow_id: str, count: int) -> list[Any]:
    for _ in range(400):
        listed = (await client.get("/api/executions", params={"workflow_id": workflow_id})).json()
        items: list[Any] = listed["items"]
        if len(items) >= count and all(i["finished_at"] for i in items):
            return items
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} finished executions of {workflow_id}")


async def test_a_failed_execution_runs_its_error_workflow_once(
    client: httpx.AsyncClient,
) -> None:
    handler_wf = await save(client, error_workflow())
    failing = child_workflow("fails", {"id": "boom", "type": "stop_and_error"})
    failing_wf = await save(client, failing | {"settings": {"error_workflow_id": handler_wf}})
    response = await client.post(
        "/api/executions", json={"workflow_id": failing_wf, "trigger": "ct"}
    )
    assert response.status_code == 202, response.text
    failed = await finished(client, response.json()["id"])
    assert failed["status"] == "failed"
    [handled] = await executions_of(client, handler_wf, 1)
    assert handled["status"] == "succeeded"
    run = await finished(client, handled["id"])
    [item] = run["nodes"]["note"]["output"]["main"]
    assert item["execution_id"] == failed["id"]
    assert item["workflow_id"] == failing_wf
    assert item["node"] == "boom"
    assert item["error"]["type"] == "StopAndError"
    assert item["handled"] is True
    # Its handler is a child of the failed execution.
    assert [c["node"] for c in failed["children"]] == ["error_workflow"]
    # An error workflow that fails, naming itself as its error workflow, runs once, no more.
    looping = error_workflow("fails too")
    looping["nodes"][1] = {"id": "note", "type": "stop_and_error"}
    looping_wf = await save(client, looping)
    looping["settings"] = {"error_workflow_id": looping_wf}
    assert (await client.put(f"/api/workflows/{looping_wf}", json=looping)).status_code == 200
    failing_wf = await save(client, failing | {"settings": {"error_workflow_id": looping_wf}})
    response = await client.post(
        "/api/executions", json={"workflow_id": failing_wf, "trigger": "ct"}
    )
    await finished(client, response.json()["id"])
    [handled] = await executions_of(client, looping_wf, 1)
    assert handled["status"] == "failed"
    await asyncio.sleep(1)
    assert len(await executions_of(client, looping_wf, 1)) == 1


async def test_a_workflow_that_calls_itself_works_down_to_the_depth_limit(
    client: httpx.AsyncClient,
) -> None:
    """Each level counts n up and calls itself while n < 11: the deepest call starts the
    execution 10 levels down, exactly the limit, and the root gets its final output."""
    workflow_id = await save(client, child_workflow())
    recursive = {
        "name": "count down the stack",
        "nodes": [
            {"id": "ct", "type": "manual_trigger"},
            {"id": "inc", "type": "set", "parameters": {"values": {"n": "{{ item.n + 1 }}"}}},
            {"id": "deeper", "type": "if", "parameters": {"condition": "{{ item.n < 11 }}"}},
            {
                "id": "call",
                "type": "execute_workflow",
                "parameters": {"workflow_id": workflow_id, "trigger": "ct"},
            },
            {"id": "done", "type": "noop"},
        ],
        "connections": [
            {"from": "ct", "to": "inc"},
            {"from": "inc", "to": "deeper"},
            {"from": "deeper", "output": "true", "to": "call"},
            {"from": "deeper", "output": "false", "to": "done"},
        ],
    }
    response = await client.put(f"/api/workflows/{workflow_id}", json=recursive)
    assert response.status_code == 200, response.text
    root = await finished(client, await run(client, recursive, [{"n": 0}]), timeout_s=90)
    assert root["status"] == "succeeded", root
    assert root["nodes"]["call"]["output"] == {"main": [{"n": 11}]}
    chain = [root]
    while chain[-1]["children"]:
        chain.append(await finished(client, chain[-1]["children"][0]["id"], timeout_s=60))
    assert len(chain) == 11  # the root and 10 levels of children
    assert chain[-1]["nodes"]["done"]["output"] == {"main": [{"n": 11}]}


PAGES = {1: [{"sku": "a"}, {"sku": "b"}], 2: [{"sku": "c"}], 3: []}


def page_of(request: Request) -> tuple[int, dict[str, Any]]:
    page = int(parse_qs(urlsplit(request.path).query)["page"][0])
    return 200, {"items": PAGES.get(page, [])}


async def test_pages_are_fetched_until_an_empty_one_by_a_workflow_calling_itself(
    pg_server_url: str, local_http_server: type[LocalHttpServer]
) -> None:
    """The recipe of docs/nodes.md, "Loops over items, and pagination": each level fetches one
    page, adds its items to what the levels above collected, and calls itself for the next
    page until a page comes back empty. (A system of its own: its pages are on loopback.)"""
    private = {"NODEDROP_HTTP_ALLOW_PRIVATE": "true"}
    async with (
        running_system(pg_server_url, private) as system,
        httpx.AsyncClient(base_url=system.base_url, headers=system.headers, timeout=30) as client,
    ):
        await fetch_every_page(client, local_http_server)


async def fetch_every_page(
    client: httpx.AsyncClient, local_http_server: type[LocalHttpServer]
) -> None:
    with local_http_server(page_of, method="GET") as api:
        workflow_id = await save(client, child_workflow())
        pager = {
            "name": "fetch every page",
            "nodes": [
                {"id": "ct", "type": "manual_trigger"},
                {
                    "id": "fetch",
                    "type": "http_request",
                    "parameters": {"url": api.url + "/items?page={{ item.page }}"},
                },
                {
                    "id": "collect",
                    "type": "set",
                    "parameters": {
                        "values": {
                            "page": '{{ nodes["ct"]["main"][0].page + 1 }}',
                            "got": '{{ nodes["ct"]["main"][0].got + item.body["items"] }}',
                            "more": '{{ len(item.body["items"]) > 0 }}',
                        }
                    },
                },
                {"id": "again", "type": "if", "parameters": {"condition": "{{ item.more }}"}},
                {
                    "id": "next",
                    "type": "execute_workflow",
                    "parameters": {"workflow_id": workflow_id, "trigger": "ct"},
                },
                {"id": "last", "type": "noop"},
            ],
            "connections": [
                {"from": "ct", "to": "fetch"},
                {"from": "fetch", "to": "collect"},
                {"from": "collect", "to": "again"},
                {"from": "again", "output": "true", "to": "next"},
                {"from": "again", "output": "false", "to": "last"},
            ],
        }
        saved = await client.put(f"/api/workflows/{workflow_id}", json=pager)
        assert saved.status_code == 200, saved.text
        root = await finished(
            client, await run(client, pager, [{"page": 1, "got": []}]), timeout_s=60
        )
        assert root["status"] == "succeeded", {
            k: (v["status"], v.get("error")) for k, v in root["nodes"].items()
        }
        [result] = root["nodes"]["next"]["output"]["main"]
        assert result["got"] == [{"sku": "a"}, {"sku": "b"}, {"sku": "c"}]
        pages = [parse_qs(urlsplit(r.path).query)["page"][0] for r in api.requests()]
        assert pages == ["1", "2", "3"]
