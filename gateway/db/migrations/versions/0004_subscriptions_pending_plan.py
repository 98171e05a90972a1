"""subscriptions: the plan a downgrade moves to at the end of the period

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 16:50:19.030304
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pending_plan_id', sa.String(length=30), nullable=True))
        batch_op.create_foreign_key(
            'fk_subscriptions_pending_plan_id_plans', 'plans', ['pending_plan_id'], ['id']
        )


def downgrade() -> None:
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.drop_constraint('fk_subscriptions_pending_plan_id_plans', type_='foreignkey')
        batch_op.drop_column('pending_plan_id')
