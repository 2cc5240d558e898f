"""Roles and the first-start bootstrap of the ward's admin account.

:func:`bootstrap_admin` is called by the ward's start (``ward.serve.app.build_app``), before any
deployment touches the users table. Passwords are never logged; the only secret ever written to
the log is a generated one-time admin password, once, on the first start against a database where
no person has an account yet (the ward's own service accounts don't count).
"""

from __future__ import annotations

import logging
import os
import secrets
from typing import Mapping

from ward.store.repository import Store, StoreError, check_new_user

log = logging.getLogger("ward.dashboard")

CAN_ACKNOWLEDGE = frozenset({"clinician", "admin"})
CAN_CONFIGURE = frozenset({"admin"})
ADMIN_USER_ENV, ADMIN_PASSWORD_ENV = "WARD_ADMIN_USER", "WARD_ADMIN_PASSWORD"


class BootstrapError(ValueError):
    """$WARD_ADMIN_USER / $WARD_ADMIN_PASSWORD cannot make an account (the message says why)."""


def can_acknowledge(role: str | None) -> bool:
    return role in CAN_ACKNOWLEDGE


def can_configure(role: str | None) -> bool:
    return role in CAN_CONFIGURE


def bootstrap_admin(store: Store, env: Mapping[str, str] | None = None,
                    logger: logging.Logger = log, source: str = "ward") -> str | None:
    """Create the first admin when no person has an account; returns its name, or None otherwise.

    The password comes from $WARD_ADMIN_PASSWORD (user name from $WARD_ADMIN_USER, default "admin");
    without it a random one-time password is generated and logged exactly once, prominently.
    Safe to call from several processes at once: only one of them creates the account."""
    env = os.environ if env is None else env
    username, given = admin_from_env(env)
    if store.has_people():
        return None
    password = given or secrets.token_urlsafe(12)
    try:
        user = store.create_first_admin(username, password)
    except StoreError as exc:  # e.g. the name of one of the ward's service accounts
        raise _env_error(exc, username) from None
    if user is None:  # another process got there first
        return None
    if given:
        logger.info("created admin account %r from %s", username, ADMIN_PASSWORD_ENV)
    else:
        logger.warning(_one_time_banner(username, password))
    store.audit("user.bootstrap", user=None, source=source,
                detail={"username": username, "from_env": bool(given)})
    return username


def admin_from_env(env: Mapping[str, str]) -> tuple[str, str | None]:
    """(user name, password or None) for the first admin from the environment; BootstrapError naming
    the variable when they could not make an account (checked at every start, so a typo shows up
    before the day it matters)."""
    username = env.get(ADMIN_USER_ENV) or "admin"
    password = env.get(ADMIN_PASSWORD_ENV) or None
    try:
        check_new_user(username, password or "x" * 8, "admin")
    except StoreError as exc:
        raise _env_error(exc, username) from None
    return username, password


def _env_error(exc: StoreError, username: str) -> BootstrapError:
    what = ADMIN_PASSWORD_ENV if "password" in str(exc) else f"{ADMIN_USER_ENV}={username!r}"
    return BootstrapError(f"cannot create the first admin account from {what}: {exc}")


def _one_time_banner(username: str, password: str) -> str:
    """One log record whose lines all differ (Ray folds identical log lines into "[repeated Nx]")."""
    return ("\n" + "*" * 78 + "\n"
            f"*** FIRST START: created admin account {username!r} with one-time password {password} \n"
            "*** It is shown only this once. Log in to the dashboard (or the API) with it now, then create\n"
            f"*** personal accounts; set {ADMIN_PASSWORD_ENV} before the first start to choose it yourself.\n"
            + "*" * 77)
