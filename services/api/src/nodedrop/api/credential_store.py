"""Users' credentials in PostgreSQL (the api writes them; runners read them, see
``nodedrop.platform.db.credentials``). Like ``workflow_store``, changes are staged in the
session and committed by the route."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import tuple_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from nodedrop.api.pagination import Position
from nodedrop.api.workflow_store import new_id
from nodedrop.platform.db.credentials import seal_secret
from nodedrop.platform.db.tables import CredentialRow
from nodedrop.platform.secretbox import SecretKey


async def create(
    session: AsyncSession,
    key: SecretKey,
    *,
    owner: str,
    type: str,
    name: str,
    fields: dict[str, Any],
    secret: dict[str, Any],
    now: datetime,
) -> CredentialRow:
    credential_id = new_id()
    row = CredentialRow(
        id=credential_id,
        owner=owner,
        type=type,
        name=name,
        fields=fields,
        secret=seal_secret(key, credential_id, secret),
        key_fingerprint=key.fingerprint,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    return row


async def get(
    session: AsyncSession, credential_id: str, *, for_update: bool = False
) -> CredentialRow | None:
    statement = select(CredentialRow).where(col(CredentialRow.id) == credential_id)
    if for_update:
        statement = statement.with_for_update()
    return (await session.exec(statement)).first()


async def replace(
    session: AsyncSession,
    key: SecretKey,
    row: CredentialRow,
    *,
    name: str,
    fields: dict[str, Any],
    secret: dict[str, Any],
    now: datetime,
) -> CredentialRow:
    row.name = name
    row.fields = fields
    row.secret = seal_secret(key, row.id, secret)
    row.key_fingerprint = key.fingerprint
    row.updated_at = now
    session.add(row)
    await session.flush()
    return row


async def delete(session: AsyncSession, row: CredentialRow) -> None:
    """Gone for good: its sealed secret with it. Events name only its id, so nothing else
    holds the secret; nodes that name it fail with CredentialError from now on."""
    await session.delete(row)
    await session.flush()


async def page(
    session: AsyncSession, *, owner: str | None, limit: int, after: Position | None
) -> list[CredentialRow]:
    """Credentials, newest first, ``limit`` of them after the cursor position."""
    statement = select(CredentialRow)
    if owner is not None:
        statement = statement.where(col(CredentialRow.owner) == owner)
    if after is not None:
        statement = statement.where(
            tuple_(col(CredentialRow.created_at), col(CredentialRow.id)) < tuple_(*after)
        )
    statement = statement.order_by(
        col(CredentialRow.created_at).desc(), col(CredentialRow.id).desc()
    ).limit(limit)
    return list((await session.exec(statement)).all())
