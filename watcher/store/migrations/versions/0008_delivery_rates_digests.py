"""delivery: priorities, digests and the send-rate window

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 19:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('priority', sa.Integer(), nullable=False,
                                      server_default=sa.text('0')))
        batch_op.add_column(sa.Column('carried_by', sa.Integer(), nullable=True))
        batch_op.create_index('ix_notifications_channel_sent', ['channel', 'sent_at'],
                              unique=False)
        batch_op.create_index('ix_notifications_carried_by', ['carried_by'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_notifications_carried_by')
        batch_op.drop_index('ix_notifications_channel_sent')
        batch_op.drop_column('carried_by')
        batch_op.drop_column('priority')
