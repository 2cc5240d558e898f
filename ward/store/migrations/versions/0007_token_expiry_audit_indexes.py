"""api_tokens: expires_at, last_used_at, revoked_at; audit_log indexes by action and by actor

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

Tokens could neither expire nor be listed or revoked without their plaintext. People's tokens now
expire (default 90 days); service accounts' tokens (replaced at every ward start) may not. Tokens of
people that exist at the upgrade get ``expires_at`` = upgrade time + 90 days, so no integration is cut
off at once and none stays valid for ever. ``ward audit --action/--user`` read the newest rows of one
action or actor: the two indexes make that a seek instead of a scan of years of audit rows.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from alembic import op

import ward.store.types

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

LEGACY_TOKEN_DAYS = 90


def upgrade() -> None:
    with op.batch_alter_table('api_tokens') as batch:
        batch.add_column(sa.Column('expires_at', ward.store.types.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('last_used_at', ward.store.types.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('revoked_at', ward.store.types.UTCDateTime(timezone=True), nullable=True))
    tokens = sa.table('api_tokens', sa.column('user_id', sa.Integer()), sa.column('revoked', sa.Boolean()),
                      sa.column('expires_at', ward.store.types.UTCDateTime(timezone=True)))
    users = sa.table('users', sa.column('id', sa.Integer()), sa.column('service', sa.Boolean()))
    people = sa.select(users.c.id).where(users.c.service == sa.false())
    op.execute(tokens.update().where(tokens.c.revoked == sa.false(), tokens.c.user_id.in_(people))
               .values(expires_at=datetime.now(timezone.utc) + timedelta(days=LEGACY_TOKEN_DAYS)))
    op.create_index('ix_audit_log_action_at', 'audit_log', ['action', 'at'], unique=False)
    op.create_index('ix_audit_log_username_at', 'audit_log', ['username', 'at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_audit_log_username_at', table_name='audit_log')
    op.drop_index('ix_audit_log_action_at', table_name='audit_log')
    with op.batch_alter_table('api_tokens') as batch:
        batch.drop_column('revoked_at')
        batch.drop_column('last_used_at')
        batch.drop_column('expires_at')
