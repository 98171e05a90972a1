"""members: index an organization's members in id order

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 22:58:00.000000
"""
from collections.abc import Sequence

from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A members page (`organization_id = ? [AND id > ?] ORDER BY id LIMIT n`) becomes one index
    # range scan. Without it, a prepared statement's generic plan may walk the primary key in id
    # order and filter on the organization (every member of every organization) whenever the
    # page is joined to the members' users: 9 ms instead of 0.1 ms on 20,000 members.
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.create_index('ix_members_org_id', ['organization_id', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_index('ix_members_org_id')
