"""users.service: service accounts (the dashboard's API identity) apart from people

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30

The first-start admin bootstrap runs only while no *person* has an account; before this column the
ward's own ``svc-dashboard`` account counted as a user and the bootstrap never ran. Existing
``svc-dashboard`` rows (only ever created by the ward) are marked as service accounts, which repairs
databases that were started once without an admin.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('service', sa.Boolean(), nullable=False, server_default=sa.false()))
    users = sa.table('users', sa.column('username', sa.String()), sa.column('service', sa.Boolean()))
    op.execute(users.update().where(users.c.username == 'svc-dashboard').values(service=True))


def downgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.drop_column('service')
