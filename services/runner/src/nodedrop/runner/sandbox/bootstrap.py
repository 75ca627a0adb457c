"""What runs inside the code sandbox: read the job, run the user's ``main``, write the reply.

Executed by the sandbox's interpreter as ``python -I -S -X utf8 -c <this file's text>``, so it
imports only the standard library (never nodedrop, which is not in the sandbox). The job comes
as one JSON document on stdin; the reply leaves as one JSON document on the stdout the process
started with, which is moved to a private descriptor first: the user's ``print`` becomes log
lines, and anything written to descriptor 1 lands on stderr, so neither can garble the reply.
(The user's code can still find the descriptor and write to it: the runner treats the reply as
untrusted data, checked like any node's output, and it only ever describes this one attempt.)

Reply: ``{"output": {port: [items]}, "logs": [...]}`` or ``{"error": {"type", "message",
"stack"}, "logs": [...]}``, with ``logs`` as ``[time, level, message]`` triples.
"""

from __future__ import annotations

import builtins
import json
import linecache
import os
import sys
import time
import traceback
from typing import Any

CODE_FILENAME = "<code>"
MAX_LOG_LINES = 1000
MAX_LOG_CHARS = 10_000


class Log:
    """``ctx.log``: lines recorded with the attempt's result (``NodeLogged``)."""

    def __init__(self) -> None:
        self.lines: list[list[str]] = []

    def debug(self, message: object) -> None:
        self._write("debug", message)

    def info(self, message: object) -> None:
        self._write("info", message)

    def warning(self, message: object) -> None:
        self._write("warning", message)

    def error(self, message: object) -> None:
        self._write("error", message)

    def _write(self, level: str, message: object) -> None:
        if len(self.lines) >= MAX_LOG_LINES:
            return
        if len(self.lines) == MAX_LOG_LINES - 1:
            level, message = "warning", f"log truncated: at most {MAX_LOG_LINES} lines"
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        fraction = f"{time.time() % 1:.6f}"[1:]
        self.lines.append([f"{stamp}{fraction}+00:00", level, str(message)[:MAX_LOG_CHARS]])


class PrintToLog:
    """``sys.stdout`` for the user's code: every printed line becomes an ``info`` log line."""

    def __init__(self, log: Log) -> None:
        self._log = log
        self._pending = ""

    def write(self, text: str) -> int:
        *lines, self._pending = (self._pending + text).split("\n")
        for line in lines:
            self._log.info(line)
        self._pending = self._pending[-MAX_LOG_CHARS:]
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self._log.info(self._pending)
            self._pending = ""


class WrongResultError(Exception):
    """What the user's code did wrong outside an exception of its own (a wrong result)."""


class Context:
    """``ctx``: which attempt this is, ``ctx.log``, and ``ctx.send(port, items)``."""

    def __init__(self, job: dict[str, Any], log: Log) -> None:
        self.execution_id: str = job["execution_id"]
        self.node: str = job["node"]
        self.attempt: int = job["attempt"]
        self.log = log
        self.sent: dict[str, list[Any]] = {port: [] for port in job["outputs"]}

    def send(self, port: str, items: Any) -> None:
        """Items (one object or a list of them) for the output ``port``, one of the node's
        ``outputs`` (``main`` takes what ``main`` returns)."""
        if port not in self.sent:
            named = ", ".join(self.sent) or "none"
            raise WrongResultError(f"ctx.send: {port!r} is not one of the node's outputs ({named})")
        self.sent[port].extend(_items(items, f"ctx.send({port!r}, ...)"))


def _items(value: Any, what: str) -> list[Any]:
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                raise WrongResultError(
                    f"{what}: item {index} is a {type(item).__name__}, not a dict"
                )
        return list(value)
    raise WrongResultError(
        f"{what}: expected a dict or a list of dicts, not {type(value).__name__}"
    )


def run_job(job: dict[str, Any], ctx: Context) -> dict[str, list[Any]]:
    source: str = job["source"]
    linecache.cache[CODE_FILENAME] = (len(source), None, source.splitlines(True), CODE_FILENAME)
    namespace: dict[str, Any] = {"__name__": "__code__", "__builtins__": builtins}
    exec(compile(source, CODE_FILENAME, "exec", dont_inherit=True), namespace)
    main = namespace.get("main")
    if not callable(main):
        raise WrongResultError("the source defines no function main")
    code = getattr(main, "__code__", None)
    with_ctx = code is None or code.co_argcount >= 2 or bool(code.co_flags & 0x04)  # *args
    items: list[Any] = job["items"]
    returned: list[Any] = []
    if job["mode"] == "each_item":
        for index, item in enumerate(items):
            result = main(item, ctx) if with_ctx else main(item)
            if result is not None:
                returned.extend(_items(result, f"main returned for item {index}"))
    else:
        result = main(items, ctx) if with_ctx else main(items)
        if not isinstance(result, list | tuple):
            raise WrongResultError(
                f"main must return a list of items in mode all_items, not {type(result).__name__}"
            )
        returned = _items(list(result), "main returned")
    return {"main": returned, **ctx.sent}


def user_traceback(error: BaseException) -> tuple[str, int | None]:
    """The traceback of ``error`` with only the user's frames, and the line it failed on."""
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if frame.filename == CODE_FILENAME
    ]
    text = "".join(traceback.format_exception_only(type(error), error))
    if frames:
        text = (
            "Traceback (most recent call last):\n"
            + "".join(traceback.StackSummary.from_list(frames).format())
            + text
        )
    return text, frames[-1].lineno if frames else None


def main() -> None:
    reply_fd = os.dup(1)
    os.dup2(2, 1)  # writes to descriptor 1 go to stderr, never into the reply
    log = Log()
    sys.stdout = PrintToLog(log)
    reply: dict[str, Any]
    try:
        job = json.loads(sys.stdin.buffer.read())
        sys.path.extend(job["paths"])  # the allowed packages
        ctx = Context(job, log)
        output = run_job(job, ctx)
        reply = {"output": output}
    except BaseException as error:  # whatever the user's code raised
        stack, line = user_traceback(error)
        where = f" (line {line})" if line is not None else ""
        # A wrong result is described as it is; an exception by its type, as Python would.
        named = "" if isinstance(error, WrongResultError) else f"{type(error).__name__}: "
        message = f"{named}{error}{where}"
        reply = {"error": {"type": "CodeError", "message": message, "stack": stack}}
    sys.stdout.flush()
    reply["logs"] = log.lines
    try:
        data = json.dumps(reply, allow_nan=False, ensure_ascii=False).encode("utf-8", "replace")
    except (TypeError, ValueError, RecursionError) as error:
        data = json.dumps(
            {
                "error": {
                    "type": "CodeError",
                    "message": f"main returned something that is not JSON: {error}",
                    "stack": None,
                },
                "logs": log.lines,
            }
        ).encode()
    view = memoryview(data)
    while view:
        view = view[os.write(reply_fd, view) :]
    os.close(reply_fd)


if __name__ == "__main__":
    main()
