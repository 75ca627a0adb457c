"""Fixtures of the http_request node's tests: a real local HTTP server and a node to drive it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from nodedrop.runner.nodes.http_request import HttpRequestNode

from .server import Certificates, RecordingApp, Running, make_certificates, serve


@pytest.fixture(scope="module")
async def shared_server() -> AsyncIterator[Running]:
    # One server per module: stopping uvicorn takes ~0.2 s, which per test would add up.
    async with serve(RecordingApp()) as running:
        yield running


@pytest.fixture
def server(shared_server: Running) -> Running:
    """The module's server, with no request recorded yet."""
    shared_server.app.seen.clear()
    shared_server.app.fail_after_calls = 0
    shared_server.app.tokens_issued = 0
    return shared_server


@pytest.fixture
async def node() -> AsyncIterator[HttpRequestNode]:
    """Private addresses allowed, as a local server needs."""
    node = HttpRequestNode(allow_private=True)
    yield node
    await node.aclose()


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    made = make_certificates(tmp_path_factory.mktemp("tls"), "pinned.test")
    if made is None:
        pytest.skip("openssl is not installed")
    return made
