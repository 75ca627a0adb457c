"""What a webhook answers when its trigger does not answer at once (``respond``).

- ``when_finished``: once the execution has ended (the shared waiter of
  :mod:`nodedrop.api.waiters`, so the projection shows the end), 200 with the main items of
  ``response_node``, or of the node that finished last, as a JSON array; 502 with the execution
  id, its status and error when it did not succeed (or the node has no output).
- ``via_node``: the answer a ``respond_to_webhook`` node recorded in its ``NodeSucceeded``
  (output port ``response``), watched on the execution's own subject from before the request
  is recorded: the api never receives other executions' results for it. 502 when the execution
  ends without such a node answering.
- Either way, 504 with the execution id once ``response_timeout_s`` (capped by
  ``NODEDROP_MAX_WAIT_S``) has passed; the execution goes on.

Every answer carries the execution id in ``X-Nodedrop-Execution-Id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

from fastapi import Response, status
from fastapi.responses import StreamingResponse
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from nodedrop.api import projection_reads
from nodedrop.api.db import Sessions
from nodedrop.contracts import codec
from nodedrop.contracts.events import AnyEvent, NodeSucceeded
from nodedrop.contracts.items import MAIN_PORT
from nodedrop.contracts.nodetypes import RESPONSE_PORT
from nodedrop.contracts.routing import execution_subject
from nodedrop.platform.datastore import DataStore, is_reference
from nodedrop.platform.db.tables import NodeExecutionRow

EXECUTION_ID_HEADER = "X-Nodedrop-Execution-Id"
SUCCEEDED = frozenset({"succeeded", "partial"})


def _json(code: int, body: Any, execution_id: str) -> Response:
    return Response(
        json.dumps(body),
        code,
        {EXECUTION_ID_HEADER: execution_id, "Location": f"/api/executions/{execution_id}"},
        media_type="application/json",
    )


def timed_out(execution_id: str, after_s: float) -> Response:
    return _json(
        status.HTTP_504_GATEWAY_TIMEOUT,
        {
            "id": execution_id,
            "detail": f"the execution did not answer within {after_s:g} s; it goes on",
        },
        execution_id,
    )


def failed(execution_id: str, run_status: str, error: Any, detail: str) -> Response:
    return _json(
        status.HTTP_502_BAD_GATEWAY,
        {"id": execution_id, "status": run_status, "error": error, "detail": detail},
        execution_id,
    )


def _last_finished(nodes: list[NodeExecutionRow]) -> NodeExecutionRow | None:
    done = [n for n in nodes if n.finished_at is not None and n.status == "succeeded"]
    return max(done, key=lambda n: (n.finished_at, n.position), default=None)


async def finished_answer(
    sessions: Sessions, data: DataStore, execution_id: str, response_node: str | None
) -> Response:
    """The ``when_finished`` answer of an execution the projection shows ended."""
    async with sessions() as session:
        row = await projection_reads.get_execution(session, execution_id)
        nodes = await projection_reads.node_executions(session, execution_id)
    if row is None:  # the projection was rebuilt or pruned in between
        return failed(execution_id, "unknown", None, "the execution's record is not readable")
    if row.status not in SUCCEEDED:
        return failed(execution_id, row.status, row.error, f"the execution ended {row.status}")
    if response_node is None:
        chosen = _last_finished(nodes)
    else:
        chosen = next((n for n in nodes if n.node == response_node), None)
    name = response_node or "the last node"
    if chosen is None or chosen.status != "succeeded" or not isinstance(chosen.output, dict):
        return failed(execution_id, row.status, None, f"{name} has no output to answer with")
    items = chosen.output.get(MAIN_PORT, [])
    return StreamingResponse(
        _items_array(items, data),
        status.HTTP_200_OK,
        {EXECUTION_ID_HEADER: execution_id},
        media_type="application/json",
    )


async def _items_array(items: list[Any], data: DataStore) -> AsyncIterator[bytes]:
    """``items`` as one JSON array, items stored by reference (large outputs) expanded."""
    yield b"["
    first = True
    for item in items:
        if is_reference(item):
            stored = b"".join([chunk async for chunk in data.chunks(item)]).strip()[1:-1]
            if stored.strip():
                yield (b"" if first else b",") + stored
                first = False
        else:
            yield (b"" if first else b",") + json.dumps(item).encode()
            first = False
    yield b"]"


def _answer_of(event: Any, responders: frozenset[str]) -> dict[str, Any] | None:
    """The answer a ``respond_to_webhook`` node's result event holds, if it is one."""
    if not isinstance(event, NodeSucceeded) or event.node not in responders:
        return None
    answers = event.output.get(RESPONSE_PORT) or []
    return answers[0] if answers and isinstance(answers[0], dict) else None


def recorded_answer(
    history: Iterable[tuple[AnyEvent, int]], responders: frozenset[str]
) -> dict[str, Any] | None:
    """The first answer a responder recorded in an execution's history, if any."""
    for event, _ in history:
        if (answer := _answer_of(event, responders)) is not None:
            return answer
    return None


class NodeAnswers:
    """The answers ``respond_to_webhook`` nodes of one execution record, as they are recorded:
    a subscription to the execution's ``NodeSucceeded`` subject, open for one request."""

    def __init__(self, responders: frozenset[str]) -> None:
        self._responders = responders
        self.answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    async def _on_result(self, msg: Msg) -> None:
        try:
            event = codec.decode(msg.data)
        except codec.EventDecodeError:
            return
        answer = _answer_of(event, self._responders)
        if answer is not None and not self.answer.done():
            self.answer.set_result(answer)


@contextlib.asynccontextmanager
async def node_answers(
    nc: NatsClient, execution_id: str, responders: frozenset[str]
) -> AsyncIterator[NodeAnswers]:
    watch = NodeAnswers(responders)
    subscription = await nc.subscribe(
        execution_subject(execution_id, "NodeSucceeded"), cb=watch._on_result
    )
    try:
        yield watch
    finally:
        watch.answer.cancel()
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()


async def node_answer(answer: dict[str, Any], data: DataStore, execution_id: str) -> Response:
    """The answer a ``respond_to_webhook`` node recorded."""
    if is_reference(answer):  # an answer over 256 KiB was stored by the runner
        stored = b"".join([chunk async for chunk in data.chunks(answer)])
        answer = json.loads(stored)[0]
    headers = {str(k): str(v) for k, v in (answer.get("headers") or {}).items()}
    headers[EXECUTION_ID_HEADER] = execution_id
    code = int(answer.get("status", 200))
    body = answer.get("body")
    if code in (204, 304):
        return Response(None, code, headers)
    return Response(json.dumps(body), code, headers, media_type="application/json")
