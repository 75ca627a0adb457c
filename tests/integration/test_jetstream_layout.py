"""Every service ensures the streams and consumers at start, all at once on an empty server."""

from __future__ import annotations

import asyncio

import nats
import pytest
from nats.js import JetStreamContext

from nodedrop.contracts import subjects
from nodedrop.contracts.routing import Layout
from nodedrop.platform.jetstream import StreamSettings, ensure_jetstream

pytestmark = pytest.mark.integration


async def test_services_starting_together_all_succeed(
    jetstream: JetStreamContext, nats_url: str
) -> None:
    clients = [await nats.connect(nats_url) for _ in range(4)]
    try:
        await asyncio.gather(
            *(ensure_jetstream(nc.jetstream(), StreamSettings.from_env()) for nc in clients)
        )
    finally:
        for nc in clients:
            await nc.close()
    for stream in Layout.from_env().streams:
        names = {info.name for info in await jetstream.consumers_info(stream)}
        assert names == {subjects.RUNNER_CONSUMER, subjects.NOTIFIER_CONSUMER}, stream
