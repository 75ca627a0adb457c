"""The http_request node through the guarded transport, with no socket at all.

A fake resolver names the hosts (``ok.test`` is "public" 93.184.216.34, ``evil.test`` is
127.0.0.1) and a fake network backend answers with canned HTTP responses instead of connecting,
so no traffic leaves the process and the test sees exactly which addresses would have been
connected to: redirects re-checked at every hop, DNS rebinding, TLS by host name.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpcore
import pytest

from nodedrop.runner.netguard import GuardedNetworkBackend, NetGuard, guarded_client
from nodedrop.runner.nodes.api import NodeContext, NodeError
from nodedrop.runner.nodes.http_request import HttpRequestNode, decode_body

PUBLIC = "93.184.216.34"
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"
CTX = NodeContext("exec-1", "fetch", 1)

#: Answers one request (its raw bytes) with a raw HTTP response.
Handler = Callable[[bytes], bytes]


def response(status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    lines = [f"HTTP/1.1 {status} Whatever"]
    for name, value in {**(headers or {}), "Content-Length": str(len(body))}.items():
        lines.append(f"{name}: {value}")
    lines.append("Connection: close")  # a new connection, so a new resolution, per request
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def ok(_request: bytes) -> bytes:
    return response(200, {"Content-Type": "application/json"}, b'{"ok": true}')


class CannedStream(httpcore.AsyncNetworkStream):
    def __init__(self, handler: Handler, log: CannedBackend) -> None:
        self._handler = handler
        self._log = log
        self._written = b""
        self._pending: bytes | None = None

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        if self._pending is None:
            self._log.requests.append(self._written)
            self._pending = self._handler(self._written)
        chunk, self._pending = self._pending[:max_bytes], self._pending[max_bytes:]
        return chunk

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        self._written += buffer

    async def aclose(self) -> None:
        pass

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> httpcore.AsyncNetworkStream:
        self._log.tls_names.append(server_hostname)
        return self

    def get_extra_info(self, info: str) -> Any:
        return None


@dataclass
class CannedBackend(httpcore.AsyncNetworkBackend):
    """Stands in for the network: records every connect and never opens a socket."""

    handlers: dict[str, Handler]
    unreachable: set[str] = field(default_factory=set)
    connects: list[tuple[str, int]] = field(default_factory=list)
    tls_names: list[str | None] = field(default_factory=list)
    requests: list[bytes] = field(default_factory=list)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        if host in self.unreachable:
            raise httpcore.ConnectError(f"{host} unreachable")
        return CannedStream(self.handlers[host], self)

    async def sleep(self, seconds: float) -> None:
        pass


@dataclass
class FakeDns:
    """Answers from a table; a list of answers per host is served one answer per query."""

    table: dict[str, list[Sequence[str]]]
    queries: list[str] = field(default_factory=list)

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.queries.append(host)
        answers = self.table[host]
        return answers.pop(0) if len(answers) > 1 else answers[0]


def make_node(
    dns: FakeDns, backend: CannedBackend, *, allow_private: bool = False
) -> HttpRequestNode:
    guard = NetGuard(allow_private=allow_private, resolver=dns)
    return HttpRequestNode(client_factory=lambda: guarded_client(guard, backend=backend))


async def run(node: HttpRequestNode, url: str, **parameters: Any) -> list[dict[str, Any]]:
    try:
        output = await node.run(CTX, {"main": [{}]}, {"url": url, **parameters})
    finally:
        await node.aclose()
    return output["main"]


def redirect_to(location: str, status: int = 302) -> Handler:
    return lambda _request: response(status, {"Location": location})


DNS: dict[str, list[Sequence[str]]] = {"ok.test": [[PUBLIC]], "evil.test": [["127.0.0.1"]]}


def standard_dns() -> FakeDns:
    return FakeDns({host: list(answers) for host, answers in DNS.items()})


async def test_a_public_host_is_connected_by_its_checked_address() -> None:
    dns = standard_dns()
    backend = CannedBackend({PUBLIC: ok})
    [item] = await run(make_node(dns, backend), "http://ok.test/x")
    assert item["status"] == 200
    assert item["body"] == {"ok": True}
    assert backend.connects == [(PUBLIC, 80)]
    assert dns.queries == ["ok.test"]
    # The Host header is still the name.
    assert b"\r\nHost: ok.test\r\n" in backend.requests[0]


async def test_tls_verifies_and_sends_sni_for_the_host_name_not_the_address() -> None:
    backend = CannedBackend({PUBLIC: ok})
    [item] = await run(make_node(standard_dns(), backend), "https://ok.test/x")
    assert item["status"] == 200
    assert backend.connects == [(PUBLIC, 443)]
    assert backend.tls_names == ["ok.test"]


async def test_a_private_host_is_refused_before_any_connect() -> None:
    backend = CannedBackend({})
    with pytest.raises(NodeError) as failed:
        await run(make_node(standard_dns(), backend), "http://evil.test:8080/")
    assert failed.value.type == "HttpAddressRefused"
    assert failed.value.retryable is False
    assert "evil.test" in failed.value.message
    assert "127.0.0.1" in failed.value.message
    assert failed.value.message.startswith("item 0: ")
    assert backend.connects == []


@pytest.mark.parametrize(
    "location",
    [
        "http://evil.test/steal",
        "http://127.0.0.1/steal",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]/",
        "http://2130706433/",
    ],
)
async def test_every_redirect_is_checked_again(location: str) -> None:
    async def resolver(host: str, port: int) -> Sequence[str]:
        # Names from the table; numeric hosts parsed by the system, never a DNS query.
        if host.endswith(".test"):
            return DNS[host][0]
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, flags=socket.AI_NUMERICHOST, type=socket.SOCK_STREAM
        )
        return [str(info[4][0]) for info in infos]

    backend = CannedBackend({PUBLIC: redirect_to(location)})
    node = HttpRequestNode(
        client_factory=lambda: guarded_client(NetGuard(resolver=resolver), backend=backend)
    )
    with pytest.raises(NodeError) as failed:
        await run(node, "http://ok.test/start")
    assert failed.value.type == "HttpAddressRefused"
    assert backend.connects == [(PUBLIC, 80)]


async def test_a_redirect_to_another_scheme_is_refused() -> None:
    backend = CannedBackend({PUBLIC: redirect_to("file:///etc/passwd")})
    with pytest.raises(NodeError) as failed:
        await run(make_node(standard_dns(), backend, allow_private=True), "http://ok.test/")
    assert failed.value.type == "HttpAddressRefused"
    assert "file" in failed.value.message


async def test_dns_rebinding_gets_the_first_checked_address_only() -> None:
    # The attacker's DNS answers a public address first and loopback afterwards.
    dns = FakeDns({"rebind.test": [[PUBLIC], ["127.0.0.1"]]})
    backend = CannedBackend({PUBLIC: ok})
    node = make_node(dns, backend)
    [item] = (await node.run(CTX, {"main": [{}]}, {"url": "http://rebind.test/"}))["main"]
    assert item["status"] == 200
    assert dns.queries == ["rebind.test"]  # resolved once for the connection
    assert backend.connects == [(PUBLIC, 80)]  # connected to what was checked
    # The next connection (the server closed the first) resolves again and is refused.
    with pytest.raises(NodeError) as failed:
        await node.run(CTX, {"main": [{}]}, {"url": "http://rebind.test/"})
    await node.aclose()
    assert failed.value.type == "HttpAddressRefused"
    assert backend.connects == [(PUBLIC, 80)]


async def test_an_answer_mixing_public_and_private_addresses_is_refused() -> None:
    dns = FakeDns({"mixed.test": [[PUBLIC, "10.0.0.7"]]})
    backend = CannedBackend({PUBLIC: ok})
    with pytest.raises(NodeError) as failed:
        await run(make_node(dns, backend), "http://mixed.test/")
    assert failed.value.type == "HttpAddressRefused"
    assert "10.0.0.7" in failed.value.message
    assert backend.connects == []


async def test_checked_addresses_are_tried_in_order() -> None:
    dns = FakeDns({"dual.test": [[PUBLIC_V6, PUBLIC]]})
    backend = CannedBackend({PUBLIC: ok}, unreachable={PUBLIC_V6})
    [item] = await run(make_node(dns, backend), "http://dual.test/")
    assert item["status"] == 200
    assert backend.connects == [(PUBLIC_V6, 80), (PUBLIC, 80)]


async def test_allow_private_still_connects_to_the_resolved_address() -> None:
    dns = standard_dns()
    backend = CannedBackend({"127.0.0.1": ok})
    [item] = await run(make_node(dns, backend, allow_private=True), "http://evil.test:81/")
    assert item["status"] == 200
    assert backend.connects == [("127.0.0.1", 81)]


async def test_a_name_that_does_not_resolve_is_a_retryable_network_error() -> None:
    async def nxdomain(host: str, port: int) -> Sequence[str]:
        raise OSError(f"no such host {host}")

    node = HttpRequestNode(
        client_factory=lambda: guarded_client(
            NetGuard(resolver=nxdomain), backend=CannedBackend({})
        )
    )
    with pytest.raises(NodeError) as failed:
        await run(node, "http://nowhere.test/")
    assert failed.value.type == "HttpServerError"
    assert failed.value.retryable is True
    assert "nowhere.test" in failed.value.message


async def test_unix_sockets_are_refused() -> None:
    backend = GuardedNetworkBackend(NetGuard(allow_private=True), CannedBackend({}))
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_unix_socket("/var/run/docker.sock")


async def test_credentials_are_not_sent_to_another_origin() -> None:
    dns = FakeDns({"ok.test": [[PUBLIC]], "other.test": [[PUBLIC_V6]]})
    backend = CannedBackend({PUBLIC: redirect_to("http://other.test/next", 307), PUBLIC_V6: ok})
    credentials = {
        "Authorization": "Bearer secret",
        "Proxy-Authorization": "Basic cHJveHk=",
        "Cookie": "a=1",
        "X-Api-Key": "key-secret",
        "Private-Token": "token-secret",
    }
    [item] = await run(
        make_node(dns, backend),
        "http://ok.test/",
        method="POST",
        body="payload",
        headers={**credentials, "Accept": "application/json", "Content-Type": "text/plain"},
    )
    assert item["status"] == 200
    first, second = backend.requests
    for value in credentials.values():
        assert value.encode() in first
        assert value.encode() not in second, value
    assert b"Accept: application/json" in second
    assert b"Content-Type: text/plain" in second
    assert second.startswith(b"POST /next ")  # 307 keeps the method and the body
    assert second.endswith(b"payload")
    assert b"Idempotency-Key" in second


# ---------------------------------------------------------------- body decoding


@pytest.mark.parametrize(
    ("content", "content_type", "body", "encoding"),
    [
        (b'{"a": 1}', "application/json", {"a": 1}, "json"),
        (b'{"a": 1}', "application/problem+json; charset=utf-8", {"a": 1}, "json"),
        (b"[1, 2]", "text/json", [1, 2], "json"),
        (b"{not json", "application/json", "{not json", "text"),
        (b"", "application/json", "", "text"),
        ("héllo".encode("latin-1"), "text/plain; charset=ISO-8859-1", "héllo", "text"),
        ("héllo".encode(), "text/html", "héllo", "text"),
        (b"<a/>", "application/atom+xml", "<a/>", "text"),
        (b"x=1", "application/x-www-form-urlencoded", "x=1", "text"),
        (b"abc", "text/plain; charset=no-such-charset", "abc", "text"),
        (b"plain", None, "plain", "text"),
        (b"\xff\xfe\x00", None, "//4A", "base64"),
        (b"\x89PNG\r\n", "image/png", "iVBORw0K", "base64"),
        (b"text-looking", "application/octet-stream", "dGV4dC1sb29raW5n", "base64"),
    ],
)
def test_bodies_are_decoded_by_content_type(
    content: bytes, content_type: str | None, body: Any, encoding: str
) -> None:
    assert decode_body(content, content_type) == (body, encoding)
