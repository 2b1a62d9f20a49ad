"""pending firings (rules with for:)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 19:30:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('pending_firings',
    sa.Column('fingerprint', sa.String(length=700), nullable=False),
    sa.Column('rule', sa.String(length=200), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('since', sa.DateTime(timezone=True), nullable=False),
    sa.Column('periods', sa.Integer(), nullable=False),
    sa.Column('last_period', sa.String(length=10), nullable=False),
    sa.Column('last_period_end', sa.Date(), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('firing', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('fingerprint', name=op.f('pk_pending_firings'))
    )
    with op.batch_alter_table('pending_firings', schema=None) as batch_op:
        batch_op.create_index('ix_pending_firings_subject', ['subject'], unique=False)
        batch_op.create_index('ix_pending_firings_due_at', ['due_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('pending_firings', schema=None) as batch_op:
        batch_op.drop_index('ix_pending_firings_due_at')
        batch_op.drop_index('ix_pending_firings_subject')
    op.drop_table('pending_firings')
