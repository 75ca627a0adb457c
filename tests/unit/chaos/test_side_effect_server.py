"""The far side the chaos suite and the e2e tests talk to counts a request once its body has
arrived whole: a caller killed mid-body caused nothing a real service would act on."""

from __future__ import annotations

import json
import socket
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from tests.fixtures.http_server import LocalHttpServer
else:  # pytest puts tests/ on sys.path (tests/conftest.py), not the repository's root
    from fixtures.http_server import LocalHttpServer


def send_raw(url: str, payload: bytes) -> None:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80)) as conn:
        conn.sendall(payload)
        conn.shutdown(socket.SHUT_WR)
        conn.recv(65536)  # the answer, or the server closing the connection


def post(body: bytes, length: int) -> bytes:
    return (
        f"POST /charge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Idempotency-Key: k1\r\nContent-Length: {length}\r\n\r\n"
    ).encode() + body


def test_a_whole_request_is_counted_and_a_truncated_one_is_not() -> None:
    body = json.dumps({"n": 69}).encode()
    with LocalHttpServer(lambda request: (200, {"ok": True}), method="POST") as server:
        send_raw(server.url, post(body[:3], len(body)))  # the caller died mid-body
        send_raw(server.url, post(body, len(body)))
        for _ in range(500):  # the server's thread records the whole one
            if server.requests():
                break
            time.sleep(0.01)
        [request] = server.requests()
        assert request.body == body
