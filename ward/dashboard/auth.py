"""Roles and first-start bootstrap of the dashboard's admin account.

Passwords are never logged; the only secret ever written to the log is a generated one-time admin
password, once, on the first start against a database without users.
"""

from __future__ import annotations

import logging
import os
import secrets
from typing import Mapping

from ward.store.repository import Store

log = logging.getLogger("ward.dashboard")

CAN_ACKNOWLEDGE = frozenset({"clinician", "admin"})
CAN_CONFIGURE = frozenset({"admin"})


def can_acknowledge(role: str | None) -> bool:
    return role in CAN_ACKNOWLEDGE


def can_configure(role: str | None) -> bool:
    return role in CAN_CONFIGURE


def bootstrap_admin(store: Store, env: Mapping[str, str] | None = None,
                    logger: logging.Logger = log) -> str | None:
    """Create the first admin when the database has no users; returns its name, or None if users exist.

    The password comes from $WARD_ADMIN_PASSWORD (user name from $WARD_ADMIN_USER, default "admin");
    without it a random one-time password is generated and logged exactly once."""
    env = os.environ if env is None else env
    if store.list_users():
        return None
    username = env.get("WARD_ADMIN_USER") or "admin"
    password = env.get("WARD_ADMIN_PASSWORD")
    if password:
        store.create_user(username, password, role="admin")
        logger.info("created admin account %r from WARD_ADMIN_PASSWORD", username)
    else:
        password = secrets.token_urlsafe(12)
        store.create_user(username, password, role="admin")
        logger.warning("first start: created admin account %r with one-time password %s "
                       "(shown only this once; log in and create personal accounts)", username, password)
    store.audit("user.bootstrap", user=None, source="dashboard", detail={"username": username,
                                                                        "from_env": bool(env.get("WARD_ADMIN_PASSWORD"))})
    return username
