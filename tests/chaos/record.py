"""What the log holds, read back whole (every partition's stream) and summarised for the checks.

A message is known by its stream and its sequence in it (:attr:`Stored.key`): sequences repeat
across partitions. The messages come partition by partition, each partition's in stream order
(an execution's events are all in one partition, so each execution's are in order)."""

from __future__ import annotations

import contextlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from nats.js import JetStreamContext

from nodedrop.contracts import codec
from nodedrop.contracts.events import (
    AnyEvent,
    ExecutionFinished,
    ExecutionRequested,
    NodeFailed,
    NodeReady,
    type_name,
)
from nodedrop.contracts.routing import Layout, all_events
from nodedrop.platform.bus import MSG_ID
from nodedrop.platform.history import read_batches


@dataclass(frozen=True)
class Stored:
    seq: int
    subject: str
    msg_id: str | None
    #: None: the message does not decode as an event.
    event: AnyEvent | None
    data: bytes = b""
    #: The partition stream it is stored in.
    stream: str = ""

    @property
    def key(self) -> tuple[str, int]:
        """Where it is stored: (stream, sequence)."""
        return (self.stream, self.seq)


@dataclass
class StreamRecord:
    messages: list[Stored] = field(default_factory=list)

    def without(self, keys: frozenset[tuple[str, int]]) -> StreamRecord:
        """The record without the messages at ``keys`` ((stream, sequence): e.g. copies a
        scenario stored)."""
        return StreamRecord([m for m in self.messages if m.key not in keys])

    @property
    def by_key(self) -> dict[tuple[str, int], Stored]:
        return {m.key: m for m in self.messages}

    def events(self) -> list[AnyEvent]:
        return [m.event for m in self.messages if m.event is not None]

    def executions(self) -> set[str]:
        """Executions the stream holds a request for."""
        return {e.execution_id for e in self.events() if isinstance(e, ExecutionRequested)}

    def finished(self) -> Counter[str]:
        """``ExecutionFinished`` messages stored per execution."""
        return Counter(e.execution_id for e in self.events() if isinstance(e, ExecutionFinished))

    def statuses(self) -> dict[str, str]:
        return {e.execution_id: e.status for e in self.events() if isinstance(e, ExecutionFinished)}

    def repeated_ids(self) -> Counter[str]:
        """Event ids stored more than once (a publisher's retry the duplicate window missed)."""
        ids = Counter(m.msg_id for m in self.messages if m.msg_id is not None)
        return Counter({key: n for key, n in ids.items() if n > 1})

    def attempts(self) -> dict[tuple[str, str], int]:
        """The attempts made of each (execution, node): the highest ``NodeReady`` attempt."""
        made: dict[tuple[str, str], int] = defaultdict(int)
        for event in self.events():
            if isinstance(event, NodeReady):
                key = (event.execution_id, event.node)
                made[key] = max(made[key], event.attempt)
        return dict(made)

    def failures(self, error_type: str | None = None) -> list[NodeFailed]:
        return [
            e
            for e in self.events()
            if isinstance(e, NodeFailed) and (error_type is None or e.error.type == error_type)
        ]

    def count(self, event_type: str) -> int:
        return sum(1 for e in self.events() if type_name(e) == event_type)


async def read_stream(js: JetStreamContext, layout: Layout | None = None) -> StreamRecord:
    """Every event message of every partition of ``layout`` (default: from the environment)."""
    record = StreamRecord()
    for stream in (layout or Layout.from_env()).streams:
        batches = read_batches(
            js, stream=stream, filter_subject=all_events(), description="nodedrop chaos check"
        )
        async with contextlib.aclosing(batches):
            async for msgs in batches:
                for msg in msgs:
                    try:
                        event: AnyEvent | None = codec.decode(msg.data)
                    except codec.EventDecodeError:
                        event = None
                    record.messages.append(
                        Stored(
                            msg.metadata.sequence.stream,
                            msg.subject,
                            (msg.headers or {}).get(MSG_ID),
                            event,
                            msg.data,
                            stream,
                        )
                    )
    return record
