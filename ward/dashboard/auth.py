"""Roles, dashboard logins and sessions, and the first-start bootstrap of the ward's admin account.

:func:`bootstrap_admin` is called by the ward's start (``ward.serve.app.build_app``), before any
deployment touches the users table. Passwords are never logged; the only secret ever written to
the log is a generated one-time admin password, once, on the first start against a database where
no person has an account yet (the ward's own service accounts don't count). That account must choose
its own password at its first dashboard login (``must_change_password``).

:func:`password_login` is the dashboard's login: the one login flow of :mod:`ward.security.login`
(rate limit, one password check, temporary passwords, audit, shared with the API), then a new
server-side session; :func:`effective_user` is what a session may do (a wall display is read-only).
:func:`clock` is the time sessions are judged by; tests replace it to move time.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
from datetime import datetime, timezone
from typing import Mapping

from ward.security import LoginFlow
from ward.store.records import StoreError, UserRecord
from ward.store.repository import Store
from ward.store.users import check_new_user
from ward.store.sessions import EndReason, SessionLimits, SessionRecord, new_session

log = logging.getLogger("ward.dashboard")

CAN_ACKNOWLEDGE = frozenset({"clinician", "admin"})
CAN_CONFIGURE = frozenset({"admin"})
ADMIN_USER_ENV, ADMIN_PASSWORD_ENV = "WARD_ADMIN_USER", "WARD_ADMIN_PASSWORD"
SOURCE = "dashboard"  # audit source of everything done in the dashboard
KIOSK_ROLE = "viewer"  # what a wall-display session may do, whoever logged it in


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
        user = store.create_first_admin(username, password, must_change_password=not given)
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
            "*** It is shown only this once. Log in to the dashboard with it now: you will choose your own\n"
            "*** password there (or run `ward users passwd`), then create personal accounts;\n"
            f"*** set {ADMIN_PASSWORD_ENV} before the first start to choose it yourself.\n"
            + "*" * 77)


# ------------------------------------------------------------------------------------- sessions
def clock() -> datetime:
    """Now, for session limits (tests replace this function to move time)."""
    return datetime.now(timezone.utc)


@dataclasses.dataclass(frozen=True, slots=True)
class LoginOutcome:
    """A dashboard login attempt: the user and the new session's token, or the message to show."""

    user: UserRecord | None = None
    token: str | None = None
    error: str | None = None


def password_login(flow: LoginFlow, username: str, password: str, address: str | None, *,
                   kiosk: bool, limits: SessionLimits) -> LoginOutcome:
    """The dashboard's login: the one login flow (:class:`ward.security.LoginFlow`: refused while the
    name or address is locked, one password check, every outcome audited), and on success a new
    server-side session. A temporary password opens only the "choose your password" page, so a wall
    display (which never shows that page) refuses it."""
    result = flow.login(username, password, address, temporary_ok=not kiosk, detail={"wall_display": kiosk})
    if result.refusal == "rate limited":
        return LoginOutcome(error=f"Too many failed logins. Try again in {result.retry_after_s} s.")
    if result.refusal == "temporary password":
        return LoginOutcome(error="Your password is a temporary one: log in without \"Wall display\" and choose "
                                  "your own password first.")
    if not result:
        return LoginOutcome(error="Unknown user or wrong password.")
    return LoginOutcome(result.user, open_session(flow.store, result.user, kiosk=kiosk, limits=limits))


def open_session(store: Store, user: UserRecord, *, kiosk: bool = False, limits: SessionLimits | None = None) -> str:
    """A new session for an authenticated ``user`` (limits: the dashboard settings'); returns the token
    the browser keeps."""
    if limits is None:
        from ward.dashboard.settings import load_settings  # noqa: PLC0415

        limits = load_settings().session_limits()
    token, _ = new_session(store, user, kiosk=kiosk, now=clock(), limits=limits)
    return token


def effective_user(session: SessionRecord) -> UserRecord:
    """The user as the pages see them: a wall-display session acts as a viewer (read-only: no
    acknowledging, no rule or user changes, no exports) whatever the account's role."""
    if session.kiosk and session.user.role != KIOSK_ROLE:
        return dataclasses.replace(session.user, role=KIOSK_ROLE)
    return session.user


def end_message(reason: EndReason, *, kiosk: bool, limits: SessionLimits) -> str | None:
    """What the login page says after a session ended (None: nothing worth saying)."""
    if reason == "idle":
        return f"You were logged out after {duration_text(limits.idle.total_seconds())} without activity."
    if reason == "expired" and kiosk:
        limit = duration_text(limits.kiosk_max_age.total_seconds())
        return (f"WALL DISPLAY LOGGED OUT: its session reached the {limit} limit. The ward is not shown here "
                "until someone logs in again.")
    if reason == "expired":
        return f"Your session reached its {duration_text(limits.max_age.total_seconds())} limit: log in again."
    if reason == "disabled":
        return "Your account was disabled: ask an admin."
    return None


def duration_text(seconds: float) -> str:
    """A session limit as people say it: "15 min", "12 h"."""
    m = round(seconds / 60)
    return f"{m // 60} h" if m >= 60 and m % 60 == 0 else f"{m} min"
