"""``/api/users``: users and their API keys.

An admin creates users (each gets its first key) and manages anybody's keys; a user sees
itself and manages its own keys. Another user's keys answer 404, like its workflows. A key's
text is in the answer that creates it and nowhere else, ever.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Response, status
from sqlmodel.ext.asyncio.session import AsyncSession

from nodedrop.api import user_store
from nodedrop.api.auth import User
from nodedrop.api.deps import AdminUser, CurrentUser, KeyVerifierDep, SessionDep
from nodedrop.api.entry import CheckedJsonRoute
from nodedrop.api.schemas import Message
from nodedrop.api.timefmt import iso, iso_or_none, utcnow
from nodedrop.api.user_schemas import (
    KeyIssued,
    KeyList,
    KeyOut,
    UserCreate,
    UserCreated,
    UserList,
    UserOut,
)
from nodedrop.platform.db.tables import UserRow

# CheckedJsonRoute: bodies nested too deeply or holding a NUL character are refused.
router = APIRouter(prefix="/users", tags=["users"], route_class=CheckedJsonRoute)

_ADMIN_ONLY: dict[int | str, dict[str, Any]] = {
    403: {"model": Message, "description": "the caller is not an admin"}
}
_UNKNOWN_USER: dict[int | str, dict[str, Any]] = {
    404: {"model": Message, "description": "no such user, or another user's"}
}


def _user_out(row: UserRow) -> UserOut:
    return UserOut(id=row.id, name=row.name, is_admin=row.is_admin, created_at=iso(row.created_at))


async def _managed_user(session: AsyncSession, user_id: str, caller: User) -> UserRow:
    """The user whose keys ``caller`` may manage: itself, or anyone for an admin."""
    row = await user_store.get_user(session, user_id) if caller.can_see(user_id) else None
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"user {user_id!r} not found")
    return row


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={**_ADMIN_ONLY, 409: {"model": Message, "description": "the name is taken"}},
)
async def create_user(body: UserCreate, _: AdminUser, session: SessionDep) -> UserCreated:
    """Create a user and its first API key (admins only)."""
    try:
        row, key, text = await user_store.create_user(
            session, name=body.name, is_admin=body.is_admin, now=utcnow()
        )
    except user_store.NameTakenError:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"a user named {body.name!r} exists"
        ) from None
    return UserCreated(id=row.id, name=row.name, is_admin=row.is_admin, key_id=key.id, api_key=text)


@router.get("", responses=_ADMIN_ONLY)
async def list_users(_: AdminUser, session: SessionDep) -> UserList:
    """Every user (admins only)."""
    return UserList(items=[_user_out(row) for row in await user_store.list_users(session)])


@router.get("/me")
async def who_am_i(user: CurrentUser, session: SessionDep) -> UserOut:
    """The caller: what a client signing in with a key shows."""
    row = await user_store.get_user(session, user.id)
    if row is None:  # the admin token: no stored user
        return UserOut(
            id=user.id, name=user.name or user.id, is_admin=user.is_admin, created_at=None
        )
    return _user_out(row)


@router.get("/{user_id}/keys", responses=_UNKNOWN_USER)
async def list_keys(user_id: str, user: CurrentUser, session: SessionDep) -> KeyList:
    """The user's keys, revoked ones too (ids and times; never the keys themselves)."""
    await _managed_user(session, user_id, user)
    return KeyList(
        items=[
            KeyOut(key_id=k.id, created_at=iso(k.created_at), revoked_at=iso_or_none(k.revoked_at))
            for k in await user_store.list_keys(session, user_id)
        ]
    )


@router.post("/{user_id}/keys", status_code=status.HTTP_201_CREATED, responses=_UNKNOWN_USER)
async def issue_key(user_id: str, user: CurrentUser, session: SessionDep) -> KeyIssued:
    """Issue another key for the user (e.g. before revoking the old ones)."""
    await _managed_user(session, user_id, user)
    key, text = await user_store.issue_key(session, user_id, utcnow())
    return KeyIssued(key_id=key.id, user_id=user_id, api_key=text)


@router.delete("/{user_id}/keys", status_code=status.HTTP_204_NO_CONTENT, responses=_UNKNOWN_USER)
async def revoke_keys(
    user_id: str, user: CurrentUser, session: SessionDep, verifier: KeyVerifierDep
) -> Response:
    """Revoke every key of the user. Effective at once on this API process, and everywhere
    within the key cache's lifetime (2 s)."""
    await _managed_user(session, user_id, user)
    verifier.forget(await user_store.revoke_keys(session, user_id, utcnow()))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/{user_id}/keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"model": Message, "description": "no such user or active key"}},
)
async def revoke_key(
    user_id: str, key_id: str, user: CurrentUser, session: SessionDep, verifier: KeyVerifierDep
) -> Response:
    """Revoke one key of the user."""
    await _managed_user(session, user_id, user)
    revoked = await user_store.revoke_keys(session, user_id, utcnow(), key_id=key_id)
    if not revoked:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no active key {key_id!r}")
    verifier.forget(revoked)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
