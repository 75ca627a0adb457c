"""log lines: several per event (NodeLogged)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "execution_logs", sa.Column("line", sa.Integer(), server_default="0", nullable=False)
    )
    op.drop_constraint("uq_execution_logs_seq", "execution_logs", type_="unique")
    op.create_unique_constraint(
        "uq_execution_logs_seq_line", "execution_logs", ["execution_id", "seq", "line"]
    )


def downgrade() -> None:
    op.execute("DELETE FROM execution_logs WHERE line > 0")
    op.drop_constraint("uq_execution_logs_seq_line", "execution_logs", type_="unique")
    op.create_unique_constraint("uq_execution_logs_seq", "execution_logs", ["execution_id", "seq"])
    op.drop_column("execution_logs", "line")
