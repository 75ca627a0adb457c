"""Requests to the API at a cost the load generator can afford on a 2-core machine.

``ApiConnection`` is a minimal HTTP/1.1 keep-alive client for ``POST /api/executions``: one
request on the wire at a time, the body encoded once by the caller. It costs a small fraction of
what httpx does per request, so the harness takes as little CPU as possible from the system it
measures. ``open_loop`` sends at scheduled times regardless of how fast answers come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: uvicorn closes idle keep-alive connections after 5 s; reconnect before that.
_IDLE_S = 4.0


class ApiError(RuntimeError):
    pass


class ApiConnection:
    def __init__(self, port: int, token: str) -> None:
        self._port = port
        self._auth = f"Bearer {token}"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._used = 0.0

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        await self.close()
        self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self._port)
        return self._reader, self._writer

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def head(self, path: str, length: int) -> bytes:
        return (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {self._auth}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
        ).encode()

    async def post(self, path: str, body: bytes) -> tuple[int, Any]:
        """``(status, parsed JSON body)``."""
        request = self.head(path, len(body)) + body
        for attempt in (1, 2):
            if self._writer is None or time.monotonic() - self._used > _IDLE_S:
                reader, writer = await self._connect()
            else:
                assert self._reader is not None
                reader, writer = self._reader, self._writer
            try:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
            except (ConnectionError, asyncio.IncompleteReadError):
                # The server closed the kept-alive connection before reading this request.
                await self.close()
                if attempt == 2:
                    raise
                continue
            break
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines[1:] if line)
        }
        if "content-length" not in headers:
            await self.close()
            raise ApiError(f"HTTP {status} without Content-Length: {headers}")
        payload = await reader.readexactly(int(headers["content-length"]))
        self._used = time.monotonic()
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, json.loads(payload) if payload else None

    async def request_execution(self, body: bytes) -> str:
        return (await self.submit(body))[1]

    async def submit(self, body: bytes, path: str = "/api/executions") -> tuple[int, str]:
        """``(status, execution id)`` of a request answered 202, or 200 (``?wait=``)."""
        status, answer = await self.post(path, body)
        if status not in (200, 202):
            raise ApiError(f"POST {path} answered {status}: {answer}")
        execution_id: str = answer["id"]
        return status, execution_id


def execution_body(workflow: dict[str, Any], **extra: Any) -> bytes:
    return json.dumps({"workflow": workflow, **extra}, separators=(",", ":")).encode()


@dataclass
class Sent:
    index: int
    scheduled: float  # wall clock, the time the request was due
    sent: float = 0.0  # wall clock, the time it went on the wire
    answered: float = 0.0
    status: int = 0
    execution_id: str | None = None
    error: str | None = None


@dataclass
class LoadResult:
    rate: float
    duration_s: float
    start: float
    requests: list[Sent] = field(default_factory=list)

    @property
    def errors(self) -> list[Sent]:
        return [r for r in self.requests if r.execution_id is None]


async def open_loop(
    port: int,
    token: str,
    *,
    rate: float,
    duration_s: float,
    body: Callable[[int], bytes],
    connections: int = 48,
    path: str = "/api/executions",
) -> LoadResult:
    """Send ``rate`` requests per second for ``duration_s``, request ``i`` due at
    ``start + i / rate`` whatever happened to the earlier ones: requests that find every
    connection busy wait in a queue, and that wait counts (latencies are measured from the due
    time, so a slow system cannot slow down the measurement; no coordinated omission). At most
    ``connections`` requests are in flight. ``path`` may carry a query (``?wait=10``)."""
    total = round(rate * duration_s)
    start = time.time() + 0.05
    result = LoadResult(rate=rate, duration_s=duration_s, start=start)
    due: asyncio.Queue[Sent | None] = asyncio.Queue()

    async def worker() -> None:
        connection = ApiConnection(port, token)
        try:
            while (item := await due.get()) is not None:
                payload = body(item.index)
                item.sent = time.time()
                try:
                    item.status, item.execution_id = await connection.submit(payload, path)
                except (ApiError, OSError, asyncio.IncompleteReadError) as error:
                    item.error = repr(error)
                    await connection.close()
                item.answered = time.time()
        finally:
            await connection.close()

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    try:
        for i in range(total):
            scheduled = start + i / rate
            delay = scheduled - time.time()
            if delay > 0.0005:
                await asyncio.sleep(delay)
            sent = Sent(index=i, scheduled=scheduled)
            result.requests.append(sent)
            due.put_nowait(sent)
        for _ in workers:
            due.put_nowait(None)
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    return result


async def submit_many(
    port: int, token: str, count: int, body: Callable[[int], bytes], *, connections: int = 16
) -> list[str]:
    """Request ``count`` executions as fast as ``connections`` requests in flight allow;
    ``body(i)`` is called just before request ``i`` is sent. Returns the execution ids."""
    ids: list[str] = [""] * count
    indexes = iter(range(count))

    async def worker() -> None:
        connection = ApiConnection(port, token)
        try:
            for i in indexes:
                ids[i] = await connection.request_execution(body(i))
        finally:
            await connection.close()

    async with asyncio.TaskGroup() as group:
        for _ in range(min(connections, count)):
            group.create_task(worker())
    return ids
