"""recorded outcomes: the scheduler records what it made of each failure

Drops executions.node_policies: the notifier no longer judges a failure from the node's policy,
it reads the scheduler's ``NodeFailureHandled`` (nodedrop.contracts.history_fold). Adds
executions.outcomes_recorded (the execution's start said the scheduler records outcomes) and
node_executions.outcome, the outcome of a node's failure for good (``fail``, ``continue``,
``error_output``). Rows projected before have neither: their failures read as ``failed`` until a
retry says otherwise, as rows without a known policy did.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_column("executions", "node_policies")
    op.add_column(
        "executions",
        sa.Column("outcomes_recorded", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column("node_executions", sa.Column("outcome", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("node_executions", "outcome")
    op.drop_column("executions", "outcomes_recorded")
    op.add_column(
        "executions",
        sa.Column("node_policies", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
