"""The runners' ack wait is a setting (NODEDROP_RUNNER_ACK_WAIT_S): applied to an existing
consumer when its owner (a runner) starts, and the runner's heartbeat follows the consumer's
real value."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from nodedrop.contracts import subjects
from nodedrop.contracts.routing import Layout, node_ready_subjects
from nodedrop.platform.jetstream import RUNNER_ACK_WAIT_ENV, StreamSettings, ensure_jetstream
from nodedrop.runner.main import heartbeat_interval

pytestmark = pytest.mark.integration


def settings(**changes: Any) -> StreamSettings:
    return replace(StreamSettings.from_env(), **changes)


async def _configs(js: JetStreamContext, consumer: str) -> list[ConsumerConfig]:
    """The consumer's configuration on every partition's stream."""
    return [
        (await js.consumer_info(stream, consumer)).config for stream in Layout.from_env().streams
    ]


async def test_a_changed_ack_wait_is_applied_to_the_existing_consumer(
    jetstream: JetStreamContext,
) -> None:
    await ensure_jetstream(jetstream, settings(runner_ack_wait_s=30.0))
    notifier_before = await _configs(jetstream, subjects.NOTIFIER_CONSUMER)

    # Another service with other settings changes nothing it does not own.
    await ensure_jetstream(jetstream, settings(runner_ack_wait_s=9.0))
    for runners in await _configs(jetstream, subjects.RUNNER_CONSUMER):
        assert runners.ack_wait == 30.0

    await ensure_jetstream(
        jetstream,
        settings(runner_ack_wait_s=4.0, runner_max_deliver=7),
        owner=subjects.RUNNER_CONSUMER,
    )

    for runners in await _configs(jetstream, subjects.RUNNER_CONSUMER):
        assert runners.ack_wait == 4.0
        assert runners.max_deliver == 7
        # What cannot change on a live consumer stayed as it was (the stream existed before).
        assert runners.deliver_policy == DeliverPolicy.ALL
        assert runners.filter_subject == node_ready_subjects()
    assert await _configs(jetstream, subjects.NOTIFIER_CONSUMER) == notifier_before


async def test_the_environment_sets_the_ack_wait_and_the_heartbeat_follows_it(
    jetstream: JetStreamContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    await ensure_jetstream(jetstream, StreamSettings.from_env())  # created with the default
    monkeypatch.setenv(RUNNER_ACK_WAIT_ENV, "4.5")
    await ensure_jetstream(jetstream, StreamSettings.from_env(), owner=subjects.RUNNER_CONSUMER)
    for runners in await _configs(jetstream, subjects.RUNNER_CONSUMER):
        assert runners.ack_wait == 4.5
    layout = Layout.from_env()
    assert await heartbeat_interval(jetstream, None, layout) == 1.5
    assert await heartbeat_interval(jetstream, 0.5, layout) == 0.5


def test_the_default_ack_wait_is_15_s() -> None:
    assert StreamSettings.from_env({}).runner_ack_wait_s == 15.0


@pytest.mark.parametrize("value", ["0", "-3", "soon"])
def test_a_bad_ack_wait_is_refused_with_its_name(value: str) -> None:
    with pytest.raises(ValueError, match=RUNNER_ACK_WAIT_ENV):
        StreamSettings.from_env({RUNNER_ACK_WAIT_ENV: value})
