"""Recording events in the stream: batched, deduplicated, acknowledged.

Every event is published with ``Nats-Msg-Id`` = its deterministic ``event_id``, so publishing the
same decision twice (a retry after a timeout, a redelivered input) stores it once. A batch is
sent without waiting between messages and then awaited as a whole: one round trip per batch,
not per event. Order within one connection is kept by the server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from nats.js import JetStreamContext
from nats.js.errors import APIError

from nodedrop.contracts import codec, subjects
from nodedrop.contracts.events import Event

MSG_ID = "Nats-Msg-Id"


class PublishError(RuntimeError):
    """The stream did not acknowledge every event of a batch (nothing is known about which)."""


class EventPublisher:
    def __init__(self, js: JetStreamContext, *, timeout_s: float = 5.0) -> None:
        self._js = js
        self._timeout_s = timeout_s

    async def publish(
        self, events: Sequence[Event], headers: dict[str, str] | None = None
    ) -> list[int]:
        """Record ``events`` in order; return their stream sequences (a duplicate's is the
        original's). Raises :class:`PublishError`; retrying with the same events is safe."""
        if not events:
            return []
        try:
            futures = [
                await self._js.publish_async(
                    subjects.event_subject(event),
                    codec.encode(event),
                    stream=subjects.EVENTS_STREAM,
                    headers={MSG_ID: event.event_id, **(headers or {})},
                )
                for event in events
            ]
            acks = await asyncio.wait_for(asyncio.gather(*futures), self._timeout_s)
        except (TimeoutError, APIError, ConnectionError) as error:
            raise PublishError(f"events not acknowledged: {error!r}") from error
        return [ack.seq for ack in acks]

    async def publish_first(self, event: Event) -> bool:
        """Record one event and say whether this call stored it: False when the stream already
        held an event with its id (within the duplicate window), i.e. someone recorded it
        first. Raises :class:`PublishError` when the stream does not answer (then either may
        be true)."""
        try:
            ack = await self._js.publish(
                subjects.event_subject(event),
                codec.encode(event),
                timeout=self._timeout_s,
                stream=subjects.EVENTS_STREAM,
                headers={MSG_ID: event.event_id},
            )
        except (TimeoutError, APIError, ConnectionError) as error:
            raise PublishError(f"event not acknowledged: {error!r}") from error
        return not ack.duplicate
