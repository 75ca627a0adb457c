"""A waiting request whose "finished" notice never comes (no notifier runs here to send one)
still learns the end: the api's sweep finds it in the projection."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from .harness import WORKFLOW, Api, project_execution

pytestmark = pytest.mark.integration


async def test_a_wait_without_its_notice_answers_once_the_projection_shows_the_end(
    api: Api,
) -> None:
    posted = asyncio.create_task(
        api.client.post("/api/executions", params={"wait": 30}, json={"workflow": WORKFLOW}),
    )
    waiters = api.resources.waiters
    for _ in range(3000):  # until the request waits (recorded, no answer yet)
        if len(waiters) == 1:
            break
        await asyncio.sleep(0.01)
    assert len(waiters) == 1
    [execution_id] = waiters.waited_longer_than(-1.0)
    now = datetime.now(UTC)
    await project_execution(api, execution_id, status="succeeded", created_at=now, finished_at=now)
    response = await asyncio.wait_for(posted, 60)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == execution_id
    assert response.json()["status"] == "succeeded"
    assert len(waiters) == 0
