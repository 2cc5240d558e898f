"""dashboard_sessions; users.must_change_password

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

Dashboard logins lived only in the browser tab's memory (a reload logged out, nothing expired). Each
login is now a row (SHA-256 of the cookie's token, idle and absolute expiry). Users whose password
someone else chose must change it at their next dashboard login; before this revision no password
could be changed, so an admin created with a generated one-time password (audit row
``user.bootstrap`` with ``from_env`` false) still has it and is marked here.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ward.store.types

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('must_change_password', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table('dashboard_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', ward.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_active_at', ward.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', ward.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('kiosk', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_dashboard_sessions_user_id_users'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dashboard_sessions')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_dashboard_sessions_token_hash'))
    )
    op.create_index(op.f('ix_dashboard_sessions_expires_at'), 'dashboard_sessions', ['expires_at'], unique=False)
    op.create_index(op.f('ix_dashboard_sessions_user_id'), 'dashboard_sessions', ['user_id'], unique=False)
    _mark_one_time_admins()


def _mark_one_time_admins() -> None:
    """Force a password change for admins created with a generated one-time password."""
    audit = sa.table('audit_log', sa.column('action', sa.String()), sa.column('detail', sa.JSON()))
    users = sa.table('users', sa.column('username', sa.String()), sa.column('must_change_password', sa.Boolean()))
    conn = op.get_bind()
    names = [d["username"] for (d,) in conn.execute(sa.select(audit.c.detail).where(audit.c.action == 'user.bootstrap'))
             if isinstance(d, dict) and d.get("from_env") is False and d.get("username")]
    if names:
        conn.execute(users.update().where(users.c.username.in_(names)).values(must_change_password=True))


def downgrade() -> None:
    op.drop_index(op.f('ix_dashboard_sessions_user_id'), table_name='dashboard_sessions')
    op.drop_index(op.f('ix_dashboard_sessions_expires_at'), table_name='dashboard_sessions')
    op.drop_table('dashboard_sessions')
    with op.batch_alter_table('users') as batch:
        batch.drop_column('must_change_password')
