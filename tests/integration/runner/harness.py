"""The test rig of the runner's integration tests: runners in-process on their own connections,
events published as the scheduler would, results read back from the stream."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import nats
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from nodedrop.contracts import ids, subjects
from nodedrop.contracts.events import (
    OUTCOMES_RECORDED_VERSION,
    AnyEvent,
    Event,
    ExecutionRequested,
    ExecutionStarted,
    NodeFailed,
    NodeReady,
    NodeSucceeded,
)
from nodedrop.contracts.items import PortItems
from nodedrop.contracts.routing import Layout
from nodedrop.platform.bus import EventPublisher
from nodedrop.platform.history import read_execution
from nodedrop.platform.jetstream import StreamSettings
from nodedrop.runner.main import open_runner
from nodedrop.runner.nodes import NodeContext, NodeRegistry
from nodedrop.runner.worker import Runner


@dataclass
class Probe:
    """A node type that sleeps ``parameters["ms"]`` and records its runs and its concurrency:
    the stream deduplicates results, so only the node itself can tell how often it ran."""

    type: str = "probe"
    runs: list[tuple[str, str, int]] = field(default_factory=list)
    running: int = 0
    most_at_once: int = 0

    async def run(
        self, ctx: NodeContext, node_input: PortItems, parameters: dict[str, Any]
    ) -> PortItems:
        self.runs.append((ctx.execution_id, ctx.node, ctx.attempt))
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await asyncio.sleep(parameters.get("ms", 0) / 1000)
        finally:
            self.running -= 1
        return {"main": node_input.get("main", [])}


@dataclass
class ConsumerState:
    ack_pending: int
    redelivered: int
    pending: int


class Rig:
    def __init__(
        self,
        nats_url: str,
        js: JetStreamContext,
        registry: NodeRegistry,
        probe: Probe,
        layout: Layout | None = None,
    ) -> None:
        self.nats_url = nats_url
        self.js = js
        self.registry = registry
        self.probe = probe
        self.layout = layout or Layout.from_env()
        self.publisher = EventPublisher(js, self.layout)
        self._runners: list[tuple[Runner, NatsClient]] = []
        self._requested: set[str] = set()

    async def start_runner(self, **options: Any) -> Runner:
        """A started Runner on its own connection, as a separate process would have."""
        nc = await nats.connect(self.nats_url)
        options.setdefault("worker_id", f"runner-{len(self._runners) + 1}")
        streams = StreamSettings(layout=self.layout)
        runner = open_runner(nc, options.pop("registry", self.registry), streams, **options)
        await runner.start()
        self._runners.append((runner, nc))
        return runner

    async def close(self) -> None:
        for runner, nc in self._runners:
            await runner.stop(grace_s=0)
            await nc.close()

    def ready(self, node_type: str, **fields: Any) -> NodeReady:
        """A NodeReady in a fresh execution (or ``execution_id``), as the scheduler records it."""
        execution_id = fields.pop("execution_id", None) or uuid.uuid4().hex
        node = fields.pop("node", "n1")
        attempt = fields.pop("attempt", 1)
        return NodeReady(
            event_id=ids.node_ready(execution_id, node, attempt),
            execution_id=execution_id,
            time=datetime.now(UTC),
            node=node,
            attempt=attempt,
            node_type=node_type,
            input=fields.pop("input", {"main": [{"n": 1}]}),
            **fields,
        )

    async def publish(self, *events: Event) -> None:
        """Record ``events``; a task of an execution not seen before comes after the execution's
        request and start (plan: the nodes of its tasks here), as in the scheduler's stream, so
        that a runner checking a redelivered task reads a history it can fold."""
        await self.publisher.publish([*self._starts(events), *events])

    def _starts(self, events: tuple[Event, ...]) -> list[Event]:
        plans: dict[str, list[str]] = {}
        for event in events:
            if isinstance(event, NodeReady) and event.execution_id not in self._requested:
                plans.setdefault(event.execution_id, []).append(event.node)
        starts: list[Event] = []
        for execution_id, plan in plans.items():
            self._requested.add(execution_id)
            now = datetime.now(UTC)
            starts.append(
                ExecutionRequested(
                    event_id=ids.execution_requested(execution_id),
                    execution_id=execution_id,
                    time=now,
                    workflow={"nodes": [], "connections": []},
                    requested_by="user-1",
                )
            )
            starts.append(
                ExecutionStarted(
                    event_id=ids.execution_started(execution_id),
                    execution_id=execution_id,
                    time=now,
                    plan=plan,
                    v=OUTCOMES_RECORDED_VERSION,
                )
            )
        return starts

    async def stored(
        self,
        execution_id: str,
        until: Callable[[list[AnyEvent]], bool] | None = None,
        within_s: float = 30.0,
    ) -> list[AnyEvent]:
        """The execution's stored events but the request and start this rig recorded for it,
        polled until ``until(events)`` holds. The deadline is generous on purpose: a correct
        run returns as soon as the condition holds, and only a failing one waits it out, so a
        busy machine does not fail a correct test."""
        deadline = time.monotonic() + within_s
        while True:
            found: list[AnyEvent] = [
                event
                for _, event in await read_execution(self.js, execution_id, layout=self.layout)
                if not isinstance(event, ExecutionRequested | ExecutionStarted)
            ]
            if until is None or until(found):
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not reached within {within_s} s: {found}")
            await asyncio.sleep(0.02)

    async def consumer(self) -> ConsumerState:
        """The counters of the runners' shared durable consumers, added over the partitions."""
        state = ConsumerState(0, 0, 0)
        for stream in self.layout.streams:
            info = await self.js.consumer_info(stream, subjects.RUNNER_CONSUMER)
            state.ack_pending += info.num_ack_pending or 0
            state.redelivered += info.num_redelivered or 0
            state.pending += info.num_pending or 0
        return state

    async def all_acked(self) -> bool:
        state = await self.consumer()
        return state.ack_pending == 0 and state.pending == 0


async def eventually(
    check: Callable[[], Awaitable[bool]], within_s: float = 30.0, interval_s: float = 0.01
) -> float:
    """Poll ``check`` until it holds; return how long that took. Fails after ``within_s``
    (generous: a correct run returns as soon as ``check`` holds)."""
    began = time.monotonic()
    while not await check():
        if time.monotonic() - began > within_s:
            raise AssertionError(f"not reached within {within_s} s")
        await asyncio.sleep(interval_s)
    return time.monotonic() - began


def results(events: list[AnyEvent]) -> list[NodeSucceeded | NodeFailed]:
    return [e for e in events if isinstance(e, NodeSucceeded | NodeFailed)]


def has_result(events: list[AnyEvent]) -> bool:
    return bool(results(events))
