"""``nodedrop scheduler``: connect, make sure the stream exists, run until told to stop."""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta

import nats

from nodedrop.contracts.config import Config
from nodedrop.contracts.jetstream import ensure_jetstream
from nodedrop.contracts.tracing import setup_tracing
from nodedrop.scheduler.cron import CronFirer
from nodedrop.scheduler.service import Scheduler

log = logging.getLogger(__name__)


async def serve(config: Config) -> None:
    if not config.nats_url:
        raise SystemExit("NODEDROP_NATS_URL is not set")
    nc = await nats.connect(config.nats_url, name="nodedrop-scheduler", max_reconnect_attempts=-1)
    js = nc.jetstream()
    await ensure_jetstream(js)
    scheduler = Scheduler(nc, js)
    firer = CronFirer(js, grace=timedelta(seconds=config.schedule_grace_s))

    def stop() -> None:
        scheduler.stop()
        firer.stop()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    log.info("scheduler running")
    try:
        # One failing stops the other: the process exits and is restarted as a whole.
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(scheduler.run(), name="scheduler")
            tasks.create_task(firer.run(), name="cron firer")
    finally:
        await nc.drain()


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s scheduler %(levelname)s %(message)s"
    )
    config = Config.from_env()
    setup_tracing("scheduler", config.otel_exporter)
    asyncio.run(serve(config))
