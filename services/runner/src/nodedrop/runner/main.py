"""Bootstrap: connect to NATS, make sure the stream and consumers exist, run one Runner."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Mapping
from typing import NamedTuple

from nats.js import JetStreamContext

from nodedrop.contracts import eventloop, natsconnect, subjects
from nodedrop.contracts.config import Config, seconds_setting
from nodedrop.contracts.jetstream import StreamSettings, ensure_jetstream
from nodedrop.contracts.lifecycle import stop_on_signals
from nodedrop.contracts.logsetup import configure_logging
from nodedrop.contracts.routing import Layout
from nodedrop.contracts.tracing import setup_tracing
from nodedrop.runner.nodes.registry import load_registry
from nodedrop.runner.worker import (
    DEFAULT_GRACE_S,
    HEARTBEATS_PER_ACK_WAIT,
    Runner,
    default_worker_id,
)

log = logging.getLogger(__name__)

#: Worker processes for custom node types (default: min(4, NODEDROP_RUNNER_CONCURRENCY)).
PROCESSES_ENV = "NODEDROP_RUNNER_PROCESSES"
#: Address-space limit of each worker process, in MiB (default: none).
PROCESS_MEMORY_ENV = "NODEDROP_RUNNER_PROCESS_MEMORY_MB"
#: Seconds between heartbeats of running nodes (default: a third of the consumer's ack wait,
#: NODEDROP_RUNNER_ACK_WAIT_S).
HEARTBEAT_ENV = "NODEDROP_RUNNER_HEARTBEAT_S"
#: Seconds running nodes get to finish after SIGTERM (default 8; `nodedrop up` SIGKILLs a
#: service 10 s after SIGTERM, --stop-timeout).
GRACE_ENV = "NODEDROP_RUNNER_GRACE_S"


def _positive_int(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
    return int(value)


async def heartbeat_interval(
    js: JetStreamContext, env: Mapping[str, str] | None = None, layout: Layout | None = None
) -> float:
    """The heartbeat of running nodes: as configured, else a third of the ack wait the runners'
    consumer really has (whoever set it; the same on every partition), so a live node is never
    taken for lost."""
    env = os.environ if env is None else env
    stream = (layout or Layout.from_env()).stream(0)
    ack_wait_s = (await js.consumer_info(stream, subjects.RUNNER_CONSUMER)).config.ack_wait
    configured = seconds_setting(env, HEARTBEAT_ENV)
    if ack_wait_s is None:  # pragma: no cover - ensure_jetstream always sets one
        return configured or 5.0
    if configured is not None and configured > ack_wait_s / 2:
        log.warning(
            "%s=%s is more than half the ack wait (%s s): live nodes may be taken for lost",
            HEARTBEAT_ENV,
            configured,
            ack_wait_s,
        )
    return configured or ack_wait_s / HEARTBEATS_PER_ACK_WAIT


class ProcessOptions(NamedTuple):
    processes: int | None
    memory_limit_bytes: int | None


def process_options(env: Mapping[str, str] | None = None) -> ProcessOptions:
    """The worker-process settings of the runner, from the environment."""
    env = os.environ if env is None else env
    memory_mb = _positive_int(env, PROCESS_MEMORY_ENV)
    return ProcessOptions(
        processes=_positive_int(env, PROCESSES_ENV),
        memory_limit_bytes=memory_mb * 1024 * 1024 if memory_mb else None,
    )


async def serve(config: Config, stop: asyncio.Event | None = None) -> None:
    """Run a runner until SIGTERM or SIGINT (or until ``stop`` is set), then shut down
    gracefully: tasks not started go back to the queue at once, running nodes get a grace
    period (NODEDROP_RUNNER_GRACE_S), and those still running then go back too."""
    if not config.nats_url:
        raise ValueError("the runner needs NODEDROP_NATS_URL")
    stop = stop or asyncio.Event()
    # A broken plugin fails here, before any task is taken.
    registry = load_registry(http_allow_private=config.http_allow_private)
    options = process_options()
    worker_id = default_worker_id()
    nc = await natsconnect.connect(
        config.nats_settings(), name=f"nodedrop-runner {worker_id}", max_reconnect_attempts=-1
    )
    try:
        # The runners' consumer is ours: a changed NODEDROP_RUNNER_ACK_WAIT_S applies here.
        streams = StreamSettings.from_env()
        await ensure_jetstream(nc.jetstream(), streams, owner=subjects.RUNNER_CONSUMER)
        heartbeat_s = await heartbeat_interval(nc.jetstream(), layout=streams.layout)
        stream = await nc.jetstream().stream_info(streams.layout.stream(0))
        runner = Runner(
            nc,
            registry,
            concurrency=config.runner_concurrency,
            worker_id=worker_id,
            processes=options.processes,
            process_memory_limit_bytes=options.memory_limit_bytes,
            heartbeat_s=heartbeat_s,
            duplicate_window_s=stream.config.duplicate_window or 120.0,
            grace_s=seconds_setting(os.environ, GRACE_ENV) or DEFAULT_GRACE_S,
            layout=streams.layout,
        )
        with stop_on_signals(stop):
            await runner.run(stop)
    finally:
        await registry.aclose()
        await nc.drain()


def main() -> None:
    """``nodedrop-runner`` / ``python -m nodedrop.runner``: configured from the environment."""
    configure_logging()
    config = Config.load()
    if not config.nats_url:
        sys.exit("nodedrop-runner needs NODEDROP_NATS_URL")
    try:
        process_options()
        seconds_setting(os.environ, HEARTBEAT_ENV)
        seconds_setting(os.environ, GRACE_ENV)
    except ValueError as error:
        sys.exit(f"nodedrop-runner: {error}")
    setup_tracing("runner", config.otel_exporter)
    eventloop.run(serve(config))
