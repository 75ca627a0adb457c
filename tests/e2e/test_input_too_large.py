"""A fan-in whose input does not fit in one message fails its join node, visibly and at once.

Each of 36 parents outputs one item of ~250 KB: under the offload threshold (256 KiB), so every
output travels inside its event, and together they are ~9 MB, more than the 8 MB a message may
carry. Before the scheduler measured what it sends, the join's NodeReady could not be recorded,
the batch was redelivered until the scheduler's delivery limit, and the execution ended as a
dead letter or hung. Now the join fails with ``InputTooLarge`` and the execution ends ``failed``.
"""

from __future__ import annotations

import io
from typing import Any

import httpx
import nats
import pytest

from nodedrop.cli.audit import AuditRequest, read_history, report
from nodedrop.client import AsyncClient
from nodedrop.contracts import subjects
from nodedrop.contracts.codec import MAX_MESSAGE_BYTES
from nodedrop.contracts.errors import INPUT_TOO_LARGE

from .system import System

pytestmark = pytest.mark.e2e

PARENTS = 36
PADDING = 250_000
#: Generous on a busy 2-core machine; the run itself takes a few seconds.
FINISH_WITHIN_S = 90.0


def fan_in() -> dict[str, Any]:
    parents = [f"p{i}" for i in range(PARENTS)]
    return {
        "name": "fan-in too large",
        "nodes": [
            {"id": "start", "type": "manual_trigger"},
            *({"id": p, "type": "noop"} for p in parents),
            {"id": "join", "type": "merge", "retry": {"max_attempts": 3}},
            {"id": "after", "type": "noop"},
        ],
        "connections": [
            *({"from": "start", "to": p} for p in parents),
            *({"from": p, "to": "join"} for p in parents),
            {"from": "join", "to": "after"},
        ],
    }


async def dead_letters(nats_url: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().stream_info(subjects.DEAD_LETTERS_STREAM)
        return info.state.messages
    finally:
        await nc.close()


async def test_a_fan_in_too_large_for_one_message_fails_the_join(system: System) -> None:
    # Under the offload threshold, each output travels inline; all of them do not fit.
    async with httpx.AsyncClient(
        base_url=system.base_url, headers=system.headers, timeout=60
    ) as client:
        api = AsyncClient(system.base_url, http=client)
        items = [{"padding": "x" * PADDING}]
        execution_id = (await api.submit(workflow=fan_in(), input=items)).id

        execution = (await api.wait_for(execution_id, FINISH_WITHIN_S)).model_dump(mode="json")

        nodes = execution["nodes"]
        assert execution["status"] == "failed", {k: v["status"] for k, v in nodes.items()}
        assert all(nodes[f"p{i}"]["status"] == "succeeded" for i in range(PARENTS))
        join = nodes["join"]
        assert join["status"] == "failed"
        assert join["attempts"] == 1  # not retried: the same input would not fit again
        assert join["error"]["type"] == INPUT_TOO_LARGE
        assert "bytes" in join["error"]["message"]
        assert execution["error"]["type"] == INPUT_TOO_LARGE
        assert nodes["after"]["status"] == "skipped"
        assert nodes["after"]["skip_reason"] == "execution_failed"

        events = (await client.get(f"/api/executions/{execution_id}/events")).json()["events"]
        types = [(e["type"], e["node"]) for e in events]
        assert ("NodeReady", "join") not in types
        assert ("NodeFailed", "join") in types
        # The parents' outputs really travelled inline (no reference to the object store), and
        # together they are more than one message may carry.
        outputs = [e["data"]["output"] for e in events if e["type"] == "NodeSucceeded"]
        inline = sum(len(o["main"][0].get("padding", "")) for o in outputs if o.get("main"))
        assert inline > MAX_MESSAGE_BYTES
    assert await dead_letters(system.nats_url) == 0
    # `nodedrop audit --verify`: the recorded history is what today's scheduler core decides.
    out = io.StringIO()
    history = await read_history(system.nats_url, execution_id)
    assert report(AuditRequest(execution_id, verify=True), history, out) == 0, out.getvalue()
    assert "InputTooLarge" in out.getvalue()
