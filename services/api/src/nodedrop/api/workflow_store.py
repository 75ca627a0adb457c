"""Saved workflows and their versions (the api owns these tables).

``create``, ``update`` and ``soft_delete`` stage their change in the session's transaction and
do not commit: the route commits it together with the workflow's schedule entry
(``nodedrop.api.schedules.commit_with_schedule``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import uuid_utils
from sqlalchemy import tuple_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from nodedrop.api.pagination import Position
from nodedrop.platform.db.tables import WorkflowRow, WorkflowVersionRow


def new_id() -> str:
    """A uuid7: time-ordered, and free of dots (ids end up in NATS subjects)."""
    return str(uuid_utils.uuid7())


async def create(
    session: AsyncSession, *, definition: dict[str, Any], name: str, owner: str, now: datetime
) -> WorkflowRow:
    row = WorkflowRow(
        id=new_id(),
        name=name,
        version=1,
        definition=definition,
        owner=owner,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.add(
        WorkflowVersionRow(
            workflow_id=row.id, version=1, definition=definition, created_by=owner, created_at=now
        )
    )
    await session.flush()
    return row


async def get(
    session: AsyncSession, workflow_id: str, *, for_update: bool = False
) -> WorkflowRow | None:
    """The workflow unless it is deleted."""
    statement = select(WorkflowRow).where(
        col(WorkflowRow.id) == workflow_id, col(WorkflowRow.deleted_at).is_(None)
    )
    if for_update:
        statement = statement.with_for_update()
    return (await session.exec(statement)).first()


async def update(
    session: AsyncSession,
    row: WorkflowRow,
    *,
    definition: dict[str, Any],
    name: str,
    actor: str,
    now: datetime,
) -> WorkflowRow:
    """A new version of ``row``, which the caller locked with ``get(..., for_update=True)``."""
    row.version += 1
    row.definition = definition
    row.name = name
    row.updated_at = now
    session.add(row)
    session.add(
        WorkflowVersionRow(
            workflow_id=row.id,
            version=row.version,
            definition=definition,
            created_by=actor,
            created_at=now,
        )
    )
    await session.flush()
    return row


async def soft_delete(session: AsyncSession, row: WorkflowRow, *, now: datetime) -> None:
    row.deleted_at = now
    session.add(row)
    await session.flush()


async def get_version(
    session: AsyncSession, workflow_id: str, version: int
) -> WorkflowVersionRow | None:
    return await session.get(WorkflowVersionRow, (workflow_id, version))


async def page(
    session: AsyncSession, *, owner: str | None, limit: int, after: Position | None
) -> list[WorkflowRow]:
    """Non-deleted workflows, newest first, ``limit`` of them after the cursor position."""
    statement = select(WorkflowRow).where(col(WorkflowRow.deleted_at).is_(None))
    if owner is not None:
        statement = statement.where(col(WorkflowRow.owner) == owner)
    if after is not None:
        statement = statement.where(
            tuple_(col(WorkflowRow.created_at), col(WorkflowRow.id)) < tuple_(*after)
        )
    statement = statement.order_by(
        col(WorkflowRow.created_at).desc(), col(WorkflowRow.id).desc()
    ).limit(limit)
    return list((await session.exec(statement)).all())
