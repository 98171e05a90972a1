"""payments: what refunds gave back and the credits they took back; the e-mail outbox

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 17:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0005'
down_revision: str | None = '0004'
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
    op.create_table(
        'outbox_emails',
        sa.Column('id', sa.String(length=30), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('reference_id', sa.String(length=64), nullable=True),
        sa.Column('recipient', sa.String(length=320), nullable=False),
        sa.Column('subject', sa.String(length=500), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_error', sa.String(length=1000), nullable=True),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('outbox_emails', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_emails_due', ['status', 'next_attempt_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('outbox_emails', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_emails_due')
    op.drop_table('outbox_emails')
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_column('refunded_cents')
        batch_op.drop_column('refunded_credits')
