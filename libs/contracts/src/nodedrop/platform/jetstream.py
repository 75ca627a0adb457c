"""The JetStream layout every service relies on: the partitioned log and its durable consumers.

The log is ``layout.partitions`` streams (:mod:`nodedrop.contracts.routing`), each the source of
truth for its slots: file storage, limits retention (consuming never removes an event), message
deletes denied, a duplicate window for ``Nats-Msg-Id``. Purges are allowed for retention only:
the notifier's pruning job purges the subjects of executions that finished long ago
(docs/operations.md, "Retention"), and NATS permissions keep every other service from purging.
Each partition's stream has the same three durable consumers (scheduler, runners, notifier).

Every stream, bucket and object store gets ``NODEDROP_STREAM_REPLICAS`` replicas. A start
brings an existing layout in line only in ways that lose nothing: replicas are raised, never
lowered (an update that leaves them out would drop a stream to one); storage and subjects are
never changed. A layout that cannot be brought in line stops the service with a
:class:`LayoutError` naming the setting.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

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
from nodedrop.contracts.events import INPUT_EVENT_TYPES
from nodedrop.contracts.routing import (
    PARTITIONS_ENV,
    SLOTS,
    Layout,
    events_of_type,
    node_ready_subjects,
)
from nodedrop.contracts.routing import all_events as all_event_subjects
from nodedrop.platform.retry import retry_unavailable

log = logging.getLogger(__name__)


class LayoutError(RuntimeError):
    """The streams found cannot serve this configuration without losing or moving data."""


REPLICAS_ENV = "NODEDROP_STREAM_REPLICAS"
_MAX_REPLICAS = 5
#: Tries of the idempotent set-up at start while the cluster answers 503 or nothing (backoff
#: to 2 s: about 15 s, a leader election on a loaded cluster and then some).
_SETUP_ATTEMPTS = 12


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
    layout: Layout = field(default_factory=Layout)
    replicas: int = 1

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StreamSettings:
        """The settings of ``env`` (default: the process's) as a service would build them
        (:class:`~nodedrop.platform.settings.CommonSettings`), for the operator commands and
        the tests; services take theirs from their settings object."""
        # Imported here: the settings build StreamSettings.
        from nodedrop.platform.settings.common import CommonSettings  # noqa: PLC0415

        env = os.environ if env is None else env
        wanted = (PARTITIONS_ENV, REPLICAS_ENV, RUNNER_ACK_WAIT_ENV, DUPLICATE_WINDOW_ENV)
        return CommonSettings.from_env({k: env[k] for k in wanted if k in env}).streams


RUNNER_ACK_WAIT_ENV = "NODEDROP_RUNNER_ACK_WAIT_S"
DUPLICATE_WINDOW_ENV = "NODEDROP_DUPLICATE_WINDOW_S"
#: The stream of the first log format (one stream, 16 slots): ``nodedrop migrate-log`` copies
#: it into the partitioned layout.
FORMER_EVENTS_STREAM = "NODEDROP_EVENTS"
#: Settings an existing consumer is brought in line with at start; the server lets them change
#: on a live consumer (its filter and start position cannot, and need not).
_EDITABLE_CONSUMER_FIELDS = ("ack_wait", "max_deliver")


def events_stream_config(settings: StreamSettings, partition: int = 0) -> StreamConfig:
    layout = settings.layout
    return StreamConfig(
        name=layout.stream(partition),
        description=(
            f"nodedrop execution events, partition {partition} of {layout.partitions}: "
            "the audit log and source of truth"
        ),
        subjects=layout.stream_subjects(partition),
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
        # A partition's owner records its decisions as atomic batches (nodedrop.platform.bus).
        allow_atomic=True,
        num_replicas=settings.replicas,
    )


def scheduler_consumer_config(
    settings: StreamSettings, name: str, start_seq: int
) -> ConsumerConfig:
    """The consumer a partition's scheduler reads, from ``start_seq`` on: each owner creates
    its own when it takes the partition over and deletes its predecessor's, so a process that
    lost the partition can neither take nor acknowledge another of its inputs."""
    return ConsumerConfig(
        # Named in the create request's subject (not the legacy durable subject): NATS
        # permissions grant the scheduler that subject for its own consumers only.
        name=name,
        durable_name=name,
        description="scheduler: the events that call for a decision",
        filter_subjects=[events_of_type(t) for t in INPUT_EVENT_TYPES],
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=max(start_seq, 1),
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=30.0,
        # An input the scheduler fails on this often is a poison: dead-lettered, and its
        # execution failed (docs/architecture.md, "Dead letters").
        max_deliver=settings.scheduler_max_deliver,
        max_ack_pending=20_000,
    )


def consumer_configs(settings: StreamSettings, *, fresh_stream: bool) -> list[ConsumerConfig]:
    """The shared durable consumers of every partition's stream (each stream holds only its
    own slots, so the filters name event types only). The scheduler's is its owner's
    (:func:`scheduler_consumer_config`)."""
    # A consumer created on a stream that already holds events must not redo old work: the
    # scheduler rebuilds what it needs from per-execution history, runners take new tasks only.
    work_start = DeliverPolicy.ALL if fresh_stream else DeliverPolicy.NEW
    return [
        ConsumerConfig(
            durable_name=subjects.RUNNER_CONSUMER,
            description="runners: node attempts to execute, shared by every runner process",
            filter_subject=node_ready_subjects(),
            deliver_policy=work_start,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=settings.runner_ack_wait_s,
            max_deliver=settings.runner_max_deliver,
            max_ack_pending=20_000,
        ),
        ConsumerConfig(
            durable_name=subjects.NOTIFIER_CONSUMER,
            description="notifier: every event, projected into PostgreSQL",
            filter_subject=all_event_subjects(),
            deliver_policy=DeliverPolicy.ALL,
            # The notifier's checkpoint in PostgreSQL is the truth, and it acks only the last
            # message of a committed batch. Not editable in place: the notifier recreates its
            # consumer when this differs (platform/notifier_consumer.py, rewind_consumer).
            ack_policy=AckPolicy.ALL,
            ack_wait=60.0,
            max_ack_pending=50_000,
        ),
    ]


async def ensure_jetstream(
    js: JetStreamContext, settings: StreamSettings | None = None, *, owner: str | None = None
) -> None:
    """Create every partition's stream and consumers if missing; idempotent, safe from every
    service at once. ``owner``: the durable consumer the caller owns, whose editable settings
    (a changed ack wait) are brought in line; only its owner does that, since under NATS users
    no service may change another's consumer (natsauth), and services with differing settings
    must not undo each other's. Without ``settings``: the defaults. Raises
    :class:`LayoutError` when the streams found were laid out for another configuration."""
    wanted = settings or StreamSettings()

    async def ensure() -> None:
        await check_layout(js, wanted.layout)
        for partition in range(wanted.layout.partitions):
            await _ensure_partition(js, wanted, partition, owner)

    # Idempotent, so asked again while a cluster is electing leaders (services start with it).
    await retry_unavailable(ensure, what="set up the event log", attempts=_SETUP_ATTEMPTS)


async def check_layout(js: JetStreamContext, layout: Layout) -> None:
    """Stop before anything is written if the server holds a log laid out otherwise: a former
    single-stream log, or partition streams for more partitions (fewer are found by their
    subjects, :func:`_in_line_with`). Asks by name: services may not list streams."""
    if await _exists(js, FORMER_EVENTS_STREAM):
        raise LayoutError(
            f"stream {FORMER_EVENTS_STREAM} holds events in the first log format (one stream); "
            "copy them into the partitioned log with `nodedrop migrate-log` (docs/operations.md, "
            '"Upgrading to the partitioned log") before starting this version'
        )
    if layout.partitions < SLOTS and await _exists(js, layout.stream(layout.partitions)):
        raise LayoutError(
            f"the log has more partition streams than this configuration: {PARTITIONS_ENV} is "
            f"{layout.partitions} here, but {layout.stream(layout.partitions)} exists; give every "
            "service the value the log was created with"
        )


async def _exists(js: JetStreamContext, stream: str) -> bool:
    try:
        await js.stream_info(stream)
    except NotFoundError:
        return False
    return True


async def ensure_stream(js: JetStreamContext, settings: StreamSettings, partition: int) -> bool:
    """Create or bring in line one partition's stream, without its consumers; True if it was
    created now."""
    config = events_stream_config(settings, partition)
    try:
        existing = await js.stream_info(settings.layout.stream(partition))
    except NotFoundError:
        await js.add_stream(config)
        return True
    config = _in_line_with(existing.config, config)
    if _differs(existing.config, config):
        await js.update_stream(config)
    return False


async def _ensure_partition(
    js: JetStreamContext, settings: StreamSettings, partition: int, owner: str | None
) -> None:
    name = settings.layout.stream(partition)
    fresh = await ensure_stream(js, settings, partition)
    for consumer in consumer_configs(settings, fresh_stream=fresh):
        assert consumer.durable_name is not None
        try:
            info = await js.consumer_info(name, consumer.durable_name)
        except NotFoundError:
            if not fresh:
                log.warning(
                    "creating consumer %s on existing stream %s from new events on",
                    consumer.durable_name,
                    name,
                )
            try:
                await js.add_consumer(name, consumer)
            except APIError:
                # Services start together: another one may have created it a moment ago
                # (with the settings of a fresh stream). Existing is all that matters.
                await js.consumer_info(name, consumer.durable_name)
        else:
            if consumer.durable_name == owner:
                await _update_consumer(js, name, info.config, consumer)


def _in_line_with(live: StreamConfig, wanted: StreamConfig) -> StreamConfig:
    """``wanted`` as an update of ``live`` may apply it: refuses what would move or lose data,
    keeps what the server will not change back."""
    name = live.name
    if live.subjects is not None and sorted(live.subjects) != sorted(wanted.subjects or []):
        raise LayoutError(
            f"stream {name} holds other slots than this configuration gives it: "
            f"{PARTITIONS_ENV} differs from the value the log was created with"
        )
    if live.storage != wanted.storage:
        raise LayoutError(f"stream {name} has {live.storage} storage, not {wanted.storage}")
    if (live.num_replicas or 1) > (wanted.num_replicas or 1):
        log.warning(
            "stream %s has %d replicas, more than %s=%d: keeping %d",
            name,
            live.num_replicas,
            REPLICAS_ENV,
            wanted.num_replicas,
            live.num_replicas,
        )
        wanted = replace(wanted, num_replicas=live.num_replicas)
    if live.deny_purge:
        # A stream created with purges denied keeps them denied: NATS refuses to lift it
        # (and would refuse the whole update). Pruning then reports that it cannot run.
        wanted = replace(wanted, deny_purge=True)
    return wanted


def dead_letters_stream_config(settings: StreamSettings) -> StreamConfig:
    return StreamConfig(
        name=subjects.DEAD_LETTERS_STREAM,
        description="nodedrop dead letters: advisories about events a consumer gave up on",
        subjects=subjects.dead_letter_subjects(settings.layout),
        num_replicas=settings.replicas,
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


async def ensure_dead_letters(js: JetStreamContext, settings: StreamSettings | None = None) -> None:
    """Create the dead-letter stream and the scheduler's consumer on it if missing (the
    scheduler, which acts on dead letters, calls this at start; idempotent)."""
    chosen = settings or StreamSettings()
    await retry_unavailable(
        lambda: _ensure_dead_letters(js, chosen),
        what="set up the dead letters",
        attempts=_SETUP_ATTEMPTS,
    )


async def _ensure_dead_letters(js: JetStreamContext, settings: StreamSettings) -> None:
    wanted = dead_letters_stream_config(settings)
    try:
        live = (await js.stream_info(subjects.DEAD_LETTERS_STREAM)).config
        if sorted(live.subjects or []) != sorted(wanted.subjects or []) or (
            (live.num_replicas or 1) < settings.replicas
        ):
            await js.update_stream(
                replace(wanted, num_replicas=max(live.num_replicas or 1, settings.replicas))
            )
    except NotFoundError:
        try:
            await js.add_stream(wanted)
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
    js: JetStreamContext, stream: str, current: ConsumerConfig, wanted: ConsumerConfig
) -> None:
    changes = {
        name: value
        for name in _EDITABLE_CONSUMER_FIELDS
        if (value := getattr(wanted, name)) is not None and getattr(current, name) != value
    }
    if not changes:
        return
    log.info("updating consumer %s of %s: %s", current.durable_name, stream, changes)
    # The live config with only these fields changed: a create request for an existing durable
    # is an update, refused if it touched anything that cannot change.
    await js.add_consumer(stream, current.evolve(**changes))
