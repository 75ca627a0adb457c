"""Event (de)serialization: msgspec JSON on the wire, the public JSON shape for clients."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from nodedrop.contracts.events import SCHEDULER_ACTOR, AnyEvent, Event, type_name

#: The largest message the events stream stores (its ``max_msg_size``) and the nats-servers
#: accept (``max_payload: 8MB`` in infra/nats/*.conf): an encoded event and its headers must fit.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024

_encoder = msgspec.json.Encoder()
_decoder: msgspec.json.Decoder[AnyEvent] = msgspec.json.Decoder(AnyEvent)

#: Fields lifted out of ``data`` in the public event shape (docs/api.md, "Endpoints"), or
#: left out of it: a decision's ``cause`` is the scheduler's record for replaying the history
#: (``nodedrop audit --verify`` reads it from the stream), not something it says to clients.
_ENVELOPE = frozenset({"type", "event_id", "execution_id", "time", "v", "node", "attempt", "cause"})


class EventDecodeError(ValueError):
    """Bytes on an event subject that are not an event of this catalogue."""


def encode(event: Event) -> bytes:
    return _encoder.encode(event)


def encoded_size(value: Any) -> int:
    """Bytes of ``value`` (items, parameters: any part of an event) as encoded inside one."""
    return len(_encoder.encode(value))


def decode(data: bytes) -> AnyEvent:
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as error:
        raise EventDecodeError(str(error)) from error


def to_public(event: Event, seq: int) -> dict[str, Any]:
    """``{"seq", "type", "time", "execution_id", "node", "attempt", "data"}`` for clients, plus
    ``event_id``, the event's schema version ``v``, and ``actor``: the user who caused the event
    (its ``requested_by``: a request or a cancel), ``None`` for what the system did by itself."""
    raw: dict[str, Any] = msgspec.to_builtins(event)
    return {
        "seq": seq,
        "type": type_name(event),
        "time": raw["time"],
        "execution_id": event.execution_id,
        "node": raw.get("node"),
        "attempt": raw.get("attempt"),
        "event_id": event.event_id,
        "v": event.v,
        "actor": _actor(raw.get("requested_by")),
        "data": {k: v for k, v in raw.items() if k not in _ENVELOPE},
    }


def from_public(public: Mapping[str, Any]) -> AnyEvent:
    """The event :func:`to_public` made ``public`` from (a client of the API folds these);
    :class:`EventDecodeError` if it is no event of this catalogue (a type newer than this
    release, a field missing)."""
    data = public.get("data")
    if not isinstance(data, Mapping):
        raise EventDecodeError("the event has no data object")
    # Envelope fields an event does not have are null in the public shape (and left out here);
    # a public shape without `v` (from an older server) is version 1.
    envelope = {k: public[k] for k in _ENVELOPE if public.get(k) is not None}
    return decode(_encoder.encode({**data, **envelope}))


def _actor(requested_by: str | None) -> str | None:
    return None if requested_by == SCHEDULER_ACTOR else requested_by
