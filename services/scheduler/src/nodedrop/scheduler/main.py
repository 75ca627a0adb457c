"""``nodedrop scheduler``: connect, make sure the stream exists, run until told to stop."""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta

import nats

from nodedrop.contracts import eventloop, subjects
from nodedrop.contracts.config import Config
from nodedrop.contracts.jetstream import ensure_dead_letters, ensure_jetstream
from nodedrop.contracts.tracing import setup_tracing
from nodedrop.scheduler.cron import CronFirer
from nodedrop.scheduler.dead_letters import DeadLetters
from nodedrop.scheduler.service import Scheduler, utc_now

log = logging.getLogger(__name__)


async def serve(config: Config) -> None:
    if not config.nats_url:
        raise SystemExit("NODEDROP_NATS_URL is not set")
    nc = await nats.connect(config.nats_url, name="nodedrop-scheduler", max_reconnect_attempts=-1)
    js = nc.jetstream()
    # The scheduler owns its consumer: its settings (max_deliver) are brought in line.
    await ensure_jetstream(js, owner=subjects.SCHEDULER_CONSUMER)
    await ensure_dead_letters(js)
    scheduler = Scheduler(nc, js, snapshot_interval_s=config.scheduler_snapshot_interval_s)
    firer = CronFirer(js, grace=timedelta(seconds=config.schedule_grace_s))
    dead_letters = DeadLetters(nc, js, clock=utc_now)

    def stop() -> None:
        scheduler.stop()
        firer.stop()
        dead_letters.stop()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    log.info("scheduler running")
    try:
        # One failing stops the other: the process exits and is restarted as a whole.
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(scheduler.run(), name="scheduler")
            tasks.create_task(firer.run(), name="cron firer")
            tasks.create_task(dead_letters.run(), name="dead letters")
    finally:
        await nc.drain()


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s scheduler %(levelname)s %(message)s"
    )
    config = Config.from_env()
    setup_tracing("scheduler", config.otel_exporter)
    eventloop.run(serve(config))
