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
from collections.abc import Iterable
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Header, HTTPException, Request, Response, status

from nodedrop.api import projection_reads, submission, workflow_store
from nodedrop.api import webhook_answers as answers
from nodedrop.api.deps import RunningDep, open_session
from nodedrop.api.drafts import runnable
from nodedrop.api.entry import BodyRefusedError
from nodedrop.api.errors import UnprocessableError, problem
from nodedrop.api.execution_requests import refuse_references
from nodedrop.api.offload import OFF_LOOP_BYTES, run_off_loop_if
from nodedrop.api.routes.executions import client_gone
from nodedrop.api.schemas import ExecutionAccepted, Message
from nodedrop.api.waiters import wait_first, wait_for
from nodedrop.api.workflow_store import new_id
from nodedrop.contracts.items import MAIN_PORT, Item
from nodedrop.contracts.jsonlimits import MAX_JSON_DEPTH, depth_message, json_problem
from nodedrop.contracts.nodetypes import RESPOND_TO_WEBHOOK_TYPE

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
    200: {"description": "respond when_finished / via_node: the run's answer"},
    405: {"model": Message, "description": "the node's `methods` do not list the method"},
    502: {"description": "when_finished / via_node: the run failed or did not answer"},
    504: {"description": "when_finished / via_node: no answer within the response timeout"},
    401: {
        "model": Message,
        "description": "the node has a secret and neither a valid signature nor the secret "
        "came with the request",
    },
    404: {"model": Message, "description": "no saved workflow with that webhook trigger node"},
    413: {"model": Message, "description": "the body is too large"},
    422: {"description": "the body is not JSON, or the saved workflow has problems"},
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


_NO_BODY = object()


def _decoded_body(raw: bytes) -> Any:
    """The body's JSON value, or ``_NO_BODY`` for an empty body; 422 if it is not JSON."""
    if not raw.strip():
        return _NO_BODY
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError as error:
        raise UnprocessableError(
            [problem(["body"], f"the body is not valid JSON: {error}", "json_invalid")]
        ) from None
    except RecursionError:  # deeper than the decoder goes: far deeper than the limit
        raise BodyRefusedError(["body"], depth_message(MAX_JSON_DEPTH), "too_deep") from None


def _checked(item: Item, body_at: int) -> list[Item]:
    """``[item]``, if as the trigger's output ``{"main": [item]}`` it nests at most
    ``MAX_JSON_DEPTH`` levels (a runner would refuse to output more) and holds no NUL
    character nor reference; the path of a problem is given inside the body, whose path in
    the output has ``body_at`` parts."""
    found = json_problem({MAIN_PORT: [item]})
    if found is not None:
        raise BodyRefusedError(["body", *found.path[body_at:]], found.message, found.kind)
    refuse_references([item], ["body"])
    return [item]


def webhook_input(raw: bytes) -> list[Item]:
    """The trigger's output for a request body: ``[body]`` for a JSON object, ``[{"body":
    value}]`` for any other JSON value (items are objects), ``[{}]`` for an empty body."""
    value = _decoded_body(raw)
    if value is _NO_BODY:
        return [{}]
    if isinstance(value, dict):
        return _checked(value, 2)
    # Past "main", 0 and the key "body" a non-object is put under.
    return _checked({"body": value}, 3)


def request_item(
    method: str, headers: dict[str, str], query: list[tuple[str, str]], raw: bytes
) -> list[Item]:
    """``output: request``: one item ``{method, headers, query, body}``; ``body`` is the JSON
    body (``null`` when empty), ``query`` the parameters (a repeated one as a list)."""
    value = _decoded_body(raw)
    params: dict[str, Any] = {}
    for name, given in query:
        held = params.get(name)
        if held is None:
            params[name] = given
        else:
            params[name] = [*held, given] if isinstance(held, list) else [held, given]
    item: Item = {
        "method": method,
        "headers": headers,
        "query": params,
        "body": None if value is _NO_BODY else value,
    }
    return _checked(item, 3)


#: Methods routed here; each webhook node accepts those its ``methods`` lists (405 for others).
ROUTED_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
#: Request headers never passed to the workflow (``output: request``): credentials of the
#: caller, of nodedrop, or of whatever proxy stands in front.
SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        SECRET_HEADER.lower(),
        SIGNATURE_HEADER.lower(),
        "x-api-key",
        "x-auth-token",
        "x-csrf-token",
        "x-xsrf-token",
    }
)
_SECRET_HEADER_WORDS = ("secret", "token", "password", "passwd", "api-key", "apikey", "auth")


def visible_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The request's headers without those that carry secrets (names in lower case; a
    repeated header's values joined with ", ")."""
    shown: dict[str, str] = {}
    for name, value in headers:
        lowered = name.lower()
        if lowered in SECRET_HEADERS or any(w in lowered for w in _SECRET_HEADER_WORDS):
            continue
        shown[lowered] = f"{shown[lowered]}, {value}" if lowered in shown else value
    return shown


async def receive_webhook(
    *,
    workflow_id: str,
    node_id: str,
    request: Request,
    running: RunningDep,
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
) -> Response:
    """Run the latest version of a saved workflow from its ``webhook_trigger`` node ``node_id``,
    as the workflow's owner. Answered once the request is durably in the event log (202), or
    as the node's ``respond`` says."""
    resources = running.resources
    # A session only for the lookup: none is held while the answer waits for the run.
    async with open_session(resources) as session:
        row = await workflow_store.get(session, workflow_id)
    node = _webhook_node(row.definition, node_id) if row is not None else None
    if row is None or node is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"no webhook {workflow_id!r}/{node_id!r} is known"
        )
    # The caller authenticates before the saved definition is checked: that check (and the
    # lookups of the workflows it calls) is work no unauthenticated caller may cause. A draft
    # may hold anything of the storable shape, so only a well-formed secret is trusted here.
    stored = node.get("parameters")
    stored = stored if isinstance(stored, dict) else {}
    expected = stored.get("secret")
    if expected is not None and not isinstance(expected, str):
        raise _has_problems()
    await _authenticate(request, stored, expected, secret, signature)
    async with open_session(resources) as session:
        try:
            checked = await runnable(
                session, row.definition, row.owner, running.registry, [], itself=row.id
            )
        except UnprocessableError:
            # The owner reads the problems with the workflow; a caller is told only that
            # there are some.
            raise _has_problems() from None
    parameters = node.get("parameters") or {}
    methods = parameters.get("methods") or ["POST"]
    if request.method not in methods:
        raise HTTPException(
            status.HTTP_405_METHOD_NOT_ALLOWED,
            f"this webhook accepts {', '.join(methods)}",
            headers={"Allow": ", ".join(methods)},
        )
    raw = await request.body()
    if parameters.get("output") == "request":
        run_input = await run_off_loop_if(
            len(raw) > OFF_LOOP_BYTES,
            request_item,
            request.method,
            visible_headers(request.headers.items()),
            request.query_params.multi_items(),
            raw,
        )
    else:
        run_input = await run_off_loop_if(len(raw) > OFF_LOOP_BYTES, webhook_input, raw)
    execution_id = new_id()
    respond = parameters.get("respond", "immediately")

    async def record() -> None:
        await submission.request_execution(
            resources.events,
            workflow=checked.as_json,
            requested_by=row.owner,
            mode="trigger",
            trigger=node_id,
            node=None,
            run_input=run_input,
            workflow_id=row.id,
            workflow_version=row.version,
            execution_id=execution_id,
        )

    if respond == "immediately":
        await record()
        return Response(
            ExecutionAccepted(id=execution_id).model_dump_json(),
            status.HTTP_202_ACCEPTED,
            {
                "Location": f"/api/executions/{execution_id}",
                answers.EXECUTION_ID_HEADER: execution_id,
            },
            media_type="application/json",
        )
    timeout_s = min(float(parameters.get("response_timeout_s", 30.0)), running.config.max_wait_s)
    with resources.waiters.waiting(execution_id) as finished:
        if respond == "when_finished":
            await record()
            if not await wait_for(finished, timeout_s, client_gone(request)):
                return answers.timed_out(execution_id, timeout_s)
            return await answers.finished_answer(
                resources.sessions, resources.data, execution_id, parameters.get("response_node")
            )
        responders = frozenset(
            n["id"]
            for n in row.definition.get("nodes", [])
            if n.get("type") == RESPOND_TO_WEBHOOK_TYPE
        )
        async with answers.node_answers(resources.nc, execution_id, responders) as watch:
            await record()
            await wait_first(watch.answer, finished, timeout_s, client_gone(request))
            if watch.answer.done() and not watch.answer.cancelled():
                return await answers.node_answer(
                    watch.answer.result(), resources.data, execution_id
                )
    if finished.done() and not finished.cancelled():
        # The notices and the node's result come on different subscriptions: look in the log
        # before saying that no node answered.
        recorded = answers.recorded_answer(await resources.events.read(execution_id), responders)
        if recorded is not None:
            return await answers.node_answer(recorded, resources.data, execution_id)
        async with open_session(resources) as session:
            ended = await projection_reads.get_execution(session, execution_id)
        return answers.failed(
            execution_id,
            ended.status if ended is not None else "unknown",
            ended.error if ended is not None else None,
            "the execution ended without a respond_to_webhook node answering",
        )
    return answers.timed_out(execution_id, timeout_s)


# One route per method, each with its own OpenAPI operation id; HEAD and OPTIONS are routed
# only to answer 405 (a node cannot list them), and left out of the document.
for _method in ROUTED_METHODS:
    router.add_api_route(
        "/{workflow_id}/{node_id}",
        receive_webhook,
        methods=[_method],
        operation_id=f"receive_webhook_{_method.lower()}",
        include_in_schema=_method not in ("HEAD", "OPTIONS"),
        status_code=status.HTTP_202_ACCEPTED,
        response_model=ExecutionAccepted,
        responses=_RESPONSES,
    )


def _has_problems() -> UnprocessableError:
    return UnprocessableError(
        [
            problem(
                ["path", "workflow_id"],
                "the saved workflow has problems and cannot run until they are fixed "
                "and it is saved again",
                "value_error",
            )
        ]
    )


async def _authenticate(
    request: Request,
    parameters: dict[str, Any],
    expected: str | None,
    secret: str | None,
    signature: str | None,
) -> None:
    """401 unless the request carries what the node's ``secret`` asks for."""
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
