"""Dashboard sessions in the database: a browser tab's login that survives a reload and expires.

The browser holds a random 256-bit token (a cookie); the ``dashboard_sessions`` table holds only its
SHA-256, so a database dump gives no usable session. Every page run looks the token up together with
its user (one indexed query) and ends the session when:

- it has been idle longer than the idle limit (a normal session; a wall-display ``kiosk`` session has
  no idle limit, see :class:`SessionLimits`),
- it is older than its absolute limit (``expires_at``, and the current setting for its kind),
- its user was disabled or is a service account.

A lowered role takes effect at once because the user is re-read with the session. Logout, a password
change and ``ward users passwd`` delete the rows (see :meth:`Store.change_password`).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import delete, insert, select, update

from ward.store.models import DashboardSession, User
from ward.store.records import StoreError, UserRecord, check_utc
from ward.store.repository import Store
from ward.store.users import USER_COLUMNS

__all__ = ["SessionCheck", "SessionLimits", "SessionRecord", "check_session", "end_session", "new_session",
           "purge_expired_sessions", "token_hash"]

EndReason = Literal["idle", "expired", "disabled", "unknown"]
MAX_TOKEN_CHARS = 128  # ours are 43; anything longer in a cookie is not one of ours


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """How long sessions live: ``idle`` without activity (not for kiosk sessions), ``max_age`` from
    login for a person's session, ``kiosk_max_age`` for a read-only wall display."""

    idle: timedelta
    max_age: timedelta
    kiosk_max_age: timedelta

    def lifetime(self, kiosk: bool) -> timedelta:
        return self.kiosk_max_age if kiosk else self.max_age


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A live session and its user as stored now."""

    id: int
    user: UserRecord
    created_at: datetime
    last_active_at: datetime
    expires_at: datetime
    kiosk: bool

    def ends_at(self, limits: SessionLimits) -> datetime:
        """When the session ends unless there is activity first (kiosk: no idle limit)."""
        end = min(self.expires_at, self.created_at + limits.lifetime(self.kiosk))
        return end if self.kiosk else min(end, self.last_active_at + limits.idle)


@dataclass(frozen=True, slots=True)
class SessionCheck:
    """Either a live ``session`` or why there is none (``ended``; ``user`` is whose session it was,
    when the row existed, so the end can be audited)."""

    session: SessionRecord | None
    ended: EndReason | None = None
    user: UserRecord | None = None

    def __bool__(self) -> bool:
        return self.session is not None


def token_hash(token: str) -> str:
    """What the database stores of a session token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_session(store: Store, user: UserRecord, *, kiosk: bool, now: datetime,
                limits: SessionLimits) -> tuple[str, SessionRecord]:
    """Start a session for ``user`` (already authenticated); returns (token for the cookie, record).
    Expired rows of any user are purged on the way (indexed on ``expires_at``)."""
    now = check_utc(now, "now")
    if user.disabled or user.service:
        raise StoreError(f"user {user.username!r} cannot have a dashboard session (disabled or a service account)")
    token = secrets.token_urlsafe(32)
    expires = now + limits.lifetime(kiosk)
    purge_expired_sessions(store, now)
    with store.engine.begin() as conn:
        sid = conn.execute(insert(DashboardSession).values(
            token_hash=token_hash(token), user_id=user.id, created_at=now, last_active_at=now,
            expires_at=expires, kiosk=kiosk)).inserted_primary_key[0]
    return token, SessionRecord(int(sid), user, now, now, expires, kiosk)


def check_session(store: Store, token: str | None, *, now: datetime, limits: SessionLimits,
                  touch: bool) -> SessionCheck:
    """The live session of ``token`` with its user re-read, or why there is none. An ended session's
    row is deleted. ``touch``: this check is user activity (a page run the user caused, not an
    automatic refresh), so the idle clock restarts."""
    now = check_utc(now, "now")
    if not token or len(token) > MAX_TOKEN_CHARS:
        return SessionCheck(None, "unknown")
    with store.engine.connect() as conn:
        row = conn.execute(
            select(DashboardSession.id, DashboardSession.created_at, DashboardSession.last_active_at,
                   DashboardSession.expires_at, DashboardSession.kiosk, *USER_COLUMNS)
            .join(User, User.id == DashboardSession.user_id)
            .where(DashboardSession.token_hash == token_hash(token))).first()
    if row is None:
        return SessionCheck(None, "unknown")
    record = SessionRecord(row[0], UserRecord(*row[5:]), row[1], row[2], row[3], row[4])
    reason = _end_reason(record, now, limits)
    if reason is not None:
        _delete(store, record.id)
        return SessionCheck(None, reason, record.user)
    if touch and now > record.last_active_at:
        with store.engine.begin() as conn:
            conn.execute(update(DashboardSession).where(DashboardSession.id == record.id)
                         .values(last_active_at=now))
        record = SessionRecord(record.id, record.user, record.created_at, now, record.expires_at, record.kiosk)
    return SessionCheck(record)


def _end_reason(record: SessionRecord, now: datetime, limits: SessionLimits) -> EndReason | None:
    if record.user.disabled or record.user.service:
        return "disabled"
    if now >= min(record.expires_at, record.created_at + limits.lifetime(record.kiosk)):
        return "expired"
    if not record.kiosk and now >= record.last_active_at + limits.idle:
        return "idle"
    return None


def end_session(store: Store, token: str) -> bool:
    """Delete the session of ``token`` (logout); whether there was one."""
    if not token or len(token) > MAX_TOKEN_CHARS:
        return False
    with store.engine.begin() as conn:
        return conn.execute(delete(DashboardSession)
                            .where(DashboardSession.token_hash == token_hash(token))).rowcount > 0


def _delete(store: Store, session_id: int) -> None:
    with store.engine.begin() as conn:
        conn.execute(delete(DashboardSession).where(DashboardSession.id == session_id))


def purge_expired_sessions(store: Store, now: datetime) -> int:
    """Delete sessions past their absolute expiry; returns how many."""
    with store.engine.begin() as conn:
        return conn.execute(delete(DashboardSession)
                            .where(DashboardSession.expires_at <= check_utc(now, "now"))).rowcount
