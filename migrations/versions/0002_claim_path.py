"""Claim path: index trials by (sweep_id, status, number); best is read, not stored

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("trials", schema=None) as batch_op:
        batch_op.create_index("ix_trials_sweep_status_number", ["sweep_id", "status", "number"], unique=False)
        batch_op.drop_index("ix_trials_sweep_status")
    with op.batch_alter_table("sweeps", schema=None) as batch_op:
        batch_op.drop_column("best_value")
        batch_op.drop_column("best_trial_id")


def downgrade() -> None:
    with op.batch_alter_table("sweeps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("best_trial_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("best_value", sa.Float(), nullable=True))
    with op.batch_alter_table("trials", schema=None) as batch_op:
        batch_op.create_index("ix_trials_sweep_status", ["sweep_id", "status"], unique=False)
        batch_op.drop_index("ix_trials_sweep_status_number")
