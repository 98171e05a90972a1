"""promotions: redemption caps, promotional credits that expire

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 16:49:15.432500
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Redemptions made before this revision keep their credits as ordinary ones (nothing left
    # to expire: `remaining` 0), as they were promised.
    with op.batch_alter_table('promotion_redemptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('credits', sa.BigInteger(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('remaining', sa.BigInteger(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('settled_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('expired_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('promotion_redemptions', schema=None) as batch_op:
        batch_op.alter_column('credits', server_default=None)
        batch_op.alter_column('remaining', server_default=None)

    with op.batch_alter_table('promotions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('max_redemptions', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('redemption_count', sa.BigInteger(), nullable=False, server_default='0'))
    # A cap set later counts the redemptions already made.
    op.execute(
        'UPDATE promotions SET redemption_count = (SELECT count(*) FROM promotion_redemptions'
        ' WHERE promotion_redemptions.promotion_id = promotions.id)'
    )
    with op.batch_alter_table('promotions', schema=None) as batch_op:
        batch_op.alter_column('redemption_count', server_default=None)


def downgrade() -> None:
    with op.batch_alter_table('promotions', schema=None) as batch_op:
        batch_op.drop_column('redemption_count')
        batch_op.drop_column('max_redemptions')

    with op.batch_alter_table('promotion_redemptions', schema=None) as batch_op:
        batch_op.drop_column('expired_at')
        batch_op.drop_column('settled_at')
        batch_op.drop_column('expires_at')
        batch_op.drop_column('remaining')
        batch_op.drop_column('credits')
