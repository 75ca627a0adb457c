"""``POST /webhooks/{workflow_id}/{node_id}``: start a saved workflow from a webhook trigger.

Not under ``/api`` and not behind the bearer key: callers are other systems. A node with a
``secret`` parameter demands either the secret itself in ``X-Nodedrop-Secret`` or, better, a
signature of the request made with it in ``X-Nodedrop-Signature`` (``t=<unix time>,v1=<hex>``:
HMAC-SHA256 of ``<t>.<body>``, at most :data:`SIGNATURE_TOLERANCE_S` old); with
``require_signature`` only the signature. A node without a ``secret`` is unauthenticated. An
unknown or deleted workflow and a node that is not one of its webhook triggers get the same 404,
so ids cannot be probed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Header, HTTPException, Request, Response, status

from nodedrop.api import submission, workflow_store
from nodedrop.api.definitions import revalidate_off_loop
from nodedrop.api.deps import EventLogDep, RegistryDep, SessionDep
from nodedrop.api.entry import BodyRefusedError
from nodedrop.api.errors import UnprocessableError, problem
from nodedrop.api.execution_requests import refuse_references
from nodedrop.api.offload import OFF_LOOP_BYTES, run_off_loop_if
from nodedrop.api.schemas import ExecutionAccepted, Message
from nodedrop.contracts.items import MAIN_PORT, Item
from nodedrop.contracts.jsonlimits import MAX_JSON_DEPTH, depth_message, json_problem

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

WEBHOOK_TRIGGER_TYPE = "webhook_trigger"
SECRET_HEADER = "X-Nodedrop-Secret"
SIGNATURE_HEADER = "X-Nodedrop-Signature"
#: How far a signature's timestamp may be from the api's clock, either way: a captured signed
#: request can be replayed only this long.
SIGNATURE_TOLERANCE_S = 300

_SIGNATURE_PART = re.compile(r"^\s*(t|v1)=([0-9]{1,15}|[0-9a-fA-F]{64})\s*$")

_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "queued: the request is in the event log",
        "headers": {
            "Location": {"description": "/api/executions/{id}", "schema": {"type": "string"}}
        },
    },
    401: {
        "model": Message,
        "description": "the node has a secret and neither a valid signature nor the secret "
        "came with the request",
    },
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


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``v1`` signature of ``body`` sent at ``timestamp``: hex HMAC-SHA256 of
    ``<timestamp>.<body>`` keyed with the secret (UTF-8)."""
    return hmac.new(secret.encode(), b"%d." % timestamp + body, hashlib.sha256).hexdigest()


def signature_problem(
    secret: str, header: str, body: bytes, now: float, tolerance_s: int = SIGNATURE_TOLERANCE_S
) -> str | None:
    """Why ``header`` (``t=<unix time>,v1=<hex>[,v1=<hex>...]``) does not sign ``body`` with
    ``secret`` at about ``now``, or None when it does."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        match = _SIGNATURE_PART.match(part)
        if match is None:
            return (
                f"malformed {SIGNATURE_HEADER} header: expected t=<unix time>,v1=<hex "
                f"HMAC-SHA256 of '<t>.<body>'>"
            )
        if match[1] == "t":
            timestamp = int(match[2]) if match[2].isdigit() else None
        else:
            candidates.append(match[2].lower())
    if timestamp is None or not candidates:
        return f"{SIGNATURE_HEADER} needs t=<unix time> and at least one v1=<hex signature>"
    if abs(now - timestamp) > tolerance_s:
        return (
            f"the {SIGNATURE_HEADER} timestamp is more than {tolerance_s} s away from the "
            f"server's clock (a replay, or a clock to fix)"
        )
    expected = sign(secret, timestamp, body)
    # Each comparison in constant time (several v1 let a sender rotate its secret).
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        return f"the {SIGNATURE_HEADER} signature does not match"
    return None


def webhook_input(raw: bytes) -> list[Item]:
    """The trigger's output for a request body: ``[body]`` for a JSON object, ``[{"body":
    value}]`` for any other JSON value (items are objects), ``[{}]`` for an empty body.

    As the trigger's output ``{"main": items}``, it may nest at most ``MAX_JSON_DEPTH`` levels
    (a runner would refuse to output more), and may hold no NUL character."""
    if not raw.strip():
        return [{}]
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError as error:
        raise UnprocessableError(
            [problem(["body"], f"the body is not valid JSON: {error}", "json_invalid")]
        ) from None
    except RecursionError:  # deeper than the decoder goes: far deeper than the limit
        raise BodyRefusedError(["body"], depth_message(MAX_JSON_DEPTH), "too_deep") from None
    wrapped = not isinstance(value, dict)
    items = [{"body": value}] if wrapped else [value]
    found = json_problem({MAIN_PORT: items})
    if found is not None:
        # The path inside the body: past "main", 0 and the key "body" a non-object is put under.
        inside = found.path[3:] if wrapped else found.path[2:]
        raise BodyRefusedError(["body", *inside], found.message, found.kind)
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
        Header(
            alias=SECRET_HEADER,
            description="the node's `secret` itself, when the node has one and the request is "
            "not signed (refused when the node has `require_signature`)",
        ),
    ] = None,
    signature: Annotated[
        str | None,
        Header(
            alias=SIGNATURE_HEADER,
            description="`t=<unix time>,v1=<hex HMAC-SHA256 of '<t>.<body>' keyed with the "
            f"node's secret>`, at most {SIGNATURE_TOLERANCE_S} s from the server's clock",
        ),
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
    parameters = node.get("parameters") or {}
    expected: str | None = parameters.get("secret")
    if expected is not None and signature is not None:
        # A signed request: the body is part of what is checked.
        raw = await request.body()
        refused = signature_problem(expected, signature, raw, time.time())
        if refused is not None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, refused)
    elif expected is not None and parameters.get("require_signature"):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"this webhook takes only signed requests: missing {SIGNATURE_HEADER} header",
        )
    elif not _secret_matches(expected, secret):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"missing or wrong {SECRET_HEADER} header (or sign the request: {SIGNATURE_HEADER})",
        )
    raw = await request.body()
    run_input = await run_off_loop_if(len(raw) > OFF_LOOP_BYTES, webhook_input, raw)
    checked = await revalidate_off_loop(row.definition, registry, ["path", "workflow_id"])
    execution_id = await submission.request_execution(
        events,
        workflow=checked.as_json,
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
