"""payments: what refunds gave back and the credits they took back

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 17:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('refunded_cents', sa.BigInteger(), nullable=False, server_default='0')
        )
        batch_op.add_column(
            sa.Column('refunded_credits', sa.BigInteger(), nullable=False, server_default='0')
        )
    # Refunds before this revision were whole: they gave back the amount and took every credit.
    op.execute(
        "UPDATE payments SET refunded_cents = amount_cents, refunded_credits = credits"
        " WHERE status = 'refunded'"
    )


def downgrade() -> None:
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_column('refunded_cents')
        batch_op.drop_column('refunded_credits')
