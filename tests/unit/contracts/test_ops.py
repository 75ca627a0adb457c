"""The operator's endpoints (nodedrop.platform.ops): /livez, /readyz and /metrics as the
scheduler's and the runner's own listener serves them, and checks that need I/O."""

from __future__ import annotations

import asyncio
import json

import pytest

from nodedrop.platform.metrics import PUBLISH_SECONDS
from nodedrop.platform.ops import CheckResult, OpsServer, PeriodicCheck, ops_listener


async def request(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP request; the status, the headers and the body of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), headers, body


def get(path: str, method: str = "GET") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


async def test_livez_answers_while_the_loop_runs() -> None:
    async with OpsServer("127.0.0.1", 0, {}) as server:
        status, headers, body = await request(server.port, get("/livez"))
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    assert headers["Content-Type"] == "application/json"


async def test_readyz_is_503_naming_the_check_that_fails() -> None:
    checks = {
        "nats": lambda: CheckResult(True, "connected"),
        "leases": lambda: CheckResult(False, "joining: no lease round yet"),
    }
    async with OpsServer("127.0.0.1", 0, checks) as server:
        status, _, body = await request(server.port, get("/readyz"))
    assert status == 503
    assert json.loads(body) == {
        "status": "not ready",
        "checks": {"nats": "connected", "leases": "joining: no lease round yet"},
    }


async def test_readyz_is_200_when_every_check_passes() -> None:
    checks = {"nats": lambda: CheckResult(True, "connected")}
    async with OpsServer("127.0.0.1", 0, checks) as server:
        status, _, body = await request(server.port, get("/readyz?verbose"))
    assert status == 200
    assert json.loads(body)["status"] == "ready"


async def test_a_check_that_raises_is_not_ready_and_its_message_is_not_shown() -> None:
    def broken() -> CheckResult:
        raise RuntimeError("postgresql://user:s3cret@db/x")

    async with OpsServer("127.0.0.1", 0, {"database": broken}) as server:
        status, _, body = await request(server.port, get("/readyz"))
    assert status == 503
    assert b"s3cret" not in body
    assert json.loads(body)["checks"] == {"database": "check failed: RuntimeError"}


async def test_metrics_are_in_prometheus_text_format() -> None:
    PUBLISH_SECONDS.observe(0.001)
    async with OpsServer("127.0.0.1", 0, {}) as server:
        status, headers, body = await request(server.port, get("/metrics"))
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=")
    assert b"# TYPE nodedrop_publish_seconds histogram" in body
    assert b"process_cpu_seconds_total" in body  # the process collector comes with it


async def test_head_answers_the_headers_only() -> None:
    async with OpsServer("127.0.0.1", 0, {}) as server:
        status, headers, body = await request(server.port, get("/livez", "HEAD"))
    assert (status, body) == (200, b"")
    assert headers["Content-Length"] == str(len(b'{"status":"ok"}'))


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (get("/nothing"), 404),
        (get("/metrics", "POST"), 405),
        (b"garbage\r\n\r\n", 400),
    ],
)
async def test_other_requests_get_a_clear_error(raw: bytes, status: int) -> None:
    async with OpsServer("127.0.0.1", 0, {}) as server:
        got, _, body = await request(server.port, raw)
    assert got == status
    assert json.loads(body)["detail"]


async def test_a_port_in_use_is_a_clear_error_naming_the_settings() -> None:
    async with OpsServer("127.0.0.1", 0, {}) as first:
        taken = OpsServer("127.0.0.1", first.port, {})
        with pytest.raises(RuntimeError, match="NODEDROP_OPS_PORT"):
            await taken.start()


async def test_no_port_means_no_listener() -> None:
    async with ops_listener("127.0.0.1", None, {}) as server:
        assert server is None


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_periodic_check_reports_the_last_probe() -> None:
    clock = Clock()
    failing = False

    async def probe() -> None:
        if failing:
            raise ConnectionRefusedError("db.internal:5432")

    check = PeriodicCheck("PostgreSQL", probe, interval_s=5, clock=clock)
    assert check() == CheckResult(False, "PostgreSQL: not checked yet")
    await check.probe_once()
    assert check() == CheckResult(True, "PostgreSQL: reachable")
    failing = True
    await check.probe_once()
    assert check() == CheckResult(False, "PostgreSQL: unreachable (ConnectionRefusedError)")


async def test_a_periodic_check_without_a_recent_answer_is_not_ready() -> None:
    clock = Clock()

    async def probe() -> None:
        return None

    check = PeriodicCheck("PostgreSQL", probe, interval_s=5, clock=clock)
    await check.probe_once()
    clock.now = 16.0  # more than three intervals: the probes hang
    assert check() == CheckResult(False, "PostgreSQL: no answer for 16 s")
