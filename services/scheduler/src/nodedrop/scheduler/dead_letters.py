"""Acting on dead letters: events a consumer gave up on fail their execution.

A consumer gives up on a message of the events stream in two ways, and JetStream announces
both with an advisory: it terminates a message that does not decode (``MSG_TERMINATED``), or
the server stops redelivering one that was delivered ``max_deliver`` times without an ack
(``MAX_DELIVERIES``). The stream ``NODEDROP_DEAD_LETTERS`` captures those advisories: it is the
durable record of every dead letter (consumer, stream sequence, deliveries), and the message
itself stays in the events stream at that sequence.

For each dead letter this process logs it and, when the message was on the subject of an
execution that was requested and has not finished, records an ``ExecutionCancelRequested``
with ``reason: "dead_letter"`` (one per execution: a deterministic id). That request comes
back as an input, in stream order, and the core ends the execution ``failed`` with error type
``DeadLetter``: nothing waits forever on an event that will never be processed.

If that request is given up on as well (the core fails on everything of the execution, a bug),
this process records the end itself: the parent's report first when a parent waits for it, then
``ExecutionFinished`` ``failed``. Without an end in the log the execution would hold its
concurrency slots and its parent's node for good; with one, a full limit drops it
(:mod:`nodedrop.scheduler.admission`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from nodedrop.contracts import codec, ids, subjects
from nodedrop.contracts.errors import DEAD_LETTER
from nodedrop.contracts.events import (
    SCHEDULER_ACTOR,
    ChildExecutionFinished,
    ErrorInfo,
    Event,
    ExecutionCancelRequested,
    ExecutionFinished,
    ExecutionRequested,
)
from nodedrop.contracts.routing import execution_id_of, is_event_subject
from nodedrop.platform.bus import EventPublisher
from nodedrop.platform.history import read_execution
from nodedrop.platform.metrics import DEAD_LETTERS
from nodedrop.platform.pull import PullConsumer
from nodedrop.scheduler.core.decide import DEAD_LETTERED

log = logging.getLogger(__name__)

#: A dead letter that could not be acted on (NATS away) comes back after this long.
_RETRY_S = 2.0


@dataclass(frozen=True)
class DeadLetter:
    """What an advisory says about a message given up on."""

    kind: str  # "terminated" or "max_deliveries"
    stream: str
    consumer: str
    stream_seq: int
    deliveries: int

    @classmethod
    def parse(cls, subject: str, data: bytes) -> DeadLetter | None:
        try:
            advisory = json.loads(data)
            return cls(
                kind="max_deliveries" if ".MAX_DELIVERIES." in subject else "terminated",
                stream=str(advisory["stream"]),
                consumer=str(advisory["consumer"]),
                stream_seq=int(advisory["stream_seq"]),
                deliveries=int(advisory.get("deliveries", 0)),
            )
        except (ValueError, KeyError, TypeError):
            return None


class DeadLetters:
    def __init__(
        self,
        nc: NatsClient,
        js: JetStreamContext,
        *,
        clock: Callable[[], datetime],
        publisher: EventPublisher | None = None,
    ) -> None:
        self._nc = nc
        self._js = js
        self._clock = clock
        self._publisher = publisher or EventPublisher(js)
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        consumer = PullConsumer(
            self._nc, subjects.DEAD_LETTERS_STREAM, subjects.DEAD_LETTERS_CONSUMER, capacity=64
        )
        await consumer.start()
        try:
            while not self._stopping.is_set():
                for msg in await consumer.next_batch(64, 1.0):
                    await self._settle(msg)
        finally:
            await consumer.stop()

    async def _settle(self, msg: Msg) -> None:
        try:
            await self.handle(msg.subject, msg.data)
        except Exception:  # NATS away, a history read timed out: try again later
            log.warning("acting on a dead letter failed; retrying", exc_info=True)
            await msg.nak(delay=_RETRY_S)
        else:
            await msg.ack()

    async def handle(self, subject: str, data: bytes) -> str | None:
        """Log one dead letter and fail its execution if it has one that is still running;
        returns that execution's id."""
        letter = DeadLetter.parse(subject, data)
        if letter is None:
            log.error("an advisory on %s that does not parse, ignored: %r", subject, data[:200])
            return None
        given_up: Event | None = None
        try:
            original = await self._js.get_msg(letter.stream, letter.stream_seq)
            on = original.subject or ""
            with contextlib.suppress(ValueError):
                given_up = codec.decode(original.data or b"")
        except NotFoundError:  # pruned since
            on = ""
        log.error(
            "dead letter: consumer %s gave up on stream seq %d on %r (%s after %d deliveries)",
            letter.consumer,
            letter.stream_seq,
            on,
            letter.kind,
            letter.deliveries,
        )
        DEAD_LETTERS.labels(letter.kind).inc()
        if not is_event_subject(on):
            return None
        execution_id = execution_id_of(on)
        stored = await read_execution(self._js, execution_id, layout=self._publisher.layout)
        history = [event for _, event in stored]
        request = next((e for e in history if isinstance(e, ExecutionRequested)), None)
        if request is None or any(isinstance(e, ExecutionFinished) for e in history):
            return None
        cancel_id = ids.execution_dead_lettered(execution_id)
        if given_up is not None and given_up.event_id == cancel_id:
            log.error(
                "the scheduler could not end execution %s after a dead letter either; "
                "recording its end",
                execution_id,
            )
            for event in self._end_without_the_core(request):
                await self._publisher.publish([event])  # in this order: the end comes last
            return execution_id
        log.error("failing execution %s: one of its events was dead-lettered", execution_id)
        await self._publisher.publish(
            [
                ExecutionCancelRequested(
                    event_id=cancel_id,
                    execution_id=execution_id,
                    time=self._clock(),
                    requested_by=SCHEDULER_ACTOR,
                    reason=DEAD_LETTERED,
                )
            ]
        )
        return execution_id

    def _end_without_the_core(self, request: ExecutionRequested) -> list[Event]:
        """The execution's end, ``failed``, and its report to a parent waiting for it (what
        the core would record, minus the outputs it could not work out)."""
        now = self._clock()
        error = ErrorInfo(
            type=DEAD_LETTER,
            message=(
                "the scheduler could not process this execution's events, nor end it, and "
                "gave up on them (the scheduler's log and the dead-letter stream name them)"
            ),
            retryable=False,
        )
        execution_id = request.execution_id
        events: list[Event] = []
        if request.report_to_parent and request.parent_execution and request.parent_node:
            events.append(
                ChildExecutionFinished(
                    event_id=ids.child_finished(request.parent_execution, execution_id),
                    execution_id=request.parent_execution,
                    time=now,
                    node=request.parent_node,
                    attempt=request.parent_attempt,
                    index=request.child_index,
                    child=execution_id,
                    status="failed",
                    error=error,
                )
            )
        events.append(
            ExecutionFinished(
                event_id=ids.execution_finished(execution_id),
                execution_id=execution_id,
                time=now,
                status="failed",
                error=error,
            )
        )
        return events
