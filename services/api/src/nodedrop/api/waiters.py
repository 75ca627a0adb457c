"""Requests waiting for an execution's end: a map from execution id to the waiting requests,
fed by one shared subscription per api process (:class:`FinishedNotices`).

The notifier announces, after each committed projection batch, the executions whose end that
batch recorded (``nodedrop.contracts.subjects.projected_finished_subject``). A waiter resolved
by that notice can read ``GET /api/executions/{id}``'s body from the projection and find the
end there: answering from the projection, not from the event, keeps the body the same as
GET's. The notices are core NATS (at most once): a notice lost while the api was disconnected,
or never sent because the notifier's publish failed, is made up for by a sweep that asks the
projection, every ``SWEEP_EVERY_S``, which of the executions waited for longer than that have
finished.

Race-free use: register first, then look at the recorded state (the projection), then wait.
An end committed before the waiter was registered is seen by the look; one committed after it
is announced to the waiter.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from nodedrop.contracts import subjects

log = logging.getLogger(__name__)


#: What a waiter is resolved with: ``GET /api/executions/{id}``'s body, read once for every
#: waiter of the execution, or None when it could not be read (the request reads it itself).
Body = bytes | None
#: Reads the bodies of finished executions, several in one go (a map from id to body).
BodyReader = Callable[[list[str]], Awaitable[Mapping[str, bytes]]]
#: Which of several executions the projection shows finished.
FinishedFilter = Callable[[list[str]], Awaitable[list[str]]]

#: How often waits are checked against the projection, and how long a wait must have lasted
#: to be checked (most end sooner, through their notice, and cost the sweep nothing).
SWEEP_EVERY_S = 2.0


class Waiters:
    """Execution id -> the futures of the requests waiting for its end. Pure bookkeeping: no
    I/O; a waiter is removed when its ``waiting`` block exits, however it exits."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._waiting: dict[str, set[asyncio.Future[Body]]] = {}
        #: When each execution was first waited for (by a request still waiting).
        self._since: dict[str, float] = {}
        self._clock = clock

    def __len__(self) -> int:
        """How many requests are waiting (for the tests and the benchmarks: 0 when idle)."""
        return sum(len(futures) for futures in self._waiting.values())

    @contextlib.contextmanager
    def waiting(self, execution_id: str) -> Iterator[asyncio.Future[Body]]:
        """A future resolved once ``execution_id`` is announced finished; unregistered on exit."""
        future: asyncio.Future[Body] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(execution_id, set()).add(future)
        self._since.setdefault(execution_id, self._clock())
        try:
            yield future
        finally:
            futures = self._waiting.get(execution_id)
            if futures is not None:
                futures.discard(future)
                if not futures:
                    del self._waiting[execution_id]
                    self._since.pop(execution_id, None)
            future.cancel()  # no-op once resolved

    def waited_longer_than(self, seconds: float) -> list[str]:
        """The executions requests have waited for longer than ``seconds`` and still wait for
        (a resolved request may not have left yet)."""
        now = self._clock()
        return [
            execution_id
            for execution_id, since in self._since.items()
            if now - since > seconds
            and any(not future.done() for future in self._waiting[execution_id])
        ]

    def waited(self, execution_ids: Iterable[str]) -> list[str]:
        """Those of ``execution_ids`` that requests are waiting for."""
        return [i for i in execution_ids if i in self._waiting]

    def finished(
        self, execution_ids: Iterable[str], bodies: Mapping[str, bytes] | None = None
    ) -> int:
        """Resolve every waiter of ``execution_ids`` with its body in ``bodies`` (None if not
        there); how many were resolved."""
        resolved = 0
        for execution_id in execution_ids:
            for future in self._waiting.get(execution_id, ()):
                if not future.done():
                    future.set_result(bodies.get(execution_id) if bodies else None)
                    resolved += 1
        return resolved


async def wait_for(
    future: asyncio.Future[Body],
    timeout_s: float,
    gone: Coroutine[Any, Any, None] | None = None,
) -> bool:
    """Whether ``future`` resolved within ``timeout_s``. Returns early (False) when ``gone``
    (the client went away) completes first; ``gone`` is cancelled on the way out."""
    watch = asyncio.ensure_future(gone) if gone is not None else None
    waits: set[asyncio.Future[Any]] = {future} if watch is None else {future, watch}
    try:
        await asyncio.wait(
            waits,
            timeout=timeout_s,
            return_when=asyncio.FIRST_COMPLETED,
        )
    finally:
        if watch is not None:
            watch.cancel()
    return future.done() and not future.cancelled()


async def wait_first(
    first: asyncio.Future[Any],
    second: asyncio.Future[Body],
    timeout_s: float,
    gone: Coroutine[Any, Any, None],
) -> None:
    """Wait until ``first`` or ``second`` resolves, ``timeout_s`` passes or ``gone`` completes;
    the caller looks at which future is done."""
    watch = asyncio.ensure_future(gone)
    try:
        await asyncio.wait(
            {first, second, watch}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        watch.cancel()


class FinishedNotices:
    """The one subscription of an api process to the notifier's "finished" notices. For the
    executions of a notice that requests wait for, the bodies are read in one go (one session,
    two queries, whatever the number of executions and waiters), off the subscription's
    callback, so a slow read does not hold up the next notice."""

    def __init__(
        self,
        waiters: Waiters,
        read_bodies: BodyReader | None = None,
        finished_among: FinishedFilter | None = None,
        sweep_every_s: float = SWEEP_EVERY_S,
    ) -> None:
        self.waiters = waiters
        self._read_bodies = read_bodies
        self._finished_among = finished_among
        self._sweep_every_s = sweep_every_s
        self._subscription: Subscription | None = None
        self._reads: set[asyncio.Task[None]] = set()
        self._sweeping: asyncio.Task[None] | None = None

    async def start(
        self,
        nc: NatsClient,
        read_bodies: BodyReader | None = None,
        finished_among: FinishedFilter | None = None,
    ) -> None:
        self._read_bodies = read_bodies or self._read_bodies
        self._finished_among = finished_among or self._finished_among
        self._subscription = await nc.subscribe(
            subjects.projected_finished_subjects(), cb=self._on_notice
        )
        if self._finished_among is not None:
            self._sweeping = asyncio.create_task(self._sweep(), name="finished waits sweep")

    async def _sweep(self) -> None:
        """Resolve the waits whose notice never came: those waited for longer than a sweep's
        interval whose end the projection holds."""
        assert self._finished_among is not None
        while True:
            await asyncio.sleep(self._sweep_every_s)
            overdue = self.waiters.waited_longer_than(self._sweep_every_s)
            if not overdue:
                continue
            try:
                finished = await self._finished_among(overdue)
            except Exception:
                log.warning("checking waits against the projection failed", exc_info=True)
                continue
            if finished:
                await self._resolve(finished)

    async def stop(self) -> None:
        if self._sweeping is not None:
            self._sweeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeping
            self._sweeping = None
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.unsubscribe()
            self._subscription = None
        for task in list(self._reads):
            task.cancel()

    async def _on_notice(self, msg: Msg) -> None:
        try:
            execution_ids = json.loads(msg.data)
        except ValueError:
            log.warning("a finished notice on %s is not JSON; ignored", msg.subject)
            return
        if not isinstance(execution_ids, list):
            return
        waited = self.waiters.waited(i for i in execution_ids if isinstance(i, str))
        if not waited:
            return  # nobody here waits: no database work
        if self._read_bodies is None:
            self.waiters.finished(waited)
            return
        task = asyncio.create_task(self._resolve(waited))
        self._reads.add(task)
        task.add_done_callback(self._reads.discard)

    async def _resolve(self, waited: list[str]) -> None:
        bodies: Mapping[str, bytes] = {}
        try:
            assert self._read_bodies is not None
            bodies = await self._read_bodies(waited)
        except Exception:
            log.warning("reading finished executions failed; each request reads its own",
                        exc_info=True)  # fmt: skip
        self.waiters.finished(waited, bodies)
