"""``GET /api/executions/{id}/nodes/{node}/output``: a node's whole output, streamed.

An output too large to travel in events holds references to the object store (see
``nodedrop.platform.datastore``); ``GET /api/executions/{id}`` shows them as they are. This
route answers the output with every reference replaced by its items, streamed chunk by chunk, so
a 50 MB output costs the API a chunk of memory at a time, not 50 MB.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
from fastapi import APIRouter, HTTPException, status
from fastapi.responses import StreamingResponse

from nodedrop.api import projection_reads
from nodedrop.api.deps import CurrentUser, DataStoreDep, EventLogDep, SessionDep
from nodedrop.api.routes.executions import find_execution
from nodedrop.contracts.items import REF_KEY
from nodedrop.platform.datastore import DataStore, is_reference
from nodedrop.platform.db.tables import ExecutionRow

router = APIRouter(prefix="/executions", tags=["executions"])
_encode = msgspec.json.Encoder().encode


@router.get(
    "/{execution_id}/nodes/{node}/output",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"application/json": {}},
            "description": "the node's output {port: [items]}",
        },
        404: {"description": "unknown execution, node, or no output yet"},
    },
)
async def node_output(
    execution_id: str,
    node: str,
    *,
    user: CurrentUser,
    session: SessionDep,
    events: EventLogDep,
    data: DataStoreDep,
) -> StreamingResponse:
    found = await find_execution(execution_id, user, session, events)
    rows = (
        await projection_reads.node_executions(session, execution_id)
        if isinstance(found, ExecutionRow)
        else []
    )
    output = next((row.output for row in rows if row.node == node), None)
    if not isinstance(output, dict):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"node {node!r} of execution {execution_id!r} has no output"
        )
    return StreamingResponse(_stream(output, data), media_type="application/json")


async def _stream(output: dict[str, Any], data: DataStore) -> AsyncIterator[bytes]:
    yield b"{"
    for port_index, (port, items) in enumerate(output.items()):
        yield (b"," if port_index else b"") + _encode(port) + b":["
        first = True
        for item in items:
            if is_reference(item):
                if item[REF_KEY]["count"]:
                    yield b"" if first else b","
                    async for part in _array_body(data, item):
                        yield part
            else:
                yield (b"" if first else b",") + _encode(item)
            first = False
        yield b"]"
    yield b"}"


async def _array_body(data: DataStore, reference: dict[str, Any]) -> AsyncIterator[bytes]:
    """The stored JSON array's content, without its brackets."""
    held = b""
    started = False
    async for chunk in data.chunks(reference):
        part = chunk if started else chunk[1:]  # the first chunk opens with "["
        started = True
        if held:
            yield held
        held = part
    yield held[:-1]  # the closing "]"
