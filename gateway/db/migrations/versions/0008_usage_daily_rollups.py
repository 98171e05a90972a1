"""usage_daily: an organization's usage per UTC day, user and model, backfilled from usage_records

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 19:50:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The measures as of this revision (resolvers/usage/measures.py's SUMMED then); a later
# measure adds its column and backfill in its own migration.
_SUMMED = ('prompt_tokens', 'completion_tokens', 'total_tokens', 'credits_used', 'cost_micro_usd')


def upgrade() -> None:
    op.create_table(
        'usage_daily',
        sa.Column('organization_id', sa.String(length=30), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('user_id', sa.String(length=30), nullable=False),
        sa.Column('model_name', sa.String(length=200), nullable=False),
        sa.Column('requests', sa.BigInteger(), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in _SUMMED),
        sa.PrimaryKeyConstraint('organization_id', 'day', 'user_id', 'model_name'),
    )
    # A period's roll-ups by an index-only scan on PostgreSQL (their heap pages are scattered).
    op.create_index(
        'ix_usage_daily_org_day',
        'usage_daily',
        ['organization_id', 'day'],
        postgresql_include=['user_id', 'model_name', 'requests', *_SUMMED],
    )
    day = (
        "CAST(timezone('UTC', created_at) AS DATE)"
        if op.get_bind().dialect.name == 'postgresql'
        else 'date(created_at)'
    )
    summed = ', '.join(_SUMMED)
    sums = ', '.join(f'sum({name})' for name in _SUMMED)
    op.execute(
        f'INSERT INTO usage_daily (organization_id, day, user_id, model_name, requests, {summed})'
        f' SELECT organization_id, {day}, user_id, model_name, count(*), {sums}'
        f' FROM usage_records WHERE organization_id IS NOT NULL'
        f' GROUP BY organization_id, {day}, user_id, model_name'
    )


def downgrade() -> None:
    op.drop_table('usage_daily')
