"""What an operator's tools ask a service: ``/metrics``, ``/livez``, ``/readyz``.

The answers are built here once; the api and the notifier serve them on their own HTTP apps,
the scheduler and the runner (which serve no HTTP otherwise) on :class:`OpsServer`, a small
listener of its own (NODEDROP_OPS_PORT). No authentication: the answers carry counts and states,
never an id, a key or a URL (docs/operations.md, "Metrics and probes").

- ``/livez``: 200 while the event loop answers (Kubernetes restarts a process that stops).
- ``/readyz``: 200 when every readiness check passes, else 503; the body names each check and
  what it found, e.g. ``{"status": "ready", "checks": {"nats": "connected", ...}}``.
- ``/metrics``: Prometheus' text format.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str


#: A readiness check: fast, in memory (it reads state the service keeps, it does no I/O).
Check = Callable[[], CheckResult]
JSON = "application/json"
_MAX_REQUEST_LINE = 8192
_READ_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes


def livez() -> Answer:
    return Answer(200, JSON, b'{"status":"ok"}')


def readyz(checks: Mapping[str, Check]) -> Answer:
    results = {name: _run(check) for name, check in checks.items()}
    ready = all(result.ok for result in results.values())
    body = {
        "status": "ready" if ready else "not ready",
        "checks": {name: result.detail for name, result in results.items()},
    }
    return Answer(200 if ready else 503, JSON, json.dumps(body).encode())


def metrics() -> Answer:
    return Answer(200, CONTENT_TYPE_LATEST, generate_latest(REGISTRY))


def answer(path: str, checks: Mapping[str, Check]) -> Answer | None:
    """The answer to ``GET path``, or None for a path that is not one of the three."""
    if path == "/livez":
        return livez()
    if path == "/readyz":
        return readyz(checks)
    if path == "/metrics":
        return metrics()
    return None


def _run(check: Check) -> CheckResult:
    try:
        return check()
    except Exception as error:  # a broken check says not ready, it does not break the probe
        log.warning("readiness check failed", exc_info=True)
        return CheckResult(False, f"check failed: {type(error).__name__}")


def nats_connected(is_connected: Callable[[], bool]) -> Check:
    """Ready while the NATS client is connected (not while it reconnects)."""
    return lambda: (
        CheckResult(True, "connected") if is_connected() else CheckResult(False, "disconnected")
    )


class PeriodicCheck:
    """A check that needs I/O (a database's ``SELECT 1``): :meth:`run` probes every
    ``interval_s`` in the background and the check reports the last outcome, so a probe
    request never waits on the database. Not ready before the first probe, after one that
    failed, or when none finished for three intervals (a probe hanging)."""

    def __init__(
        self,
        what: str,
        probe: Callable[[], Awaitable[object]],
        interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._what = what
        self._probe = probe
        self._interval_s = interval_s
        self._clock = clock
        self._last: tuple[float, CheckResult] | None = None

    def __call__(self) -> CheckResult:
        if self._last is None:
            return CheckResult(False, f"{self._what}: not checked yet")
        at, result = self._last
        if self._clock() - at > 3 * self._interval_s:
            return CheckResult(False, f"{self._what}: no answer for {self._clock() - at:.0f} s")
        return result

    async def probe_once(self) -> None:
        try:
            async with asyncio.timeout(self._interval_s):
                await self._probe()
        except Exception as error:  # the message may name a host: the type is enough here
            result = CheckResult(False, f"{self._what}: unreachable ({type(error).__name__})")
        else:
            result = CheckResult(True, f"{self._what}: reachable")
        self._last = (self._clock(), result)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.probe_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval_s)


class OpsServer:
    """A minimal HTTP/1.0-style listener for the three paths (GET or HEAD; one request per
    connection), for the services that have no HTTP server of their own. ``port`` 0 takes a
    free port (:attr:`port` says which)."""

    def __init__(self, host: str, port: int, checks: Mapping[str, Check]) -> None:
        self._host, self._wanted_port = host, port
        self._checks = checks
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the ops server is not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(self._serve, self._host, self._wanted_port)
        except OSError as error:
            raise RuntimeError(
                f"cannot listen on {self._host}:{self._wanted_port} for metrics and probes "
                f"(NODEDROP_OPS_HOST, NODEDROP_OPS_PORT): {error.strerror or error}"
            ) from None
        log.info("metrics and probes on http://%s:%d", self._host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> OpsServer:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_READ_TIMEOUT_S):
                line = await reader.readuntil(b"\n")
                while (await reader.readuntil(b"\n")).strip():  # the headers: not needed
                    pass
            writer.write(self._respond(line))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass  # a client that went away or sent nonsense: nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _respond(self, line: bytes) -> bytes:
        parts = line.decode("latin-1").split()
        if len(line) > _MAX_REQUEST_LINE or len(parts) != 3:
            return _http(Answer(400, JSON, b'{"detail":"bad request"}'))
        method, target, _ = parts
        if method not in ("GET", "HEAD"):
            return _http(Answer(405, JSON, b'{"detail":"only GET and HEAD"}'))
        found = answer(target.split("?", 1)[0], self._checks)
        if found is None:
            found = Answer(404, JSON, b'{"detail":"not found: /metrics, /livez or /readyz"}')
        return _http(found, head=method == "HEAD")


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            503: "Service Unavailable"}  # fmt: skip


def _http(found: Answer, *, head: bool = False) -> bytes:
    header = (
        f"HTTP/1.1 {found.status} {_REASONS[found.status]}\r\n"
        f"Content-Type: {found.content_type}\r\n"
        f"Content-Length: {len(found.body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return header.encode() + (b"" if head else found.body)


@contextlib.asynccontextmanager
async def ops_listener(
    host: str, port: int | None, checks: Mapping[str, Check]
) -> AsyncIterator[OpsServer | None]:
    """An :class:`OpsServer` for the block's duration, or nothing when ``port`` is None (off)."""
    if port is None:
        yield None
        return
    async with OpsServer(host, port, checks) as server:
        yield server
