"""monthly cards replace per-store assessments (one monthly verdict)

The PIP streak now counts the operator's monthly scorecard results
(watcher.assessment.verdict) instead of per-store target misses. The old rows
judged months by another rule and cannot be converted: a month is judged again
when any of its snapshots is sent again.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 19:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('monthly_cards',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('operator', sa.String(length=200), nullable=False),
    sa.Column('period', sa.String(length=10), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('result', sa.String(length=20), nullable=False),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('grade', sa.String(length=20), nullable=True),
    sa.Column('evidence', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_monthly_cards')),
    sa.UniqueConstraint('operator', 'period', name='uq_monthly_cards_key')
    )
    with op.batch_alter_table('monthly_cards', schema=None) as batch_op:
        batch_op.create_index('ix_monthly_cards_operator_start', ['operator', 'period_start'],
                              unique=False)
    with op.batch_alter_table('assessments', schema=None) as batch_op:
        batch_op.drop_index('ix_assessments_operator_start')
    op.drop_table('assessments')


def downgrade() -> None:
    op.create_table('assessments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('operator', sa.String(length=200), nullable=False),
    sa.Column('store', sa.String(length=200), nullable=False),
    sa.Column('platform', sa.String(length=200), nullable=False),
    sa.Column('period', sa.String(length=10), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('missed', sa.Boolean(), nullable=False),
    sa.Column('evidence', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assessments')),
    sa.UniqueConstraint('operator', 'store', 'platform', 'period', name='uq_assessments_key')
    )
    with op.batch_alter_table('assessments', schema=None) as batch_op:
        batch_op.create_index('ix_assessments_operator_start', ['operator', 'period_start'],
                              unique=False)
    with op.batch_alter_table('monthly_cards', schema=None) as batch_op:
        batch_op.drop_index('ix_monthly_cards_operator_start')
    op.drop_table('monthly_cards')
