"""snapshot indexes for the board, the team cards and their watermark

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29 21:20:00.000000
"""
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('snapshots', schema=None) as batch_op:
        batch_op.create_index('ix_snapshots_store_kind_start',
                              ['platform', 'store', 'period_kind', 'period_start'], unique=False)
        batch_op.create_index('ix_snapshots_updated', ['updated_at', 'revision', 'id'],
                              unique=False)
        batch_op.create_index('ix_snapshots_period_start', ['period_start', 'period_end'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('snapshots', schema=None) as batch_op:
        batch_op.drop_index('ix_snapshots_period_start')
        batch_op.drop_index('ix_snapshots_updated')
        batch_op.drop_index('ix_snapshots_store_kind_start')
