"""Consumer lag in messages and in seconds, sampled from a real nats-server
(nodedrop.platform.consumerlag)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from nodedrop.platform.consumerlag import ConsumerLag, Sampled
from nodedrop.platform.metrics import CONSUMER_LAG_SECONDS, CONSUMER_PENDING

pytestmark = pytest.mark.integration

STREAM = "LAGTEST"


def lag(role: str) -> float:
    return float(CONSUMER_LAG_SECONDS.labels(role, "0")._value.get())


async def stored_at(js: JetStreamContext, seq: int) -> datetime:
    message = await js.get_msg(STREAM, seq=seq)
    assert message.time is not None
    return message.time


async def sample_between(sampler: ConsumerLag) -> tuple[datetime, datetime]:
    before = datetime.now(UTC)
    await sampler.sample()
    return before, datetime.now(UTC)


@pytest.mark.parametrize("filters", [["lag.a"], ["lag.a", "lag.b"]])
async def test_lag_in_seconds_is_the_age_of_the_oldest_unacknowledged_message(
    jetstream: JetStreamContext, filters: list[str]
) -> None:
    js = jetstream
    await js.add_stream(StreamConfig(name=STREAM, subjects=["lag.>"]))
    config = ConsumerConfig(durable_name="worker", ack_policy=AckPolicy.EXPLICIT)
    if len(filters) == 1:
        config.filter_subject = filters[0]
    else:
        config.filter_subjects = filters
    await js.add_consumer(STREAM, config)
    role = f"test-{len(filters)}"
    sampler = ConsumerLag(js, lambda: [Sampled(role, 0, STREAM, "worker")])

    await sampler.sample()
    assert lag(role) == 0.0  # nothing stored

    await js.publish("lag.other", b"not the consumer's")  # older, but not on its subjects
    first = (await js.publish(filters[-1], b"1")).seq
    await asyncio.sleep(0.5)  # stored well apart, farther than a sample takes
    second = (await js.publish(filters[0], b"2")).seq
    before, after = await sample_between(sampler)
    assert CONSUMER_PENDING.labels(role, "0")._value.get() == 2
    oldest = await stored_at(js, first)
    assert (before - oldest).total_seconds() <= lag(role) <= (after - oldest).total_seconds()

    sub = await js.pull_subscribe_bind("worker", STREAM)
    (message, *_) = await sub.fetch(1)
    assert message.metadata.sequence.stream == first
    await message.ack_sync()  # the ack floor moves past the first: the second is now the oldest
    before, after = await sample_between(sampler)
    oldest = await stored_at(js, second)
    assert (before - oldest).total_seconds() <= lag(role) <= (after - oldest).total_seconds()

    (message, *_) = await sub.fetch(1)
    await message.ack_sync()
    await sampler.sample()
    assert lag(role) == 0.0  # everything acknowledged
