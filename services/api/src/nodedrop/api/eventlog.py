"""The API's door to the event stream: append an event after its PubAck, read one execution's
events back, look up its last event of a type. The stream is the source of truth; the projection
in PostgreSQL lags behind it.
"""

from __future__ import annotations

import logging
from typing import TypeVar

import nats.errors
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from nodedrop.api.errors import PayloadTooLargeError, ServiceUnavailableError
from nodedrop.contracts.codec import EventDecodeError, decode, encode
from nodedrop.contracts.events import AnyEvent, Event, type_name
from nodedrop.contracts.routing import Layout, event_subject, execution_subject
from nodedrop.platform.history import read_execution
from nodedrop.platform.jetstream import StreamSettings
from nodedrop.platform.metrics import PUBLISH_SECONDS
from nodedrop.platform.retry import retry_unavailable

log = logging.getLogger(__name__)
#: Publishes of one event while the log answers 503 or nothing (full jitter from 0.2 s to 2 s
#: a pause: up to ~9 s, as long as a leader election on a loaded cluster).
_PUBLISH_ATTEMPTS = 8

E = TypeVar("E", bound=Event)
Sequenced = tuple[AnyEvent, int]


class EventLog:
    def __init__(
        self,
        nc: NatsClient,
        js: JetStreamContext,
        *,
        timeout_s: float = 5.0,
        max_msg_size: int = StreamSettings().max_msg_size,
        layout: Layout | None = None,
    ) -> None:
        self._nc = nc
        self._js = js
        self._layout = layout or Layout()
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
            # While a stream's leader is elected (seconds, on a cluster) publishes get no answer
            # or a 503: ask again rather than refuse the request. Safe after a timeout too: the
            # event id is the message id, so a copy that was stored is answered, not stored twice.
            with PUBLISH_SECONDS.time():  # as the client waits for it: retries included
                ack = await retry_unavailable(
                    lambda: self._js.publish(
                        event_subject(event),
                        payload,
                        timeout=self._timeout_s,
                        stream=self._layout.stream_of(event.execution_id),
                        headers={"Nats-Msg-Id": event.event_id},
                    ),
                    what=f"publish {type_name(event)}",
                    attempts=_PUBLISH_ATTEMPTS,
                    first_s=0.2,
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
        subject = execution_subject(execution_id, type_name(event_type))
        stream = self._layout.stream_of(execution_id)
        try:
            raw = await self._js.get_last_msg(stream, subject, direct=True)
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
        """Every event of the execution with a stream sequence above ``after_seq``, in order."""
        try:
            stored = await read_execution(
                self._js,
                execution_id,
                layout=self._layout,
                after_seq=after_seq,
                timeout_s=self._timeout_s,
            )
        except (nats.errors.Error, OSError) as error:
            raise ServiceUnavailableError(
                f"the event log (NATS JetStream) cannot be read ({type(error).__name__})"
            ) from error
        return [(event, seq) for seq, event in stored]


def _decode(data: bytes, seq: int | None) -> AnyEvent | None:
    try:
        return decode(data)
    except EventDecodeError as error:
        # An event this version does not know (a newer writer): skipped, not fatal.
        log.warning("undecodable event at stream seq %s skipped: %s", seq, error)
        return None
