"""Custom node classes as plugin authors write them, misbehaving in every way the runner must
survive. The runner's worker processes import them from here by ``"module:qualname"`` (they get
the test process's ``sys.path``), exactly as they import an entry point's class."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

from nodedrop.contracts.items import PortItems
from nodedrop.contracts.nodetypes import NodeTypeSpec
from nodedrop.runner.nodes import NodeContext, NodeError
from nodedrop.runner.nodes.registry import PluginNode, plugin_node


def _spec(type_name: str) -> NodeTypeSpec:
    return NodeTypeSpec(type_name, type_name.title(), "action")


class SyncEcho:
    """A plain ``def run``: its input items, each with the worker's pid and its call count."""

    spec: ClassVar[NodeTypeSpec] = _spec("sync_echo")

    def __init__(self) -> None:
        self.calls = 0

    def run(self, ctx: NodeContext, node_input: PortItems, parameters: dict[str, Any]) -> Any:
        self.calls += 1
        extra = {"pid": os.getpid(), "calls": self.calls, "node": ctx.node}
        return {"main": [{**item, **extra} for item in node_input.get("main", [])]}


class AsyncEcho:
    """An ``async def run``, awaiting something on the worker's event loop."""

    spec: ClassVar[NodeTypeSpec] = _spec("async_echo")

    async def run(self, ctx: NodeContext, node_input: PortItems, parameters: Any) -> Any:
        await asyncio.sleep(0.001)
        return {"main": [{**item, "attempt": ctx.attempt} for item in node_input.get("main", [])]}


class Sleeper:
    """Blocks its thread (an event loop's, if it had one) for ``parameters["s"]`` seconds, or
    until the file ``parameters["until"]`` exists if given: a test then decides when it ends."""

    spec: ClassVar[NodeTypeSpec] = _spec("sleeper")

    def run(self, ctx: NodeContext, node_input: PortItems, parameters: dict[str, Any]) -> Any:
        seconds = parameters.get("s", 30)
        gate = parameters.get("until")
        if gate is None:
            time.sleep(seconds)
            return {"main": []}
        deadline = time.monotonic() + seconds
        while not Path(gate).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return {"main": []}


class AsyncBlocker:
    """An ``async def run`` that blocks its event loop anyway."""

    spec: ClassVar[NodeTypeSpec] = _spec("async_blocker")

    async def run(self, ctx: NodeContext, node_input: PortItems, parameters: Any) -> Any:
        time.sleep(30)  # noqa: ASYNC251 - that is the point
        return {"main": []}


class Spinner:
    """A CPU loop that never yields and never checks anything."""

    spec: ClassVar[NodeTypeSpec] = _spec("spinner")

    def run(self, ctx: NodeContext, node_input: PortItems, parameters: Any) -> Any:
        while True:
            pass


class Exiter:
    spec: ClassVar[NodeTypeSpec] = _spec("exiter")

    def run(self, ctx: NodeContext, node_input: PortItems, parameters: Any) -> Any:
        os._exit(1)


class Segfaulter:
    spec: ClassVar[NodeTypeSpec] = _spec("segfaulter")

    def run(self, ctx: NodeContext, node_input: PortItems, parameters: Any) -> Any:
        os.kill(os.getpid(), signal.SIGSEGV)
        time.sleep(5)


def _check_order(order: dict[str, Any]) -> None:
    if "id" not in order:
        raise ValueError(f"order without id: {order}")


class Raiser:
    """Fails inside a helper: the stack must show both frames."""

    spec: ClassVar[NodeTypeSpec] = _spec("raiser")

    def run(self, ctx: NodeContext, node_input: PortItems, parameters: Any) -> Any:
        for item in node_input.get("main", []):
            _check_order(item)
        return {"main": node_input.get("main", [])}


class Refuser:
    spec: ClassVar[NodeTypeSpec] = _spec("refuser")

    async def run(self, ctx: NodeContext, node_input: PortItems, parameters: Any) -> Any:
        raise NodeError("QuotaExceeded", "try tomorrow", retryable=False)


class Quitter:
    spec: ClassVar[NodeTypeSpec] = _spec("quitter")

    def run(self, ctx: NodeContext, node_input: PortItems, parameters: Any) -> Any:
        sys.exit(2)


class BadOutput:
    """Returns ``parameters["kind"]`` of wrong output."""

    spec: ClassVar[NodeTypeSpec] = _spec("bad_output")

    def run(self, ctx: NodeContext, node_input: PortItems, parameters: dict[str, Any]) -> Any:
        return {
            "string": "done",
            "none": None,
            "list": [{"a": 1}],
            "scalar_item": {"main": [1]},
            "complex": {"main": [{"z": 1j}]},
            "tuple": {"main": ({"a": 1},)},
            "big": {"main": [{"blob": "x" * 100_000}]},
        }[parameters["kind"]]


class Noisy:
    """Writes to stdout and reads stdin: neither may touch the runner's pipes."""

    spec: ClassVar[NodeTypeSpec] = _spec("noisy")

    def run(self, ctx: NodeContext, node_input: PortItems, parameters: Any) -> Any:
        print("\x00\x00\x00\x05hello from a node")  # noqa: T201 - that is the point
        sys.stdout.flush()
        os.write(1, b"\x00\x00\x00\x02{}")
        return {"main": [{"stdin": sys.stdin.read()}]}


class Forker:
    """Starts a long subprocess, writes its pid to ``parameters["pid_file"]`` and blocks."""

    spec: ClassVar[NodeTypeSpec] = _spec("forker")

    def run(self, ctx: NodeContext, node_input: PortItems, parameters: dict[str, Any]) -> Any:
        child = subprocess.Popen(["sleep", "60"])
        Path(parameters["pid_file"]).write_text(str(child.pid))
        child.wait()
        return {"main": []}


class Hog:
    """Allocates ``parameters["mb"]`` MiB."""

    spec: ClassVar[NodeTypeSpec] = _spec("hog")

    def run(self, ctx: NodeContext, node_input: PortItems, parameters: dict[str, Any]) -> Any:
        blob = bytearray(parameters["mb"] * 1024 * 1024)
        return {"main": [{"size": len(blob)}]}


class Environment:
    """The worker's environment variables' names."""

    spec: ClassVar[NodeTypeSpec] = _spec("environment")

    def run(self, ctx: NodeContext, node_input: PortItems, parameters: Any) -> Any:
        return {"main": [{"names": sorted(os.environ)}]}


class BrokenInit:
    spec: ClassVar[NodeTypeSpec] = _spec("broken_init")

    def __init__(self) -> None:
        raise RuntimeError("missing configuration")

    def run(self, ctx: NodeContext, node_input: PortItems, parameters: Any) -> Any:
        return {"main": []}


def node(cls: type) -> PluginNode:
    """The registry entry of one of these classes, as ``load_registry`` makes it."""
    return plugin_node(cls, cls.__name__)


ALL = [
    SyncEcho,
    AsyncEcho,
    Sleeper,
    AsyncBlocker,
    Spinner,
    Exiter,
    Segfaulter,
    Raiser,
    Refuser,
    Quitter,
    BadOutput,
    Noisy,
    Forker,
    Hog,
    Environment,
]
