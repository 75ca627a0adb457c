"""Recording events in the log: batched, deduplicated, acknowledged, routed to partitions.

Every event is published with ``Nats-Msg-Id`` = its deterministic ``event_id``, so publishing the
same decision twice (a retry after a timeout, a redelivered input) stores it once. A batch is
sent without waiting between messages and then awaited as a whole: one round trip per batch,
not per event. Order within one connection is kept by the server; each event goes to its
execution's partition (:mod:`nodedrop.contracts.routing`), so a batch may span several streams.

A partition's owner publishes under its fence (:meth:`EventPublisher.publish` with ``fences``):
each event carries the sequence of the fence its owner wrote when it took the partition, and
the stream stores it only while that is still the partition's last fence. A late writer whose
partition was taken over gets :class:`FencedError` and nothing of it is stored.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Mapping, Sequence

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.errors import APIError

from nodedrop.contracts import codec
from nodedrop.contracts.events import Event
from nodedrop.contracts.routing import Layout, event_subject

MSG_ID = "Nats-Msg-Id"
_EXPECTED_STREAM = "Nats-Expected-Stream"
_EXPECTED_FENCE = "Nats-Expected-Last-Subject-Sequence"
_FENCE_SUBJECT = "Nats-Expected-Last-Subject-Sequence-Subject"
#: JetStream's error code for a failed ``Nats-Expected-Last-Subject-Sequence``.
_WRONG_LAST_SEQUENCE = 10071


class PublishError(RuntimeError):
    """The log did not acknowledge every event of a batch (nothing is known about which)."""


class FencedError(PublishError):
    """A partition's fence moved on: another process owns it now. Events of other partitions
    of the same batch may have been stored."""


class EventPublisher:
    def __init__(
        self, js: JetStreamContext, layout: Layout | None = None, *, timeout_s: float = 5.0
    ) -> None:
        self._js = js
        self._layout = layout or Layout.from_env()
        self._timeout_s = timeout_s
        self._acks = _Acks(js)

    @property
    def layout(self) -> Layout:
        return self._layout

    async def publish(
        self,
        events: Sequence[Event],
        headers: dict[str, str] | None = None,
        *,
        fences: Mapping[int, int] | None = None,
    ) -> list[int]:
        """Record ``events`` in order; return their stream sequences (a duplicate's is the
        original's, in its partition's stream). With ``fences`` (partition -> the sequence of
        the caller's fence) each event is stored only under its partition's fence: raises
        :class:`FencedError` if one moved on, :class:`PublishError` for an event of a
        partition not in ``fences`` or anything else; retrying with the same events is safe."""
        if not events:
            return []
        try:
            futures = [
                await self._acks.publish(
                    event_subject(event),
                    codec.encode(event),
                    {
                        _EXPECTED_STREAM: self._layout.stream_of(event.execution_id),
                        MSG_ID: event.event_id,
                        **(headers or {}),
                        **self._fence_headers(event, fences),
                    },
                )
                for event in events
            ]
            acks = await asyncio.wait_for(asyncio.gather(*futures), self._timeout_s)
        except APIError as error:
            if error.err_code == _WRONG_LAST_SEQUENCE:
                raise FencedError(f"a partition was taken over: {error!r}") from error
            raise PublishError(f"events not acknowledged: {error!r}") from error
        except (TimeoutError, ConnectionError) as error:
            raise PublishError(f"events not acknowledged: {error!r}") from error
        return acks

    def _fence_headers(self, event: Event, fences: Mapping[int, int] | None) -> dict[str, str]:
        if fences is None:
            return {}
        partition = self._layout.partition_of(event.execution_id)
        fence = fences.get(partition)
        if fence is None:
            raise FencedError(f"partition {partition} is not owned here")
        return {_EXPECTED_FENCE: str(fence), _FENCE_SUBJECT: self._layout.fence_subject(partition)}

    async def publish_first(self, event: Event) -> bool:
        """Record one event and say whether this call stored it: False when the log already
        held an event with its id (within the duplicate window), i.e. someone recorded it
        first. Raises :class:`PublishError` when the log does not answer (then either may
        be true)."""
        try:
            ack = await self._js.publish(
                event_subject(event),
                codec.encode(event),
                timeout=self._timeout_s,
                stream=self._layout.stream_of(event.execution_id),
                headers={MSG_ID: event.event_id},
            )
        except (TimeoutError, APIError, ConnectionError) as error:
            raise PublishError(f"event not acknowledged: {error!r}") from error
        return not ack.duplicate

    async def write_fence(self, partition: int, owner: str) -> int:
        """Take ``partition`` over: store a new fence and return its sequence. Every publish
        under an earlier fence of the partition is refused from then on."""
        try:
            ack = await self._js.publish(
                self._layout.fence_subject(partition),
                owner.encode(),
                timeout=self._timeout_s,
                stream=self._layout.stream(partition),
            )
        except (TimeoutError, APIError, ConnectionError) as error:
            raise PublishError(f"fence of partition {partition} not stored: {error!r}") from error
        return ack.seq


class _Acks:
    """Publishes whose acknowledgements are awaited together: one reply subscription, one
    future per message, resolved with its stream sequence or failed with the stream's error.
    (nats-py's ``publish_async`` leaves its future pending when the stream answers with an
    error, so a refused publish would look like a timeout.)"""

    def __init__(self, js: JetStreamContext) -> None:
        self._nc = js._nc  # the client the context publishes with (nats-py exposes no accessor)
        self._prefix = ""
        self._sub: Subscription | None = None
        self._tokens = itertools.count()
        self._waiting: dict[str, asyncio.Future[int]] = {}

    async def publish(
        self, subject: str, payload: bytes, headers: dict[str, str]
    ) -> asyncio.Future[int]:
        if self._sub is None or self._sub._closed:
            self._prefix = self._nc.new_inbox()
            self._sub = await self._nc.subscribe(f"{self._prefix}.*", cb=self._answered)
        token = str(next(self._tokens))
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting[token] = future
        future.add_done_callback(lambda _: self._waiting.pop(token, None))
        await self._nc.publish(subject, payload, reply=f"{self._prefix}.{token}", headers=headers)
        return future

    async def _answered(self, msg: Msg) -> None:
        future = self._waiting.get(msg.subject.rsplit(".", 1)[-1])
        if future is None or future.done():
            return
        if msg.headers and msg.headers.get("Status") == "503":
            future.set_exception(ConnectionError("no stream answered (503)"))
            return
        try:
            answer = json.loads(msg.data)
        except ValueError as error:
            future.set_exception(PublishError(f"unreadable acknowledgement: {error}"))
            return
        if "error" in answer:
            refused = answer["error"]
            future.set_exception(
                APIError(
                    code=refused.get("code"),
                    err_code=refused.get("err_code"),
                    description=refused.get("description"),
                )
            )
            return
        future.set_result(int(answer["seq"]))
