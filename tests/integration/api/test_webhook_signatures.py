"""Signed webhooks: ``X-Nodedrop-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">``
keyed with the node's secret, at most five minutes from the server's clock."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import pytest

from nodedrop.contracts.events import ExecutionRequested

from .harness import Api

pytestmark = pytest.mark.integration

SECRET = "s3cret-value"

SIGNED: dict[str, Any] = {
    "name": "Signed",
    "nodes": [
        {"id": "open", "type": "webhook_trigger"},
        {"id": "secured", "type": "webhook_trigger", "parameters": {"secret": SECRET}},
        {
            "id": "signed_only",
            "type": "webhook_trigger",
            "parameters": {"secret": SECRET, "require_signature": True},
        },
        {"id": "done", "type": "noop"},
    ],
    "connections": [
        {"from": "open", "to": "done"},
        {"from": "secured", "to": "done"},
        {"from": "signed_only", "to": "done"},
    ],
}

BODY = json.dumps({"order": 7}).encode()


def signature(body: bytes, timestamp: int | None = None, secret: str = SECRET) -> str:
    """What a sender computes (written out here, independently of the api's code)."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


@pytest.fixture
async def workflow_id(api: Api) -> str:
    created = await api.client.post("/api/workflows", json=SIGNED)
    assert created.status_code == 201, created.text
    found: str = created.json()["id"]
    return found


async def post(
    client: httpx.AsyncClient, workflow_id: str, node: str, headers: dict[str, str]
) -> httpx.Response:
    return await client.post(
        f"/webhooks/{workflow_id}/{node}",
        content=BODY,
        headers={"content-type": "application/json", **headers},
    )


@pytest.mark.parametrize("node", ["secured", "signed_only"])
async def test_a_signed_request_runs_the_workflow(
    api: Api, anonymous: httpx.AsyncClient, workflow_id: str, node: str
) -> None:
    response = await post(anonymous, workflow_id, node, {"X-Nodedrop-Signature": signature(BODY)})
    assert response.status_code == 202, response.text
    [(event, _)] = await api.stream_events(response.json()["id"])
    assert isinstance(event, ExecutionRequested)
    assert event.input == [{"order": 7}]


async def test_another_signature_among_several_may_match(
    anonymous: httpx.AsyncClient, workflow_id: str
) -> None:
    # A sender rotating its secret signs with both.
    t = int(time.time())
    old = signature(BODY, t, secret="the-old-secret").split(",")[1]
    header = f"t={t},{old},{signature(BODY, t).split(',')[1]}"
    response = await post(anonymous, workflow_id, "secured", {"X-Nodedrop-Signature": header})
    assert response.status_code == 202, response.text


def refused_header(kind: str) -> str:
    """Built when the test runs, not when it is collected: timestamps are checked."""
    now = int(time.time())
    return {
        "wrong secret": signature(BODY, secret="wrong"),
        "another body": signature(b'{"order": 8}'),
        "replayed late": signature(BODY, now - 301),
        "from the future": signature(BODY, now + 3600),
        "no v1": f"t={now}",
        "no t": "v1=" + "0" * 64,
        "malformed": "sha256=abc",
    }[kind]


@pytest.mark.parametrize(
    ("kind", "why"),
    [
        ("wrong secret", "does not match"),
        ("another body", "does not match"),
        ("replayed late", "300 s"),
        ("from the future", "300 s"),
        ("no v1", "v1"),
        ("no t", "t="),
        ("malformed", "malformed"),
    ],
)
async def test_a_wrong_stale_or_malformed_signature_is_refused(
    api: Api, anonymous: httpx.AsyncClient, workflow_id: str, kind: str, why: str
) -> None:
    before = await api.stream_count()
    header = refused_header(kind)
    response = await post(anonymous, workflow_id, "secured", {"X-Nodedrop-Signature": header})
    assert response.status_code == 401, response.text
    assert why in response.json()["detail"]
    assert await api.stream_count() == before


async def test_a_stale_signature_is_refused_even_with_the_secret(
    anonymous: httpx.AsyncClient, workflow_id: str
) -> None:
    # A signed request is judged by its signature: adding the secret does not rescue a replay.
    headers = {
        "X-Nodedrop-Signature": signature(BODY, int(time.time()) - 600),
        "X-Nodedrop-Secret": SECRET,
    }
    assert (await post(anonymous, workflow_id, "secured", headers)).status_code == 401


async def test_the_plain_secret_still_works_unless_a_signature_is_required(
    anonymous: httpx.AsyncClient, workflow_id: str
) -> None:
    plain = {"X-Nodedrop-Secret": SECRET}
    assert (await post(anonymous, workflow_id, "secured", plain)).status_code == 202
    refused = await post(anonymous, workflow_id, "signed_only", plain)
    assert refused.status_code == 401
    assert "X-Nodedrop-Signature" in refused.json()["detail"]
    assert (await post(anonymous, workflow_id, "signed_only", {})).status_code == 401


async def test_a_webhook_without_a_secret_is_open(
    anonymous: httpx.AsyncClient, workflow_id: str
) -> None:
    assert (await post(anonymous, workflow_id, "open", {})).status_code == 202


async def test_require_signature_needs_a_secret(api: Api) -> None:
    definition = {
        "name": "No secret",
        "nodes": [
            {"id": "hook", "type": "webhook_trigger", "parameters": {"require_signature": True}}
        ],
    }
    response = await api.client.post("/api/workflows", json=definition)
    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"][:4] == ["body", "nodes", 0, "parameters"]
    assert "secret" in problem["msg"]
