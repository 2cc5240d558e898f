"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-23
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ward.store.types


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', ward.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=True),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.Column('source', sa.String(length=128), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_at'), ['at'], unique=False)

    op.create_table('model_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('created_at', ward.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_model_versions')),
    sa.UniqueConstraint('name', name=op.f('uq_model_versions_name'))
    )
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.String(length=256), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', ward.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("role IN ('viewer', 'clinician', 'admin')", name=op.f('ck_users_role')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    op.create_table('wards',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wards')),
    sa.UniqueConstraint('name', name=op.f('uq_wards_name'))
    )
    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=True),
    sa.Column('created_at', ward.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_api_tokens_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_tokens_user_id'), ['user_id'], unique=False)

    op.create_table('beds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('ward_id', sa.Integer(), nullable=True),
    sa.Column('name', sa.String(length=128), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', ward.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['ward_id'], ['wards.id'], name=op.f('fk_beds_ward_id_wards')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_beds')),
    sa.UniqueConstraint('key', name=op.f('uq_beds_key'))
    )
    op.create_table('alarms',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('bed_id', sa.Integer(), nullable=False),
    sa.Column('tier', sa.String(length=16), nullable=False),
    sa.Column('started_at', ward.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', ward.store.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('peak', sa.Float(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('acknowledged', sa.Boolean(), nullable=False),
    sa.Column('verdict', sa.String(length=16), nullable=True),
    sa.CheckConstraint("state IN ('active', 'ended')", name=op.f('ck_alarms_state')),
    sa.CheckConstraint("tier IN ('alarm', 'review', 'technical')", name=op.f('ck_alarms_tier')),
    sa.CheckConstraint("verdict IS NULL OR verdict IN ('true', 'false', 'unsure')", name=op.f('ck_alarms_verdict')),
    sa.ForeignKeyConstraint(['bed_id'], ['beds.id'], name=op.f('fk_alarms_bed_id_beds'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alarms'))
    )
    with op.batch_alter_table('alarms', schema=None) as batch_op:
        batch_op.create_index('ix_alarms_bed_start', ['bed_id', 'started_at'], unique=False)
        batch_op.create_index('ix_alarms_start', ['started_at'], unique=False)

    op.create_table('bed_camera_configs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('bed_id', sa.Integer(), nullable=False),
    sa.Column('valid_from', ward.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['bed_id'], ['beds.id'], name=op.f('fk_bed_camera_configs_bed_id_beds'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bed_camera_configs'))
    )
    with op.batch_alter_table('bed_camera_configs', schema=None) as batch_op:
        batch_op.create_index('ix_bed_camera_configs_bed_from', ['bed_id', 'valid_from'], unique=False)

    op.create_table('camera_health_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('bed_id', sa.Integer(), nullable=False),
    sa.Column('at', ward.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.CheckConstraint("state IN ('online', 'degraded', 'offline')", name=op.f('ck_camera_health_events_state')),
    sa.ForeignKeyConstraint(['bed_id'], ['beds.id'], name=op.f('fk_camera_health_events_bed_id_beds'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_camera_health_events'))
    )
    with op.batch_alter_table('camera_health_events', schema=None) as batch_op:
        batch_op.create_index('ix_camera_health_bed_at', ['bed_id', 'at'], unique=False)

    op.create_table('minute_rollups',
    sa.Column('bed_id', sa.Integer(), nullable=False),
    sa.Column('minute', ward.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('p_max', sa.Float(), nullable=False),
    sa.Column('p_sum', sa.Float(), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['bed_id'], ['beds.id'], name=op.f('fk_minute_rollups_bed_id_beds'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('bed_id', 'minute', name=op.f('pk_minute_rollups')),
    sqlite_with_rowid=False
    )
    op.create_table('patient_stays',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('bed_id', sa.Integer(), nullable=False),
    sa.Column('patient_pseudonym', sa.String(length=64), nullable=False),
    sa.Column('admitted_at', ward.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('discharged_at', ward.store.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['bed_id'], ['beds.id'], name=op.f('fk_patient_stays_bed_id_beds'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patient_stays'))
    )
    with op.batch_alter_table('patient_stays', schema=None) as batch_op:
        batch_op.create_index('ix_patient_stays_bed_admitted', ['bed_id', 'admitted_at'], unique=False)

    op.create_table('probability_samples',
    sa.Column('t', ward.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('bed_id', sa.Integer(), nullable=False),
    sa.Column('probability', sa.Float(), nullable=False),
    sa.Column('accumulator', sa.Float(), nullable=False),
    sa.Column('pose_quality', sa.Float(), nullable=True),
    sa.Column('model_version_id', sa.SmallInteger(), nullable=True),
    sa.ForeignKeyConstraint(['bed_id'], ['beds.id'], name=op.f('fk_probability_samples_bed_id_beds'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id'], name=op.f('fk_probability_samples_model_version_id_model_versions')),
    sa.PrimaryKeyConstraint('t', 'bed_id', name=op.f('pk_probability_samples')),
    sqlite_with_rowid=False
    )
    op.create_table('ack_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('alarm_id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('at', ward.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('verdict', sa.String(length=16), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('source', sa.String(length=128), nullable=True),
    sa.CheckConstraint("verdict IN ('true', 'false', 'unsure')", name=op.f('ck_ack_events_verdict')),
    sa.ForeignKeyConstraint(['alarm_id'], ['alarms.id'], name=op.f('fk_ack_events_alarm_id_alarms'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ack_events'))
    )
    with op.batch_alter_table('ack_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ack_events_alarm_id'), ['alarm_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('ack_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ack_events_alarm_id'))

    op.drop_table('ack_events')
    op.drop_table('probability_samples')
    with op.batch_alter_table('patient_stays', schema=None) as batch_op:
        batch_op.drop_index('ix_patient_stays_bed_admitted')

    op.drop_table('patient_stays')
    op.drop_table('minute_rollups')
    with op.batch_alter_table('camera_health_events', schema=None) as batch_op:
        batch_op.drop_index('ix_camera_health_bed_at')

    op.drop_table('camera_health_events')
    with op.batch_alter_table('bed_camera_configs', schema=None) as batch_op:
        batch_op.drop_index('ix_bed_camera_configs_bed_from')

    op.drop_table('bed_camera_configs')
    with op.batch_alter_table('alarms', schema=None) as batch_op:
        batch_op.drop_index('ix_alarms_start')
        batch_op.drop_index('ix_alarms_bed_start')

    op.drop_table('alarms')
    op.drop_table('beds')
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_tokens_user_id'))

    op.drop_table('api_tokens')
    op.drop_table('wards')
    op.drop_table('users')
    op.drop_table('model_versions')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_at'))

    op.drop_table('audit_log')
