"""A worker process running custom node attempts: ``python -m nodedrop.runner.isolated_worker
PARENT_PID``, started by :class:`nodedrop.runner.isolation.ProcessPool` (see there for the
protocol). One attempt at a time, in this process's main thread; an ``async def run`` runs on
this process's own event loop, kept from one attempt to the next.

Whatever a node does here, the runner stays in control: it kills this process (and its process
group) when the attempt times out or is cancelled, and starts a fresh one.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import faulthandler
import importlib
import inspect
import os
import resource
import signal
import sys
import traceback
from collections.abc import Awaitable
from typing import Any, TypeVar

import msgspec

from nodedrop.contracts.events import ErrorInfo
from nodedrop.runner.attempt import error_info, output_problem
from nodedrop.runner.isolation import HEADER, Call, Hello, Ready, Reply, encode_frame

_PR_SET_PDEATHSIG = 1
_BROKEN_CHARS = 4_000

M = TypeVar("M")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    protocol_in, protocol_out = _take_stdio()
    _die_with(int(args[0]) if args else None)
    faulthandler.enable()  # a segfault leaves its stack in the runner's log (our stderr)
    hello = _read(protocol_in, msgspec.json.Decoder(Hello))
    if hello is None:
        return 0
    _set_limits(hello.memory_limit_bytes)
    plugins = Plugins()
    broken = {target: problem for target in hello.preload if (problem := plugins.preload(target))}
    _write(protocol_out, Ready(pid=os.getpid(), broken=broken))
    calls = msgspec.json.Decoder(Call)
    while (call := _read(protocol_in, calls)) is not None:
        _write(protocol_out, plugins.handle(call))
    return 0


class Plugins:
    """Node classes by import path, each imported and instantiated once, on first use."""

    def __init__(self) -> None:
        self._instances: dict[str, Any] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def instance(self, target: str) -> Any:
        found = self._instances.get(target)
        if found is None:
            found = self._instances[target] = load(target)()
        return found

    def preload(self, target: str) -> str | None:
        """Load ``target`` now; the formatted error if that fails."""
        try:
            self.instance(target)
        except BaseException as error:  # what a plugin's import raises is for the runner to see
            return "".join(traceback.format_exception(error))[-_BROKEN_CHARS:]
        return None

    def handle(self, call: Call) -> Reply:
        try:
            result = self.instance(call.target).run(call.ctx, call.input, call.parameters)
            if inspect.isawaitable(result):
                result = self._event_loop().run_until_complete(_awaited(result))
        # Anything the node raises, SystemExit included, is its attempt's result.
        except BaseException as error:
            return Reply(error=error_info(error), log=call.ctx.log.lines)
        problem = output_problem(result, call.max_output_bytes)
        if problem is not None:
            invalid = ErrorInfo(type="InvalidOutput", message=problem, retryable=False)
            return Reply(error=invalid, log=call.ctx.log.lines)
        return Reply(output=result, log=call.ctx.log.lines)

    def close(self) -> None:
        if self._loop is not None:
            self._loop.close()
            self._loop = None

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop


def load(target: str) -> Any:
    """The object at ``"module:qualname"``."""
    module_name, _, qualname = target.partition(":")
    found: Any = importlib.import_module(module_name)
    for part in qualname.split(".") if qualname else []:
        found = getattr(found, part)
    return found


async def _awaited(awaitable: Awaitable[M]) -> M:
    return await awaitable


def _take_stdio() -> tuple[int, int]:
    """Move the protocol's pipes to private descriptors (not inherited by anything a node
    starts); a node's reads of stdin see end of file, its prints go to stderr."""
    protocol_in, protocol_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    return protocol_in, protocol_out


def _die_with(parent_pid: int | None) -> None:
    """Ask Linux to SIGKILL this process when the runner dies, however it dies."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the runner decides when this process ends
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(0)  # the runner is already gone


def _set_limits(memory_limit_bytes: int | None) -> None:
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash leaves no core file behind
    if memory_limit_bytes is not None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks: list[bytes] = []
    missing = size
    while missing:
        chunk = os.read(fd, missing)
        if not chunk:
            if missing == size:
                return None
            raise EOFError("the runner closed the pipe in the middle of a frame")
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


def _read(fd: int, decoder: msgspec.json.Decoder[M]) -> M | None:
    """The next frame, or None when the runner closed the pipe."""
    header = _read_exactly(fd, HEADER.size)
    if header is None:
        return None
    (size,) = HEADER.unpack(header)
    body = _read_exactly(fd, size) if size else b""
    if body is None:
        raise EOFError("the runner closed the pipe in the middle of a frame")
    return decoder.decode(body)


def _write(fd: int, message: object) -> None:
    view = memoryview(encode_frame(message))
    while view:
        view = view[os.write(fd, view) :]


if __name__ == "__main__":
    sys.exit(main())
