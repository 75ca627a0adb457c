"""projection fencing: what the notifier needs to fence results as the scheduler core does

executions.ending, executions.node_policies, node_executions.runner_lost,
node_executions.wait_until. Rows projected before keep ending false and node_policies NULL
(policies not known: their failures are judged as before); ``nodedrop projections rebuild``
reports those executions until they are pruned.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Constant defaults: PostgreSQL 11+ adds these columns without rewriting the tables.
    op.add_column(
        "executions",
        sa.Column("ending", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column(
        "executions",
        sa.Column("node_policies", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    op.add_column(
        "node_executions",
        sa.Column("runner_lost", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column(
        "node_executions",
        sa.Column("wait_until", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("node_executions", "wait_until")
    op.drop_column("node_executions", "runner_lost")
    op.drop_column("executions", "node_policies")
    op.drop_column("executions", "ending")
