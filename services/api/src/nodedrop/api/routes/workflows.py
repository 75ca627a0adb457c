from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, HTTPException, Path, Query, Response, status

from nodedrop.api import workflow_store
from nodedrop.api.auth import User
from nodedrop.api.db import EncodedJson
from nodedrop.api.definitions import WorkflowJson, is_large, revalidate, workflow_limits
from nodedrop.api.deps import ConfigDep, CurrentUser, RegistryDep, ScheduleStoreDep, SessionDep
from nodedrop.api.drafts import (
    SavedForm,
    reference_problems,
    saved_form,
    schedulable,
    stored_problems,
)
from nodedrop.api.entry import CheckedJsonRoute
from nodedrop.api.errors import (
    Problem,
    StaleVersionError,
    UnprocessableError,
    located,
    problem,
)
from nodedrop.api.offload import run_off_loop_if
from nodedrop.api.pagination import encode_cursor, parse_cursor
from nodedrop.api.preconditions import etag, expected_versions
from nodedrop.api.schedules import commit_with_schedule, entry_of
from nodedrop.api.schemas import Message, WorkflowOut, WorkflowPage
from nodedrop.api.timefmt import iso, utcnow
from nodedrop.contracts.credential_types import MASK
from nodedrop.contracts.definition_secrets import keep_stored, masked
from nodedrop.contracts.nodetypes import NodeTypeRegistry
from nodedrop.platform.db.tables import WorkflowRow
from nodedrop.platform.schedules import ScheduleEntry

# CheckedJsonRoute: bodies nested too deeply or holding a NUL character are refused.
router = APIRouter(prefix="/workflows", tags=["workflows"], route_class=CheckedJsonRoute)

#: Versions are PostgreSQL integers: a larger one cannot exist (and cannot even be looked up).
_MAX_VERSION = 2**31 - 1

_UNKNOWN: dict[int | str, dict[str, Any]] = {
    404: {"model": Message, "description": "no such workflow, or another user's"}
}
_STALE: dict[int | str, dict[str, Any]] = {
    409: {"description": "If-Match names an older version: `{detail, current_version}`"}
}


_DRAFT = Query(
    description="store the definition even if it has problems (answered in `problems`); "
    "only a definition that is not of the storable shape is a 422 then"
)


def workflow_out(
    row: WorkflowRow,
    definition: dict[str, object] | None = None,
    version: int | None = None,
    problems: list[Problem] | None = None,
) -> WorkflowOut:
    return WorkflowOut.model_validate(
        {
            **masked(definition if definition is not None else row.definition),
            "id": row.id,
            "version": version if version is not None else row.version,
            "owner": row.owner,
            "created_at": iso(row.created_at),
            "updated_at": iso(row.updated_at),
            "problems": problems or [],
        }
    )


async def _schedule_of(
    session: SessionDep, row: WorkflowRow, registry: NodeTypeRegistry
) -> ScheduleEntry | None:
    """The schedule entry of the row's version: none for a draft with problems, whose runs
    would be refused (what it refers to is checked too, only for a scheduled one)."""
    if not schedulable(row.definition, registry):
        return None
    workflow = revalidate(row.definition, registry, [])
    if await reference_problems(session, workflow, row.owner, registry, [], itself=row.id):
        return None
    return entry_of(row)


async def _problems_of(
    session: SessionDep,
    form: SavedForm,
    owner: str,
    registry: NodeTypeRegistry,
    *,
    draft: bool,
    itself: str | None = None,
) -> list[Problem]:
    """The form's problems and, for a valid one, those of what it refers to (a 422 at
    ``body`` unless it is a draft)."""
    if form.workflow is None:
        return form.problems
    problems = await reference_problems(session, form.workflow, owner, registry, [], itself=itself)
    if problems and not draft:
        raise UnprocessableError(located(["body"], problems))
    return problems


def _not_found(workflow_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"workflow {workflow_id!r} not found")


async def _visible(
    session: SessionDep, workflow_id: str, user: User, *, for_update: bool = False
) -> WorkflowRow:
    row = await workflow_store.get(session, workflow_id, for_update=for_update)
    if row is None or not user.can_see(row.owner):
        raise _not_found(workflow_id)
    return row


def _with_stored_secrets(definition: EncodedJson, stored: dict[str, Any] | None) -> EncodedJson:
    """The definition to save: a secret sent back masked, as the API shows it, keeps the one
    stored; a masked value that masks nothing stored is refused (422 at the parameter)."""
    kept, unknown = keep_stored(definition, stored)
    if unknown:
        raise UnprocessableError(
            [
                problem(
                    ["body", "nodes", index, "parameters", name],
                    f"{MASK!r} marks a secret the API hides; send the secret itself (a masked "
                    "value only keeps the one this node has saved)",
                    "value_error",
                )
                for index, name in unknown
            ]
        )
    return definition if kept is None else EncodedJson(kept)


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_workflow(
    *,
    definition: Annotated[WorkflowJson, Body()],
    draft: Annotated[bool, _DRAFT] = False,
    user: CurrentUser,
    session: SessionDep,
    registry: RegistryDep,
    schedules: ScheduleStoreDep,
    config: ConfigDep,
) -> WorkflowOut:
    """Save a workflow as version 1."""
    form = await saved_form(definition, registry, workflow_limits(config), draft=draft)
    problems = await _problems_of(session, form, user.id, registry, draft=draft)
    stored = _with_stored_secrets(form.stored, None)
    row = await workflow_store.create(
        session, definition=stored, name=form.name, owner=user.id, now=utcnow()
    )
    after = await _schedule_of(session, row, registry)
    await commit_with_schedule(session, schedules, row.id, before=None, after=after)
    return await run_off_loop_if(is_large(stored), workflow_out, row, None, None, problems)


@router.get("")
async def list_workflows(
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> WorkflowPage:
    """Saved (not deleted) workflows, newest first (without ``problems``: a list does not
    check each definition)."""
    rows = await workflow_store.page(
        session, owner=user.owner_filter, limit=limit + 1, after=parse_cursor(cursor)
    )
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id) if more else None
    return WorkflowPage(items=[workflow_out(r) for r in rows], next_cursor=next_cursor)


@router.get("/{workflow_id}", responses=_UNKNOWN)
async def get_workflow(
    workflow_id: str,
    user: CurrentUser,
    session: SessionDep,
    registry: RegistryDep,
    response: Response,
) -> WorkflowOut:
    """The latest version, with its problems; its ``ETag`` is the version, for ``If-Match``
    on a save."""
    row = await _visible(session, workflow_id, user)
    problems = await stored_problems(
        session, row.definition, row.owner, registry, itself=workflow_id
    )
    response.headers["ETag"] = etag(row.version)
    return workflow_out(row, problems=problems)


@router.get("/{workflow_id}/versions/{version}", responses=_UNKNOWN)
async def get_workflow_version(
    workflow_id: str,
    version: Annotated[int, Path(ge=1, le=_MAX_VERSION)],
    user: CurrentUser,
    session: SessionDep,
    registry: RegistryDep,
) -> WorkflowOut:
    """An earlier (or the latest) version of a saved workflow, with its problems."""
    row = await _visible(session, workflow_id, user)
    old = await workflow_store.get_version(session, workflow_id, version)
    if old is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"workflow {workflow_id!r} has no version {version}"
        )
    problems = await stored_problems(
        session, old.definition, row.owner, registry, itself=workflow_id
    )
    return workflow_out(row, old.definition, old.version, problems)


@router.put("/{workflow_id}", responses={**_UNKNOWN, **_STALE})
async def replace_workflow(
    *,
    workflow_id: str,
    definition: Annotated[WorkflowJson, Body()],
    if_match: Annotated[
        str | None,
        Header(description='the version the change is based on, e.g. "3": 409 if not the latest'),
    ] = None,
    draft: Annotated[bool, _DRAFT] = False,
    response: Response,
    user: CurrentUser,
    session: SessionDep,
    registry: RegistryDep,
    schedules: ScheduleStoreDep,
    config: ConfigDep,
) -> WorkflowOut:
    """Save a new version (version + 1); earlier versions stay readable. With ``If-Match``,
    only when the latest version is the one named, so that no one's save is lost unseen."""
    expected = expected_versions(if_match)
    form = await saved_form(definition, registry, workflow_limits(config), draft=draft)
    row = await _visible(session, workflow_id, user, for_update=True)
    if expected is not None and row.version not in expected:
        raise StaleVersionError(f"workflow {workflow_id!r}", row.version)
    stored = _with_stored_secrets(form.stored, row.definition)
    problems = await _problems_of(
        session, form, row.owner, registry, draft=draft, itself=workflow_id
    )
    before = await _schedule_of(session, row, registry)
    row = await workflow_store.update(
        session, row, definition=stored, name=form.name, actor=user.id, now=utcnow()
    )
    after = await _schedule_of(session, row, registry)
    await commit_with_schedule(session, schedules, row.id, before=before, after=after)
    response.headers["ETag"] = etag(row.version)
    return await run_off_loop_if(is_large(stored), workflow_out, row, None, None, problems)


@router.delete("/{workflow_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_UNKNOWN)
async def delete_workflow(
    workflow_id: str,
    user: CurrentUser,
    session: SessionDep,
    registry: RegistryDep,
    schedules: ScheduleStoreDep,
) -> Response:
    """Soft delete: the workflow disappears from the API; its executions stay explainable.
    Its schedule, if it had one, stops."""
    row = await _visible(session, workflow_id, user, for_update=True)
    before = await _schedule_of(session, row, registry)
    await workflow_store.soft_delete(session, row, now=utcnow())
    await commit_with_schedule(session, schedules, row.id, before=before, after=None)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
