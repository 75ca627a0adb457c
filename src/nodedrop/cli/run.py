"""``nodedrop run FILE.json``: submit a workflow inline and follow its execution live.

Exit status: 0 when the execution succeeded, 1 when it finished otherwise (or the event stream
was lost for good), 2 when the request was rejected (422 problems are listed as ``loc: msg``)
or could not be made, 130 on Ctrl-C (the execution goes on).
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from nodedrop.cli.render import ExecutionView
from nodedrop.client import (
    ApiError,
    AsyncClient,
    ConnectionFailed,
    NotFound,
    Reconnecting,
    StreamLost,
    Unauthorized,
    ValidationFailed,
)

EXIT_SUCCEEDED = 0
EXIT_NOT_SUCCEEDED = 1
EXIT_REJECTED = 2
EXIT_INTERRUPTED = 130


class RunError(Exception):
    """The run could not go on; ``code`` is the exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class RunRequest:
    file: Path
    url: str
    token: str
    trigger: str | None = None
    input: Any = None
    color: bool = False


def parse_input(raw: str | None) -> Any:
    """``--input``: JSON, or ``@file`` holding JSON. A single object becomes ``[object]``."""
    if raw is None:
        return None
    text = raw
    if raw.startswith("@"):
        try:
            text = Path(raw[1:]).read_text()
        except OSError as error:
            raise RunError(f"--input: cannot read {raw[1:]}: {error.strerror}", 2) from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise RunError(f"--input is not valid JSON: {error}", EXIT_REJECTED) from None
    return [value] if isinstance(value, dict) else value


def load_definition(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as error:
        raise RunError(f"cannot read {path}: {error.strerror}", EXIT_REJECTED) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise RunError(f"{path} is not valid JSON: {error}", EXIT_REJECTED) from None


async def submit(client: AsyncClient, request: RunRequest, out: IO[str]) -> str:
    """POST the execution; its id."""
    try:
        accepted = await client.submit(
            workflow=load_definition(request.file), trigger=request.trigger, input=request.input
        )
    except ConnectionFailed as error:
        raise RunError(f"{error}; is `nodedrop up` running?", EXIT_REJECTED) from None
    except ValidationFailed as error:
        lines = "\n".join(f"  {problem}" for problem in error.problems)
        raise RunError(f"{request.file} was rejected:\n{lines}", EXIT_REJECTED) from None
    except Unauthorized:
        raise RunError(
            "the API refused the key (401): check --token / NODEDROP_TOKEN", EXIT_REJECTED
        ) from None
    except ApiError as error:
        raise RunError(
            f"POST /api/executions answered {error.status}: {error.message}", EXIT_REJECTED
        ) from None
    print(f"execution {accepted.id} queued ({request.url}/api/executions/{accepted.id})", file=out)
    return accepted.id


async def follow(
    request: RunRequest, execution_id: str, view: ExecutionView, out: IO[str], err: IO[str]
) -> None:
    """Print the execution's events until ``ExecutionFinished``; the client reconnects after
    the last event seen when the connection drops, and says so on ``err``."""

    def reconnecting(why: Reconnecting) -> None:
        closed = f"closed ({why.code}{': ' + why.reason if why.reason else ''})"
        what = closed if why.code else f"failed ({why.reason})"
        print(
            f"event stream {what}; reconnecting after seq {why.after_seq} in {why.delay_s:.1f} s",
            file=err,
            flush=True,
        )

    async with AsyncClient(request.url, request.token) as client:
        try:
            async for event in client.follow(execution_id, on_reconnect=reconnecting):
                line = view.apply(event.model_dump(mode="json"))
                if line is not None:
                    print(line, file=out, flush=True)
        except Unauthorized:
            raise RunError("the event stream refused the key (4401)", EXIT_NOT_SUCCEEDED) from None
        except NotFound:
            raise RunError(
                f"execution {execution_id} not found (4404)", EXIT_NOT_SUCCEEDED
            ) from None
        except (StreamLost, ApiError) as error:
            raise RunError(
                f"{error}; its state: {request.url}/api/executions/{execution_id}",
                EXIT_NOT_SUCCEEDED,
            ) from None


async def run_workflow(request: RunRequest, out: IO[str], err: IO[str]) -> int:
    async with AsyncClient(request.url, request.token) as client:
        execution_id = await submit(client, request, out)
    view = ExecutionView(execution_id, color=request.color)
    try:
        await follow(request, execution_id, view, out, err)
    finally:
        if view.nodes or view.finished:
            print("", file=out)
            print(view.summary(), file=out, flush=True)
    return EXIT_SUCCEEDED if view.status == "succeeded" else EXIT_NOT_SUCCEEDED


def main(request: RunRequest) -> int:
    try:
        return asyncio.run(run_workflow(request, sys.stdout, sys.stderr))
    except RunError as error:
        print(f"nodedrop run: {error}", file=sys.stderr)
        return error.code
    except KeyboardInterrupt:
        print(
            "\nnodedrop run: stopped watching; the execution goes on "
            f"(see {request.url}/api/executions)",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
