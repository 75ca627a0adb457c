"""Bootstrap: wires NATS, PostgreSQL, the projector and the WebSocket server, and runs them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import uuid
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import uvicorn

from nodedrop.contracts import subjects
from nodedrop.notifier.auth import key_auth, key_recheck
from nodedrop.notifier.partitions import Projectors
from nodedrop.notifier.retention import Pruner
from nodedrop.notifier.settings import NotifierSettings
from nodedrop.notifier.store import create_pool
from nodedrop.notifier.websocket import create_app
from nodedrop.platform import eventloop, natsconnect
from nodedrop.platform.consumerlag import ConsumerLag, Sampled
from nodedrop.platform.event_log import JetStreamEventLog
from nodedrop.platform.jetstream import ensure_jetstream
from nodedrop.platform.lease_store import open_leases
from nodedrop.platform.leases import PartitionLeases
from nodedrop.platform.lifecycle import stop_on_signals
from nodedrop.platform.logsetup import configure_logging
from nodedrop.platform.ops import Check, PeriodicCheck, nats_connected

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: serve() owns shutdown for both halves."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn would re-raise a captured signal after its shutdown, killing the process
        # before the projector and the connections are closed.
        yield


async def serve(settings: NotifierSettings, stop: asyncio.Event | None = None) -> None:
    """Run the notifier until SIGTERM or SIGINT (or until ``stop`` is set)."""
    if not settings.nats_url or not settings.database_url:
        raise ValueError("the notifier needs NODEDROP_NATS_URL and NODEDROP_DATABASE_URL")
    stop = stop or asyncio.Event()
    nc = await natsconnect.connect(
        settings.nats_settings(),
        name="nodedrop-notifier",
        max_reconnect_attempts=-1,  # the server restarting is no reason to stop serving
        error_cb=_nats_error,
        disconnected_cb=_nats_disconnected,
        reconnected_cb=_nats_reconnected,
    )
    try:
        js = nc.jetstream()
        streams = settings.streams
        await ensure_jetstream(js, streams)
        pool = await create_pool(settings.database_url)
        try:
            # The projectors' pulls and consumer info share this one connection (a rewind then
            # sees an earlier feed's inbox unsubscribed).
            projectors = Projectors(
                JetStreamEventLog(nc, js, streams), pool, linger_s=settings.linger_s
            )
            lease_s = settings.lease_s
            leases = PartitionLeases(
                await open_leases(js, lease_s, streams.replicas),
                group="notifier",
                member=uuid.uuid4().hex[:12],
                partitions=streams.layout.partitions,
                take=projectors.take,
                give_up=projectors.give_up,
                lost=projectors.give_up,
                lease_s=lease_s,
            )
            database = PeriodicCheck("PostgreSQL", lambda: pool.fetchval("SELECT 1"))
            checks: dict[str, Check] = {
                "nats": nats_connected(lambda: nc.is_connected),
                "database": database,
                "leases": leases.readiness,
            }
            lag = ConsumerLag(
                js,
                lambda: [
                    Sampled("notifier", p, streams.layout.stream(p), subjects.NOTIFIER_CONSUMER)
                    for p in projectors.partitions
                ],
            )
            pruner = Pruner(
                js,
                pool,
                settings.retention,
                layout=streams.layout,
                partitions=lambda: projectors.partitions,
            )
            server = _Server(
                uvicorn.Config(
                    create_app(
                        js,
                        settings.admin_token,
                        authenticate=key_auth(pool, settings.admin_token),
                        recheck=key_recheck(pool, settings.admin_token),
                        allowed_origins=settings.websocket_origins,
                        layout=streams.layout,
                        checks=checks,
                    ),
                    host=settings.host,
                    port=settings.notifier_port,
                    lifespan="off",
                    ws="websockets-sansio",
                    log_config=None,
                    timeout_graceful_shutdown=5,
                )
            )
            with stop_on_signals(stop):
                await _run_until_stopped(
                    leases, projectors, pruner, server, stop, side=(database.run, lag.run)
                )
        finally:
            await pool.close()
    finally:
        try:
            await nc.drain()
        except Exception:  # the server may be gone: closing is all that is left to do
            await nc.close()


async def _run_until_stopped(
    leases: PartitionLeases,
    projectors: Projectors,
    pruner: Pruner,
    server: uvicorn.Server,
    stop: asyncio.Event,
    *,
    side: tuple[Callable[[asyncio.Event], Coroutine[Any, Any, None]], ...] = (),
) -> None:
    """``side``: tasks that watch (readiness, metrics) and end when ``stop`` is set."""

    async def http() -> None:
        try:
            await server.serve()
        except SystemExit as exit_:  # uvicorn exits when it cannot bind its port
            raise RuntimeError(f"the WebSocket server could not start ({exit_.code})") from None

    async def project() -> None:
        # The projectors of the partitions held; one failing on its own stops the notifier.
        holding = asyncio.create_task(leases.run())
        try:
            while not stop.is_set() and not holding.done():
                if (error := projectors.failed()) is not None:
                    raise error
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.5)
        finally:
            leases.stop()
            await holding
            await projectors.stop()

    tasks = [
        asyncio.create_task(project(), name="projectors"),
        asyncio.create_task(http(), name="websocket-server"),
        asyncio.create_task(pruner.run(stop), name="pruner"),
        *(asyncio.create_task(run(stop)) for run in side),
    ]
    stopping = asyncio.create_task(stop.wait())
    try:
        # Any task ending on its own (a crash) stops the others.
        await asyncio.wait([*tasks, stopping], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.set()
        server.should_exit = True
        await asyncio.gather(*tasks, stopping, return_exceptions=True)
    for task in tasks:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            raise error


# One line per connection event, instead of nats-py's default traceback for each retry.
async def _nats_error(error: Exception) -> None:
    log.warning("NATS: %s", error or type(error).__name__)


async def _nats_disconnected() -> None:
    log.warning("NATS: disconnected, reconnecting")


async def _nats_reconnected() -> None:
    log.info("NATS: reconnected")


def main() -> None:
    """``nodedrop-notifier`` / ``python -m nodedrop.notifier``: configured from the environment."""
    settings = NotifierSettings.load()
    configure_logging(fmt=settings.log_format)
    if not settings.nats_url or not settings.database_url:
        sys.exit("nodedrop-notifier needs NODEDROP_NATS_URL and NODEDROP_DATABASE_URL")
    eventloop.run(serve(settings), loop=settings.event_loop)
