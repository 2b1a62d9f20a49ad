"""weekly digest deliveries

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 21:20:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('digest_deliveries',
    sa.Column('route_key', sa.String(length=64), nullable=False),
    sa.Column('week', sa.String(length=10), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('route_key', 'week', name=op.f('pk_digest_deliveries'))
    )


def downgrade() -> None:
    op.drop_table('digest_deliveries')
