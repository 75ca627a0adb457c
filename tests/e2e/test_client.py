"""nodedrop's client library against the real system: both clients, every kind of operation,
errors with their problem details, waiting and following live."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from nodedrop.client import (
    AsyncClient,
    Client,
    Conflict,
    NotFound,
    Unauthorized,
    ValidationFailed,
    WaitTimedOut,
)

from .system import System

pytestmark = pytest.mark.e2e

CHAIN: dict[str, Any] = {
    "name": "client chain",
    "nodes": [
        {"id": "start", "type": "manual_trigger"},
        {"id": "tag", "type": "set", "parameters": {"values": {"doubled": "{{ item.n * 2 }}"}}},
        {"id": "pass", "type": "noop"},
    ],
    "connections": [{"from": "start", "to": "tag"}, {"from": "tag", "to": "pass"}],
}
SLOW: dict[str, Any] = {
    "name": "slow",
    "nodes": [
        {"id": "start", "type": "manual_trigger"},
        {"id": "pause", "type": "wait", "parameters": {"ms": 60_000}},
    ],
    "connections": [{"from": "start", "to": "pause"}],
}


async def test_workflows_crud_and_versions(system: System) -> None:
    async with AsyncClient(system.base_url, system.token) as api:
        created = await api.create_workflow(CHAIN)
        assert (created.version, created.name) == (1, "client chain")
        renamed = await api.update_workflow(created.id, {**CHAIN, "name": "renamed"})
        assert renamed.version == 2
        with pytest.raises(Conflict) as stale:  # saved from version 1, but 2 is the latest
            await api.update_workflow(created.id, CHAIN, if_version=1)
        assert stale.value.body["current_version"] == 2
        versions = await api.workflow_versions(created.id)
        assert [(w.version, w.name) for w in versions] == [(1, "client chain"), (2, "renamed")]
        assert versions[0].definition()["nodes"] == CHAIN["nodes"]
        listed = [w.id async for w in api.iter_workflows(page_size=1)]
        assert created.id in listed
        await api.delete_workflow(created.id)
        with pytest.raises(NotFound):
            await api.get_workflow(created.id)


async def test_submit_and_wait_answers_the_finished_execution(system: System) -> None:
    async with AsyncClient(system.base_url, system.token) as api:
        workflow_id = (await api.create_workflow(CHAIN)).id
        done = await api.submit_and_wait(workflow_id, input=[{"n": 1}, {"n": 2}], timeout_s=30)
        assert done.status == "succeeded"
        assert done.nodes["pass"].output == {
            "main": [{"n": 1, "doubled": 2}, {"n": 2, "doubled": 4}]
        }
        assert await api.node_output(done.id, "tag") == done.nodes["tag"].output
        events = await api.events(done.id)
        assert events[-1].type == "ExecutionFinished"
        assert [e.seq for e in await api.events(done.id, after_seq=events[-2].seq)] == [
            events[-1].seq
        ]
        ids = [e.id async for e in api.iter_executions(workflow_id=workflow_id, page_size=1)]
        assert ids == [done.id]


def test_the_sync_client_waits_follows_and_reruns(system: System) -> None:
    with Client(system.base_url, system.token) as api:
        accepted = api.submit(workflow=CHAIN, input=[{"n": 5}])
        seen = list(api.follow(accepted.id))
        assert seen[0].type == "ExecutionRequested"
        assert seen[-1].type == "ExecutionFinished"
        assert [e.seq for e in seen] == sorted({e.seq for e in seen})
        # Resumed after a seq: only what came after it.
        resumed = list(api.follow(accepted.id, after_seq=seen[-3].seq))
        assert [e.seq for e in resumed] == [e.seq for e in seen[-2:]]
        done = api.wait_for(accepted.id, 30)
        assert done.status == "succeeded"
        again = api.rerun(done.id, "pass")
        assert again.rerun_of == done.id
        assert api.wait_for(again.id, 30).nodes["tag"].output == done.nodes["tag"].output


async def test_errors_carry_the_problem_details(system: System) -> None:
    async with AsyncClient(system.base_url, system.token) as api:
        broken = {**CHAIN, "nodes": [*CHAIN["nodes"][:2], {"id": "pass", "type": "nope"}]}
        with pytest.raises(ValidationFailed) as invalid:
            await api.submit(workflow=broken)
        assert invalid.value.field == "workflow.nodes[2].type"
        with pytest.raises(NotFound):
            await api.get_execution("no-such-execution")

        slow = (await api.submit(workflow=SLOW)).id
        with pytest.raises(WaitTimedOut) as waited:
            await api.wait_for(slow, 0.5)
        assert waited.value.execution.status in {"queued", "running"}
        with pytest.raises(Conflict):
            await api.rerun(slow, "pause")
        await api.cancel(slow)
        assert (await api.wait_for(slow, 30)).status == "cancelled"
        with pytest.raises(Conflict):
            await api.cancel(slow)
    async with AsyncClient(system.base_url, "wrong-key") as stranger:
        with pytest.raises(Unauthorized):
            await stranger.get_execution(slow)
        with pytest.raises(Unauthorized):
            _ = [e async for e in stranger.follow(slow)]


async def test_following_live_sees_every_event_once(system: System) -> None:
    async with AsyncClient(system.base_url, system.token) as api:
        slow = (await api.submit(workflow=SLOW)).id
        events: list[str] = []
        waiting = asyncio.Event()

        async def follow() -> None:
            async for event in api.follow(slow):
                events.append(event.type)
                if event.type == "NodeWaiting":
                    waiting.set()

        following = asyncio.create_task(follow())
        await asyncio.wait_for(waiting.wait(), 30)
        await api.cancel(slow)
        await asyncio.wait_for(following, 30)
        assert events[0] == "ExecutionRequested"
        assert events[-1] == "ExecutionFinished"
        assert "ExecutionCancelRequested" in events
