"""bed_latest: newest sample per bed (samples are keyed time-major)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ward.store.types

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('bed_latest',
    sa.Column('bed_id', sa.Integer(), nullable=False),
    sa.Column('t', ward.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('probability', sa.Float(), nullable=False),
    sa.Column('accumulator', sa.Float(), nullable=False),
    sa.Column('pose_quality', sa.Float(), nullable=True),
    sa.Column('model_version_id', sa.SmallInteger(), nullable=True),
    sa.ForeignKeyConstraint(['bed_id'], ['beds.id'], name=op.f('fk_bed_latest_bed_id_beds'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id'], name=op.f('fk_bed_latest_model_version_id_model_versions')),
    sa.PrimaryKeyConstraint('bed_id', name=op.f('pk_bed_latest'))
    )
    # Backfill from existing samples (empty on new installs).
    op.execute("INSERT INTO bed_latest (bed_id, t, probability, accumulator, pose_quality, model_version_id) "
               "SELECT s.bed_id, s.t, s.probability, s.accumulator, s.pose_quality, s.model_version_id "
               "FROM probability_samples s JOIN (SELECT bed_id, max(t) AS t FROM probability_samples "
               "GROUP BY bed_id) m ON m.bed_id = s.bed_id AND m.t = s.t")


def downgrade() -> None:
    op.drop_table('bed_latest')
