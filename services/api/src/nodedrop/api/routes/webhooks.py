"""``POST /webhooks/{workflow_id}/{node_id}``: start a saved workflow from a webhook trigger.

Not under ``/api`` and not behind the bearer key: callers are other systems. A node with a
``secret`` parameter demands it in ``X-Nodedrop-Secret``. An unknown or deleted workflow and a
node that is not one of its webhook triggers get the same 404, so ids cannot be probed.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Header, HTTPException, Request, Response, status

from nodedrop.api import submission, workflow_store
from nodedrop.api.definitions import revalidate
from nodedrop.api.deps import EventLogDep, RegistryDep, SessionDep
from nodedrop.api.errors import UnprocessableError, problem
from nodedrop.api.execution_requests import refuse_references
from nodedrop.api.schemas import ExecutionAccepted, Message
from nodedrop.contracts.items import Item

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

WEBHOOK_TRIGGER_TYPE = "webhook_trigger"
SECRET_HEADER = "X-Nodedrop-Secret"

_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "queued: the request is in the event log",
        "headers": {
            "Location": {"description": "/api/executions/{id}", "schema": {"type": "string"}}
        },
    },
    401: {"model": Message, "description": "the node has a secret and the header does not match"},
    404: {"model": Message, "description": "no saved workflow with that webhook trigger node"},
    413: {"model": Message, "description": "the body is too large"},
    422: {"description": "the body is not JSON, or the saved workflow is no longer valid"},
    503: {"model": Message, "description": "the database or the event log is unavailable"},
}


def _webhook_node(definition: dict[str, Any], node_id: str) -> dict[str, Any] | None:
    for node in definition.get("nodes", []):
        if node.get("id") == node_id and node.get("type") == WEBHOOK_TRIGGER_TYPE:
            found: dict[str, Any] = node
            return found
    return None


def _secret_matches(expected: str | None, presented: str | None) -> bool:
    if expected is None:
        return True
    if presented is None:
        return False
    # Same time wherever the strings differ.
    return hmac.compare_digest(presented.encode(), expected.encode())


def webhook_input(raw: bytes) -> list[Item]:
    """The trigger's output for a request body: ``[body]`` for a JSON object, ``[{"body":
    value}]`` for any other JSON value (items are objects), ``[{}]`` for an empty body."""
    if not raw.strip():
        return [{}]
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError as error:
        raise UnprocessableError(
            [problem(["body"], f"the body is not valid JSON: {error}", "json_invalid")]
        ) from None
    items = [value] if isinstance(value, dict) else [{"body": value}]
    refuse_references(items, ["body"])
    return items


@router.post("/{workflow_id}/{node_id}", status_code=status.HTTP_202_ACCEPTED, responses=_RESPONSES)
async def receive_webhook(
    *,
    workflow_id: str,
    node_id: str,
    request: Request,
    response: Response,
    session: SessionDep,
    registry: RegistryDep,
    events: EventLogDep,
    secret: Annotated[
        str | None,
        Header(alias=SECRET_HEADER, description="required when the node has a `secret`"),
    ] = None,
) -> ExecutionAccepted:
    """Run the latest version of a saved workflow from its ``webhook_trigger`` node ``node_id``,
    with input ``[body]``, as the workflow's owner. Answered once the request is durably in the
    event log."""
    row = await workflow_store.get(session, workflow_id)
    node = _webhook_node(row.definition, node_id) if row is not None else None
    if row is None or node is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"no webhook {workflow_id!r}/{node_id!r} is known"
        )
    expected = (node.get("parameters") or {}).get("secret")
    if not _secret_matches(expected, secret):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, f"missing or wrong {SECRET_HEADER} header"
        )
    run_input = webhook_input(await request.body())
    workflow = revalidate(row.definition, registry, ["path", "workflow_id"])
    execution_id = await submission.request_execution(
        events,
        workflow=workflow,
        requested_by=row.owner,
        mode="trigger",
        trigger=node_id,
        node=None,
        run_input=run_input,
        workflow_id=row.id,
        workflow_version=row.version,
    )
    response.headers["Location"] = f"/api/executions/{execution_id}"
    return ExecutionAccepted(id=execution_id)
