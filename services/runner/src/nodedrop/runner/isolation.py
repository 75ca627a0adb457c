"""Worker processes for custom node types: code the runner does not trust to be well-behaved.

Built-in node types are async and cooperative and run in the runner's event loop. A custom node
type (``nodedrop.nodes`` entry point) may block that loop (``time.sleep``, a CPU loop), ignore
its cancellation, leak memory or crash the interpreter; so it runs in a worker process that is
killed when its attempt times out or is cancelled, which really stops the code within
milliseconds whatever it does, and keeps it out of the runner's own process.

A :class:`ProcessPool` keeps ``size`` workers (``python -m nodedrop.runner.isolated_worker``),
each in its own session (process group) so that killing it also kills whatever it started, and
each dying with the runner (``PR_SET_PDEATHSIG`` on Linux). One attempt at a time per worker:
the attempt's request goes to an idle worker, which imports the node's class once, instantiates
it once, and calls its ``run`` (``async def`` or plain ``def``). A worker that is killed, or
dies, is replaced by a fresh process at once.

Protocol, over the worker's stdin/stdout (the worker moves them to private descriptors and
points fd 0 at /dev/null and fd 1 at stderr, so a node's ``print`` cannot corrupt it): frames of
a 4-byte big-endian length and a JSON document. The runner sends :class:`Hello`, the worker
answers :class:`Ready`; then one :class:`Call` and one :class:`Reply` per attempt. Both ends
are asyncio-free on the worker side and non-blocking on the runner side.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import struct
import sys
from collections.abc import Sequence
from typing import Any, TypeVar

import msgspec

from nodedrop.contracts.events import ErrorInfo, LogLine
from nodedrop.runner.nodes.api import NodeContext, NodeError
from nodedrop.runner.nodes.registry import PluginNode

log = logging.getLogger(__name__)

WORKER_MODULE = "nodedrop.runner.isolated_worker"
HEADER = struct.Struct(">I")
#: The largest reply accepted when the caller sets no output limit.
DEFAULT_MAX_REPLY_BYTES = 64 * 1024 * 1024
#: Room in a reply beyond the output limit: the envelope, or an error's message and stack.
REPLY_SLACK_BYTES = 512 * 1024
#: How long a fresh worker may take to start and import the preloaded node classes.
START_TIMEOUT_S = 60.0
#: A crashed worker's exit status is read with this much patience, then it is killed.
_EXIT_WAIT_S = 1.0
_STREAM_LIMIT = 1024 * 1024

M = TypeVar("M")


# ---------------------------------------------------------------- protocol


class Hello(msgspec.Struct, kw_only=True):
    #: Node classes (``"module:qualname"``) to import and instantiate before answering.
    preload: list[str] = []
    #: ``RLIMIT_AS`` of the worker, if any.
    memory_limit_bytes: int | None = None


class Ready(msgspec.Struct, kw_only=True):
    pid: int
    #: Preloaded classes that failed to load: target -> the error, formatted.
    broken: dict[str, str] = {}


class Call(msgspec.Struct, kw_only=True):
    target: str
    ctx: NodeContext
    input: dict[str, Any]
    parameters: dict[str, Any]
    max_output_bytes: int | None = None


class Reply(msgspec.Struct, kw_only=True, omit_defaults=True):
    output: Any = None
    error: ErrorInfo | None = None
    #: What the node wrote to ``ctx.log`` in the worker.
    log: list[LogLine] = []


_encoder = msgspec.json.Encoder()
_ready_decoder = msgspec.json.Decoder(Ready)
_reply_decoder = msgspec.json.Decoder(Reply)


def encode_frame(message: object) -> bytes:
    body = _encoder.encode(message)
    return HEADER.pack(len(body)) + body


# ---------------------------------------------------------------- errors


class RemoteNodeError(NodeError):
    """A failure reported from a worker process: the node's own error with the stack from over
    there, or the worker's (``WorkerCrashed``, ``WorkerStartFailed``)."""

    def __init__(
        self, type: str, message: str, retryable: bool = True, stack: str | None = None
    ) -> None:
        super().__init__(type, message, retryable)
        self.stack = stack

    @classmethod
    def from_info(cls, info: ErrorInfo) -> RemoteNodeError:
        return cls(info.type, info.message, info.retryable, info.stack)


class WorkerGoneError(Exception):
    """The worker's end of the pipe closed: it exited or was killed."""


class WorkerStartError(Exception):
    pass


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "stopped answering"
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


# ---------------------------------------------------------------- one worker


class _Worker:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdin is not None
        assert process.stdout is not None
        self.process = process
        self.pid = process.pid
        self._stdin = process.stdin
        self._stdout = process.stdout
        self.broken: dict[str, str] = {}

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    async def exchange(self, frame: bytes, decoder: msgspec.json.Decoder[M], limit: int) -> M:
        """Send one frame, read the answer. Raises :class:`WorkerGoneError`, or
        :class:`RemoteNodeError` for an answer too large or not in the protocol (the worker must
        then be killed: its pipe is in an unknown state)."""
        try:
            self._stdin.write(frame)
            await self._stdin.drain()
            (size,) = HEADER.unpack(await self._stdout.readexactly(HEADER.size))
            if size > limit:
                raise RemoteNodeError(
                    "InvalidOutput",
                    f"the node's answer is {size} bytes, more than the {limit} allowed",
                    retryable=False,
                )
            body = await self._stdout.readexactly(size)
        except (asyncio.IncompleteReadError, ConnectionError) as error:
            raise WorkerGoneError from error
        try:
            return decoder.decode(body)
        except msgspec.MsgspecError as error:
            raise RemoteNodeError(
                "WorkerProtocolError", f"the worker process sent an invalid answer: {error}"
            ) from error

    def kill(self) -> None:
        """SIGKILL the worker's whole process group: the worker and anything it started."""
        if self.alive:
            self.kill_group()

    def kill_group(self) -> None:
        """Also right after the worker died (while its pid cannot have been reused yet): what it
        started may live on in its process group."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()

    async def exit_status(self) -> int | None:
        """The exit status of a worker whose pipe closed, killing it if it lingers."""
        try:
            async with asyncio.timeout(_EXIT_WAIT_S):
                return await self.process.wait()
        except TimeoutError:
            self.kill()
            return None


def worker_environment() -> dict[str, str]:
    """The runner's environment without its own settings (``NODEDROP_*``: server URLs,
    tokens), and its ``sys.path``, so a worker imports what the runner can."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("NODEDROP_")}
    env["PYTHONPATH"] = os.pathsep.join(path or os.getcwd() for path in sys.path)
    return env


# ---------------------------------------------------------------- the pool


class ProcessPool:
    """``size`` worker processes running custom node attempts, one attempt per worker at once.

    ``start(preload)`` starts them all (and fails if a preloaded class does not load); without
    it, workers are started on first use. ``stop()`` kills every worker and waits for them;
    call it after the runs (a run still going then fails as ``WorkerCrashed``).
    """

    def __init__(
        self,
        size: int,
        *,
        memory_limit_bytes: int | None = None,
        start_timeout_s: float = START_TIMEOUT_S,
    ) -> None:
        if size < 1:
            raise ValueError("a process pool needs at least one worker")
        self.size = size
        self._memory_limit_bytes = memory_limit_bytes
        self._start_timeout_s = start_timeout_s
        self._preload: list[str] = []
        # Workers ready for an attempt, or the error a replacement failed to start with (each
        # start puts exactly one entry here, so a waiting attempt always gets an answer).
        self._idle: asyncio.Queue[_Worker | Exception] = asyncio.Queue()
        #: Every process started and not yet reaped.
        self._workers: set[_Worker] = set()
        #: Workers starting, idle or busy: never more than ``size``.
        self._slots = 0
        self._starting: set[asyncio.Task[None]] = set()
        self._reaping: set[asyncio.Task[None]] = set()
        self._closed = False
        #: How many worker processes were ever started (tests: a killed worker was replaced).
        self.started = 0

    @property
    def pids(self) -> list[int]:
        """Process ids of the workers not yet reaped."""
        return sorted(worker.pid for worker in self._workers)

    async def start(self, preload: Sequence[str] = ()) -> None:
        """Start every worker, each importing and instantiating the ``preload`` classes; fails
        (leaving no process behind) if a worker does not start or a class does not load."""
        self._preload = sorted(set(preload))
        self._slots += self.size
        try:
            started = await asyncio.gather(
                *(self._start_worker() for _ in range(self.size)), return_exceptions=True
            )
        except BaseException:  # cancelled
            await self.stop()
            raise
        workers = [worker for worker in started if isinstance(worker, _Worker)]
        for worker in workers:
            self._idle.put_nowait(worker)
        failure = next((error for error in started if isinstance(error, BaseException)), None)
        if failure is not None:
            await self.stop()
            raise failure
        broken = {target: error for worker in workers for target, error in worker.broken.items()}
        if broken:
            await self.stop()
            details = "\n".join(f"{target}: {error}" for target, error in broken.items())
            raise WorkerStartError(f"custom node types failed to load:\n{details}")

    async def run(
        self,
        node: PluginNode,
        ctx: NodeContext,
        node_input: dict[str, Any],
        parameters: dict[str, Any],
        *,
        max_output_bytes: int | None = None,
    ) -> object:
        """The node's output as decoded JSON (still to be validated by the caller). Raises
        :class:`RemoteNodeError` for the node's failures and the worker's. Cancelling this kills
        the worker running the attempt."""
        if self._closed:
            raise RuntimeError("the process pool is stopped")
        frame = encode_frame(
            Call(
                target=node.target,
                ctx=ctx,
                input=node_input,
                parameters=parameters,
                max_output_bytes=max_output_bytes,
            )
        )
        limit = (
            DEFAULT_MAX_REPLY_BYTES
            if max_output_bytes is None
            else max_output_bytes + REPLY_SLACK_BYTES
        )
        worker = await self._acquire()
        try:
            reply = await worker.exchange(frame, _reply_decoder, limit)
        except WorkerGoneError:
            worker.kill_group()
            try:
                status = await worker.exit_status()
            finally:
                self._retire(worker)
            raise RemoteNodeError(
                "WorkerCrashed",
                f"the worker process (pid {worker.pid}) running node type {node.type!r} "
                f"{describe_exit(status)}",
                retryable=True,
            ) from None
        except BaseException:
            # Cancelled (a timeout, a NodeCancelled, shutdown) or an answer out of protocol:
            # the code may still be running, so the process goes, now.
            self._retire(worker)
            raise
        self._release(worker)
        ctx.log.lines.extend(reply.log)
        if reply.error is not None:
            raise RemoteNodeError.from_info(reply.error)
        output: object = reply.output
        return output

    async def stop(self) -> None:
        """Kill every worker and wait until they are reaped; the pool cannot be used again."""
        self._closed = True
        for task in self._starting:
            task.cancel()
        await asyncio.gather(*self._starting, return_exceptions=True)
        for worker in list(self._workers):
            self._discard(worker)
        await asyncio.gather(*self._reaping, return_exceptions=True)
        while not self._idle.empty():
            self._idle.get_nowait()

    async def _acquire(self) -> _Worker:
        while True:
            if self._idle.empty() and self._slots < self.size:
                self._replace()
            entry = await self._idle.get()
            if isinstance(entry, Exception):
                raise RemoteNodeError(
                    "WorkerStartFailed", f"no worker process could be started: {entry}"
                )
            if entry.alive:
                return entry
            self._retire(entry)  # died while idle (OOM killer, ...): start another

    def _release(self, worker: _Worker) -> None:
        if self._closed:
            self._discard(worker)
        else:
            self._idle.put_nowait(worker)

    def _retire(self, worker: _Worker) -> None:
        """Kill ``worker`` at once, reap it and start its replacement in the background."""
        self._discard(worker)
        self._slots -= 1
        if not self._closed:
            self._replace()

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        task = asyncio.create_task(self._reap(worker))
        self._reaping.add(task)
        task.add_done_callback(self._reaping.discard)

    def _replace(self) -> None:
        self._slots += 1
        task = asyncio.create_task(self._start_into_idle())
        self._starting.add(task)
        task.add_done_callback(self._starting.discard)

    async def _reap(self, worker: _Worker) -> None:
        await worker.process.wait()
        self._workers.discard(worker)

    async def _start_into_idle(self) -> None:
        try:
            worker = await self._start_worker()
        except asyncio.CancelledError:
            self._slots -= 1
            raise
        except Exception as error:
            self._slots -= 1
            log.error("could not start a worker process: %r", error)
            self._idle.put_nowait(error)
            return
        for target, problem in worker.broken.items():
            log.error(
                "custom node class %s failed to load in a worker process: %s", target, problem
            )
        self._release(worker)

    async def _start_worker(self) -> _Worker:
        if self._closed:
            raise RuntimeError("the process pool is stopped")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            WORKER_MODULE,
            str(os.getpid()),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=worker_environment(),
            start_new_session=True,
            limit=_STREAM_LIMIT,
        )
        worker = _Worker(process)
        self._workers.add(worker)
        self.started += 1
        if self._closed:  # stopped while this one was being started
            self._discard(worker)
            raise RuntimeError("the process pool is stopped")
        hello = Hello(preload=self._preload, memory_limit_bytes=self._memory_limit_bytes)
        try:
            async with asyncio.timeout(self._start_timeout_s):
                ready = await worker.exchange(
                    encode_frame(hello), _ready_decoder, DEFAULT_MAX_REPLY_BYTES
                )
        except WorkerGoneError:
            try:
                status = await worker.exit_status()
            finally:
                self._discard(worker)
            raise WorkerStartError(f"the worker process {describe_exit(status)}") from None
        except BaseException:
            self._discard(worker)
            raise
        worker.broken = ready.broken
        return worker
