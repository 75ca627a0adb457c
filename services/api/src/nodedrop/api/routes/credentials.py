"""``/api/credentials``: users' credentials (docs/api.md, "Credentials"; docs/credentials.md).

Owned like workflows: another user's credential is a 404, never a 403. Secret fields are
written, never answered: an answer masks them. Without NODEDROP_SECRET_KEY the routes answer
503 (nothing could be sealed or opened).
"""

from __future__ import annotations

from typing import Annotated, Any, cast

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request, Response, status
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError

from nodedrop.api import credential_store
from nodedrop.api.auth import User
from nodedrop.api.credential_schemas import (
    CredentialCreate,
    CredentialOut,
    CredentialPage,
    CredentialUpdate,
    CredentialUse,
)
from nodedrop.api.deps import CurrentUser, ResourcesDep, SessionDep
from nodedrop.api.entry import CheckedJsonRoute
from nodedrop.api.errors import ServiceUnavailableError, UnprocessableError, located, problem
from nodedrop.api.pagination import encode_cursor, parse_cursor
from nodedrop.api.schemas import Message
from nodedrop.api.secret_keys import SecretKeys
from nodedrop.api.timefmt import iso, utcnow
from nodedrop.contracts.credential_types import (
    CredentialTypeRegistry,
    CredentialTypeSpec,
    mask,
)
from nodedrop.platform.db.credentials import open_secret
from nodedrop.platform.db.tables import CredentialRow
from nodedrop.platform.secretbox import KEY_ENV, DecryptError, SecretKey

router = APIRouter(prefix="/credentials", tags=["credentials"], route_class=CheckedJsonRoute)

_UNKNOWN: dict[int | str, dict[str, Any]] = {
    404: {"model": Message, "description": "no such credential, or another user's"}
}


async def get_secret_key(request: Request, resources: ResourcesDep) -> SecretKey:
    keys = cast(SecretKeys, request.app.state.secret_keys)
    return await keys.key(resources.engine)


async def get_credential_types(request: Request) -> CredentialTypeRegistry:
    return cast(CredentialTypeRegistry, request.app.state.credential_types)


SecretKeyDep = Annotated[SecretKey, Depends(get_secret_key)]
CredentialTypesDep = Annotated[CredentialTypeRegistry, Depends(get_credential_types)]


def _answer(row: CredentialRow, masked: dict[str, Any]) -> CredentialOut:
    used = None
    if row.last_used_at is not None:
        used = CredentialUse(
            at=iso(row.last_used_at),
            execution_id=row.last_used_execution,
            node=row.last_used_node,
        )
    return CredentialOut(
        id=row.id,
        type=row.type,
        name=row.name,
        owner=row.owner,
        fields=row.fields,
        secrets=masked,
        created_at=iso(row.created_at),
        updated_at=iso(row.updated_at),
        last_used=used,
    )


def _opened(key: SecretKey, row: CredentialRow) -> dict[str, Any]:
    try:
        return open_secret(key, row.id, row.secret)
    except DecryptError:
        # The start check passed, so the key was rotated under this process: it must restart.
        raise ServiceUnavailableError(
            f"credential {row.id} does not decrypt under this api's {KEY_ENV} "
            "(was the key rotated? restart the api with the new key)"
        ) from None


def _masked(key: SecretKey, row: CredentialRow) -> dict[str, Any]:
    return {name: mask(value) for name, value in _opened(key, row).items()}


def _spec(types: CredentialTypeRegistry, type_name: str) -> CredentialTypeSpec:
    spec = types.get(type_name)
    if spec is None:
        known = ", ".join(sorted(s.type for s in types))
        raise UnprocessableError(
            [problem(["body", "type"], f"unknown credential type; known: {known}", "value_error")]
        )
    return spec


def _checked(spec: CredentialTypeSpec, data: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    try:
        checked = spec.validate(data)
    except ValidationError as error:
        # loc, msg and type only: pydantic's input (a secret) is never echoed.
        problems = [problem(e["loc"], e["msg"], e["type"]) for e in error.errors()]
        raise UnprocessableError(located(["body", "data"], problems)) from None
    return spec.split(checked)


def _not_found(credential_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"credential {credential_id!r} not found")


def _name_taken(name: str) -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, f"you already have a credential named {name!r}")


async def _visible(
    session: SessionDep, credential_id: str, user: User, *, for_update: bool = False
) -> CredentialRow:
    row = await credential_store.get(session, credential_id, for_update=for_update)
    if row is None or not user.can_see(row.owner):
        raise _not_found(credential_id)
    return row


@router.post("", status_code=status.HTTP_201_CREATED, responses={409: {"model": Message}})
async def create_credential(
    body: Annotated[CredentialCreate, Body()],
    user: CurrentUser,
    session: SessionDep,
    key: SecretKeyDep,
    types: CredentialTypesDep,
) -> CredentialOut:
    """Store a credential; its secret fields are sealed and never answered again."""
    spec = _spec(types, body.type)
    fields, secret = _checked(spec, body.data)
    try:
        row = await credential_store.create(
            session,
            key,
            owner=user.id,
            type=spec.type,
            name=body.name,
            fields=fields,
            secret=secret,
            now=utcnow(),
        )
        await session.commit()
    except IntegrityError:
        raise _name_taken(body.name) from None
    return _answer(row, {name: mask(value) for name, value in secret.items()})


@router.get("")
async def list_credentials(
    user: CurrentUser,
    session: SessionDep,
    key: SecretKeyDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> CredentialPage:
    """Your credentials, newest first (an admin's: everyone's), secrets masked."""
    rows = await credential_store.page(
        session, owner=user.owner_filter, limit=limit + 1, after=parse_cursor(cursor)
    )
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id) if more else None
    return CredentialPage(
        items=[_answer(r, _masked(key, r)) for r in rows], next_cursor=next_cursor
    )


@router.get("/{credential_id}", responses=_UNKNOWN)
async def get_credential(
    credential_id: str, user: CurrentUser, session: SessionDep, key: SecretKeyDep
) -> CredentialOut:
    """One credential, secrets masked, and where it was last used."""
    row = await _visible(session, credential_id, user)
    return _answer(row, _masked(key, row))


@router.put("/{credential_id}", responses={**_UNKNOWN, 409: {"model": Message}})
async def replace_credential(
    *,
    credential_id: str,
    body: Annotated[CredentialUpdate, Body()],
    user: CurrentUser,
    session: SessionDep,
    key: SecretKeyDep,
    types: CredentialTypesDep,
) -> CredentialOut:
    """Replace the name and fields; a secret field left out keeps its value."""
    row = await _visible(session, credential_id, user, for_update=True)
    if body.type is not None and body.type != row.type:
        raise UnprocessableError(
            [
                problem(
                    ["body", "type"],
                    f"a credential's type cannot change (it is {row.type!r}): create another",
                    "value_error",
                )
            ]
        )
    spec = _spec(types, row.type)
    kept = {k: v for k, v in _opened(key, row).items() if k not in body.data}
    fields, secret = _checked(spec, {**kept, **body.data})
    try:
        row = await credential_store.replace(
            session, key, row, name=body.name, fields=fields, secret=secret, now=utcnow()
        )
        await session.commit()
    except IntegrityError:
        raise _name_taken(body.name) from None
    return _answer(row, {name: mask(value) for name, value in secret.items()})


@router.delete("/{credential_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_UNKNOWN)
async def delete_credential(credential_id: str, user: CurrentUser, session: SessionDep) -> Response:
    """Delete it for good; nodes that name it fail with CredentialError from now on."""
    row = await _visible(session, credential_id, user, for_update=True)
    await credential_store.delete(session, row)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
