"""The continuous pull consumer on a three-node cluster: while its consumer's leader is being
elected, every pull request is answered at once with a 503 (no responders). It asks again after
a growing backoff, not at once (16,000 warnings in 10 s were logged before), logs one warning for
the whole election, and receives again once the new leader is there."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, StreamConfig

from nodedrop.platform.pull import PullConsumer
from nodedrop.platform.retry import retry_unavailable

if TYPE_CHECKING:  # pytest gives the factory as a fixture (see tests/fixtures/nats_cluster.py)
    from tests.fixtures.nats_cluster import NatsClusterFactory

pytestmark = pytest.mark.integration

STREAM = "PULLR3"
NEXT = f"$JS.API.CONSUMER.MSG.NEXT.{STREAM}.c"


async def test_no_retry_storm_while_the_consumer_leader_is_elected(
    nats_cluster: NatsClusterFactory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with nats_cluster() as cluster:
        admin = await nats.connect(cluster.urls, max_reconnect_attempts=-1)
        worker: NatsClient | None = None
        consumer: PullConsumer | None = None
        try:
            js = admin.jetstream(timeout=2)
            await retry_unavailable(
                lambda: js.add_stream(StreamConfig(name=STREAM, subjects=["p.>"], num_replicas=3)),
                what="create stream",
                attempts=40,
                max_s=1.0,
            )
            await retry_unavailable(
                lambda: js.add_consumer(STREAM, ConsumerConfig(durable_name="c", num_replicas=3)),
                what="create consumer",
                attempts=40,
                max_s=1.0,
            )
            leader = await cluster.wait_consumer_leader(STREAM, "c")
            # The worker talks to one node that survives: it sees the election, not a reconnect.
            survivor = next(name for name in cluster.names if name != leader)
            worker = await nats.connect(cluster.node(survivor).url)
            requests = 0
            publish = worker.publish

            async def counting_publish(subject: str, *args: Any, **kwargs: Any) -> None:
                nonlocal requests
                requests += subject == NEXT
                await publish(subject, *args, **kwargs)

            monkeypatch.setattr(worker, "publish", counting_publish)
            consumer = PullConsumer(worker, STREAM, "c", capacity=4)
            consumer.auto_release = False
            await consumer.start()
            for n in range(4):
                await js.publish(f"p.{n}", b"before")
            held: list[Msg] = []
            while len(held) < 4:
                held += await consumer.next_batch(4, wait_s=30)
            for msg in held:
                await msg.ack_sync()

            with caplog.at_level(logging.WARNING, logger="nodedrop.platform.pull"):
                cluster.kill(leader)
                await asyncio.sleep(0.5)  # the survivors have dropped the dead node's interest
                before = requests
                consumer.release(4)  # asks for 4 more: no consumer leader answers it
                await cluster.wait_consumer_leader(STREAM, "c", other_than=leader)
                await retry_unavailable(
                    lambda: js.publish("p.after", b"after"),
                    what="publish",
                    attempts=60,
                    max_s=1.0,
                )
                batch = await consumer.next_batch(4, wait_s=60)
                during = requests - before
            assert [m.data for m in batch] == [b"after"]

            failed = [r for r in caplog.records if r.getMessage().startswith("pull request failed")]
            # An election takes seconds: asking again at once made thousands of requests and
            # warnings. With the backoff (at most 2 s, full jitter), about one a second.
            assert 1 <= len(failed) <= 2, [r.getMessage() for r in caplog.records]
            assert during < 200
            assert len([r for r in caplog.records if r.name == "nodedrop.platform.pull"]) <= 4
        finally:
            if consumer is not None:
                await consumer.stop()
            if worker is not None:
                await worker.close()
            await admin.close()
