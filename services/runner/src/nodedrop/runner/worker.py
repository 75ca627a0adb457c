"""The runner: takes node attempts from the shared durable consumer and records their results.

Per task: ``NodeStarted`` is recorded first, as the claim on the attempt, then the node runs,
its result is recorded, and only once the stream has acknowledged the result is the task acked.
A crash anywhere before that leaves the task unacked, so it is redelivered (at once after a
nak, otherwise after the consumer's ack wait). A started attempt is never run again: the runner
that gets it again records it as failed with ``RunnerLost`` and the scheduler makes one more
attempt (the node may have run partly, so only a new attempt says honestly that it runs again).
A redelivered task is checked against its execution's history: with no ``NodeStarted`` of its
attempt there, nothing of it ran (a stopping runner handed it back unstarted, or its claim was
never stored), and it simply runs, costing no attempt. The claim also catches the tasks the
delivery count misses: nats-server forgets deliveries made just before it is killed, and hands
such a task out again as a first delivery, but its ``NodeStarted`` is already in the stream.
Results have deterministic ids, so whichever result of an attempt is recorded first wins: a
result that the first runner did record stands, and the ``RunnerLost`` copy is dropped.

Concurrency is bounded by the pull consumer's credit: it never asks for more tasks than there
are free slots, so the tasks this process cannot start yet stay with the server for other
runners. Any number of runner processes share the consumer.

Built-in node types run in this process's event loop (those that evaluate expressions per item
pause every few milliseconds and have one work budget per attempt: nodes/flow.py); custom node
types in a pool of ``processes`` worker processes (:mod:`nodedrop.runner.isolation`), started
with the runner when the registry has any and stopped with it. A custom node's task waits for a
free worker process before it claims its attempt, so ``NodeStarted`` means the code is about to
run.

A graceful stop hands back at once every task not yet claimed (another runner runs it as if
first delivered) and gives the claimed ones ``grace_s`` to finish; those still running then are
cancelled and handed back, and cost their node a ``RunnerLost`` attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from nodedrop.contracts import codec, ids
from nodedrop.contracts.errors import RUNNER_LOST
from nodedrop.contracts.events import (
    ErrorInfo,
    Event,
    ExecutionFinished,
    NodeCancelled,
    NodeFailed,
    NodeReady,
    NodeStarted,
    NodeSucceeded,
    WorkflowCalled,
)
from nodedrop.contracts.history_fold import fold_history
from nodedrop.contracts.items import PortItems
from nodedrop.platform.datastore import DataStore
from nodedrop.platform.event_log import Delivery, EventLog, Watching
from nodedrop.platform.logsetup import bind
from nodedrop.platform.metrics import (
    NODE_ATTEMPT_DURATION,
    NODE_ATTEMPTS,
    RUNNER_SLOTS,
    RUNNER_SLOTS_BUSY,
)
from nodedrop.platform.ops import CheckResult
from nodedrop.platform.task_queue import TaskQueue
from nodedrop.runner.attempt import (
    MAX_OUTPUT_BYTES,
    context_of,
    logged_event,
    result_event,
    run_attempt,
)
from nodedrop.runner.cancellation import RunningAttempt, RunningAttempts
from nodedrop.runner.credentials import CredentialVault
from nodedrop.runner.isolation import ProcessPool
from nodedrop.runner.nodes.registry import NodeRegistry, PluginNode
from nodedrop.runner.subworkflows import CALL_TYPE, WorkflowCaller

log = logging.getLogger(__name__)

#: How long a task whose result could not be recorded waits before it is delivered again.
_NAK_DELAY_S = 1.0
#: A result the stream did not acknowledge is sent again this many times in all (the same id:
#: a copy that was stored after all is dropped), a pause apart, before the task is given back.
_RESULT_SENDS = 3
_RESEND_PAUSE_S = 0.5
#: Heartbeats per ack wait when the interval is not given: two may be lost before a live node
#: is taken for lost.
HEARTBEATS_PER_ACK_WAIT = 3
#: Worker processes for custom node types, unless told: a few, never more than the slots.
_DEFAULT_PROCESSES = 4
#: How long running nodes may take to finish once a stop begins, unless told. Under `nodedrop
#: up` a service is SIGKILLed 10 s after SIGTERM: finish before that, so the abandoned tasks are
#: nak'ed rather than left to the ack wait.
DEFAULT_GRACE_S = 8.0


def default_processes(concurrency: int) -> int:
    return min(_DEFAULT_PROCESSES, concurrency)


class Publisher(Protocol):
    async def publish(self, events: Sequence[Event]) -> object: ...


@dataclass(eq=False)
class _Held:
    """A task this runner holds, from its delivery until it is settled."""

    msg: Delivery
    received_at: float = field(default_factory=time.monotonic)
    #: Its claim is being (or was) recorded: the node may run from here on, so a stop gives it
    #: the grace period. Before this, a stop hands it straight back, at no cost to its node.
    claiming: bool = False


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def utc_now() -> datetime:
    return datetime.now(UTC)


class Runner:
    def __init__(
        self,
        log: EventLog,
        tasks: TaskQueue,
        registry: NodeRegistry,
        *,
        concurrency: int = 64,
        processes: int | None = None,
        process_memory_limit_bytes: int | None = None,
        worker_id: str | None = None,
        publisher: Publisher | None = None,
        data_store: DataStore | None = None,
        heartbeat_s: float = 5.0,
        duplicate_window_s: float = 120.0,
        grace_s: float = DEFAULT_GRACE_S,
        clock: Callable[[], datetime] = utc_now,
        vault: CredentialVault | None = None,
        calls: WorkflowCaller | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("a runner needs at least one slot")
        self._log = log
        self._registry = registry
        self.concurrency = concurrency
        self.worker_id = worker_id or default_worker_id()
        self._layout = log.layout
        #: Records results (the log itself unless a test puts something between).
        self._publisher: Publisher = publisher or log
        # Large outputs go to the object store; references to them are expanded before a run
        # (None: no store, outputs travel inline).
        self._data = data_store
        # A third of the consumer's ack wait (main.py derives it), so two lost heartbeats
        # still leave a live node with its runner.
        self._heartbeat_s = heartbeat_s
        # The claim (a duplicate NodeStarted) is only seen within the stream's duplicate window:
        # a task older than half of it (a copy republished late, a long backlog) is checked
        # against the execution's history instead.
        self._claim_trusted_for = timedelta(seconds=duplicate_window_s / 2)
        self._grace_s = grace_s
        self._clock = clock
        #: Where the credentials nodes name are read and decrypted (None: nowhere, and a
        #: node naming one fails with CredentialError).
        self._vault = vault
        #: Answers `execute_workflow` attempts (by default: without a database, refusing).
        self._calls = calls or WorkflowCaller(None, clock=clock)
        # Every partition's tasks, sharing the slots: never more held than slots, and one
        # partition's tasks may use them all. Slots are given back when a task is finished
        # with, not when it is handed over.
        self._consumer = tasks
        self._consumer.capacity = concurrency
        #: Runs the custom node types; its processes start with the runner if the registry has
        #: any, else on the first custom node's attempt.
        self.processes = ProcessPool(
            default_processes(concurrency) if processes is None else processes,
            memory_limit_bytes=process_memory_limit_bytes,
        )
        # One custom node's task per worker process past this point: the others wait for a
        # turn unclaimed (the pool's own queue would hold them claimed, never started).
        self._process_turns = asyncio.Semaphore(self.processes.size)
        self._slots = asyncio.Semaphore(concurrency)
        self._attempts = RunningAttempts()
        self._tasks: dict[asyncio.Task[None], _Held] = {}
        self._background: list[asyncio.Task[None]] = []
        self._stop_watch: Watching | None = None

    @property
    def busy(self) -> int:
        """Tasks this runner holds (running, or recording their result)."""
        return len(self._tasks)

    def readiness(self) -> CheckResult:
        """Ready while its consumers are attached and it takes tasks (from the end of
        :meth:`start` to the beginning of :meth:`stop`)."""
        if not self._background or self._consumer.capacity == 0:
            return CheckResult(False, "not taking tasks (starting or stopping)")
        partitions = len(self._layout.streams)
        return CheckResult(True, f"taking tasks on {partitions} partition(s)")

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then shut down gracefully."""
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    async def start(self) -> None:
        plugins = self._registry.plugins()
        try:
            if plugins:
                # Before any task is taken: a plugin that does not load stops the runner here.
                await self.processes.start(preload=[plugin.target for plugin in plugins])
            await self._subscribe_and_pull()
        except BaseException:
            await self.processes.stop()
            raise
        RUNNER_SLOTS.inc(self.concurrency)
        log.info(
            "runner %s started with %d slots, %d worker processes for %d custom node types",
            self.worker_id,
            self.concurrency,
            self.processes.size,
            len(plugins),
        )

    async def _subscribe_and_pull(self) -> None:
        # Listen for stops before taking work, so none is missed for a task started now.
        self._stop_watch = await self._log.watch(
            (NodeCancelled, ExecutionFinished), self._on_stop_event
        )
        await self._consumer.start()
        self._background = [
            asyncio.create_task(self._pull(), name="runner-pull"),
            asyncio.create_task(self._heartbeat(), name="runner-heartbeat"),
        ]

    async def stop(self, grace_s: float | None = None) -> None:
        """Stop taking tasks; hand back at once those whose attempt is not claimed yet (another
        runner runs them as first deliveries); give the claimed ones ``grace_s`` to finish,
        then cancel the rest. Every task handed back is nak'ed, so another runner gets it at
        once; a cancelled running one is recorded there as ``RunnerLost``, and the scheduler
        makes a new attempt."""
        if not self._background:
            return  # never started
        RUNNER_SLOTS.dec(self.concurrency)
        grace_s = self._grace_s if grace_s is None else grace_s
        # No new pull request from here on (a slot given back would ask for one): the server
        # could send it tasks as the subscription ends, and those would wait out the ack wait.
        self._consumer.capacity = 0
        pulling = self._background[0]
        pulling.cancel()  # nothing new is handed over...
        await asyncio.gather(pulling, return_exceptions=True)
        arrived = await self._consumer.stop_and_drain()  # (these never were)
        # ...and nothing unclaimed gets to claim its attempt: it goes back as it came.
        unclaimed = {task: held.msg for task, held in self._tasks.items() if not held.claiming}
        for task in unclaimed:
            task.cancel()
        await asyncio.gather(*unclaimed, return_exceptions=True)
        for msg in [*unclaimed.values(), *arrived]:
            await _settle(msg.nak)
        if unclaimed or arrived:
            log.info(
                "runner %s handed back %d tasks not started",
                self.worker_id,
                len(unclaimed) + len(arrived),
            )
        if self._tasks:
            log.info("runner %s waiting for %d running tasks", self.worker_id, len(self._tasks))
            _, late = await asyncio.wait(self._tasks, timeout=grace_s)
            abandoned = {task: self._tasks[task].msg for task in late}
            for task in abandoned:
                task.cancel()
            await asyncio.gather(*abandoned, return_exceptions=True)
            for msg in abandoned.values():
                await _settle(msg.nak)
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._background.clear()
        await self.processes.stop()  # every node is done with by now: no worker outlives us
        if self._stop_watch is not None:
            await _settle(self._stop_watch.stop)
            self._stop_watch = None
        await _settle(self._log.flush)  # the naks and acks above are on their way
        log.info("runner %s stopped", self.worker_id)

    async def _pull(self) -> None:
        while True:
            for msg in await self._consumer.next_batch(self.concurrency, None):
                held = _Held(msg)
                task = asyncio.create_task(self._handle(held))
                self._tasks[task] = held
                task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        held = self._tasks.pop(task, None)
        if held is not None:
            self._consumer.release(held.msg)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("task handling failed", exc_info=error)

    async def _handle(self, held: _Held) -> None:
        msg = held.msg
        try:
            task = codec.decode(msg.data)
        except codec.EventDecodeError:
            task = None
        if not isinstance(task, NodeReady):
            # Redelivering cannot make it decode: take it out of the queue for good.
            log.error("terminating an undecodable task on %s", msg.subject)
            await msg.term()
            return
        with bind(execution_id=task.execution_id, node=task.node, attempt=task.attempt):
            await self._handle_task(held, task)

    async def _handle_task(self, held: _Held, task: NodeReady) -> None:
        msg = held.msg
        if self._attempts.was_stopped(task):
            await msg.ack()  # its execution ended before the task got here
            return
        # A task delivered before may have been started (then it is RunnerLost) or handed back
        # unstarted (then it just runs); one too old for the claim to tell may even have been
        # answered. Its execution's history says which: rare enough to read it whole.
        too_old = self._clock() - task.time > self._claim_trusted_for
        if (_delivered_before(msg) or too_old) and await self._handled_before(task, msg):
            return
        # A task waits for a slot before it claims its attempt (it may have been delivered
        # beyond the slots: PullGroup), and for a worker process if it is a custom node type.
        async with self._slots, self._turn(task):
            if self._attempts.was_stopped(task):
                await msg.ack()  # its execution ended while it waited for a worker process
                return
            held.claiming = True
            with RUNNER_SLOTS_BUSY.track_inprogress():
                await self._claim_and_run(task, msg)

    def _turn(self, task: NodeReady) -> AbstractAsyncContextManager[None]:
        """Custom node types wait for a free worker process *before* they claim their attempt:
        until the node can really start, the task is only held, and a stop hands it back
        unstarted. Built-ins start at once."""
        if isinstance(self._registry.get(task.node_type), PluginNode):
            return self._process_turns
        return contextlib.nullcontext()

    async def _claim_and_run(self, task: NodeReady, msg: Delivery) -> None:
        started = NodeStarted(
            event_id=ids.node_started(task.execution_id, task.node, task.attempt),
            execution_id=task.execution_id,
            time=self._clock(),
            node=task.node,
            attempt=task.attempt,
            worker=self.worker_id,
        )
        if self._registry.side_effect_free(task.node_type):
            # Running such a node twice is harmless, so it does not wait for its claim to be
            # stored (an fsync, most of a trivial node's time): the claim goes out now, the
            # result right after it on the same connection, and a result some other runner
            # recorded first for the attempt simply wins. "Now" is bounded: the claim is
            # queued on the connection before the node starts, and these nodes give the loop
            # back every few milliseconds of work (flow.Pacer), so a long one is claimed, and
            # the scheduler's timeout backstop started, while it runs.
            claim: asyncio.Task[bool] | None = asyncio.create_task(self._log.publish_first(started))
        else:
            claim = None
            # NodeStarted is the claim on the attempt, recorded before the node may touch
            # anything: a task delivered again with its delivery count reset (nats-server loses
            # consumer state written in the last moments before a crash) finds it taken.
            try:
                first = await self._log.publish_first(started)
            except Exception as error:
                # Maybe stored, maybe not: the node does not run. The next delivery finds the
                # claim in the history (RunnerLost, and the scheduler makes another attempt) or
                # not (it runs).
                log.warning("%s not recorded (%r): giving the task back", started.event_id, error)
                await _settle(lambda: msg.nak(delay=_NAK_DELAY_S))
                return
            if not first:
                await self._record_runner_lost(task, msg)
                return
        try:
            await self._run_and_record(task, msg)
        finally:
            if claim is not None:
                # Stored or not, it was sent before the result: nothing depends on its answer.
                await _settle(lambda: claim)

    async def _run_and_record(self, task: NodeReady, msg: Delivery) -> None:
        ctx = context_of(task)
        node_run: asyncio.Task[PortItems | ErrorInfo | WorkflowCalled]
        if task.node_type == CALL_TYPE and task.node_type not in self._registry:
            node_run = asyncio.create_task(self._call(task))
        else:
            node_run = asyncio.create_task(
                run_attempt(
                    self._registry,
                    task,
                    ctx=ctx,
                    processes=self.processes,
                    store=self._data,
                    max_output_bytes=MAX_OUTPUT_BYTES,
                    vault=self._vault,
                )
            )
        attempt = RunningAttempt(task, msg, node_run)
        self._attempts.add(attempt)
        began = time.monotonic()
        try:
            outcome = await node_run
        except asyncio.CancelledError:
            if _current_task_cancelling() or not attempt.stopped:
                raise  # shutdown: the task goes back unacked
        finally:
            self._attempts.remove(attempt)
        took = time.monotonic() - began
        if attempt.stopped:
            # A stop event cancelled the node (a node that ignored the cancellation and
            # returned anyway included): its execution wants no result for it.
            self._count_attempt(task, "cancelled", took)
            await msg.ack()
            return
        if isinstance(outcome, WorkflowCalled):
            # The scheduler starts the children from it; this runner's part is done.
            self._count_attempt(task, "called", took)
            await self._record_then_ack([outcome], msg)
            return
        used = [credential.id for credential in ctx.credentials.values()]
        result = result_event(task, outcome, self._clock(), used)
        self._count_attempt(
            task, "succeeded" if isinstance(result, NodeSucceeded) else "failed", took
        )
        # The node's log lines go just before its result: in the record, they belong to it.
        logged = logged_event(task, ctx.log.lines, result.time) if ctx.log.lines else None
        await self._record_then_ack([logged, result] if logged is not None else [result], msg)

    async def _call(self, task: NodeReady) -> ErrorInfo | WorkflowCalled:
        """An `execute_workflow` attempt, under the node's timeout like any other."""
        timeout_s = task.timeout_ms / 1000 if task.timeout_ms is not None else None
        try:
            async with asyncio.timeout(timeout_s):
                return await self._calls.call(task)
        except TimeoutError:
            message = f"node {task.node!r} did not finish within {task.timeout_ms} ms"
            return ErrorInfo(type="NodeTimeout", message=message, retryable=True)

    def _count_attempt(self, task: NodeReady, result: str, seconds: float) -> None:
        # A type the registry does not know counts as "unknown": the label stays bounded
        # whatever the events name.
        known = task.node_type in self._registry or task.node_type == CALL_TYPE
        node_type = task.node_type if known else "unknown"
        NODE_ATTEMPTS.labels(node_type, result).inc()
        NODE_ATTEMPT_DURATION.labels(node_type, result).observe(seconds)

    async def _handled_before(self, task: NodeReady, msg: Delivery) -> bool:
        """For a task delivered before, or too old for the claim to tell: whether its execution
        has ended, or its attempt was started or answered already (then it is settled here,
        never run). False: nothing of the attempt is recorded, and it runs as a first delivery
        (its claim still guards against another runner claiming it in the meantime)."""
        try:
            stored = await self._log.history(task.execution_id)
        except Exception as error:
            log.warning("history of %s not read (%r): giving the task back", task.event_id, error)
            await _settle(lambda: msg.nak(delay=_NAK_DELAY_S))
            return True
        history = fold_history(event for _, event in stored)
        if history is not None and history.finished:
            await msg.ack()
            return True
        node = history.nodes.get(task.node) if history is not None else None
        if node is None or (node.attempts < task.attempt and node.status == "pending"):
            return False  # the history says nothing of this attempt but its task
        if node.attempts == task.attempt and node.status == "queued":
            return False
        if node.attempts == task.attempt and node.status == "running" and node.children is None:
            await self._record_runner_lost(task, msg)  # started, never answered
            return True
        # Answered (a result, or the workflow it calls), or a newer attempt follows this one's
        # result, or the node ended without it.
        await msg.ack()
        return True

    async def _record_then_ack(self, events: Sequence[Event], msg: Delivery) -> None:
        """Record ``events`` and ack the task; if the stream will not take them, give the task
        back (its next delivery records the attempt as ``RunnerLost``)."""
        for send in range(1, _RESULT_SENDS + 1):
            try:
                await self._publisher.publish(events)
                break
            except Exception as error:
                # PublishError mostly; anything else (a closed connection) is no better
                # handled by waiting out the ack wait.
                log.warning("%s not recorded (send %d): %r", events[-1].event_id, send, error)
                if send == _RESULT_SENDS:
                    await _settle(lambda: msg.nak(delay=_NAK_DELAY_S))
                    return
                await _settle(msg.in_progress)  # still ours while we try again
                await asyncio.sleep(_RESEND_PAUSE_S)
        await msg.ack()

    async def _record_runner_lost(self, task: NodeReady, msg: Delivery) -> None:
        """The attempt was started before (its ``NodeStarted`` is recorded): whoever had it may
        have run the node partly, or all the way without recording the result. Running it
        again under the same attempt would hide that, so the attempt ends here as
        ``RunnerLost`` and the scheduler makes another."""
        how = f"delivery {msg.metadata.num_delivered}, already started"
        log.warning(
            "attempt %d of %s in %s handed out again (%s): recording RunnerLost",
            task.attempt,
            task.node,
            task.execution_id,
            how,
        )
        message = (
            f"attempt {task.attempt} of node {task.node!r} was handed out again "
            f"({how}): the runner that had it stopped or died before recording a result"
        )
        lost = NodeFailed(
            event_id=ids.node_result(task.execution_id, task.node, task.attempt),
            execution_id=task.execution_id,
            time=self._clock(),
            node=task.node,
            attempt=task.attempt,
            error=ErrorInfo(type=RUNNER_LOST, message=message, retryable=True),
        )
        await self._record_then_ack([lost], msg)

    async def _on_stop_event(self, subject: str, data: bytes) -> None:
        stopped = self._attempts.on_stop_event(data)
        if stopped:
            log.info("stopped %d running node(s) on %s", stopped, subject)

    async def _heartbeat(self) -> None:
        """Tell the server that the tasks held for a while (long nodes, custom nodes waiting for
        a worker process) are still ours, so their ack wait doesn't expire and hand them to
        another runner."""
        while True:
            await asyncio.sleep(self._heartbeat_s)
            due = time.monotonic() - self._heartbeat_s / 2
            for held in list(self._tasks.values()):
                if held.received_at <= due:
                    await _settle(held.msg.in_progress)


def _delivered_before(msg: Delivery) -> bool:
    """Whether the server handed this task out before (to this runner or another)."""
    delivered = msg.metadata.num_delivered
    return delivered is not None and delivered > 1


def _current_task_cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _settle(action: Callable[[], Awaitable[object]]) -> None:
    """Best effort for naks, heartbeats and cleanup: the connection may be gone, and then the
    server redelivers after the ack wait anyway."""
    try:
        await action()
    except Exception as error:
        log.debug("ignored: %r", error)
