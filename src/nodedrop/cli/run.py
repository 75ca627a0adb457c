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
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from nodedrop.cli.render import ExecutionView

EXIT_SUCCEEDED = 0
EXIT_NOT_SUCCEEDED = 1
EXIT_REJECTED = 2
EXIT_INTERRUPTED = 130

CLOSE_UNAUTHORIZED = 4401
CLOSE_NOT_FOUND = 4404
#: Reconnections in a row that bring no event before ``nodedrop run`` gives up.
MAX_FAILED_CONNECTS = 20
MAX_RECONNECT_DELAY_S = 5.0
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


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


def format_location(loc: Any) -> str:
    """``["body", "workflow", "nodes", 1, "type"]`` -> ``workflow.nodes[1].type``."""
    if not isinstance(loc, list):
        return str(loc)
    parts: list[str] = []
    for index, part in enumerate(loc):
        if index == 0 and part == "body" and len(loc) > 1:
            continue
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(f".{part}" if parts else str(part))
    return "".join(parts) or "(request)"


def format_problems(body: Any) -> list[str]:
    """A 422 body (``{"detail": [{"loc", "msg", "type"}]}``) as ``loc: msg`` lines."""
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str):
        return [detail]
    if not isinstance(detail, list):
        return [json.dumps(body)]
    lines = []
    for problem in detail:
        if isinstance(problem, dict):
            lines.append(f"{format_location(problem.get('loc'))}: {problem.get('msg', problem)}")
        else:
            lines.append(str(problem))
    return lines


def websocket_url(base_url: str, execution_id: str, after_seq: int) -> str:
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    path = f"{parts.path.rstrip('/')}/ws/executions/{quote(execution_id, safe='')}"
    return urlunsplit((scheme, parts.netloc, path, f"after_seq={after_seq}", ""))


def _response_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500]
    if isinstance(body, dict) and "detail" in body:
        return "; ".join(format_problems(body))
    return json.dumps(body)[:500]


async def submit(client: httpx.AsyncClient, request: RunRequest, out: IO[str]) -> str:
    """POST the execution; its id."""
    body: dict[str, Any] = {"workflow": load_definition(request.file)}
    if request.trigger is not None:
        body["trigger"] = request.trigger
    if request.input is not None:
        body["input"] = request.input
    try:
        response = await client.post("/api/executions", json=body)
    except httpx.HTTPError as error:
        raise RunError(
            f"cannot reach the API at {request.url} ({error}); is `nodedrop up` running?",
            EXIT_REJECTED,
        ) from None
    if response.status_code == 422:
        try:
            problems = format_problems(response.json())
        except ValueError:
            problems = [response.text]
        lines = "\n".join(f"  {line}" for line in problems)
        raise RunError(f"{request.file} was rejected:\n{lines}", EXIT_REJECTED)
    if response.status_code == 401:
        raise RunError("the API refused the key (401): check --token / NODEDROP_TOKEN", 2)
    if response.status_code not in {200, 201, 202}:
        raise RunError(
            f"POST /api/executions answered {response.status_code}: {_response_text(response)}",
            EXIT_REJECTED,
        )
    execution_id = str(response.json()["id"])
    print(
        f"execution {execution_id} queued ({request.url}/api/executions/{execution_id})", file=out
    )
    return execution_id


async def follow(
    request: RunRequest, execution_id: str, view: ExecutionView, out: IO[str], err: IO[str]
) -> None:
    """Print the execution's events until ``ExecutionFinished``, reconnecting after the last
    event seen when the connection drops."""
    last_seq = 0
    failures = 0
    headers = {"Authorization": f"Bearer {request.token}"}
    while True:
        received = 0
        code: int | None = None
        reason = ""
        try:
            async with connect(
                websocket_url(request.url, execution_id, last_seq),
                additional_headers=headers,
                open_timeout=10,
                max_size=MAX_MESSAGE_BYTES,
            ) as websocket:
                try:
                    async for message in websocket:
                        event = json.loads(message)
                        seq = event.get("seq")
                        if isinstance(seq, int):
                            if seq <= last_seq:
                                continue  # already shown before a reconnection
                            last_seq = seq
                        received += 1
                        line = view.apply(event)
                        if line is not None:
                            print(line, file=out, flush=True)
                except ConnectionClosed:
                    pass
                code, reason = websocket.close_code, websocket.close_reason or ""
        except InvalidStatus as refused:
            status = refused.response.status_code
            code = {401: CLOSE_UNAUTHORIZED, 403: CLOSE_UNAUTHORIZED, 404: CLOSE_NOT_FOUND}.get(
                status
            )
            reason = f"HTTP {status}"
        except (OSError, TimeoutError, InvalidHandshake) as error:
            reason = str(error) or type(error).__name__
        if view.finished:
            return
        if code == CLOSE_UNAUTHORIZED:
            raise RunError("the event stream refused the key (4401)", EXIT_NOT_SUCCEEDED)
        if code == CLOSE_NOT_FOUND:
            raise RunError(f"execution {execution_id} not found (4404)", EXIT_NOT_SUCCEEDED)
        failures = 0 if received else failures + 1
        if failures >= MAX_FAILED_CONNECTS:
            raise RunError(
                f"lost the event stream of {execution_id} ({reason}); its state: "
                f"{request.url}/api/executions/{execution_id}",
                EXIT_NOT_SUCCEEDED,
            )
        delay = min(0.25 * 2**failures, MAX_RECONNECT_DELAY_S)
        what = f"closed ({code}{': ' + reason if reason else ''})" if code else f"failed ({reason})"
        print(
            f"event stream {what}; reconnecting after seq {last_seq} in {delay:.1f} s",
            file=err,
            flush=True,
        )
        await asyncio.sleep(delay)


async def run_workflow(request: RunRequest, out: IO[str], err: IO[str]) -> int:
    headers = {"Authorization": f"Bearer {request.token}"}
    async with httpx.AsyncClient(base_url=request.url, headers=headers, timeout=30) as client:
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
