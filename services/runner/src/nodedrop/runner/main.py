"""Bootstrap: connect to NATS, make sure the stream and consumers exist, run one Runner."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from nodedrop.contracts import subjects
from nodedrop.contracts.nodetypes import NodeTypeRegistry
from nodedrop.contracts.routing import Layout
from nodedrop.platform import eventloop, natsconnect
from nodedrop.platform.consumerlag import ConsumerLag, Sampled
from nodedrop.platform.datastore import DataStore
from nodedrop.platform.event_log import JetStreamEventLog
from nodedrop.platform.jetstream import StreamSettings, ensure_jetstream
from nodedrop.platform.lifecycle import stop_on_signals
from nodedrop.platform.logsetup import configure_logging
from nodedrop.platform.ops import nats_connected, ops_listener
from nodedrop.platform.secretbox import SecretKeyError
from nodedrop.platform.task_queue import RunnerTasks
from nodedrop.platform.tracing import setup_tracing
from nodedrop.runner.credentials import CredentialVault
from nodedrop.runner.nodes.registry import NodeRegistry, load_registry
from nodedrop.runner.sandbox.jail import Jail
from nodedrop.runner.settings import RunnerSettings
from nodedrop.runner.subworkflows import PostgresWorkflows, WorkflowCaller
from nodedrop.runner.worker import HEARTBEATS_PER_ACK_WAIT, Runner, default_worker_id, utc_now

log = logging.getLogger(__name__)


def open_runner(
    nc: NatsClient, registry: NodeRegistry, streams: StreamSettings, **options: Any
) -> Runner:
    """A runner over the partition streams, their ``runners`` consumers and the object store
    (``options`` as :class:`Runner` takes them)."""
    js = nc.jetstream()
    options.setdefault("data_store", DataStore(js, replicas=streams.replicas))
    return Runner(
        JetStreamEventLog(nc, js, streams), RunnerTasks(nc, streams.layout, 1), registry, **options
    )


async def heartbeat_interval(
    js: JetStreamContext, configured: float | None, layout: Layout
) -> float:
    """The heartbeat of running nodes: as configured (NODEDROP_RUNNER_HEARTBEAT_S), else a
    third of the ack wait the runners' consumer really has (whoever set it; the same on every
    partition), so a live node is never taken for lost."""
    stream = layout.stream(0)
    ack_wait_s = (await js.consumer_info(stream, subjects.RUNNER_CONSUMER)).config.ack_wait
    if ack_wait_s is None:  # pragma: no cover - ensure_jetstream always sets one
        return configured or 5.0
    if configured is not None and configured > ack_wait_s / 2:
        log.warning(
            "NODEDROP_RUNNER_HEARTBEAT_S=%s is more than half the ack wait (%s s): live nodes "
            "may be taken for lost",
            configured,
            ack_wait_s,
        )
    return configured or ack_wait_s / HEARTBEATS_PER_ACK_WAIT


async def serve(settings: RunnerSettings, stop: asyncio.Event | None = None) -> None:
    """Run a runner until SIGTERM or SIGINT (or until ``stop`` is set), then shut down
    gracefully: tasks not started go back to the queue at once, running nodes get a grace
    period (NODEDROP_RUNNER_GRACE_S), and those still running then go back too."""
    if not settings.nats_url:
        raise ValueError("the runner needs NODEDROP_NATS_URL")
    stop = stop or asyncio.Event()
    # A broken plugin fails here, before any task is taken.
    code = settings.code_sandbox_settings
    registry = load_registry(http_allow_private=settings.http_allow_private, code=code)
    report_code_sandbox(Jail(code))
    worker_id = default_worker_id()
    # A wrong NODEDROP_SECRET_KEY fails here (SecretKeyError), before any task is taken.
    vault = await CredentialVault.open(settings.database_url, settings.credentials_key)
    workflows = (
        await PostgresWorkflows.open(settings.database_url) if settings.database_url else None
    )
    calls = WorkflowCaller(
        workflows,
        max_depth=settings.max_workflow_depth,
        clock=utc_now,
        types=NodeTypeRegistry.with_plugins(),
    )
    try:
        nc = await natsconnect.connect(
            settings.nats_settings(),
            name=f"nodedrop-runner {worker_id}",
            max_reconnect_attempts=-1,
        )
    except BaseException:
        await vault.aclose()
        if workflows is not None:
            await workflows.aclose()
        raise
    try:
        # The runners' consumer is ours: a changed NODEDROP_RUNNER_ACK_WAIT_S applies here.
        streams = settings.streams
        await ensure_jetstream(nc.jetstream(), streams, owner=subjects.RUNNER_CONSUMER)
        heartbeat_s = await heartbeat_interval(
            nc.jetstream(), settings.runner_heartbeat_s, streams.layout
        )
        stream = await nc.jetstream().stream_info(streams.layout.stream(0))
        runner = open_runner(
            nc,
            registry,
            streams,
            concurrency=settings.runner_concurrency,
            worker_id=worker_id,
            processes=settings.runner_processes,
            process_memory_limit_bytes=settings.process_memory_limit_bytes,
            heartbeat_s=heartbeat_s,
            duplicate_window_s=stream.config.duplicate_window or 120.0,
            grace_s=settings.runner_grace_s,
            vault=vault,
            calls=calls,
        )
        lag = ConsumerLag(
            nc.jetstream(),
            lambda: [
                Sampled("runners", partition, stream, subjects.RUNNER_CONSUMER)
                for partition, stream in enumerate(streams.layout.streams)
            ],
        )
        checks = {"nats": nats_connected(lambda: nc.is_connected), "runner": runner.readiness}
        listener = ops_listener(settings.ops_host, settings.ops_port, checks)
        with stop_on_signals(stop):
            async with listener, asyncio.TaskGroup() as tasks:
                tasks.create_task(lag.run(stop), name="consumer lag")
                await runner.run(stop)
    finally:
        await registry.aclose()
        await nc.drain()
        await vault.aclose()
        if workflows is not None:
            await workflows.aclose()


def report_code_sandbox(jail: Jail) -> None:
    """Say at start what ``code`` nodes will get: without bubblewrap they fail (the runner
    still runs everything else), and a weaker sandbox is worth a warning in every log. An
    allowed package that is not installed stops the runner here (ValueError)."""
    problem = jail.unavailable()
    if problem is not None:
        log.warning("code nodes will fail with CodeSandboxUnavailable: %s", problem)
        return
    jail.mounts()
    if jail.settings.mode == "process":
        log.warning(
            "NODEDROP_CODE_SANDBOX=process: code nodes run without namespaces or seccomp; "
            "they can read the runner's files and reach the network (docs/security.md)"
        )
    elif os.geteuid() == 0 and not jail.drops_to_nobody():
        log.warning(
            "code sandboxes run as the host's root without capabilities (in a user namespace): "
            "the user nobody cannot read the interpreter %s; set NODEDROP_CODE_PYTHON to one "
            "it can read (docs/security.md)",
            jail.mounts().interpreter,
        )


def main() -> None:
    """``nodedrop-runner`` / ``python -m nodedrop.runner``: configured from the environment."""
    settings = RunnerSettings.load()
    configure_logging(fmt=settings.log_format)
    if not settings.nats_url:
        sys.exit("nodedrop-runner needs NODEDROP_NATS_URL")
    setup_tracing("runner", settings.otel_exporter)
    try:
        eventloop.run(serve(settings), loop=settings.event_loop)
    except SecretKeyError as error:
        sys.exit(f"nodedrop-runner: {error}")
