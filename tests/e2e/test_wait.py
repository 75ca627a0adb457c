"""Learning an outcome by waiting, through the real system: ``POST /api/executions?wait=``
answers with the finished execution or 202 when the wait runs out, ``GET
/api/executions/{id}?wait=`` long-polls, bad waits are 422s, and many waiters at once each get
their own execution, with no waiter left behind."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from .through_client import finished, submit

pytestmark = pytest.mark.e2e


def one_node() -> dict[str, Any]:
    return {
        "name": "one node",
        "nodes": [
            {"id": "start", "type": "manual_trigger"},
            {"id": "s", "type": "set", "parameters": {"values": {"n": "{{ item.n }}"}}},
        ],
        "connections": [{"from": "start", "to": "s"}],
    }


def sleeper(ms: int) -> dict[str, Any]:
    return {
        "name": "sleeps",
        "nodes": [
            {"id": "start", "type": "manual_trigger"},
            {"id": "w", "type": "wait", "parameters": {"ms": ms}},
        ],
        "connections": [{"from": "start", "to": "w"}],
    }


async def test_post_with_wait_answers_the_finished_execution(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/executions", params={"wait": 20}, json={"workflow": one_node(), "input": [{"n": 7}]}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "succeeded"
    assert body["nodes"]["s"]["output"] == {"main": [{"n": 7}]}
    # Exactly what GET answers for it.
    assert (await client.get(f"/api/executions/{body['id']}")).json() == body


async def test_post_with_wait_answers_202_when_the_wait_runs_out(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/executions", params={"wait": 0.3}, json={"workflow": sleeper(3000)}
    )
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "queued"
    execution_id = response.json()["id"]
    assert response.headers["Location"] == f"/api/executions/{execution_id}"
    assert (await finished(client, execution_id))["status"] == "succeeded"


async def test_get_with_wait_long_polls_until_the_end(client: httpx.AsyncClient) -> None:
    execution_id = await submit(client, workflow=sleeper(1500))
    response = await client.get(f"/api/executions/{execution_id}", params={"wait": 20})
    assert response.status_code == 200
    assert response.json()["status"] == "succeeded"
    assert response.json()["nodes"]["w"]["status"] == "succeeded"


async def test_get_with_wait_answers_the_current_state_when_the_wait_runs_out(
    client: httpx.AsyncClient,
) -> None:
    execution_id = await submit(client, workflow=sleeper(5000))
    response = await client.get(f"/api/executions/{execution_id}", params={"wait": 0.2})
    assert response.status_code == 200
    assert response.json()["status"] in {"queued", "running"}
    assert response.json()["finished_at"] is None


async def test_get_with_wait_on_a_finished_execution_answers_at_once(
    client: httpx.AsyncClient,
) -> None:
    execution_id = await submit(client, workflow=one_node())
    await finished(client, execution_id)
    done = (await client.get(f"/api/executions/{execution_id}")).json()
    # A wait far longer than the test's client timeout: only an answer at once passes.
    response = await client.get(f"/api/executions/{execution_id}", params={"wait": 60})
    assert response.json() == done


@pytest.mark.parametrize("wait", ["0", "-1", "61", "nan", "inf", "soon", ""])
async def test_a_bad_wait_is_a_422_naming_it(client: httpx.AsyncClient, wait: str) -> None:
    post = await client.post(
        "/api/executions", params={"wait": wait}, json={"workflow": one_node()}
    )
    assert post.status_code == 422, post.text
    assert post.json()["detail"][0]["loc"] == ["query", "wait"]
    if wait not in {"soon", ""}:  # a number out of range: the largest wait, for programs
        assert post.json()["detail"][0]["ctx"] == {"gt": 0, "le": 60}
    execution_id = await submit(client, workflow=one_node())
    get = await client.get(f"/api/executions/{execution_id}", params={"wait": wait})
    assert get.status_code == 422, get.text
    assert get.json()["detail"][0]["loc"] == ["query", "wait"]


async def test_get_with_wait_on_an_unknown_execution_is_a_404_at_once(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/executions/nope", params={"wait": 60})
    assert response.status_code == 404


async def test_rerun_with_wait_answers_the_finished_rerun(client: httpx.AsyncClient) -> None:
    first = await submit(client, workflow=one_node(), input=[{"n": 1}])
    await finished(client, first)
    response = await client.post(
        f"/api/executions/{first}/rerun", params={"wait": 20}, json={"from_node": "s"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["rerun_of"] == first
    assert response.json()["status"] == "succeeded"


async def test_many_concurrent_waiters_each_get_their_own_execution(
    client: httpx.AsyncClient,
) -> None:
    async def run(n: int) -> httpx.Response:
        return await client.post(
            "/api/executions",
            params={"wait": 30},
            json={"workflow": one_node(), "input": [{"n": n}]},
            timeout=60,
        )

    responses = await asyncio.gather(*(run(n) for n in range(200)))
    assert [r.status_code for r in responses] == [200] * 200
    assert [r.json()["nodes"]["s"]["output"]["main"] for r in responses] == [
        [{"n": n}] for n in range(200)
    ]
    # Several long-polls of one execution are all answered by its one end.
    execution_id = await submit(client, workflow=sleeper(500))
    polls = await asyncio.gather(
        *(client.get(f"/api/executions/{execution_id}", params={"wait": 30}) for _ in range(50))
    )
    assert {p.json()["status"] for p in polls} == {"succeeded"}


async def test_a_waited_parent_answers_its_children_as_get_does(
    client: httpx.AsyncClient,
) -> None:
    child = await client.post("/api/workflows", json=one_node())
    assert child.status_code == 201, child.text
    parent = {
        "name": "parent",
        "nodes": [
            {"id": "start", "type": "manual_trigger"},
            {
                "id": "call",
                "type": "execute_workflow",
                "parameters": {"workflow_id": child.json()["id"], "trigger": "start"},
            },
        ],
        "connections": [{"from": "start", "to": "call"}],
    }
    response = await client.post(
        "/api/executions", params={"wait": 30}, json={"workflow": parent, "input": [{"n": 3}]}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "succeeded"
    assert [c["node"] for c in body["children"]] == ["call"]
    assert (await client.get(f"/api/executions/{body['id']}")).json() == body
