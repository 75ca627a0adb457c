"""Fixtures of the runner's integration tests (server fixtures: tests/fixtures/servers.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from nats.js import JetStreamContext

from nodedrop.platform.jetstream import StreamSettings, ensure_jetstream
from nodedrop.runner.nodes import NodeRegistry, load_registry

from .harness import Probe, Rig


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
def registry(probe: Probe) -> NodeRegistry:
    registry = load_registry()
    registry.register(probe)
    return registry


@pytest.fixture
def stream_settings() -> StreamSettings:
    """Override by parametrizing ``stream_settings`` (e.g. a short runner ack wait)."""
    return StreamSettings.from_env()


@pytest.fixture
async def rig(
    nats_url: str,
    jetstream: JetStreamContext,
    registry: NodeRegistry,
    probe: Probe,
    stream_settings: StreamSettings,
) -> AsyncIterator[Rig]:
    """The streams and consumers on the test's clean server, and runners started on demand;
    the runners stop before the ``jetstream`` fixture deletes the streams."""
    await _empty_stream(jetstream, stream_settings)
    rig = Rig(nats_url, jetstream, registry, probe, stream_settings.layout)
    try:
        yield rig
    finally:
        await rig.close()


async def _empty_stream(js: JetStreamContext, settings: StreamSettings) -> None:
    """Create the layout and make sure the streams start empty.

    Seen about once in ten runs of this suite (nats-server 2.15.1, file storage): a stream
    created right after the previous test's copy was deleted came back holding that test's
    messages, so its tasks were delivered into this test. Re-create until it is really empty.
    """
    for _ in range(20):
        await ensure_jetstream(js, settings)
        holding = [
            stream
            for stream in settings.layout.streams
            if (await js.stream_info(stream)).state.messages
        ]
        if not holding:
            return
        for stream in holding:
            await js.delete_stream(stream)
        await asyncio.sleep(0.05)
    raise RuntimeError("could not start from empty events streams")
