"""``code``: the user's Python, run on the node's items in a sandbox (docs/nodes.md, "code").

The node itself only builds the job, hands it to :class:`~nodedrop.runner.sandbox.jail.Jail`
and turns the reply into an output, log lines and errors; everything the code does happens in
the sandbox's process, never in the runner's.

Error types: ``CodeError`` (the code raised, or returned something that is not items; the
message and the stack are the user's own, with ``<code>`` line numbers), ``CodeLimitExceeded``
(CPU time, wall time, memory or result size), ``CodeSandboxUnavailable`` (no bubblewrap, or it
cannot make its namespaces here). None is retried: the same code on the same items does the same.
"""

from __future__ import annotations

import signal
from datetime import datetime
from typing import Any

import msgspec

from nodedrop.contracts.events import LogLevel
from nodedrop.contracts.items import PortItems
from nodedrop.contracts.nodetypes import CodeParameters, passthrough_items
from nodedrop.runner.nodes.api import NodeContext, NodeError
from nodedrop.runner.nodes.builtins import parse_parameters
from nodedrop.runner.sandbox.jail import (
    Finished,
    Jail,
    SandboxLimitError,
    SandboxUnavailableError,
)
from nodedrop.runner.sandbox.settings import SandboxSettings

_LEVELS: dict[str, LogLevel] = {
    "debug": "debug",
    "info": "info",
    "warning": "warning",
    "error": "error",
}


class _Error(msgspec.Struct):
    type: str
    message: str
    stack: str | None = None


class _Reply(msgspec.Struct):
    logs: list[tuple[str, str, str]] = []
    output: dict[str, list[dict[str, Any]]] | None = None
    error: _Error | None = None


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(_Reply)


class CodeNode:
    type = "code"

    def __init__(self, settings: SandboxSettings | None = None) -> None:
        self.jail = Jail(settings or SandboxSettings())
        # Running it twice is harmless only when the sandbox has no network.
        self.side_effect_free = self.jail.settings.mode == "bwrap"

    async def run(
        self, ctx: NodeContext, node_input: PortItems, parameters: dict[str, Any]
    ) -> PortItems:
        chosen = parse_parameters(CodeParameters, parameters)
        try:
            job = _encoder.encode(
                {
                    "source": chosen.source,
                    "mode": chosen.mode,
                    "outputs": chosen.outputs,
                    "items": passthrough_items(node_input),
                    "execution_id": ctx.execution_id,
                    "node": ctx.node,
                    "attempt": ctx.attempt,
                    "paths": self.jail.import_paths(),
                }
            )
            finished = await self.jail.run(job)
        except SandboxUnavailableError as error:
            raise NodeError("CodeSandboxUnavailable", str(error), retryable=False) from None
        except SandboxLimitError as error:
            raise NodeError("CodeLimitExceeded", str(error), retryable=False) from None
        return self._result(finished, ctx)

    def _result(self, finished: Finished, ctx: NodeContext) -> PortItems:
        try:
            reply = _decoder.decode(finished.reply)
        except msgspec.DecodeError:
            raise self._no_reply(finished) from None
        for time, level, message in reply.logs:
            ctx.log.write(_LEVELS.get(level, "info"), message, _parsed_time(time))
        if reply.error is not None:
            # The stack recorded is the user's own (``<code>`` frames), not the runner's.
            raise NodeError(
                "CodeError", reply.error.message, retryable=False, stack=reply.error.stack or ""
            )
        if reply.output is None:
            raise self._no_reply(finished)
        return reply.output

    def _no_reply(self, finished: Finished) -> NodeError:
        """The process ended without a reply: killed by a limit, or it crashed."""
        status = finished.returncode
        # bwrap reports a child killed by a signal as 128 + the signal; prlimit alone as -signal.
        signal_number = -status if status < 0 else status - 128 if status > 128 else None
        if signal_number in (signal.SIGXCPU, signal.SIGKILL):
            return NodeError(
                "CodeLimitExceeded",
                f"the code used more than {self.jail.settings.cpu_s} s of CPU time",
                retryable=False,
            )
        stderr = finished.stderr.strip()
        if stderr.startswith("bwrap:"):
            return NodeError("CodeSandboxUnavailable", stderr, retryable=False)
        memory_mb = self.jail.settings.memory_bytes // (1024 * 1024)
        return NodeError(
            "CodeError",
            f"the code's process ended without a result (exit status {status}; memory is "
            f"limited to {memory_mb} MiB): {stderr[-500:] or 'no output'}",
            retryable=False,
        )


def _parsed_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
