"""Users and their API keys (tables ``users``, ``api_keys``; the api owns them).

Each function commits its own change: issuing or revoking a key must be durable before the
key is shown or the revocation is confirmed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from nodedrop.api.workflow_store import new_id
from nodedrop.platform import apikeys
from nodedrop.platform.db.tables import ApiKeyRow, UserRow


class NameTakenError(Exception):
    pass


async def create_user(
    session: AsyncSession, *, name: str, is_admin: bool, now: datetime
) -> tuple[UserRow, ApiKeyRow, str]:
    """A new user with its first key; the key's text is returned once and never stored."""
    user = UserRow(id=new_id(), name=name, is_admin=is_admin, created_at=now)
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as error:
        await session.rollback()
        raise NameTakenError(name) from error
    key, text = _stage_key(session, user.id, now)
    await session.commit()
    return user, key, text


async def get_user(session: AsyncSession, user_id: str) -> UserRow | None:
    return await session.get(UserRow, user_id)


async def list_users(session: AsyncSession) -> list[UserRow]:
    statement = select(UserRow).order_by(col(UserRow.created_at), col(UserRow.id))
    return list((await session.exec(statement)).all())


async def issue_key(session: AsyncSession, user_id: str, now: datetime) -> tuple[ApiKeyRow, str]:
    key, text = _stage_key(session, user_id, now)
    await session.commit()
    return key, text


async def list_keys(session: AsyncSession, user_id: str) -> list[ApiKeyRow]:
    statement = (
        select(ApiKeyRow)
        .where(col(ApiKeyRow.user_id) == user_id)
        .order_by(col(ApiKeyRow.created_at), col(ApiKeyRow.id))
    )
    return list((await session.exec(statement)).all())


async def revoke_keys(
    session: AsyncSession, user_id: str, now: datetime, key_id: str | None = None
) -> list[str]:
    """Revoke the user's active keys (or only ``key_id``); the ids revoked."""
    statement = (
        update(ApiKeyRow)
        .where(col(ApiKeyRow.user_id) == user_id, col(ApiKeyRow.revoked_at).is_(None))
        .values(revoked_at=now)
        .returning(col(ApiKeyRow.id))
    )
    if key_id is not None:
        statement = statement.where(col(ApiKeyRow.id) == key_id)
    revoked = list((await session.exec(statement)).scalars().all())
    await session.commit()
    return revoked


def _stage_key(session: AsyncSession, user_id: str, now: datetime) -> tuple[ApiKeyRow, str]:
    issued = apikeys.issue()
    row = ApiKeyRow(id=issued.key_id, user_id=user_id, digest=issued.digest, created_at=now)
    session.add(row)
    return row, issued.text
