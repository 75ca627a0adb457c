"""sub-workflows: the links between an execute_workflow node's execution and its children

executions.parent_execution_id and executions.parent_node (a child names its parent; indexed,
so an execution's children are one lookup), node_executions.children (the child executions an
execute_workflow node started, in item order). Rows projected before have none.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("executions", sa.Column("parent_execution_id", sa.Text(), nullable=True))
    op.add_column("executions", sa.Column("parent_node", sa.Text(), nullable=True))
    op.create_index("ix_executions_parent", "executions", ["parent_execution_id"])
    op.add_column(
        "node_executions",
        sa.Column("children", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("node_executions", "children")
    op.drop_index("ix_executions_parent", table_name="executions")
    op.drop_column("executions", "parent_node")
    op.drop_column("executions", "parent_execution_id")
