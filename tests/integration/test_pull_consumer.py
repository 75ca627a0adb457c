"""The continuous pull consumer hands messages over as they arrive and survives a server
restart without waiting for its old pull request to expire."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import pytest
from nats.js.api import ConsumerConfig, StreamConfig

from nodedrop.embedded import EmbeddedNats
from nodedrop.platform.pull import PullConsumer

pytestmark = pytest.mark.integration


async def test_messages_arrive_one_by_one_without_waiting_for_a_batch(
    jetstream: nats.js.JetStreamContext, nats_url: str
) -> None:
    await jetstream.add_stream(StreamConfig(name="PULL", subjects=["pull.>"]))
    await jetstream.add_consumer("PULL", ConsumerConfig(durable_name="c"))
    nc = await nats.connect(nats_url)
    consumer = PullConsumer(nc, "PULL", "c", capacity=100)
    await consumer.start()
    try:
        await jetstream.publish("pull.a", b"1")
        loop = asyncio.get_running_loop()
        started = loop.time()
        batch = await consumer.next_batch(100, wait_s=5)
        assert [m.data for m in batch] == [b"1"]
        assert loop.time() - started < 0.5  # not held back until 100 arrive
    finally:
        await consumer.stop()
        await nc.close()


async def test_the_consumer_asks_again_after_the_server_restarts(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path / "nats", port=0)
    server.start()
    port = server.port
    nc = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
    try:
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="PULL", subjects=["pull.>"]))
        await js.add_consumer("PULL", ConsumerConfig(durable_name="c"))
        consumer = PullConsumer(nc, "PULL", "c", capacity=10)
        await consumer.start()
        await js.publish("pull.a", b"before")
        assert [m.data for m in await consumer.next_batch(10, wait_s=5)] == [b"before"]

        server.stop()
        server = EmbeddedNats(tmp_path / "nats", port=port)
        server.start()
        for _ in range(200):
            if nc.stats["reconnects"] >= 1 and nc.is_connected:
                break
            await asyncio.sleep(0.05)
        assert nc.stats["reconnects"] >= 1
        await js.publish("pull.a", b"after")
        # Well before the 30 s the lost pull request would have taken to expire.
        batch = await consumer.next_batch(10, wait_s=3)
        assert [m.data for m in batch] == [b"after"]
        await consumer.stop()
    finally:
        await nc.close()
        server.stop()


async def test_stop_and_drain_returns_every_message_delivered_and_not_handed_over(
    jetstream: nats.js.JetStreamContext, nats_url: str
) -> None:
    """What the server delivered and the caller never took comes back from the stop (to be
    given back at once), and no pull request is left open to take more."""
    await jetstream.add_stream(StreamConfig(name="PULL", subjects=["pull.>"]))
    await jetstream.add_consumer("PULL", ConsumerConfig(durable_name="c", ack_wait=30))
    nc = await nats.connect(nats_url)
    try:
        consumer = PullConsumer(nc, "PULL", "c", capacity=50)
        await consumer.start()
        for n in range(50):
            await jetstream.publish("pull.a", str(n).encode())
        for _ in range(100):
            if (await jetstream.consumer_info("PULL", "c")).num_ack_pending == 50:
                break
            await asyncio.sleep(0.02)
        rest = await consumer.stop_and_drain()
        assert sorted(int(m.data) for m in rest) == list(range(50))
        for msg in rest:
            await msg.nak()
        await jetstream.publish("pull.a", b"after")
        await asyncio.sleep(0.2)
        info = await jetstream.consumer_info("PULL", "c")
        assert info.num_waiting == 0  # nothing asks for more
        assert (info.num_redelivered, info.num_pending) == (0, 1)  # nor was handed anything
    finally:
        await nc.close()
