"""poller tokens

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 07:30:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('poller_tokens',
    sa.Column('poller', sa.String(length=200), nullable=False),
    sa.Column('refresh_token', sa.Text(), nullable=False),
    sa.Column('configured_hash', sa.String(length=64), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('poller', name=op.f('pk_poller_tokens'))
    )


def downgrade() -> None:
    op.drop_table('poller_tokens')
