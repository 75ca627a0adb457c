"""Which node attempts run in this process, and stopping them when their execution says so.

Every runner hears every ``NodeCancelled`` and ``ExecutionFinished`` (plain NATS subscriptions:
a stop signal is only useful live, and each runner must see all of them, which a shared durable
consumer would not do). Stops for work not running here are remembered for a while, so a task
pulled just after its execution ended is dropped instead of run.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

from nodedrop.contracts import codec
from nodedrop.contracts.events import (
    ErrorInfo,
    ExecutionFinished,
    NodeCancelled,
    NodeReady,
    WorkflowCalled,
)
from nodedrop.contracts.items import PortItems
from nodedrop.platform.event_log import Delivery

log = logging.getLogger(__name__)

AttemptKey = tuple[str, str, int]


@dataclass(eq=False)
class RunningAttempt:
    task: NodeReady
    msg: Delivery
    #: The node's own code; cancelling it stops the node and nothing else.
    node_run: asyncio.Task[PortItems | ErrorInfo | WorkflowCalled]
    #: Set by a stop event: whatever the node still returns is not recorded.
    stopped: bool = False


class _Recent:
    """A bounded set: the oldest keys are forgotten first."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._keys: OrderedDict[object, None] = OrderedDict()

    def add(self, key: object) -> None:
        self._keys[key] = None
        self._keys.move_to_end(key)
        if len(self._keys) > self._size:
            self._keys.popitem(last=False)

    def __contains__(self, key: object) -> bool:
        return key in self._keys


class RunningAttempts:
    def __init__(self, memory: int = 10_000) -> None:
        self._by_execution: dict[str, list[RunningAttempt]] = {}
        self._finished = _Recent(memory)
        self._cancelled = _Recent(memory)

    def __len__(self) -> int:
        return sum(len(attempts) for attempts in self._by_execution.values())

    def __iter__(self) -> Iterator[RunningAttempt]:
        for attempts in list(self._by_execution.values()):
            yield from list(attempts)

    def was_stopped(self, task: NodeReady) -> bool:
        return task.execution_id in self._finished or _key(task) in self._cancelled

    def add(self, attempt: RunningAttempt) -> None:
        self._by_execution.setdefault(attempt.task.execution_id, []).append(attempt)

    def remove(self, attempt: RunningAttempt) -> None:
        attempts = self._by_execution.get(attempt.task.execution_id, [])
        if attempt in attempts:
            attempts.remove(attempt)
        if not attempts:
            self._by_execution.pop(attempt.task.execution_id, None)

    def on_stop_event(self, data: bytes) -> int:
        """Apply a ``NodeCancelled`` or ``ExecutionFinished``; return how many runs it stopped."""
        try:
            event = codec.decode(data)
        except codec.EventDecodeError:
            log.warning("ignoring an undecodable stop event")
            return 0
        if isinstance(event, ExecutionFinished):
            self._finished.add(event.execution_id)
            targets = self._by_execution.get(event.execution_id, [])
        elif isinstance(event, NodeCancelled):
            key = (event.execution_id, event.node, event.attempt)
            self._cancelled.add(key)
            targets = [
                a for a in self._by_execution.get(event.execution_id, []) if _key(a.task) == key
            ]
        else:
            return 0
        for attempt in targets:
            attempt.stopped = True
            attempt.node_run.cancel()
        return len(targets)


def _key(task: NodeReady) -> AttemptKey:
    return (task.execution_id, task.node, task.attempt)
