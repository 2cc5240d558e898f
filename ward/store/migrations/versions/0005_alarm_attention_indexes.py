"""alarms: indexes for the dashboard's unacknowledged and active alarm reads

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""
from __future__ import annotations

from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_alarms_unacked', 'alarms', ['acknowledged', 'tier', 'bed_id', 'started_at'], unique=False)
    op.create_index('ix_alarms_state', 'alarms', ['state', 'bed_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_alarms_state', table_name='alarms')
    op.drop_index('ix_alarms_unacked', table_name='alarms')
