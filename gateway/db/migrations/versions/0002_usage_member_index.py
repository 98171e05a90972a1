"""usage: index a member's usage in an organization, newest first

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 19:50:00.000000
"""
from collections.abc import Sequence

from alembic import op


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A member's page (`organization_id = ? AND user_id = ? ORDER BY id DESC LIMIT n`) becomes one
    # index range scan instead of a BitmapAnd over the user's whole history.
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.create_index(
            'ix_usage_org_user_id', ['organization_id', 'user_id', 'id'], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.drop_index('ix_usage_org_user_id')
