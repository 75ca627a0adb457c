"""Reads of the projection the notifier writes (executions, node_executions, execution_logs).
It lags behind the event stream: absence here does not mean an execution does not exist."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, tuple_
from sqlalchemy.dialects.postgresql import distinct_on
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from nodedrop.api.pagination import Position
from nodedrop.platform.db.tables import ExecutionLogRow, ExecutionRow, NodeExecutionRow

FINAL_STATUSES = frozenset({"succeeded", "partial", "failed", "cancelled", "timed_out"})


async def get_execution(session: AsyncSession, execution_id: str) -> ExecutionRow | None:
    return await session.get(ExecutionRow, execution_id)


async def node_executions(session: AsyncSession, execution_id: str) -> list[NodeExecutionRow]:
    statement = (
        select(NodeExecutionRow)
        .where(col(NodeExecutionRow.execution_id) == execution_id)
        .order_by(col(NodeExecutionRow.position), col(NodeExecutionRow.node))
    )
    return list((await session.exec(statement)).all())


async def children(session: AsyncSession, execution_id: str) -> list[ExecutionRow]:
    """The executions the execution's ``execute_workflow`` nodes started, oldest first."""
    statement = (
        select(ExecutionRow)
        .where(col(ExecutionRow.parent_execution_id) == execution_id)
        .order_by(col(ExecutionRow.created_at), col(ExecutionRow.id))
    )
    return list((await session.exec(statement)).all())


async def finished_among(session: AsyncSession, execution_ids: list[str]) -> list[str]:
    """Those of ``execution_ids`` whose end the projection holds (one indexed query)."""
    statement = select(ExecutionRow.id).where(
        col(ExecutionRow.id).in_(execution_ids), col(ExecutionRow.finished_at).is_not(None)
    )
    return list((await session.exec(statement)).all())


async def executions_with_nodes(
    session: AsyncSession, execution_ids: list[str]
) -> list[tuple[ExecutionRow, list[NodeExecutionRow], list[ExecutionRow]]]:
    """Several executions, each with its nodes (in plan order) and its children (oldest first),
    in three queries."""
    rows = (
        await session.exec(select(ExecutionRow).where(col(ExecutionRow.id).in_(execution_ids)))
    ).all()
    nodes: dict[str, list[NodeExecutionRow]] = {row.id: [] for row in rows}
    statement = (
        select(NodeExecutionRow)
        .where(col(NodeExecutionRow.execution_id).in_(execution_ids))
        .order_by(
            col(NodeExecutionRow.execution_id),
            col(NodeExecutionRow.position),
            col(NodeExecutionRow.node),
        )
    )
    for node in (await session.exec(statement)).all():
        nodes.setdefault(node.execution_id, []).append(node)
    children: dict[str, list[ExecutionRow]] = {row.id: [] for row in rows}
    started = (
        select(ExecutionRow)
        .where(col(ExecutionRow.parent_execution_id).in_(execution_ids))
        .order_by(col(ExecutionRow.created_at), col(ExecutionRow.id))
    )
    for child in (await session.exec(started)).all():
        if child.parent_execution_id is not None:
            children.setdefault(child.parent_execution_id, []).append(child)
    return [(row, nodes[row.id], children[row.id]) for row in rows]


async def page(
    session: AsyncSession,
    *,
    owner: str | None,
    workflow_id: str | None,
    status: str | None,
    limit: int,
    after: Position | None,
) -> list[ExecutionRow]:
    """Executions newest first: (created_at, id) descending, after the cursor position."""
    statement = select(ExecutionRow)
    if owner is not None:
        statement = statement.where(col(ExecutionRow.requested_by) == owner)
    if workflow_id is not None:
        statement = statement.where(col(ExecutionRow.workflow_id) == workflow_id)
    if status is not None:
        statement = statement.where(col(ExecutionRow.status) == status)
    if after is not None:
        statement = statement.where(
            tuple_(col(ExecutionRow.created_at), col(ExecutionRow.id)) < tuple_(*after)
        )
    statement = statement.order_by(
        col(ExecutionRow.created_at).desc(), col(ExecutionRow.id).desc()
    ).limit(limit)
    return list((await session.exec(statement)).all())


async def logs(session: AsyncSession, execution_id: str) -> list[ExecutionLogRow]:
    statement = (
        select(ExecutionLogRow)
        .where(col(ExecutionLogRow.execution_id) == execution_id)
        .order_by(col(ExecutionLogRow.seq), col(ExecutionLogRow.line))
    )
    return list((await session.exec(statement)).all())


async def recorded_outputs(
    session: AsyncSession, workflow_id: str, nodes: list[str]
) -> dict[str, dict[str, Any]]:
    """For each of ``nodes``: its output in the latest finished execution of the workflow that
    recorded one. Nodes that never produced an output are absent."""
    if not nodes:
        return {}
    statement = (
        select(NodeExecutionRow.node, NodeExecutionRow.output)
        .join(ExecutionRow, col(ExecutionRow.id) == col(NodeExecutionRow.execution_id))
        .where(
            col(ExecutionRow.workflow_id) == workflow_id,
            col(ExecutionRow.finished_at).is_not(None),
            col(NodeExecutionRow.node).in_(nodes),
            # JSON null is not an output either (the column stores None as 'null').
            func.jsonb_typeof(col(NodeExecutionRow.output)) == "object",
        )
        .order_by(
            col(NodeExecutionRow.node),
            col(ExecutionRow.finished_at).desc(),
            col(ExecutionRow.id).desc(),
        )
        .ext(distinct_on(col(NodeExecutionRow.node)))
    )
    return {
        node: dict(output)
        for node, output in (await session.exec(statement)).all()
        if output is not None
    }
