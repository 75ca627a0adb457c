"""Notices of new events for the WebSocket connections of one notifier.

One headers-only ordered consumer per partition, whatever the number of sockets, fans each
stored event's notice (its stream sequence) out to the sockets that follow its execution. A
socket registers before it reads the stored events, so every event stored after that read is
noticed, and an event it has read already is noticed at most once more and skipped: the read
(docs/api.md, "WebSocket") stays exact. The consumer of a partition is created with its first
socket and deleted with its last one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from nodedrop.contracts.routing import Layout, all_events, execution_id_of, is_event_subject

log = logging.getLogger(__name__)

#: Notices waiting for the callback on the NATS connection (headers only, a few hundred bytes
#: each); the callback only records the highest sequence per socket, so they never pile up for
#: a slow client.
_PENDING_NOTICES = 1 << 20


class Notices:
    """What one socket learns from its partition's consumer: the highest sequence noticed for
    its execution (the values in between are not kept: the socket reads every stored event
    after the last it sent, whatever was noticed), or that the consumer is gone."""

    def __init__(self) -> None:
        self.latest = 0
        self._changed = asyncio.Event()

    def notice(self, seq: int) -> None:
        if seq > self.latest:
            self.latest = seq
            self._changed.set()

    async def after(self, seq: int) -> int:
        """The highest sequence noticed, once it is above ``seq``."""
        while self.latest <= seq:
            self._changed.clear()
            await self._changed.wait()
        return self.latest


class _PartitionFeed:
    """One partition's consumer and the sockets it serves, by execution."""

    def __init__(self, js: JetStreamContext, stream: str) -> None:
        self._js = js
        self._stream = stream
        self._watchers: dict[str, set[Notices]] = {}
        self._sub: JetStreamContext.PushSubscription | None = None
        self._lock = asyncio.Lock()

    async def add(self, execution_id: str, notices: Notices) -> None:
        async with self._lock:
            if self._sub is None:
                self._sub = await self._subscribe()
            self._watchers.setdefault(execution_id, set()).add(notices)

    async def remove(self, execution_id: str, notices: Notices) -> None:
        async with self._lock:
            watchers = self._watchers.get(execution_id, set())
            watchers.discard(notices)
            if not watchers:
                self._watchers.pop(execution_id, None)
            if not self._watchers and self._sub is not None:
                sub, self._sub = self._sub, None
                await _drop(self._js, self._stream, sub)

    async def _subscribe(self) -> JetStreamContext.PushSubscription:
        # From the next event on: a socket reads what is stored already itself.
        last = (await self._js.stream_info(self._stream)).state.last_seq
        sub = await self._js.subscribe(
            all_events(),
            stream=self._stream,
            ordered_consumer=True,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=last + 1,
                headers_only=True,
            ),
            cb=self._deliver,
            pending_msgs_limit=_PENDING_NOTICES,
        )
        # nats-py restarts an ordered consumer after the last sequence it delivered (0 before
        # the first): without this, a restart before any event would notice the whole stream.
        state = sub._sub._jsi
        if state is not None and state._sseq < last:
            state._sseq = last
        return sub

    async def _deliver(self, msg: Msg) -> None:
        if not is_event_subject(msg.subject):
            return
        watchers = self._watchers.get(execution_id_of(msg.subject))
        if watchers:
            seq = msg.metadata.sequence.stream
            for notices in watchers:
                notices.notice(seq)


class NoticeFeed:
    """The notifier's notices, one consumer per partition that has sockets open."""

    def __init__(self, js: JetStreamContext, layout: Layout) -> None:
        self._js = js
        self._layout = layout
        self._partitions: dict[int, _PartitionFeed] = {}

    @contextlib.asynccontextmanager
    async def watch(self, execution_id: str) -> AsyncIterator[Notices]:
        """Notices of ``execution_id``'s events stored from now on, while the context lasts."""
        partition = self._layout.partition_of(execution_id)
        feed = self._partitions.get(partition)
        if feed is None:
            feed = _PartitionFeed(self._js, self._layout.stream(partition))
            self._partitions[partition] = feed
        notices = Notices()
        await feed.add(execution_id, notices)
        try:
            yield notices
        finally:
            await asyncio.shield(feed.remove(execution_id, notices))


async def _drop(js: JetStreamContext, stream: str, sub: JetStreamContext.PushSubscription) -> None:
    # The ordered consumer is ephemeral and would expire on its own; deleting it now frees the
    # server at once.
    with contextlib.suppress(Exception):
        await sub.unsubscribe()
    with contextlib.suppress(Exception):
        await js.delete_consumer(stream, sub._consumer)
