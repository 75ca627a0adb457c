"""The notifier's durable consumer of a partition (``notifier``, ack policy ``all``), placed
where the projector's checkpoint says before it is read
(:meth:`nodedrop.platform.event_log.JetStreamEventLog.open_projection`)."""

from __future__ import annotations

import contextlib
import dataclasses
import logging

from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from nodedrop.contracts import subjects
from nodedrop.platform.jetstream import StreamSettings, consumer_configs

log = logging.getLogger(__name__)

#: Bytes one pull request of the projector asks for at most (and at least the largest message):
#: large events must not put more on the wire than the server holds for a client (it drops a
#: slow consumer, and everything else on that connection with it).
PULL_MAX_BYTES = 4 * 1024 * 1024
#: Fields of the consumer's configuration that say where it starts; a rewind sets them.
_POSITION_FIELDS = frozenset({"deliver_policy", "opt_start_seq", "opt_start_time"})


async def rewind_consumer(
    js: JetStreamContext, stream: str, checkpoint: int, settings: StreamSettings | None = None
) -> None:
    """Make the durable consumer deliver from ``checkpoint + 1`` with the canonical settings,
    unless it stands there with them already.

    Neither a consumer's start nor its ack policy can be changed in place: it is deleted and
    created again with the canonical configuration, starting at the checkpoint. So a consumer
    created by an older release (acks one by one) is migrated at the notifier's next start.
    """
    config = _notifier_consumer_config(checkpoint + 1, settings or StreamSettings())
    try:
        info = await js.consumer_info(stream, subjects.NOTIFIER_CONSUMER)
    except NotFoundError:
        info = None
    if info is not None:
        if outdated := _differing_settings(info.config, config):
            log.info("recreating consumer %s at the checkpoint %d: %s differ from the canonical",
                     subjects.NOTIFIER_CONSUMER, checkpoint, ", ".join(outdated))  # fmt: skip
        elif info.delivered is not None and info.delivered.stream_seq == checkpoint:
            return
        elif info.delivered is not None:
            log.info("rewinding consumer %s from %d to the checkpoint %d",
                     subjects.NOTIFIER_CONSUMER, info.delivered.stream_seq, checkpoint)  # fmt: skip
    for attempt in range(3):
        with contextlib.suppress(NotFoundError):
            await js.delete_consumer(stream, subjects.NOTIFIER_CONSUMER)
        try:
            await js.add_consumer(stream, config)
            return
        except Exception:
            # Another service's ensure_jetstream may have recreated it in between: go again.
            if attempt == 2:
                raise


def _differing_settings(live: ConsumerConfig, wanted: ConsumerConfig) -> list[str]:
    """The settings ``wanted`` names (other than where it starts) that ``live`` does not have."""
    return [
        field.name
        for field in dataclasses.fields(wanted)
        if field.name not in _POSITION_FIELDS
        and (value := getattr(wanted, field.name)) is not None
        and getattr(live, field.name) != value
    ]


def _notifier_consumer_config(start_seq: int, settings: StreamSettings) -> ConsumerConfig:
    (config,) = [
        c
        for c in consumer_configs(settings, fresh_stream=True)
        if c.durable_name == subjects.NOTIFIER_CONSUMER
    ]
    config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
    config.opt_start_seq = start_seq
    return config
