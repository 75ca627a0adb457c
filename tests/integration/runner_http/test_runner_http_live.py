"""The http_request node against a real HTTP server on 127.0.0.1 (uvicorn, in the test's loop).

No traffic leaves 127.0.0.1: "public" hosts are resolved by a test resolver to 93.184.216.34,
which the guard checks and allows, and :class:`LoopbackRouter` delivers to the local server.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Sequence
from typing import Any

import pytest

from nodedrop.runner.netguard import NetGuard, guarded_client
from nodedrop.runner.nodes.api import NodeContext, NodeError
from nodedrop.runner.nodes.http_request import HttpLimits, HttpRequestNode, idempotency_key

from .server import (
    PUBLIC,
    Certificates,
    LoopbackRouter,
    RecordingApp,
    Running,
    numeric_resolver,
    serve,
)

pytestmark = pytest.mark.integration

CTX = NodeContext("exec-1", "fetch", 1)


async def run(
    node: HttpRequestNode,
    parameters: dict[str, Any],
    items: int = 1,
    ctx: NodeContext = CTX,
) -> list[dict[str, Any]]:
    output = await node.run(ctx, {"main": [{"i": i} for i in range(items)]}, parameters)
    assert list(output) == ["main"]
    return output["main"]


async def failure(node: HttpRequestNode, parameters: dict[str, Any], items: int = 1) -> NodeError:
    with pytest.raises(NodeError) as failed:
        await run(node, parameters, items)
    return failed.value


def table_resolver(table: dict[str, list[Sequence[str]]]) -> Any:
    """Answers from ``table``, one answer per query while several are left, numeric hosts as the
    system parses them; records the queries."""
    queries: list[str] = []

    async def resolve(host: str, port: int) -> Sequence[str]:
        queries.append(host)
        if host not in table:
            return await numeric_resolver(host, port)
        answers = table[host]
        return answers.pop(0) if len(answers) > 1 else answers[0]

    resolve.queries = queries  # type: ignore[attr-defined]
    return resolve


def routed_node(
    server: Running,
    table: dict[str, list[Sequence[str]]],
    *,
    verify: ssl.SSLContext | bool = True,
) -> tuple[HttpRequestNode, LoopbackRouter, Any]:
    """A node that refuses private addresses, for hosts named in ``table``."""
    router = LoopbackRouter(server.port)
    resolver = table_resolver(table)
    guard = NetGuard(allow_private=False, resolver=resolver)
    node = HttpRequestNode(
        client_factory=lambda: guarded_client(guard, backend=router, verify=verify)
    )
    return node, router, resolver


# ---------------------------------------------------------------- requests


async def test_get_sends_query_headers_and_an_idempotency_key(
    server: Running, node: HttpRequestNode
) -> None:
    [item] = await run(
        node,
        {
            "url": server.url("/echo?fixed=1"),
            "query": {"q": "a b", "n": "2"},
            "headers": {"X-Custom": "yes", "Accept": "application/json"},
        },
    )
    assert item["status"] == 200
    assert item["body"] == {"key": idempotency_key("exec-1", "fetch", 0)}
    assert item["body_encoding"] == "json"
    [seen] = server.app.seen
    assert seen.method == "GET"
    assert seen.query == {"fixed": ["1"], "q": ["a b"], "n": ["2"]}
    assert seen.headers["x-custom"] == "yes"
    assert seen.headers["accept"] == "application/json"
    assert seen.headers["idempotency-key"] == idempotency_key("exec-1", "fetch", 0)
    assert seen.body == b""


async def test_post_sends_json(server: Running, node: HttpRequestNode) -> None:
    document = {"order": 7, "lines": [{"sku": "é", "qty": 2}], "note": None}
    [item] = await run(node, {"method": "POST", "url": server.url("/echo"), "json": document})
    assert item["status"] == 200
    [seen] = server.app.seen
    assert seen.method == "POST"
    assert seen.headers["content-type"] == "application/json"
    assert server.app.json_bodies() == [document]


async def test_put_sends_a_text_body(server: Running, node: HttpRequestNode) -> None:
    await run(
        node,
        {
            "method": "PUT",
            "url": server.url("/echo"),
            "body": "<a>é</a>",
            "headers": {"Content-Type": "application/xml"},
        },
    )
    [seen] = server.app.seen
    assert (seen.method, seen.body) == ("PUT", "<a>é</a>".encode())
    assert seen.headers["content-type"] == "application/xml"


@pytest.mark.parametrize("method", ["PATCH", "DELETE", "OPTIONS", "HEAD"])
async def test_every_method_is_sent(server: Running, node: HttpRequestNode, method: str) -> None:
    [item] = await run(node, {"method": method, "url": server.url("/echo")})
    assert item["status"] == 200
    assert server.app.seen[0].method == method


async def test_one_request_per_item_in_order_with_pooled_connections(
    server: Running, node: HttpRequestNode
) -> None:
    items = await run(node, {"url": server.url("/echo")}, items=4)
    assert [item["body"]["key"] for item in items] == [
        idempotency_key("exec-1", "fetch", i) for i in range(4)
    ]
    # One connection, kept alive, for all of them.
    assert len({seen.client_port for seen in server.app.seen}) == 1


async def test_concurrent_items_keep_their_order(server: Running) -> None:
    node = HttpRequestNode(allow_private=True, limits=HttpLimits(max_concurrency=8))
    try:
        items = await run(node, {"url": server.url("/echo")}, items=20)
    finally:
        await node.aclose()
    assert [item["body"]["key"] for item in items] == [
        idempotency_key("exec-1", "fetch", i) for i in range(20)
    ]
    assert len(server.app.seen) == 20


async def test_the_idempotency_key_is_the_same_on_every_attempt(
    server: Running, node: HttpRequestNode
) -> None:
    parameters = {"method": "POST", "url": server.url("/echo"), "json": {"a": 1}}
    for attempt in (1, 2):
        await run(node, parameters, items=3, ctx=NodeContext("exec-1", "fetch", attempt))
    keys = [seen.headers["idempotency-key"] for seen in server.app.seen]
    first, second = keys[:3], keys[3:]
    assert first == second  # attempt 2 repeats attempt 1's keys, item by item
    assert len(set(first)) == 3  # each item its own


async def test_a_node_can_be_used_again_after_aclose(server: Running) -> None:
    node = HttpRequestNode(allow_private=True)
    await run(node, {"url": server.url("/echo")})
    await node.aclose()
    await run(node, {"url": server.url("/echo")})
    await node.aclose()
    assert len(server.app.seen) == 2


# ---------------------------------------------------------------- responses


async def test_headers_are_lower_case_and_repeated_ones_joined(
    server: Running, node: HttpRequestNode
) -> None:
    [item] = await run(node, {"url": server.url("/headers")})
    assert item["headers"]["x-mixed-case"] == "v"
    assert item["headers"]["set-cookie"] == "a=1, b=2"
    assert item["headers"]["content-type"] == "application/json"
    assert all(name == name.lower() for name in item["headers"])


async def test_text_is_decoded_with_its_charset(server: Running, node: HttpRequestNode) -> None:
    [item] = await run(node, {"url": server.url("/latin1")})
    assert (item["body"], item["body_encoding"]) == ("héllo", "text")


async def test_binary_bodies_are_base64(server: Running, node: HttpRequestNode) -> None:
    [item] = await run(node, {"url": server.url("/binary")})
    assert (item["body"], item["body_encoding"]) == ("iVBORw0KGgoA/w==", "base64")


async def test_a_body_at_the_limit_is_accepted(server: Running) -> None:
    node = HttpRequestNode(allow_private=True, limits=HttpLimits(max_response_bytes=1000))
    try:
        [declared] = await run(node, {"url": server.url("/bytes/1000")})
        [streamed] = await run(node, {"url": server.url("/chunked/1000")})
    finally:
        await node.aclose()
    assert len(declared["body"]) == len(streamed["body"]) == 1336  # base64 of 1000 bytes


@pytest.mark.parametrize("path", ["/bytes/1001", "/chunked/1001", "/chunked/300000"])
async def test_a_body_over_the_limit_fails_without_retry(server: Running, path: str) -> None:
    node = HttpRequestNode(allow_private=True, limits=HttpLimits(max_response_bytes=1000))
    try:
        error = await failure(node, {"url": server.url(path)})
    finally:
        await node.aclose()
    assert error.type == "HttpResponseTooLarge"
    assert error.retryable is False
    assert "1000 bytes" in error.message


async def test_the_default_limit_is_10_mib(server: Running, node: HttpRequestNode) -> None:
    [item] = await run(node, {"url": server.url(f"/chunked/{10 * 1024 * 1024}")})
    assert item["status"] == 200
    error = await failure(node, {"url": server.url(f"/chunked/{10 * 1024 * 1024 + 1}")})
    assert error.type == "HttpResponseTooLarge"


# ---------------------------------------------------------------- status mapping


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
async def test_5xx_and_429_are_retryable_server_errors(
    server: Running, node: HttpRequestNode, status: int
) -> None:
    error = await failure(node, {"url": server.url(f"/status/{status}?token=secret")})
    assert error.type == "HttpServerError"
    assert error.retryable is True
    assert error.message.startswith("item 0: GET http://127.0.0.1:")
    assert f"HTTP {status}" in error.message
    assert f"status {status} body" in error.message  # the start of the body explains
    assert "secret" not in error.message  # query strings stay out of messages


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
async def test_4xx_are_client_errors(server: Running, node: HttpRequestNode, status: int) -> None:
    error = await failure(node, {"url": server.url(f"/status/{status}")})
    assert error.type == "HttpClientError"
    # Retryable as far as the node is concerned; retry.non_retryable_errors decides (docs/nodes.md).
    assert error.retryable is True
    assert f"HTTP {status}" in error.message


@pytest.mark.parametrize("status", [200, 201, 204, 304])
async def test_2xx_and_unfollowed_3xx_succeed(
    server: Running, node: HttpRequestNode, status: int
) -> None:
    [item] = await run(node, {"url": server.url(f"/status/{status}")})
    assert item["status"] == status


async def test_the_first_failing_item_fails_the_node_and_later_ones_are_not_sent(
    server: Running, node: HttpRequestNode
) -> None:
    error = await failure(node, {"url": server.url("/fail-after/2")}, items=5)
    assert error.type == "HttpServerError"
    assert error.message.startswith("item 2: ")
    assert len(server.app.seen) == 3


async def test_a_closed_port_is_a_retryable_network_error(node: HttpRequestNode) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    error = await failure(node, {"url": f"http://127.0.0.1:{port}/"})
    assert error.type == "HttpServerError"
    assert error.retryable is True


async def test_a_slow_server_times_out_as_a_retryable_error(server: Running) -> None:
    node = HttpRequestNode(allow_private=True, limits=HttpLimits(timeout_s=0.3))
    try:
        error = await failure(node, {"url": server.url("/slow")})
    finally:
        await node.aclose()
    assert error.type == "HttpServerError"
    assert error.retryable is True
    assert "0.3 s" in error.message


# ---------------------------------------------------------------- redirects


async def test_a_redirect_chain_is_followed(server: Running, node: HttpRequestNode) -> None:
    [item] = await run(node, {"url": server.url("/redirect/3")})
    assert item["status"] == 200
    assert item["body"] == {"arrived": True}
    assert server.app.paths() == ["/redirect/3", "/redirect/2", "/redirect/1", "/redirect/0"]
    keys = {seen.headers["idempotency-key"] for seen in server.app.seen}
    assert keys == {idempotency_key("exec-1", "fetch", 0)}


async def test_five_redirects_are_followed_six_are_not(
    server: Running, node: HttpRequestNode
) -> None:
    [item] = await run(node, {"url": server.url("/redirect/5")})
    assert item["status"] == 200
    error = await failure(node, {"url": server.url("/redirect/6")})
    assert error.type == "HttpTooManyRedirects"
    assert error.retryable is False


async def test_an_error_after_a_redirect_names_the_url_that_failed(
    server: Running, node: HttpRequestNode
) -> None:
    error = await failure(
        node, {"url": server.url("/redirect-to"), "query": {"url": "/status/503"}}
    )
    assert error.type == "HttpServerError"
    assert f"GET {server.url('/status/503')}: HTTP 503" in error.message


async def test_303_after_a_post_fetches_with_get(server: Running, node: HttpRequestNode) -> None:
    target = server.url("/echo")
    await run(
        node,
        {
            "method": "POST",
            "url": server.url("/redirect-to"),
            "query": {"url": target, "status": "303"},
            "json": {"a": 1},
        },
    )
    first, second = server.app.seen
    assert (first.method, second.method) == ("POST", "GET")
    assert second.body == b""
    assert "content-type" not in second.headers


async def test_307_repeats_the_post(server: Running, node: HttpRequestNode) -> None:
    await run(
        node,
        {
            "method": "POST",
            "url": server.url("/redirect-to"),
            "query": {"url": "/echo", "status": "307"},
            "json": {"a": 1},
        },
    )
    first, second = server.app.seen
    assert (second.method, second.path) == ("POST", "/echo")
    assert second.body == first.body


# ---------------------------------------------------------------- the guard


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "2130706433", "0x7f.1", "127.1", "0x7f000001", "[::ffff:127.0.0.1]"],
)
async def test_loopback_is_refused_unless_private_addresses_are_allowed(
    server: Running, host: str
) -> None:
    node = HttpRequestNode(allow_private=False)
    try:
        error = await failure(node, {"url": server.url("/echo", host=host)})
    finally:
        await node.aclose()
    assert error.type == "HttpAddressRefused"
    assert error.retryable is False
    assert "127.0.0.1" in error.message
    assert server.app.seen == []


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "127.1", "[::ffff:127.0.0.1]"])
async def test_numeric_spellings_connect_to_the_address_they_mean(
    server: Running, node: HttpRequestNode, host: str
) -> None:
    [item] = await run(node, {"url": server.url("/echo", host=host)})
    assert item["status"] == 200
    assert len(server.app.seen) == 1


async def test_a_public_host_is_allowed_and_connected_by_its_checked_address(
    server: Running,
) -> None:
    node, router, _resolver = routed_node(server, {"ok.test": [[PUBLIC]]})
    try:
        [item] = await run(node, {"url": server.url("/redirect/2", host="ok.test")})
    finally:
        await node.aclose()
    assert item["status"] == 200
    assert {address for address, _port in router.connects} == {PUBLIC}
    assert server.app.seen[0].headers["host"] == f"ok.test:{server.port}"


@pytest.mark.parametrize(
    "target",
    ["http://evil.test:{port}/echo", "http://127.0.0.1:{port}/echo", "http://2130706433:{port}/"],
)
async def test_a_redirect_from_an_allowed_host_to_loopback_is_refused(
    server: Running, target: str
) -> None:
    node, router, _resolver = routed_node(
        server, {"ok.test": [[PUBLIC]], "evil.test": [["127.0.0.1"]]}
    )
    try:
        error = await failure(
            node,
            {
                "url": server.url("/redirect-to", host="ok.test"),
                "query": {"url": target.format(port=server.port)},
            },
        )
    finally:
        await node.aclose()
    assert error.type == "HttpAddressRefused"
    assert error.retryable is False
    assert server.app.paths() == ["/redirect-to"]  # the loopback target was never reached
    assert router.connects == [(PUBLIC, server.port)]


async def test_dns_rebinding_cannot_reach_loopback(server: Running) -> None:
    # Public for the first query, loopback for every later one.
    node, router, resolver = routed_node(server, {"rebind.test": [[PUBLIC], ["127.0.0.1"]]})
    url = server.url("/echo", host="rebind.test")
    try:
        # Two items on one pooled connection: resolved and checked once, connected once.
        items = await run(node, {"url": url}, items=2)
        assert [item["status"] for item in items] == [200, 200]
        assert resolver.queries == ["rebind.test"]
        assert router.connects == [(PUBLIC, server.port)]
        # A new connection resolves again, gets loopback, and is refused.
        await node.aclose()
        error = await failure(node, {"url": url})
    finally:
        await node.aclose()
    assert error.type == "HttpAddressRefused"
    assert router.connects == [(PUBLIC, server.port)]
    assert len(server.app.seen) == 2


async def test_non_http_schemes_are_refused_even_with_private_addresses_allowed(
    node: HttpRequestNode, server: Running
) -> None:
    for url in ["file:///etc/passwd", "ftp://127.0.0.1/", "gopher://127.0.0.1:70/"]:
        error = await failure(node, {"url": url})
        assert error.type == "HttpAddressRefused"
    error = await failure(
        node, {"url": server.url("/redirect-to"), "query": {"url": "file:///etc/passwd"}}
    )
    assert error.type == "HttpAddressRefused"


# ---------------------------------------------------------------- TLS


async def test_tls_checks_the_host_name_while_connecting_to_the_pinned_address(
    certificates: Certificates,
) -> None:
    verify = ssl.create_default_context(cafile=str(certificates.ca))
    async with serve(RecordingApp(), certfile=certificates.cert, keyfile=certificates.key) as tls:
        table: dict[str, list[Sequence[str]]] = {
            "pinned.test": [[PUBLIC]],
            "impostor.test": [[PUBLIC]],
        }
        node, router, _resolver = routed_node(tls, table, verify=verify)
        try:
            [item] = await run(node, {"url": tls.url("/echo", host="pinned.test")})
            # Same address, another name: the certificate does not match it.
            error = await failure(node, {"url": tls.url("/echo", host="impostor.test")})
        finally:
            await node.aclose()
    assert item["status"] == 200
    assert tls.scheme == "https"
    assert router.connects == [(PUBLIC, tls.port), (PUBLIC, tls.port)]
    assert error.type == "HttpServerError"
    assert "certificate" in error.message.lower()
    assert len(tls.app.seen) == 1
