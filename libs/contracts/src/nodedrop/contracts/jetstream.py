"""The JetStream layout every service relies on: one audit stream and three durable consumers.

The events stream is the source of truth (ENGINEERING.md section 2): file storage, limits
retention (consuming never removes an event), message deletes denied, a duplicate window for
``Nats-Msg-Id``. Purges are allowed for retention only: the notifier's pruning job purges the
subjects of executions that finished long ago (docs/operations.md, "Retention"), and NATS
permissions keep every other service from purging. Work reaches runners through a durable pull
consumer on the same stream, so any number of runner processes share it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import APIError, NotFoundError

from nodedrop.contracts import subjects
from nodedrop.contracts.codec import MAX_MESSAGE_BYTES
from nodedrop.contracts.config import seconds_setting
from nodedrop.contracts.events import INPUT_EVENT_TYPES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamSettings:
    duplicate_window_s: float = 120.0
    #: 0 keeps events forever; retention is a deliberate operator choice (docs/operations.md).
    max_age_s: float = 0.0
    max_msg_size: int = MAX_MESSAGE_BYTES
    #: How long a runner may hold a task without a heartbeat before it goes to another runner,
    #: which records the attempt as ``RunnerLost`` (runners heartbeat at a third of this). Lower
    #: finds a dead runner sooner; too low, and a runner whose event loop stalls that long
    #: loses live attempts (docs/operations.md, "Crash recovery").
    runner_ack_wait_s: float = 15.0
    runner_max_deliver: int = 5
    scheduler_max_deliver: int = 10

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StreamSettings:
        """The defaults, with ``NODEDROP_RUNNER_ACK_WAIT_S`` when set (seconds, > 0): used by
        whichever service creates the runners' consumer, and applied to it by every runner;
        and ``NODEDROP_DUPLICATE_WINDOW_S`` (seconds, > 0; default 120), which the stream is
        brought in line with when it differs (so give every service the same value)."""
        env = os.environ if env is None else env
        settings = cls()
        if (ack_wait_s := seconds_setting(env, RUNNER_ACK_WAIT_ENV)) is not None:
            settings = replace(settings, runner_ack_wait_s=ack_wait_s)
        if (window_s := seconds_setting(env, DUPLICATE_WINDOW_ENV)) is not None:
            settings = replace(settings, duplicate_window_s=window_s)
        return settings


RUNNER_ACK_WAIT_ENV = "NODEDROP_RUNNER_ACK_WAIT_S"
DUPLICATE_WINDOW_ENV = "NODEDROP_DUPLICATE_WINDOW_S"
#: Settings an existing consumer is brought in line with at start; the server lets them change
#: on a live consumer (its filter and start position cannot, and need not).
_EDITABLE_CONSUMER_FIELDS = ("ack_wait", "max_deliver")


def events_stream_config(settings: StreamSettings) -> StreamConfig:
    return StreamConfig(
        name=subjects.EVENTS_STREAM,
        description="nodedrop execution events: the audit log and source of truth",
        subjects=[subjects.all_events()],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=settings.max_age_s,
        max_msg_size=settings.max_msg_size,
        duplicate_window=settings.duplicate_window_s,
        deny_delete=True,
        # Retention purges old finished executions by subject; who may is a NATS permission.
        deny_purge=False,
        allow_direct=True,
    )


def consumer_configs(settings: StreamSettings, *, fresh_stream: bool) -> list[ConsumerConfig]:
    # A consumer created on a stream that already holds events must not redo old work: the
    # scheduler rebuilds what it needs from per-execution history, runners take new tasks only.
    work_start = DeliverPolicy.ALL if fresh_stream else DeliverPolicy.NEW
    return [
        ConsumerConfig(
            durable_name=subjects.SCHEDULER_CONSUMER,
            description="scheduler: the events that call for a decision",
            filter_subjects=[subjects.events_of_type(t) for t in INPUT_EVENT_TYPES],
            deliver_policy=work_start,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=30.0,
            # An input the scheduler fails on this often is a poison: dead-lettered, and its
            # execution failed (docs/architecture.md, "Dead letters").
            max_deliver=settings.scheduler_max_deliver,
            max_ack_pending=20_000,
        ),
        ConsumerConfig(
            durable_name=subjects.RUNNER_CONSUMER,
            description="runners: node attempts to execute, shared by every runner process",
            filter_subject=subjects.node_ready_subjects(),
            deliver_policy=work_start,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=settings.runner_ack_wait_s,
            max_deliver=settings.runner_max_deliver,
            max_ack_pending=20_000,
        ),
        ConsumerConfig(
            durable_name=subjects.NOTIFIER_CONSUMER,
            description="notifier: every event, projected into PostgreSQL",
            filter_subject=subjects.all_events(),
            deliver_policy=DeliverPolicy.ALL,
            # The notifier's checkpoint in PostgreSQL is the truth, and it acks only the last
            # message of a committed batch. Not editable in place: the notifier recreates its
            # consumer when this differs (notifier/consumer.py, rewind_consumer).
            ack_policy=AckPolicy.ALL,
            ack_wait=60.0,
            max_ack_pending=50_000,
        ),
    ]


async def ensure_jetstream(
    js: JetStreamContext, settings: StreamSettings | None = None, *, owner: str | None = None
) -> None:
    """Create the stream and consumers if missing; idempotent, safe from every service at once.
    ``owner``: the durable consumer the caller owns, whose editable settings (a changed ack
    wait) are brought in line; only its owner does that, since under NATS users no service may
    change another's consumer (natsauth), and services with differing settings must not undo
    each other's. Without ``settings``: :meth:`StreamSettings.from_env`."""
    settings = settings or StreamSettings.from_env()
    config = events_stream_config(settings)
    try:
        existing = await js.stream_info(subjects.EVENTS_STREAM)
        fresh = False
        if existing.config.deny_purge:
            # A stream created with purges denied keeps them denied: NATS refuses to lift it
            # (and would refuse the whole update). Pruning then reports that it cannot run.
            config = replace(config, deny_purge=True)
        if _differs(existing.config, config):
            await js.update_stream(config)
    except NotFoundError:
        await js.add_stream(config)
        fresh = True
    for consumer in consumer_configs(settings, fresh_stream=fresh):
        assert consumer.durable_name is not None
        try:
            info = await js.consumer_info(subjects.EVENTS_STREAM, consumer.durable_name)
        except NotFoundError:
            if not fresh:
                log.warning(
                    "creating consumer %s on an existing stream from new events on",
                    consumer.durable_name,
                )
            try:
                await js.add_consumer(subjects.EVENTS_STREAM, consumer)
            except APIError:
                # Services start together: another one may have created it a moment ago
                # (with the settings of a fresh stream). Existing is all that matters.
                await js.consumer_info(subjects.EVENTS_STREAM, consumer.durable_name)
        else:
            if consumer.durable_name == owner:
                await _update_consumer(js, info.config, consumer)


def dead_letters_stream_config() -> StreamConfig:
    return StreamConfig(
        name=subjects.DEAD_LETTERS_STREAM,
        description="nodedrop dead letters: advisories about events a consumer gave up on",
        subjects=subjects.dead_letter_subjects(),
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_msgs=100_000,
    )


def dead_letters_consumer_config() -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=subjects.DEAD_LETTERS_CONSUMER,
        description="scheduler: fails the executions whose events were dead-lettered",
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=30.0,
        max_ack_pending=1_000,
    )


async def ensure_dead_letters(js: JetStreamContext) -> None:
    """Create the dead-letter stream and the scheduler's consumer on it if missing (the
    scheduler, which acts on dead letters, calls this at start; idempotent)."""
    try:
        await js.stream_info(subjects.DEAD_LETTERS_STREAM)
    except NotFoundError:
        try:
            await js.add_stream(dead_letters_stream_config())
        except APIError:  # created a moment ago by another scheduler
            await js.stream_info(subjects.DEAD_LETTERS_STREAM)
    try:
        await js.consumer_info(subjects.DEAD_LETTERS_STREAM, subjects.DEAD_LETTERS_CONSUMER)
    except NotFoundError:
        try:
            await js.add_consumer(subjects.DEAD_LETTERS_STREAM, dead_letters_consumer_config())
        except APIError:
            await js.consumer_info(subjects.DEAD_LETTERS_STREAM, subjects.DEAD_LETTERS_CONSUMER)


def _differs(current: StreamConfig, wanted: StreamConfig) -> bool:
    """Whether a setting ``wanted`` names differs from the live stream's. Services check the
    stream at every start, but under NATS users only ``admin`` may update it (natsauth): an
    update that changes nothing must not be sent."""
    live = current.as_dict()
    return any(live.get(name) != value for name, value in wanted.as_dict().items())


async def _update_consumer(
    js: JetStreamContext, current: ConsumerConfig, wanted: ConsumerConfig
) -> None:
    changes = {
        name: value
        for name in _EDITABLE_CONSUMER_FIELDS
        if (value := getattr(wanted, name)) is not None and getattr(current, name) != value
    }
    if not changes:
        return
    log.info("updating consumer %s: %s", current.durable_name, changes)
    # The live config with only these fields changed: a create request for an existing durable
    # is an update, refused if it touched anything that cannot change.
    await js.add_consumer(subjects.EVENTS_STREAM, current.evolve(**changes))
