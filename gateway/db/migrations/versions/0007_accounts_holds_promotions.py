"""accounts: whether promotional credits may be live, so a balance read skips the redemptions

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 18:40:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('holds_promotions', sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.execute(
        'UPDATE accounts SET holds_promotions = true WHERE id IN (SELECT account_id'
        ' FROM promotion_redemptions WHERE remaining > 0 AND expired_at IS NULL)'
    )
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.alter_column('holds_promotions', server_default=None)


def downgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('holds_promotions')
