"""A continuous pull consumer: messages are handed over as they arrive, in batches of whatever
is waiting, with no per-message round trip and no waiting for a batch to fill.

nats-py's ``fetch(n)`` holds the first message until ``n`` arrive or the timeout passes, which
costs a lone message the whole timeout. Here one pull request stays open on the server with
``credit`` messages; as messages arrive, the request is topped up. The credit is exact (expired
requests return theirs through the 408 status' ``Nats-Pending-Messages`` header), so a runner
never holds more tasks than it has free slots, and other runners get the rest.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

log = logging.getLogger(__name__)

_EXPIRES_S = 30.0
_HEARTBEAT_S = 5.0
#: How often the keep-alive looks for an expiring request or a re-established connection.
_RECHECK_S = 0.5


class PullConsumer:
    def __init__(self, nc: NatsClient, stream: str, consumer: str, *, capacity: int = 256) -> None:
        self._nc = nc
        self._next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        #: How many messages may be requested but not yet handed over plus handed over and
        #: not yet released; callers that process messages one by one call :meth:`release`.
        self.capacity = capacity
        self._credit = 0  # messages requested from the server and not yet delivered
        self._held = 0  # messages delivered to us and not yet released
        self._queue: deque[Msg] = deque()
        self._arrived = asyncio.Event()
        self._sub: Subscription | None = None
        self._inbox = ""
        self._last_request = 0.0
        self._refill_task: asyncio.Task[None] | None = None
        self.auto_release = True

    async def start(self) -> None:
        self._inbox = self._nc.new_inbox()
        self._sub = await self._nc.subscribe(self._inbox, cb=self._on_message)
        await self._top_up()
        self._refill_task = asyncio.create_task(self._keep_alive())

    async def stop(self) -> None:
        if self._refill_task is not None:
            self._refill_task.cancel()
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def stop_and_drain(self, timeout_s: float = 2.0) -> list[Msg]:
        """Stop, and return every message delivered and not handed over, including those the
        server sent before it took in the stop: a plain unsubscribe drops them unacked, and
        they come back only after the ack wait. (One the server routes in the very instant it
        takes in the stop is dropped all the same: nothing here can catch it.)"""
        if self._refill_task is not None:
            self._refill_task.cancel()
        sub, self._sub = self._sub, None  # no pull request from here on
        if sub is not None:
            try:
                # UNSUB, then a round trip: what was sent before it has reached _on_message.
                # nats-py 2.16 leaves Subscription.drain unannotated.
                await asyncio.wait_for(sub.drain(), timeout_s)  # type: ignore[no-untyped-call]
            except Exception as error:  # the connection is gone or going: they come back anyway
                log.debug("pull subscription not drained: %r", error)
        rest = list(self._queue)
        self._queue.clear()
        return rest

    async def next_batch(self, limit: int, wait_s: float | None) -> list[Msg]:
        """Up to ``limit`` messages: those waiting now, or the first to arrive within
        ``wait_s`` seconds (``None``: wait as long as it takes). May return an empty list."""
        if not self._queue:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), wait_s)
            except TimeoutError:
                return []
        batch: list[Msg] = []
        while self._queue and len(batch) < limit:
            batch.append(self._queue.popleft())
        if self.auto_release:
            self.release(len(batch))
        return batch

    def wake(self) -> None:
        """Have a waiting :meth:`next_batch` return now (with what is queued, maybe nothing)."""
        self._arrived.set()

    def release(self, count: int = 1) -> None:
        """``count`` messages handed over earlier are done with: their slots may be refilled."""
        self._held -= count
        if self._sub is not None:
            asyncio.get_running_loop().create_task(self._top_up())

    async def _on_message(self, msg: Msg) -> None:
        status = msg.headers.get("Status") if msg.headers else None
        if status is None:
            self._credit -= 1
            self._held += 1
            self._queue.append(msg)
            self._arrived.set()
            return
        if status == "100":  # idle heartbeat: the request is alive
            return
        # 408 request expired, 409 limits or leadership change: the credit of that request
        # is gone; the server says how much of it was left.
        pending = msg.headers.get("Nats-Pending-Messages") if msg.headers else None
        self._credit -= int(pending) if pending and pending.isdigit() else self._credit
        self._credit = max(self._credit, 0)
        if status not in ("408", "404"):
            log.warning(
                "pull request ended: %s %s",
                status,
                msg.headers.get("Description") if msg.headers else "",
            )
        await self._top_up()

    async def _top_up(self) -> None:
        wanted = self.capacity - self._held - len(self._queue) - self._credit
        if self._sub is None or wanted <= 0:
            return
        if wanted < max(1, self.capacity // 4) and self._credit > 0:
            return  # enough is on the way; ask in larger chunks
        self._credit += wanted
        self._last_request = time.monotonic()
        request = {
            "batch": wanted,
            "expires": int(_EXPIRES_S * 1e9),
            "idle_heartbeat": int(_HEARTBEAT_S * 1e9),
        }
        try:
            await self._nc.publish(
                self._next_subject, json.dumps(request).encode(), reply=self._inbox
            )
        except Exception:  # the connection is reconnecting; the keep-alive asks again
            self._credit -= wanted
            log.exception("pull request not sent")

    async def _keep_alive(self) -> None:
        """Requests expire after 30 s, and vanish when the connection is re-established (the
        server forgets them): ask again before the one, at once after the other."""
        reconnects = self._reconnects()
        while True:
            await asyncio.sleep(_RECHECK_S)
            now_reconnects = self._reconnects()
            expiring = time.monotonic() - self._last_request > _EXPIRES_S - _HEARTBEAT_S
            if expiring or now_reconnects != reconnects:
                reconnects = now_reconnects
                self._credit = 0  # whatever was left of the old request is gone or going
                await self._top_up()

    def _reconnects(self) -> int:
        return int(self._nc.stats.get("reconnects", 0))
