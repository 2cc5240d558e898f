"""bed_rule_overrides: live per-bed rule overrides from the dashboard, one row per change

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

Before this table the bed view's thresholds were a dict in the bed's camera config that nothing
read (and that the coordinator's start overwrote). Each row is one change (who, when, the values);
the newest row of a bed is the override the coordinator applies.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ward.store.types

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('bed_rule_overrides',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('bed_id', sa.Integer(), nullable=False),
    sa.Column('valid_from', ward.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=128), nullable=True),
    sa.Column('p_floor', sa.Float(), nullable=True),
    sa.Column('alarm_threshold', sa.Float(), nullable=True),
    sa.Column('release_threshold', sa.Float(), nullable=True),
    sa.Column('min_duration_s', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['bed_id'], ['beds.id'], name=op.f('fk_bed_rule_overrides_bed_id_beds'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bed_rule_overrides'))
    )
    op.create_index('ix_bed_rule_overrides_bed_from', 'bed_rule_overrides', ['bed_id', 'valid_from'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_bed_rule_overrides_bed_from', table_name='bed_rule_overrides')
    op.drop_table('bed_rule_overrides')
