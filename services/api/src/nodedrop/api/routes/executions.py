from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from sqlmodel.ext.asyncio.session import AsyncSession

from nodedrop.api import execution_requests as rules
from nodedrop.api import projection_reads, reruns, submission, workflow_store
from nodedrop.api.auth import User
from nodedrop.api.db import Sessions
from nodedrop.api.definitions import (
    CheckedDefinition,
    parse_definition_off_loop,
    workflow_limits,
)
from nodedrop.api.deps import (
    CurrentUser,
    EventLogDep,
    Running,
    RunningDep,
    SessionDep,
    open_session,
)
from nodedrop.api.drafts import runnable
from nodedrop.api.entry import CheckedJsonRoute
from nodedrop.api.errors import UnprocessableError, problem
from nodedrop.api.eventlog import EventLog
from nodedrop.api.pagination import encode_cursor, parse_cursor
from nodedrop.api.schemas import (
    CancelAccepted,
    ChildExecution,
    EventList,
    ExecutionAccepted,
    ExecutionCreate,
    ExecutionOut,
    ExecutionPage,
    ExecutionStatus,
    ExecutionSummary,
    LogEntry,
    LogList,
    Message,
    NodeExecutionOut,
    PublicEvent,
    RerunAccepted,
    RerunCreate,
)
from nodedrop.api.settings import ApiSettings
from nodedrop.api.timefmt import iso, iso_or_none, utcnow
from nodedrop.api.waiters import BodyReader, FinishedFilter, wait_for
from nodedrop.api.workflow_store import new_id
from nodedrop.contracts import ids
from nodedrop.contracts.codec import to_public
from nodedrop.contracts.events import (
    ExecutionCancelRequested,
    ExecutionFinished,
    ExecutionRequested,
)
from nodedrop.contracts.items import Item, PortItems
from nodedrop.contracts.nodetypes import NodeTypeRegistry
from nodedrop.contracts.workflow import Workflow, WorkflowLimits
from nodedrop.platform.db.tables import ExecutionRow, NodeExecutionRow

# CheckedJsonRoute: bodies nested too deeply or holding a NUL character are refused.
router = APIRouter(prefix="/executions", tags=["executions"], route_class=CheckedJsonRoute)

#: Execution ids go into NATS subjects: anything else (dots, wildcards) cannot exist.
_EXECUTION_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")

Found = ExecutionRow | tuple[ExecutionRequested, int]

#: The largest seq a stream can have (NATS sequences are unsigned 64-bit), as the WebSocket's.
MAX_SEQ = 2**64 - 1

WaitQuery = Annotated[
    float | None,
    Query(
        description="seconds to wait for the execution to finish (more than 0, at most "
        "NODEDROP_MAX_WAIT_S, 60 by default)"
    ),
]


def checked_wait(wait: float | None, config: ApiSettings) -> float | None:
    """``wait`` if it is a number of seconds the api allows; a 422 naming it otherwise."""
    if wait is None:
        return None
    if not (math.isfinite(wait) and 0 < wait <= config.max_wait_s):
        # ``ctx.le`` says the largest wait in a form a client can use without parsing text.
        refused = problem(
            ["query", "wait"],
            f"wait must be a number of seconds more than 0 and at most {config.max_wait_s:g}",
            "value_error",
        )
        raise UnprocessableError([{**refused, "ctx": {"gt": 0, "le": config.max_wait_s}}])
    return wait


async def client_gone(request: Request) -> None:
    """Return once the client has closed the connection (the body was read before: what is
    left to receive is the disconnect), so that a waiting request stops waiting for nobody."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _not_found(execution_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"execution {execution_id!r} not found")


async def find_execution(
    execution_id: str, user: User, session: AsyncSession, events: EventLog
) -> Found:
    """The projection's row, or (while the projection lags) the ExecutionRequested event."""
    if not _EXECUTION_ID.match(execution_id):
        raise _not_found(execution_id)
    row = await projection_reads.get_execution(session, execution_id)
    if row is not None:
        if not user.can_see(row.requested_by):
            raise _not_found(execution_id)
        return row
    requested = await events.last(execution_id, ExecutionRequested)
    if requested is None or not user.can_see(requested[0].requested_by):
        raise _not_found(execution_id)
    return requested


# ------------------------------------------------------------------------------ request


async def _workflow_of(
    body: ExecutionCreate,
    user: User,
    session: AsyncSession,
    registry: NodeTypeRegistry,
    limits: WorkflowLimits,
) -> tuple[CheckedDefinition, str | None, int | None]:
    if (body.workflow_id is None) == (body.workflow is None):
        raise UnprocessableError(
            [problem(["body"], "give exactly one of workflow_id or workflow", "value_error")]
        )
    if body.workflow is not None:
        checked = await parse_definition_off_loop(
            body.workflow, registry, ["body", "workflow"], limits
        )
        return checked, None, None
    assert body.workflow_id is not None
    row = await workflow_store.get(session, body.workflow_id)
    if row is None or not user.can_see(row.owner):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"workflow {body.workflow_id!r} not found")
    checked = await runnable(
        session, row.definition, row.owner, registry, ["body", "workflow_id"], itself=row.id
    )
    return checked, row.id, row.version


async def _recorded_input(
    session: AsyncSession, workflow: Workflow, workflow_id: str | None, node: str
) -> PortItems:
    parents = rules.parents(workflow, node)
    outputs = rules.pinned_outputs(workflow, parents)
    unpinned = [p for p in parents if p not in outputs]
    if unpinned and workflow_id is not None:
        outputs |= await projection_reads.recorded_outputs(session, workflow_id, unpinned)
    return rules.assemble_node_input(workflow, node, outputs)


_REQUEST_ERRORS: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "queued: the request is in the event log",
        "headers": {
            "Location": {"description": "/api/executions/{id}", "schema": {"type": "string"}}
        },
    },
    200: {
        "model": ExecutionOut,
        "description": "with `wait`: the execution finished within the wait (GET's body)",
    },
    404: {"model": Message, "description": "unknown workflow_id"},
    413: {"model": Message, "description": "the request does not fit in one event"},
    503: {"model": Message, "description": "the event log did not acknowledge the request"},
}


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ExecutionAccepted,
    responses=_REQUEST_ERRORS,
)
async def request_execution(
    *,
    body: ExecutionCreate,
    user: CurrentUser,
    running: RunningDep,
    request: Request,
    wait: WaitQuery = None,
) -> Response:
    """Queue an execution. Answered once the request is durably in the event log; with
    ``wait``, once the execution finished (200, the body of ``GET /api/executions/{id}``) or
    the wait ran out (202)."""
    seconds = checked_wait(wait, running.config)
    if seconds is None:
        return await _request_execution(body, user, running)
    execution_id = new_id()
    # Registered before the request is recorded, so no end can be missed.
    with running.resources.waiters.waiting(execution_id) as finished:
        accepted = await _request_execution(body, user, running, execution_id)
        if not await wait_for(finished, seconds, client_gone(request)):
            return accepted
        return await finished_answer(running, execution_id, finished.result(), accepted)


async def finished_answer(
    running: Running, execution_id: str, body: bytes | None, accepted: Response
) -> Response:
    """200 with ``GET /api/executions/{id}``'s body: the one read for every waiter of the
    execution, or (when that read failed) read here; ``accepted`` if the row is gone (a
    projection rebuilt or pruned in between)."""
    if body is None:
        async with open_session(running.resources) as session:
            row = await projection_reads.get_execution(session, execution_id)
            if row is None:
                return accepted
            body = (await execution_out(session, row)).model_dump_json().encode()
    return Response(body, status.HTTP_200_OK, media_type="application/json")


def body_reader(sessions: Sessions) -> BodyReader:
    """Reads ``GET /api/executions/{id}``'s bodies of several finished executions at once."""

    async def read(execution_ids: list[str]) -> dict[str, bytes]:
        async with sessions() as session:
            found = await projection_reads.executions_with_nodes(session, execution_ids)
        return {
            row.id: _execution_body(row, nodes, children).model_dump_json().encode()
            for row, nodes, children in found
        }

    return read


def finished_filter(sessions: Sessions) -> FinishedFilter:
    """Which of several executions the projection shows finished."""

    async def finished(execution_ids: list[str]) -> list[str]:
        async with sessions() as session:
            return await projection_reads.finished_among(session, execution_ids)

    return finished


async def _request_execution(
    body: ExecutionCreate, user: User, running: Running, execution_id: str | None = None
) -> Response:
    # The hot route (S2/S3 of docs/benchmarks.md): one combined dependency, a database session
    # only when a path needs one, and the answer built directly rather than validated and
    # serialized through the response model.
    config, registry, resources = running.config, running.registry, running.resources
    limits = workflow_limits(config)
    if body.workflow is not None and body.workflow_id is None:
        checked = await parse_definition_off_loop(
            body.workflow, registry, ["body", "workflow"], limits
        )
        execution_id = await _request(
            body, user, running, session=None, checked=checked, execution_id=execution_id
        )
    else:
        async with open_session(resources) as session:
            checked, workflow_id, version = await _workflow_of(
                body, user, session, registry, limits
            )
            execution_id = await _request(
                body,
                user,
                running,
                session=session,
                checked=checked,
                workflow_id=workflow_id,
                version=version,
                execution_id=execution_id,
            )
    return Response(
        json.dumps({"id": execution_id, "status": "queued"}),
        status.HTTP_202_ACCEPTED,
        {"Location": f"/api/executions/{execution_id}"},
        media_type="application/json",
    )


async def _request(
    body: ExecutionCreate,
    user: User,
    running: Running,
    *,
    session: AsyncSession | None,
    checked: CheckedDefinition,
    workflow_id: str | None = None,
    version: int | None = None,
    execution_id: str | None = None,
) -> str:
    """Record the request of a checked definition; the new execution's id."""
    config, registry = running.config, running.registry
    workflow = checked.workflow
    run_input: list[Item] | PortItems
    trigger: str | None
    if body.mode == "trigger":
        if body.node is not None:
            raise UnprocessableError(
                [problem(["body", "node"], "only used when mode is 'node'", "value_error")]
            )
        trigger = rules.choose_trigger(workflow, registry, body.trigger)
        node = None
        run_input = rules.trigger_input(body.input, config.max_input_items)
    else:
        node = rules.check_node(workflow, body.node)
        trigger = rules.node_mode_trigger(workflow, registry, body.trigger)
        if body.input is not None:
            run_input = rules.check_input_ports(
                workflow, registry, node, rules.node_input(body.input, config.max_input_items)
            )
        elif session is None:
            async with open_session(running.resources) as opened:
                run_input = await _recorded_input(opened, workflow, workflow_id, node)
        else:
            run_input = await _recorded_input(session, workflow, workflow_id, node)
    return await submission.request_execution(
        running.resources.events,
        workflow=checked.as_json,
        requested_by=user.id,
        mode=body.mode,
        trigger=trigger,
        node=node,
        run_input=run_input,
        timeout_ms=body.timeout_ms,
        workflow_id=workflow_id,
        workflow_version=version,
        execution_id=execution_id,
    )


@router.post(
    "/{execution_id}/rerun",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RerunAccepted,
    responses={**_REQUEST_ERRORS, 404: {"model": Message}, 409: {"model": Message}},
)
async def rerun_execution(
    *,
    execution_id: str,
    body: RerunCreate,
    user: CurrentUser,
    running: RunningDep,
    request: Request,
    wait: WaitQuery = None,
) -> Response:
    """Queue a new execution of a finished one's recorded request (its definition snapshot,
    trigger and input) that reuses the outputs recorded upstream of ``from_node`` and runs
    ``from_node`` and everything downstream of it. With ``wait``, as ``POST
    /api/executions?wait=``."""
    seconds = checked_wait(wait, running.config)
    if seconds is None:
        return await _rerun(execution_id, body, user, running)
    rerun_id = new_id()
    with running.resources.waiters.waiting(rerun_id) as finished:
        accepted = await _rerun(execution_id, body, user, running, rerun_id)
        if not await wait_for(finished, seconds, client_gone(request)):
            return accepted
        return await finished_answer(running, rerun_id, finished.result(), accepted)


async def _rerun(
    execution_id: str,
    body: RerunCreate,
    user: User,
    running: Running,
    rerun_id: str | None = None,
) -> Response:
    events = running.resources.events
    async with open_session(running.resources) as session:
        await find_execution(execution_id, user, session, events)
    original = reruns.read_history(event for event, _ in await events.read(execution_id))
    if original is None:  # the projection has a row, but the stream no longer has the request
        raise _not_found(execution_id)
    if not original.finished:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"execution {execution_id!r} has not finished: only a finished execution is rerun",
        )
    reused = reruns.reused_outputs(original, body.from_node)
    request = original.request
    rerun_id = await submission.request_execution(
        events,
        workflow=request.workflow,
        requested_by=user.id,
        mode=request.mode,
        trigger=request.trigger,
        node=request.node,
        run_input=request.input,
        timeout_ms=request.timeout_ms,
        workflow_id=request.workflow_id,
        workflow_version=request.workflow_version,
        rerun_of=execution_id,
        reused_outputs=reused,
        execution_id=rerun_id,
    )
    return Response(
        RerunAccepted(id=rerun_id, rerun_of=execution_id).model_dump_json(),
        status.HTTP_202_ACCEPTED,
        {"Location": f"/api/executions/{rerun_id}"},
        media_type="application/json",
    )


# ------------------------------------------------------------------------------ read


def _summary_fields(row: ExecutionRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "workflow_id": row.workflow_id,
        "workflow_version": row.workflow_version,
        "mode": row.mode,
        "trigger": row.trigger,
        "node": row.node,
        "status": row.status,
        "requested_by": row.requested_by,
        "rerun_of": row.rerun_of,
        "parent_execution_id": row.parent_execution_id,
        "parent_node": row.parent_node,
        "created_at": iso(row.created_at),
        "started_at": iso_or_none(row.started_at),
        "finished_at": iso_or_none(row.finished_at),
        "error": row.error,
        "last_seq": row.last_seq,
    }


def _node_out(row: NodeExecutionRow) -> NodeExecutionOut:
    return NodeExecutionOut(
        status=row.status,
        attempts=row.attempts,
        started_at=iso_or_none(row.started_at),
        finished_at=iso_or_none(row.finished_at),
        output=row.output,
        error=row.error,
        skip_reason=row.skip_reason,
        pinned=row.pinned,
        children=row.children,
        outcome=row.outcome,
    )


def execution_from_event(event: ExecutionRequested, seq: int) -> ExecutionOut:
    """What the projection will say once it has applied the request: queued, no node yet."""
    return ExecutionOut(
        id=event.execution_id,
        workflow_id=event.workflow_id,
        workflow_version=event.workflow_version,
        mode=event.mode,
        trigger=event.trigger,
        node=event.node,
        status="queued",
        requested_by=event.requested_by,
        rerun_of=event.rerun_of,
        parent_execution_id=event.parent_execution,
        parent_node=event.parent_node,
        created_at=iso(event.time),
        started_at=None,
        finished_at=None,
        error=None,
        last_seq=seq,
        nodes={},
    )


_UNKNOWN: dict[int | str, dict[str, Any]] = {404: {"model": Message}}


@router.get("/{execution_id}", response_model=ExecutionOut, responses=_UNKNOWN)
async def get_execution(
    execution_id: str,
    user: CurrentUser,
    running: RunningDep,
    request: Request,
    wait: WaitQuery = None,
) -> ExecutionOut | Response:
    """The execution as projected (eventually consistent), nodes in plan order. With ``wait``,
    answered once it has finished or when the wait runs out, whichever comes first."""
    seconds = checked_wait(wait, running.config)
    if seconds is None:
        return await _read_execution(execution_id, user, running)
    # No session is held while waiting: each read takes a connection and gives it back.
    with running.resources.waiters.waiting(execution_id) as finished:
        out = await _read_execution(execution_id, user, running)  # after registering
        if out.status in projection_reads.FINAL_STATUSES or not await wait_for(
            finished, seconds, client_gone(request)
        ):
            return out
        if (body := finished.result()) is not None:
            return Response(body, status.HTTP_200_OK, media_type="application/json")
    return await _read_execution(execution_id, user, running)


async def _read_execution(execution_id: str, user: User, running: Running) -> ExecutionOut:
    async with open_session(running.resources) as session:
        found = await find_execution(execution_id, user, session, running.resources.events)
        if isinstance(found, ExecutionRow):
            return await execution_out(session, found)
        return execution_from_event(*found)


async def execution_out(session: AsyncSession, row: ExecutionRow) -> ExecutionOut:
    """``GET /api/executions/{id}``'s body for a projected execution."""
    nodes = await projection_reads.node_executions(session, row.id)
    children = await projection_reads.children(session, row.id)
    return _execution_body(row, nodes, children)


def _execution_body(
    row: ExecutionRow, nodes: list[NodeExecutionRow], children: list[ExecutionRow]
) -> ExecutionOut:
    return ExecutionOut(
        **_summary_fields(row),
        nodes={n.node: _node_out(n) for n in nodes},
        children=[
            ChildExecution(id=c.id, node=c.parent_node, workflow_id=c.workflow_id, status=c.status)
            for c in children
        ],
    )


@router.get("")
async def list_executions(
    *,
    user: CurrentUser,
    session: SessionDep,
    workflow_id: str | None = None,
    status: ExecutionStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> ExecutionPage:
    """Executions newest first (from the projection: a just-queued one may not be listed yet)."""
    rows = await projection_reads.page(
        session,
        owner=user.owner_filter,
        workflow_id=workflow_id,
        status=status,
        limit=limit + 1,
        after=parse_cursor(cursor),
    )
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id) if more else None
    return ExecutionPage(
        items=[ExecutionSummary(**_summary_fields(r)) for r in rows], next_cursor=next_cursor
    )


@router.get("/{execution_id}/events", responses=_UNKNOWN)
async def list_events(
    execution_id: str,
    user: CurrentUser,
    session: SessionDep,
    events: EventLogDep,
    after_seq: Annotated[
        int, Query(ge=0, le=MAX_SEQ, description="only events with a greater seq")
    ] = 0,
) -> EventList:
    """The execution's events from the event stream, in order."""
    await find_execution(execution_id, user, session, events)
    if after_seq == MAX_SEQ:  # no seq is greater, and the stream cannot be asked for one
        return EventList(events=[])
    return EventList(
        events=[
            PublicEvent.model_validate(to_public(event, seq))
            for event, seq in await events.read(execution_id, after_seq)
        ]
    )


@router.get("/{execution_id}/logs", responses=_UNKNOWN)
async def list_logs(
    execution_id: str, user: CurrentUser, session: SessionDep, events: EventLogDep
) -> LogList:
    await find_execution(execution_id, user, session, events)
    return LogList(
        logs=[
            LogEntry(seq=r.seq, time=iso(r.time), level=r.level, node=r.node, message=r.message)
            for r in await projection_reads.logs(session, execution_id)
        ]
    )


# ------------------------------------------------------------------------------ cancel


@router.post(
    "/{execution_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    responses={404: {"model": Message}, 409: {"model": Message}, 503: {"model": Message}},
)
async def cancel_execution(
    execution_id: str, user: CurrentUser, session: SessionDep, events: EventLogDep
) -> CancelAccepted:
    """Ask for the execution to stop; it ends ``cancelled`` unless it finishes first."""
    found = await find_execution(execution_id, user, session, events)
    final = (
        found.status
        if isinstance(found, ExecutionRow) and found.status in projection_reads.FINAL_STATUSES
        else None
    )
    if final is None and (finished := await events.last(execution_id, ExecutionFinished)):
        final = finished[0].status
    if final is not None:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"execution {execution_id!r} already finished ({final})"
        )
    await events.append(
        ExecutionCancelRequested(
            event_id=ids.cancel_requested(execution_id),
            execution_id=execution_id,
            time=utcnow(),
            requested_by=user.id,
        )
    )
    return CancelAccepted(id=execution_id)
