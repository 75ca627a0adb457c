"""Bootstrap: connect to NATS, make sure the stream and consumers exist, run one Runner."""

from __future__ import annotations

import asyncio
import logging
import sys

import nats

from nodedrop.contracts.config import Config
from nodedrop.contracts.jetstream import ensure_jetstream
from nodedrop.contracts.lifecycle import stop_on_signals
from nodedrop.contracts.tracing import setup_tracing
from nodedrop.runner.nodes.registry import load_registry
from nodedrop.runner.worker import Runner, default_worker_id

log = logging.getLogger(__name__)


async def serve(config: Config, stop: asyncio.Event | None = None) -> None:
    """Run a runner until SIGTERM or SIGINT (or until ``stop`` is set), then shut down
    gracefully: running nodes get a grace period, the rest go back to the queue."""
    if not config.nats_url:
        raise ValueError("the runner needs NODEDROP_NATS_URL")
    stop = stop or asyncio.Event()
    registry = load_registry()  # a broken plugin fails here, before any task is taken
    worker_id = default_worker_id()
    nc = await nats.connect(
        config.nats_url, name=f"nodedrop-runner {worker_id}", max_reconnect_attempts=-1
    )
    try:
        await ensure_jetstream(nc.jetstream())
        runner = Runner(nc, registry, concurrency=config.runner_concurrency, worker_id=worker_id)
        with stop_on_signals(stop):
            await runner.run(stop)
    finally:
        await nc.drain()


def main() -> None:
    """``nodedrop-runner`` / ``python -m nodedrop.runner``: configured from the environment."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    config = Config.from_env()
    if not config.nats_url:
        sys.exit("nodedrop-runner needs NODEDROP_NATS_URL")
    setup_tracing("runner", config.otel_exporter)
    asyncio.run(serve(config))
