"""Enqueued trials: params a user chose, a stage's count of them and those waiting for it

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("stages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("enqueued", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("waiting", _JSON, server_default="[]", nullable=False))
    with op.batch_alter_table("trials", schema=None) as batch_op:
        batch_op.add_column(sa.Column("enqueued", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("enqueue_key", sa.String(length=200), nullable=True))
        batch_op.create_index("ix_trials_sweep_enqueue_key", ["sweep_id", "enqueue_key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("trials", schema=None) as batch_op:
        batch_op.drop_index("ix_trials_sweep_enqueue_key")
        batch_op.drop_column("enqueue_key")
        batch_op.drop_column("enqueued")
    with op.batch_alter_table("stages", schema=None) as batch_op:
        batch_op.drop_column("waiting")
        batch_op.drop_column("enqueued")
