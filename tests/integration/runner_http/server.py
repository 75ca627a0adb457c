"""A real HTTP server on 127.0.0.1 for the http_request node's tests, and the helpers around it.

The server is a small ASGI app under uvicorn that records every request it gets. Tests that need
a "public" host use :class:`LoopbackRouter`: the guard checks and connects to a public address
(93.184.216.34) and the router, standing in for the internet, delivers that connection to the
local server. It refuses every other non-loopback address, so no test traffic leaves 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpcore
import uvicorn

PUBLIC = "93.184.216.34"

Scope = dict[str, Any]
Message = dict[str, Any]


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    client_port: int


@dataclass
class RecordingApp:
    """Routes (path segments): ``/echo``, ``/fail-after/<n>`` (500 after n calls),
    ``/status/<code>``, ``/bytes/<n>`` (with
    Content-Length), ``/chunked/<n>`` (without), ``/redirect/<k>`` (k hops, then JSON),
    ``/redirect-to?url=&status=``, ``/latin1``, ``/binary``, ``/headers``, ``/slow``."""

    seen: list[Seen] = field(default_factory=list)
    fail_after_calls: int = 0
    #: ``/token``: OAuth2 client credentials endpoint; tokens handed out so far.
    tokens_issued: int = 0

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        query = parse_qs(scope["query_string"].decode(), keep_blank_values=True)
        headers = {name.decode().lower(): value.decode() for name, value in scope["headers"]}
        self.seen.append(
            Seen(scope["method"], scope["path"], query, headers, body, scope["client"][1])
        )
        await self._route(scope["path"].strip("/").split("/"), query, headers, send)

    async def _route(
        self, parts: list[str], query: dict[str, list[str]], headers: dict[str, str], send: Any
    ) -> None:
        match parts:
            case ["echo"]:
                # Tells which request this was: the item's idempotency key.
                key = headers.get("idempotency-key", "")
                await _answer(send, 200, json.dumps({"key": key}).encode(), "application/json")
            case ["fail-after", count]:
                self.fail_after_calls += 1
                status = 500 if self.fail_after_calls > int(count) else 200
                await _answer(send, status, b"{}", "application/json")
            case ["status", code]:
                await _answer(send, int(code), f"status {code} body".encode(), "text/plain")
            case ["bytes", size]:
                await _answer(send, 200, b"x" * int(size), "application/octet-stream")
            case ["chunked", size]:
                await _chunked(send, int(size))
            case ["redirect", hops] if int(hops) > 0:
                await _answer(
                    send, 302, b"", "text/plain", [("location", f"/redirect/{int(hops) - 1}")]
                )
            case ["redirect", _]:
                await _answer(send, 200, b'{"arrived": true}', "application/json")
            case ["redirect-to"]:
                status = int(query.get("status", ["302"])[0])
                await _answer(send, status, b"", "text/plain", [("location", query["url"][0])])
            case ["latin1"]:
                await _answer(
                    send, 200, "héllo".encode("latin-1"), "text/plain; charset=iso-8859-1"
                )
            case ["binary"]:
                await _answer(send, 200, b"\x89PNG\r\n\x1a\n\x00\xff", "image/png")
            case ["headers"]:
                extra = [("X-Mixed-Case", "v"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]
                await _answer(send, 200, b"{}", "application/json", extra)
            case ["echo-auth", code]:
                # An upstream that quotes the credential back, e.g. in an error's body.
                echoed = json.dumps({"authorization": headers.get("authorization"), "q": query})
                await _answer(send, int(code), echoed.encode(), "application/json")
            case ["token"]:
                await self._token(query, headers, send)
            case ["slow"]:
                await asyncio.sleep(2)
                await _answer(send, 200, b"late", "text/plain")
            case _:
                await _answer(send, 404, b"no route", "text/plain")

    async def _token(self, query: dict[str, list[str]], headers: dict[str, str], send: Any) -> None:
        """Grants a token to client ``app`` with secret ``right-secret`` (HTTP Basic or in the
        body); ``?expires_in=`` sets its lifetime."""
        body = parse_qs(self.seen[-1].body.decode())
        basic = "Basic " + base64.b64encode(b"app:right-secret").decode()
        in_body = body.get("client_id") == ["app"] and body.get("client_secret") == ["right-secret"]
        if headers.get("authorization") != basic and not in_body:
            await _answer(send, 401, b'{"error": "invalid_client"}', "application/json")
            return
        self.tokens_issued += 1
        answer: dict[str, Any] = {
            "access_token": f"access-token-{self.tokens_issued}",
            "token_type": "Bearer",
        }
        if "expires_in" in query:
            answer["expires_in"] = int(query["expires_in"][0])
        await _answer(send, 200, json.dumps(answer).encode(), "application/json")

    def paths(self) -> list[str]:
        return [seen.path for seen in self.seen]

    def json_bodies(self) -> list[Any]:
        return [json.loads(seen.body) for seen in self.seen]


async def _answer(
    send: Any,
    status: int,
    body: bytes,
    content_type: str,
    extra: Iterable[tuple[str, str]] = (),
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    headers += [(name.encode(), value.encode()) for name, value in extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _chunked(send: Any, size: int) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/octet-stream")],
        }
    )
    chunk = b"y" * 65536
    while size > 0:
        part = chunk[:size]
        size -= len(part)
        await send({"type": "http.response.body", "body": part, "more_body": size > 0})


@dataclass(frozen=True)
class Running:
    app: RecordingApp
    port: int
    scheme: str

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"


@asynccontextmanager
async def serve(
    app: RecordingApp, *, certfile: Path | None = None, keyfile: Path | None = None
) -> AsyncIterator[Running]:
    """``app`` under uvicorn on a free 127.0.0.1 port, in the test's event loop."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_level="error",
        http="h11",
        timeout_graceful_shutdown=1,
        ssl_certfile=str(certfile) if certfile else None,
        ssl_keyfile=str(keyfile) if keyfile else None,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:  # uvicorn offers no event to wait on
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield Running(app, sock.getsockname()[1], "https" if certfile else "http")
    finally:
        server.should_exit = True
        await task
        sock.close()


class LoopbackRouter(httpcore.AsyncNetworkBackend):
    """The network under the guard: a connection to :data:`PUBLIC` reaches the local server,
    one to a loopback address is made as asked, anything else fails the test."""

    def __init__(self, server_port: int) -> None:
        self._server_port = server_port
        self._real = httpcore.AnyIOBackend()
        self.connects: list[tuple[str, int]] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109  # httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        if host == PUBLIC:
            host, port = "127.0.0.1", self._server_port
        elif not ipaddress.ip_address(host).is_loopback:
            raise AssertionError(f"a test tried to connect to {host}")
        return await self._real.connect_tcp(host, port, timeout, local_address, socket_options)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109  # httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AssertionError("no unix sockets in these tests")

    async def sleep(self, seconds: float) -> None:
        await self._real.sleep(seconds)


async def numeric_resolver(host: str, port: int) -> list[str]:
    """The system's parsing of numeric hosts (``2130706433``, ``127.1``...) and never a DNS
    query: a name fails to resolve."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, flags=socket.AI_NUMERICHOST, type=socket.SOCK_STREAM
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class Certificates:
    ca: Path
    cert: Path
    key: Path


def make_certificates(directory: Path, host_name: str) -> Certificates | None:
    """A throwaway CA and a certificate for ``host_name`` it signed; ``None`` without openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=directory, check=True, capture_output=True)

    key_options = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run(
        "req", "-x509", *key_options, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=nodedrop test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    run("req", *key_options, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", f"/CN={host_name}")
    (directory / "leaf.ext").write_text(
        f"subjectAltName=DNS:{host_name}\n"
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
        "authorityKeyIdentifier=keyid\n"
    )
    run(
        "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "leaf.pem", "-days", "2", "-extfile", "leaf.ext",
    )  # fmt: skip
    return Certificates(directory / "ca.pem", directory / "leaf.pem", directory / "leaf.key")
