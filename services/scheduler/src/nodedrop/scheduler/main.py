"""``nodedrop scheduler``: connect, make sure the stream exists, run until told to stop."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from datetime import timedelta

from nodedrop.contracts import eventloop, natsconnect
from nodedrop.contracts.bus import EventPublisher
from nodedrop.contracts.config import Config, seconds_setting
from nodedrop.contracts.jetstream import StreamSettings, ensure_dead_letters, ensure_jetstream
from nodedrop.contracts.leases import DEFAULT_LEASE_S, LEASE_ENV, PartitionLeases, open_leases
from nodedrop.contracts.logsetup import configure_logging
from nodedrop.contracts.tracing import setup_tracing
from nodedrop.scheduler.cron import CronFirer
from nodedrop.scheduler.dead_letters import DeadLetters
from nodedrop.scheduler.service import Scheduler, utc_now

log = logging.getLogger(__name__)


async def serve(config: Config) -> None:
    if not config.nats_url:
        raise SystemExit("NODEDROP_NATS_URL is not set")
    nc = await natsconnect.connect(
        config.nats_settings(), name="nodedrop-scheduler", max_reconnect_attempts=-1
    )
    js = nc.jetstream()
    streams = StreamSettings.from_env()
    await ensure_jetstream(js, streams)
    await ensure_dead_letters(js, streams)
    scheduler = Scheduler(
        nc,
        js,
        snapshot_interval_s=config.scheduler_snapshot_interval_s,
        settings=streams,
        max_concurrent_per_user=config.max_concurrent_per_user,
        max_running_nodes_per_user=config.max_running_nodes_per_user,
    )
    publisher = EventPublisher(js, streams.layout)
    firer = CronFirer(js, grace=timedelta(seconds=config.schedule_grace_s), publisher=publisher)
    dead_letters = DeadLetters(nc, js, clock=utc_now, publisher=publisher)

    lease_s = seconds_setting(os.environ, LEASE_ENV) or DEFAULT_LEASE_S
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

    def stop() -> None:
        leases.stop()
        firer.stop()
        dead_letters.stop()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    log.info("scheduler running")
    try:
        # One failing stops the other: the process exits and is restarted as a whole.
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(scheduler.run(partitions=()), name="scheduler")
            tasks.create_task(hold_leases(), name="partition leases")
            tasks.create_task(firer.run(), name="cron firer")
            tasks.create_task(dead_letters.run(), name="dead letters")
    finally:
        await nc.drain()


def main() -> None:
    configure_logging()
    config = Config.load()
    setup_tracing("scheduler", config.otel_exporter)
    eventloop.run(serve(config))
