"""PIP plans and monthly report deliveries

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 19:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('pip_plans',
    sa.Column('incident_id', sa.Integer(), nullable=False),
    sa.Column('operator', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('ends_on', sa.Date(), nullable=False),
    sa.Column('plan', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'],
                            name=op.f('fk_pip_plans_incident_id_incidents'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('incident_id', name=op.f('pk_pip_plans'))
    )
    op.create_index('ix_pip_plans_status', 'pip_plans', ['status'], unique=False)
    op.create_table('report_deliveries',
    sa.Column('manager', sa.String(length=200), nullable=False),
    sa.Column('period', sa.String(length=10), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('manager', 'period', name=op.f('pk_report_deliveries'))
    )


def downgrade() -> None:
    op.drop_table('report_deliveries')
    op.drop_index('ix_pip_plans_status', table_name='pip_plans')
    op.drop_table('pip_plans')
