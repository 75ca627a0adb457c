"""http_request with a ``credential`` (docs/credentials.md): each type applied to the real
request, OAuth2 tokens fetched, cached and fetched again before they expire, and the secrets
kept out of the attempt's error, log lines and result event, even when the server quotes them."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest

from nodedrop.contracts import codec
from nodedrop.contracts.events import ErrorInfo, NodeReady
from nodedrop.runner.attempt import result_event, run_attempt
from nodedrop.runner.credentials import CredentialVault
from nodedrop.runner.nodes.api import Credential, NodeContext, NodeError
from nodedrop.runner.nodes.http_request import HttpRequestNode
from nodedrop.runner.nodes.oauth2 import TokenCache
from nodedrop.runner.nodes.registry import NodeRegistry

from .server import Running

pytestmark = pytest.mark.integration

SECRET = "PLANTED-secret-value-4f1d9c"


def credential(type: str, **fields: Any) -> Credential:
    secret = {
        "http_header": ["value"],
        "bearer_token": ["token"],
        "basic_auth": ["password"],
        "query_parameter": ["value"],
        "oauth2_client_credentials": ["client_secret"],
        "key_value": ["secrets"],
    }[type]
    return Credential(id=f"cred-{type}", type=type, name=type, fields=fields, secret_fields=secret)


def ctx_with(found: Credential) -> NodeContext:
    ctx = NodeContext("exec-1", "call", 1)
    ctx.credentials["credential"] = found
    return ctx


async def call(node: HttpRequestNode, ctx: NodeContext, url: str, **extra: Any) -> Any:
    return await node.run(ctx, {"main": [{}]}, {"url": url, "credential": "x", **extra})


@pytest.mark.parametrize(
    ("found", "header", "expected"),
    [
        (credential("http_header", name="X-Api-Key", value=SECRET), "x-api-key", SECRET),
        (credential("bearer_token", token=SECRET), "authorization", f"Bearer {SECRET}"),
        (
            credential("basic_auth", username="ann", password=SECRET),
            "authorization",
            "Basic " + base64.b64encode(f"ann:{SECRET}".encode()).decode(),
        ),
    ],
    ids=["http_header", "bearer_token", "basic_auth"],
)
async def test_header_credentials_are_sent_and_win_over_the_items_header(
    server: Running, node: HttpRequestNode, found: Credential, header: str, expected: str
) -> None:
    output = await call(
        node, ctx_with(found), server.url("/echo"), headers={header: "from the item"}
    )
    assert output["main"][0]["status"] == 200
    [seen] = server.app.seen
    assert seen.headers[header] == expected
    assert SECRET not in str(output)


async def test_a_query_parameter_credential_is_added_to_the_url(
    server: Running, node: HttpRequestNode
) -> None:
    found = credential("query_parameter", name="api_key", value=SECRET)
    await call(node, ctx_with(found), server.url("/echo"), query={"page": 2})
    [seen] = server.app.seen
    assert seen.query == {"page": ["2"], "api_key": [SECRET]}


def oauth(server: Running, *, secret: str = "right-secret", **fields: Any) -> Credential:
    return credential(
        "oauth2_client_credentials",
        token_url=server.url("/token"),
        client_id="app",
        client_secret=secret,
        client_auth="basic",
        **fields,
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_an_oauth2_token_is_fetched_once_cached_and_fetched_again_before_it_expires(
    server: Running, node: HttpRequestNode
) -> None:
    clock = Clock()
    node._tokens = TokenCache(node._shared_client, timeout_s=5, clock=clock)
    found = oauth(server)
    found = Credential(
        id=found.id,
        type=found.type,
        name=found.name,
        fields={**found.fields, "token_url": server.url("/token") + "?expires_in=120"},
        secret_fields=found.secret_fields,
    )
    for _ in range(2):
        await call(node, ctx_with(found), server.url("/echo"))
    assert server.app.tokens_issued == 1
    clock.now += 59  # a 120 s token is fetched again 60 s before it expires
    await call(node, ctx_with(found), server.url("/echo"))
    assert server.app.tokens_issued == 1
    clock.now += 2
    await call(node, ctx_with(found), server.url("/echo"))
    assert server.app.tokens_issued == 2
    sent = [s.headers.get("authorization") for s in server.app.seen if s.path == "/echo"]
    assert sent == ["Bearer access-token-1"] * 3 + ["Bearer access-token-2"]


async def test_oauth2_credentials_may_go_in_the_body(
    server: Running, node: HttpRequestNode
) -> None:
    found = oauth(server)
    body_auth = Credential(
        id=found.id,
        type=found.type,
        name=found.name,
        fields={**found.fields, "client_auth": "body"},
        secret_fields=found.secret_fields,
    )
    await call(node, ctx_with(body_auth), server.url("/echo"))
    assert server.app.seen[-1].headers["authorization"] == "Bearer access-token-1"


async def test_a_refused_client_is_a_credential_error_not_retried(
    server: Running, node: HttpRequestNode
) -> None:
    with pytest.raises(NodeError) as error:
        await call(node, ctx_with(oauth(server, secret=SECRET)), server.url("/echo"))
    assert error.value.type == "CredentialError"
    assert not error.value.retryable
    assert "invalid_client" in error.value.message
    assert SECRET not in error.value.message
    assert [s.path for s in server.app.seen] == ["/token"]  # the request itself was not sent


async def test_a_type_http_request_cannot_apply_is_a_credential_error(
    server: Running, node: HttpRequestNode
) -> None:
    with pytest.raises(NodeError, match="cannot apply") as error:
        await call(node, ctx_with(credential("key_value", secrets={"a": SECRET})), server.url("/"))
    assert error.value.type == "CredentialError"
    assert server.app.seen == []


class FixedVault(CredentialVault):
    """Resolves every credential parameter to ``found``, as the database would."""

    def __init__(self, found: Credential) -> None:
        super().__init__(None, None)
        self.found = found

    async def resolve(
        self, task: NodeReady, parameters: Any, *, now: datetime | None = None
    ) -> dict[str, Credential]:
        return dict.fromkeys(parameters, self.found)


async def test_a_server_quoting_the_secret_in_an_error_leaves_it_out_of_the_result(
    server: Running, node: HttpRequestNode
) -> None:
    found = credential("basic_auth", username="ann", password=SECRET)
    task = NodeReady(
        event_id="e",
        execution_id="exec-1",
        time=datetime.now(UTC),
        node="call",
        attempt=1,
        node_type="http_request",
        input={"main": [{}]},
        parameters={"url": server.url("/echo-auth/400"), "credential": found.id},
        requester="ann",
    )
    ctx = NodeContext("exec-1", "call", 1)
    ctx.log.info(f"about to send {SECRET}")  # a node's own careless line
    outcome = await run_attempt(NodeRegistry([node]), task, ctx=ctx, vault=FixedVault(found))
    assert isinstance(outcome, ErrorInfo)
    assert outcome.type == "HttpClientError"
    assert "[redacted]" in outcome.message
    encoded = base64.b64encode(f"ann:{SECRET}".encode()).decode()
    event = codec.encode(result_event(task, outcome, datetime.now(UTC), [found.id]))
    for text in (outcome.message, outcome.stack or "", ctx.log.lines[0].message, event.decode()):
        assert SECRET not in text
        assert encoded not in text
    assert b'"credentials":["cred-basic_auth"]' in event


async def test_a_node_naming_a_credential_on_a_runner_without_a_vault_fails_clearly(
    server: Running, node: HttpRequestNode
) -> None:
    task = NodeReady(
        event_id="e",
        execution_id="exec-1",
        time=datetime.now(UTC),
        node="call",
        attempt=1,
        node_type="http_request",
        input={"main": [{}]},
        parameters={"url": server.url("/echo"), "credential": "cred-9"},
        requester="ann",
    )
    outcome = await run_attempt(NodeRegistry([node]), task)
    assert isinstance(outcome, ErrorInfo)
    assert (outcome.type, outcome.retryable) == ("CredentialError", False)
    assert "cred-9" in outcome.message
    assert server.app.seen == []
