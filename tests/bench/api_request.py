"""CPU of one ``POST /api/executions`` inside the api process (docs/benchmarks.md).

Run from the repository root::

    .venv/bin/python -m tests.bench.api_request [--requests 3000] [--profile]

The real app (``create_app``: middleware, routing, dependencies, validation of the definition,
the ``ExecutionRequested`` built and encoded) is called as an ASGI app in a loop, without a
server, a socket or NATS: the event log only encodes the event. It reports process CPU time per
request, which on a busy two-core machine is far steadier than the system benchmarks' CPU per
execution, so a change to the request path can be measured on its own. ``--profile`` prints
cProfile's cumulative ranking.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import time
from collections.abc import MutableMapping
from typing import Any

from tests.bench.load import execution_body
from tests.bench.s1_chain import chain

from nodedrop.api.app import create_app
from nodedrop.api.db import create_engine, session_factory
from nodedrop.api.eventlog import EventLog
from nodedrop.api.resources import Resources
from nodedrop.api.settings import ApiSettings
from nodedrop.contracts.codec import encode
from nodedrop.contracts.events import Event

TOKEN = "bench-admin-token"


class EncodingOnlyEventLog(EventLog):
    """Encodes the event, as ``append`` does, and stores nothing."""

    def __init__(self) -> None:
        pass

    async def append(self, event: Event) -> int:
        encode(event)
        return 1


def _scope(body: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/executions",
        "raw_path": b"/api/executions",
        "root_path": "",
        "query_string": b"",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"authorization", f"Bearer {TOKEN}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "state": {},
    }


async def measure(requests: int, profile: bool) -> float:
    """CPU seconds per request."""
    os.environ["NODEDROP_ADMIN_TOKEN"] = TOKEN
    app = create_app(ApiSettings.from_env())
    # Never connected: the one-node request needs no database (a session is opened lazily).
    engine = create_engine("postgresql+asyncpg://bench@127.0.0.1:1/bench")
    app.state.resources = Resources(
        nc=None,  # type: ignore[arg-type]
        engine=engine,
        sessions=session_factory(engine),
        events=EncodingOnlyEventLog(),
        schedules=None,  # type: ignore[arg-type]
        data=None,  # type: ignore[arg-type]
    )
    body = execution_body(chain(0))
    scope = _scope(body)
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    for _ in range(300):  # warm-up
        await app(dict(scope), receive, send)
    assert statuses[-1] == 202, statuses[-5:]
    profiler = cProfile.Profile() if profile else None
    started = time.process_time()
    if profiler is not None:
        profiler.enable()
    for _ in range(requests):
        await app(dict(scope), receive, send)
    if profiler is not None:
        profiler.disable()
    cpu = (time.process_time() - started) / requests
    await engine.dispose()
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
    return cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    cpu = asyncio.run(measure(args.requests, args.profile))
    print(f"POST /api/executions (one-node workflow): {cpu * 1e6:.0f} us CPU per request")


if __name__ == "__main__":
    main()
