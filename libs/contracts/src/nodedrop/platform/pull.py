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
import random
import time
from collections import deque
from collections.abc import Callable

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import ConnectionClosedError

from nodedrop.platform.waiting import event_set

log = logging.getLogger(__name__)

_EXPIRES_S = 30.0
_HEARTBEAT_S = 5.0
#: How often the keep-alive looks for an expiring request or a re-established connection.
_RECHECK_S = 0.5
#: After a pull request that could not be served (a 503 "no responders" while the consumer's
#: leader is being elected, a 409 other than the normal ones), the next waits a random time up
#: to this (full jitter), the bound doubling with each failure in a row up to _BACKOFF_MAX_S;
#: a message or heartbeat ends the streak. Asking again at once was answered at once: thousands
#: of requests and warnings a second for as long as an election lasts.
_BACKOFF_FIRST_S = 0.05
#: What a message adds to its payload in a pull's byte count (subject, reply and headers).
_MESSAGE_OVERHEAD = 64 * 1024
_BACKOFF_MAX_S = 2.0
#: 409s that end a pull request in the normal course of things: the consumer got a new leader
#: (which takes requests at once), a request's max_bytes was reached (the next message does not
#: fit in what is left of it; a consumer with ``max_bytes`` asks for at least the largest).
_NORMAL_409 = frozenset({"Leadership Change", "Batch Completed", "Message Size Exceeds MaxBytes"})


#: ``allot(consumer, wanted)``: how many of the ``wanted`` messages ``consumer`` may ask for now.
Allot = Callable[["PullConsumer", int], int]


class PullConsumer:
    def __init__(
        self,
        nc: NatsClient,
        stream: str,
        consumer: str,
        *,
        capacity: int = 256,
        arrived: asyncio.Event | None = None,
        allot: Allot | None = None,
        expires_s: float = _EXPIRES_S,
        max_bytes: int | None = None,
    ) -> None:
        self._nc = nc
        #: Bytes one pull request asks for at most (None: no bound), at least the largest
        #: message the server takes: a pull never splits one.
        self._max_bytes = (
            None if max_bytes is None else max(max_bytes, nc.max_payload + _MESSAGE_OVERHEAD)
        )
        self.stream = stream
        self._next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        #: How many messages may be requested but not yet handed over plus handed over and
        #: not yet released; callers that process messages one by one call :meth:`release`.
        self.capacity = capacity
        self._credit = 0  # messages requested from the server and not yet delivered
        self._held = 0  # messages delivered to us and not yet released
        self._queue: deque[Msg] = deque()
        #: Set when a message arrives; several consumers read as one share it (PullGroup).
        self._arrived = arrived or asyncio.Event()
        self._sub: Subscription | None = None
        self._inbox = ""
        self._last_request = 0.0
        self._refill_task: asyncio.Task[None] | None = None
        self.auto_release = True
        # Backoff after failed pull requests (see _BACKOFF_FIRST_S): none is sent before
        # _retry_at; _retry_timer tops up when it is reached.
        self._failures = 0  # pull requests failed in a row
        self._retry_at = 0.0
        self._retry_timer: asyncio.TimerHandle | None = None
        self._retry_task: asyncio.Task[None] | None = None
        self._backoff_first_s = _BACKOFF_FIRST_S
        self._backoff_max_s = _BACKOFF_MAX_S
        #: How much of what it could ask for it may ask for now (several consumers sharing one
        #: capacity: PullGroup); None: all of it.
        self._allot = allot
        self._expires_s = expires_s
        self._heartbeat_s = min(_HEARTBEAT_S, expires_s / 3)
        self._delivered = 0  # messages delivered, ever
        self._delivered_at_request = 0

    @property
    def credit(self) -> int:
        """Messages requested from the server and not yet delivered."""
        return self._credit

    @property
    def held(self) -> int:
        """Messages delivered and not yet released (queued ones included)."""
        return self._held

    @property
    def busy(self) -> bool:
        """Whether its last pull request delivered anything: its stream has work waiting."""
        return self._delivered > self._delivered_at_request

    async def start(self) -> None:
        self._inbox = self._nc.new_inbox()
        self._sub = await self._nc.subscribe(self._inbox, cb=self._on_message)
        await self._top_up()
        self._refill_task = asyncio.create_task(self._keep_alive())

    def _cancel_timers(self) -> None:
        if self._refill_task is not None:
            self._refill_task.cancel()
        if self._retry_timer is not None:
            self._retry_timer.cancel()

    async def stop(self) -> None:
        self._cancel_timers()
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def stop_and_drain(self, timeout_s: float = 2.0) -> list[Msg]:
        """Stop, and return every message delivered and not handed over, including those the
        server sent before it took in the stop: a plain unsubscribe drops them unacked, and
        they come back only after the ack wait. (One the server routes in the very instant it
        takes in the stop is dropped all the same: nothing here can catch it.)"""
        self._cancel_timers()
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

    @property
    def queued(self) -> int:
        return len(self._queue)

    def take(self, limit: int) -> list[Msg]:
        """Up to ``limit`` of the messages waiting now, without waiting."""
        batch: list[Msg] = []
        while self._queue and len(batch) < limit:
            batch.append(self._queue.popleft())
        if self.auto_release:
            self.release(len(batch))
        return batch

    async def next_batch(self, limit: int, wait_s: float | None) -> list[Msg]:
        """Up to ``limit`` messages: those waiting now, or the first to arrive within
        ``wait_s`` seconds (``None``: wait as long as it takes). May return an empty list."""
        if not self._queue:
            self._arrived.clear()
            if not await event_set(self._arrived, wait_s):
                return []
        return self.take(limit)

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
            self._delivered += 1
            if self._allot is not None and self._credit == 0:
                # Sharing a capacity, its credit is small: now that it has work, ask for more.
                asyncio.get_running_loop().create_task(self._top_up())
            self._queue.append(msg)
            self._arrived.set()
            self._end_failures()
            return
        if status == "100":  # idle heartbeat: the request is alive
            self._end_failures()
            return
        # 408 request expired, 409 limits or leadership change: the credit of that request
        # is gone; the server says how much of it was left.
        pending = msg.headers.get("Nats-Pending-Messages") if msg.headers else None
        self._credit -= int(pending) if pending and pending.isdigit() else self._credit
        self._credit = max(self._credit, 0)
        description = (msg.headers.get("Description") if msg.headers else None) or ""
        if _is_failure(status, description):
            self._note_failure(status, description)  # the top-up below waits for the backoff
        elif status not in ("408", "404"):
            log.warning("pull request ended: %s %s", status, description)
        await self._top_up()

    def _note_failure(self, status: str, description: str) -> None:
        """A pull request could not be served: no new one before a full-jitter exponential
        backoff. One warning per streak of failures; :meth:`_end_failures` tells its length."""
        self._failures += 1
        if self._failures == 1:
            log.warning(
                "pull request failed: %s %s; asking again with a backoff up to %.1f s "
                "(further failures are counted, not logged, until a request is served)",
                status,
                _describe(status, description),
                self._backoff_max_s,
            )
        exponent = min(self._failures - 1, 30)  # 2**30 * first_s is past any max_s
        bound = min(self._backoff_max_s, self._backoff_first_s * 2**exponent)
        self._retry_at = time.monotonic() + random.uniform(0, bound)
        if self._retry_timer is not None:  # set for the earlier bound
            self._retry_timer.cancel()
            self._retry_timer = None

    def _end_failures(self) -> None:
        """A message or heartbeat came: a pull request is served again; ends a streak."""
        if self._failures == 0:
            return
        log.warning(
            "pull requests served again after %d failed in a row (%d warnings suppressed)",
            self._failures,
            self._failures - 1,
        )
        self._failures = 0
        self._retry_now()

    def _retry_now(self) -> None:
        """Drop the wait: the next top-up asks at once (and one waiting for the backoff does)."""
        self._retry_at = 0.0
        if self._retry_timer is not None:
            self._retry_timer.cancel()
            self._retry_timer = None
            self._top_up_soon()

    def _backing_off(self) -> bool:
        """Whether a pull request must wait for the backoff; then one is asked for when it
        ends."""
        delay = self._retry_at - time.monotonic()
        if delay <= 0:
            return False
        if self._retry_timer is None:
            loop = asyncio.get_running_loop()
            self._retry_timer = loop.call_later(delay, self._backoff_ended)
        return True

    def _backoff_ended(self) -> None:
        self._retry_timer = None
        self._top_up_soon()

    async def top_up(self) -> None:
        """Ask for what may be asked for now (a group offering a member its turn)."""
        await self._top_up()

    def _top_up_soon(self) -> None:
        if self._sub is not None:  # else stopped: nothing to ask for
            self._retry_task = asyncio.get_running_loop().create_task(self._top_up())

    async def _top_up(self) -> None:
        # Held counts the queued messages too: they were delivered and not yet released.
        wanted = self.capacity - self._held - self._credit
        if self._allot is not None and wanted > 0:
            wanted = self._allot(self, wanted)
        if self._sub is None or wanted <= 0:
            return
        if wanted < max(1, self.capacity // 4) and self._credit > 0:
            return  # enough is on the way; ask in larger chunks
        if self._backing_off():
            return  # asked for when the backoff ends
        self._credit += wanted
        self._last_request = time.monotonic()
        self._delivered_at_request = self._delivered
        request = {
            "batch": wanted,
            "expires": int(self._expires_s * 1e9),
            "idle_heartbeat": int(self._heartbeat_s * 1e9),
        }
        if self._max_bytes is not None:
            request["max_bytes"] = self._max_bytes
        try:
            await self._nc.publish(
                self._next_subject, json.dumps(request).encode(), reply=self._inbox
            )
        except ConnectionClosedError:  # closed for good: the service is stopping
            self._credit -= wanted
            log.debug("pull request not sent: the connection is closed")
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
            # Alone, ask again just before a request expires (no gap without one). Sharing a
            # capacity, only once it surely has (its 408 lost): until then its credit may still
            # be delivered, and asking again could take more than the capacity.
            threshold = self._expires_s + (
                self._heartbeat_s if self._allot is not None else -self._heartbeat_s
            )
            expiring = time.monotonic() - self._last_request > threshold
            if expiring or now_reconnects != reconnects:
                if now_reconnects != reconnects:  # at once, backoff or not
                    self._retry_now()
                reconnects = now_reconnects
                self._credit = 0  # whatever was left of the old request is gone or going
                await self._top_up()

    def _reconnects(self) -> int:
        return int(self._nc.stats.get("reconnects", 0))


def _is_failure(status: str, description: str) -> bool:
    """Whether a pull request's end ``status`` says it could not be served (asking again at
    once would fail the same way): anything but expiry (408), no messages (404) and the normal
    409s. Mostly 503, no responders: the consumer has no leader (being elected) or no longer
    exists. Also the other 409s (Consumer Deleted, Exceeded MaxWaiting, Exceeded
    MaxRequestBatch/Expires/MaxBytes, Consumer is push based), 400 Bad Request, 412 Required
    Api Level and 423 (pin id mismatch)."""
    if status in ("408", "404"):
        return False
    return not (status == "409" and description.strip() in _NORMAL_409)


def _describe(status: str, description: str) -> str:
    # nats-py reads a 503 "no responders" status line without a description, so the next
    # header line ends up in it ("\nNats-Subject: ...").
    text = " ".join(description.split())
    return f"no responders ({text})" if status == "503" else text
