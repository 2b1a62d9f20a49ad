"""snapshot parts: one snapshot stated in parts by different feeds

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29 22:20:00.000000

``feed`` names the one feed of a snapshot only one feed states (its columns are the part,
the common case: no JSON written or read); ``parts`` holds {feed: part} once several do.
Rows stored before keep both NULL and are read as one part of the feed their ``source``
names (watcher/feeds.py, ``legacy_feed``): no rewrite of the table.
"""
import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('snapshots') as batch_op:
        batch_op.add_column(sa.Column('feed', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('parts', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('snapshots') as batch_op:
        batch_op.drop_column('parts')
        batch_op.drop_column('feed')
