"""The API's door to the event stream: append an event after its PubAck, read one execution's
events back, look up its last event of a type. The stream is the source of truth; the projection
in PostgreSQL lags behind it.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TypeVar

import nats.errors
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from nodedrop.api.errors import PayloadTooLargeError, ServiceUnavailableError
from nodedrop.contracts import subjects
from nodedrop.contracts.codec import EventDecodeError, decode, encode
from nodedrop.contracts.events import AnyEvent, Event, type_name
from nodedrop.contracts.jetstream import StreamSettings

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)
Sequenced = tuple[AnyEvent, int]

_FETCH_BATCH = 256


class EventLog:
    def __init__(
        self,
        nc: NatsClient,
        js: JetStreamContext,
        *,
        timeout_s: float = 5.0,
        max_msg_size: int = StreamSettings().max_msg_size,
    ) -> None:
        self._nc = nc
        self._js = js
        self._timeout_s = timeout_s
        self._max_msg_size = max_msg_size

    @property
    def max_event_size(self) -> int:
        return min(self._nc.max_payload, self._max_msg_size)

    async def append(self, event: Event) -> int:
        """Publish ``event`` and return its stream sequence once JetStream has acknowledged it.
        Its ``event_id`` is the ``Nats-Msg-Id``: a repeat within the duplicate window is dropped
        and answered with the first copy's sequence."""
        payload = encode(event)
        if len(payload) > self.max_event_size:
            raise PayloadTooLargeError(
                f"the {type_name(event)} event would be {len(payload)} bytes; "
                f"the event log accepts at most {self.max_event_size}"
            )
        try:
            ack = await self._js.publish(
                subjects.event_subject(event),
                payload,
                timeout=self._timeout_s,
                stream=subjects.EVENTS_STREAM,
                headers={"Nats-Msg-Id": event.event_id},
            )
        except nats.errors.MaxPayloadError as error:
            raise PayloadTooLargeError(
                f"the {type_name(event)} event is too large: {error}"
            ) from error
        except (nats.errors.TimeoutError, TimeoutError) as error:
            # Sent, but no PubAck: it may be stored. (While disconnected nothing is sent at all:
            # the client is connected with no reconnect buffer, so publishing fails at once.)
            log.warning("no PubAck for %s: %r", event.event_id, error)
            raise ServiceUnavailableError(
                f"the event log (NATS JetStream) did not confirm the {type_name(event)} event "
                f"of execution {event.execution_id} in time; it may or may not have been "
                f"recorded, try again later"
            ) from error
        except (nats.errors.Error, OSError) as error:
            log.warning("publishing %s failed: %r", event.event_id, error)
            raise ServiceUnavailableError(
                f"the event log (NATS JetStream) did not accept the {type_name(event)} event "
                f"({type(error).__name__}); nothing was recorded, try again later"
            ) from error
        return ack.seq

    async def last(self, execution_id: str, event_type: type[E]) -> tuple[E, int] | None:
        """The execution's last event of ``event_type`` and its sequence (a direct get)."""
        subject = subjects.execution_subject(execution_id, type_name(event_type))
        try:
            raw = await self._js.get_last_msg(subjects.EVENTS_STREAM, subject, direct=True)
        except NotFoundError:
            return None
        except (nats.errors.Error, OSError) as error:
            raise ServiceUnavailableError(
                f"the event log (NATS JetStream) cannot be read ({type(error).__name__})"
            ) from error
        event = _decode(raw.data or b"", raw.seq)
        if not isinstance(event, event_type) or raw.seq is None:
            return None
        return event, raw.seq

    async def read(self, execution_id: str, after_seq: int = 0) -> list[Sequenced]:
        """Every event of the execution with a stream sequence above ``after_seq``, in order,
        up to what is stored when the read starts."""
        config = ConsumerConfig(
            name=self._nc.new_inbox().rsplit(".", 1)[-1],
            description=f"api: events of {execution_id}",
            filter_subject=subjects.execution_subject(execution_id),
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=after_seq + 1,
            ack_policy=AckPolicy.NONE,
            # Ephemeral: gone soon even if this process dies before deleting it.
            inactive_threshold=30.0,
            mem_storage=True,
            num_replicas=1,
        )
        try:
            info = await self._js.add_consumer(subjects.EVENTS_STREAM, config)
            try:
                return await self._drain(info.name, info.num_pending or 0)
            finally:
                with contextlib.suppress(NotFoundError):
                    await self._js.delete_consumer(subjects.EVENTS_STREAM, info.name)
        except (nats.errors.Error, OSError) as error:
            raise ServiceUnavailableError(
                f"the event log (NATS JetStream) cannot be read ({type(error).__name__})"
            ) from error

    async def _drain(self, consumer: str, pending: int) -> list[Sequenced]:
        events: list[Sequenced] = []
        if pending == 0:
            return events
        sub = await self._js.pull_subscribe_bind(consumer=consumer, stream=subjects.EVENTS_STREAM)
        try:
            remaining = pending
            while remaining > 0:
                for msg in await sub.fetch(min(_FETCH_BATCH, remaining), timeout=self._timeout_s):
                    seq = msg.metadata.sequence.stream
                    remaining = min(remaining - 1, msg.metadata.num_pending)
                    event = _decode(msg.data, seq)
                    if event is not None:
                        events.append((event, seq))
        finally:
            await sub.unsubscribe()
        return events


def _decode(data: bytes, seq: int | None) -> AnyEvent | None:
    try:
        return decode(data)
    except EventDecodeError as error:
        # An event this version does not know (a newer writer): skipped, not fatal.
        log.warning("undecodable event at stream seq %s skipped: %s", seq, error)
        return None
