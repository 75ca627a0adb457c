"""``nodedrop scheduler``: connect, make sure the stream exists, run until told to stop."""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta
from typing import Any

from nats.aio.client import Client as NatsClient

from nodedrop.platform import eventloop, natsconnect
from nodedrop.platform.consumerlag import ConsumerLag
from nodedrop.platform.event_log import JetStreamEventLog
from nodedrop.platform.jetstream import StreamSettings, ensure_dead_letters, ensure_jetstream
from nodedrop.platform.lease_store import open_leases
from nodedrop.platform.leases import PartitionLeases
from nodedrop.platform.logsetup import configure_logging
from nodedrop.platform.ops import nats_connected, ops_listener
from nodedrop.platform.tracing import setup_tracing
from nodedrop.scheduler.cron import CronFirer
from nodedrop.scheduler.dead_letters import DeadLetters
from nodedrop.scheduler.service import Scheduler, utc_now
from nodedrop.scheduler.settings import SchedulerSettings
from nodedrop.scheduler.snapshot_store import open_bucket

log = logging.getLogger(__name__)


async def open_scheduler(
    nc: NatsClient, streams: StreamSettings, **options: Any
) -> tuple[Scheduler, JetStreamEventLog]:
    """A scheduler over the JetStream partitions and the scheduler's key-value bucket (created
    if missing); and its event log, whose publisher the other parts of the process share."""
    js = nc.jetstream()
    event_log = JetStreamEventLog(nc, js, streams)
    kv, _ = await open_bucket(js, streams.replicas)
    return Scheduler(event_log, kv, **options), event_log


async def serve(settings: SchedulerSettings) -> None:
    if not settings.nats_url:
        raise SystemExit("NODEDROP_NATS_URL is not set")
    nc = await natsconnect.connect(
        settings.nats_settings(), name="nodedrop-scheduler", max_reconnect_attempts=-1
    )
    js = nc.jetstream()
    streams = settings.streams
    await ensure_jetstream(js, streams)
    await ensure_dead_letters(js, streams)
    scheduler, event_log = await open_scheduler(
        nc,
        streams,
        snapshot_interval_s=settings.scheduler_snapshot_interval_s,
        max_concurrent_per_user=settings.max_concurrent_per_user,
        max_running_nodes_per_user=settings.max_running_nodes_per_user,
    )
    publisher = event_log.publisher
    firer = CronFirer(
        js,
        grace=timedelta(seconds=settings.schedule_grace_s),
        publisher=publisher,
        replicas=streams.replicas,
    )
    dead_letters = DeadLetters(nc, js, clock=utc_now, publisher=publisher)

    lease_s = settings.lease_s
    leases = PartitionLeases(
        await open_leases(js, lease_s, streams.replicas),
        group="scheduler",
        member=scheduler.owner,
        partitions=streams.layout.partitions,
        take=scheduler.take,
        give_up=scheduler.release,
        lost=scheduler.lose,
        lease_s=lease_s,
    )

    async def hold_leases() -> None:
        try:
            await leases.run()
        finally:  # every partition handed back: nothing left to decide
            scheduler.stop()

    sampling = asyncio.Event()
    lag = ConsumerLag(js, scheduler.consumers)
    checks = {"nats": nats_connected(lambda: nc.is_connected), "leases": leases.readiness}

    def stop() -> None:
        leases.stop()
        firer.stop()
        dead_letters.stop()
        sampling.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    log.info("scheduler running")
    try:
        # One failing stops the other: the process exits and is restarted as a whole.
        listener = ops_listener(settings.ops_host, settings.ops_port, checks)
        async with listener, asyncio.TaskGroup() as tasks:
            tasks.create_task(scheduler.run(partitions=()), name="scheduler")
            tasks.create_task(hold_leases(), name="partition leases")
            tasks.create_task(firer.run(), name="cron firer")
            tasks.create_task(dead_letters.run(), name="dead letters")
            tasks.create_task(lag.run(sampling), name="consumer lag")
    finally:
        await nc.drain()


def main() -> None:
    settings = SchedulerSettings.load()
    configure_logging(fmt=settings.log_format)
    setup_tracing("scheduler", settings.otel_exporter)
    eventloop.run(serve(settings), loop=settings.event_loop)
