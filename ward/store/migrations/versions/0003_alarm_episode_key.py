"""alarms.episode_key: client-generated stable episode id (idempotent journaled alarm writes)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('alarms', sa.Column('episode_key', sa.String(length=64), nullable=True))
    # Existing alarms get a key derived from their id, so every row can be referred to by key.
    op.execute("UPDATE alarms SET episode_key = 'db-' || CAST(id AS VARCHAR(20)) WHERE episode_key IS NULL")
    op.create_index('ix_alarms_episode_key', 'alarms', ['episode_key'], unique=True)


def downgrade() -> None:
    op.drop_index('ix_alarms_episode_key', table_name='alarms')
    with op.batch_alter_table('alarms') as batch:
        batch.drop_column('episode_key')
