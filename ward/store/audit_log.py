"""The audit_log table: rows written in the transaction of the change they record, and read back.

The vocabulary (actions, sources, the actor of the ward's own doings) is :mod:`ward.store.audit`,
kept free of SQL so the CLI can name actions without loading SQLAlchemy. Here: :func:`audit_insert`,
the one INSERT every audited change runs inside its own transaction (a change and its row commit
together or not at all), which refuses a detail that names a secret, and :class:`AuditStore`, the
Store's ``audit`` / ``audit_log`` methods.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

from sqlalchemy import insert, select

from ward.store.audit import MAX_AUDIT_LIMIT, AuditAction, check_action
from ward.store.base import StoreBase
from ward.store.models import AuditLog
from ward.store.records import AuditRecord, StoreError, check_range, check_utc

_SECRET_KEYS = frozenset({"password", "new_password", "old_password", "password_hash", "token", "token_hash",
                          "secret"})


def audit_insert(action: AuditAction, user: str | None, source: str | None,
                 detail: Mapping[str, Any] | None, at: datetime | None = None) -> Any:
    """The INSERT of one audit row (run it in the transaction of the change it records). A detail key
    that names a secret is refused: the audit log is read by many and kept for years."""
    secret = _SECRET_KEYS.intersection(k.lower() for k in (detail or {}))
    if secret:
        raise StoreError(f"audit detail must not hold secrets: drop {', '.join(sorted(secret))}")
    return insert(AuditLog).values(at=at or datetime.now(timezone.utc), username=user, action=action.value,
                                   detail=dict(detail) if detail else None,
                                   source=str(source) if source is not None else None)


def check_audit_action(action: AuditAction | str) -> AuditAction:
    """``action`` as an :class:`AuditAction`; a StoreError naming the known actions otherwise."""
    try:
        return check_action(action)
    except ValueError as exc:
        raise StoreError(str(exc)) from None


class AuditStore(StoreBase):
    """Writing and reading audit rows (part of :class:`~ward.store.repository.Store`)."""

    def audit(self, action: AuditAction | str, *, user: str | None = None, detail: Mapping[str, Any] | None = None,
              source: str | None = None, at: datetime | None = None) -> None:
        """Write one audit row. ``action`` must be an :class:`~ward.store.audit.AuditAction`; ``user``
        is the actor. A row with neither ``user`` nor ``source`` is the store's own doing (e.g. a
        retention run) and gets this store's actor and source."""
        act = check_audit_action(action)
        if user is None and source is None:
            user, source = self.actor, self.source
        at = check_utc(at, "at") if at else datetime.now(timezone.utc)
        with self.engine.begin() as conn:
            conn.execute(audit_insert(act, user, source, detail, at=at))

    def audit_log(self, since: datetime | None = None, until: datetime | None = None,
                  user: str | None = None, limit: int = 100, offset: int = 0, *,
                  action: str | Sequence[str] | None = None, source: str | None = None) -> list[AuditRecord]:
        """Audit rows in [since, until), newest first, at most ``limit`` (LIMIT in SQL; max
        MAX_AUDIT_LIMIT), filtered by actor, action(s) (known actions only) and source."""
        since, until = check_range(since, until)
        if not 1 <= limit <= MAX_AUDIT_LIMIT or offset < 0:
            raise StoreError(f"bad limit {limit} / offset {offset}: use a limit of 1-{MAX_AUDIT_LIMIT} "
                             "and an offset >= 0")
        q = select(AuditLog.at, AuditLog.username, AuditLog.action, AuditLog.detail, AuditLog.source, AuditLog.id)
        if since is not None:
            q = q.where(AuditLog.at >= since)
        if until is not None:
            q = q.where(AuditLog.at < until)
        if user is not None:
            q = q.where(AuditLog.username == user)
        if action is not None:
            actions = [action] if isinstance(action, str) else list(action)
            q = q.where(AuditLog.action.in_([check_audit_action(a).value for a in actions]))
        if source is not None:
            q = q.where(AuditLog.source == source)
        with self.engine.connect() as conn:
            rows = conn.execute(q.order_by(AuditLog.at.desc(), AuditLog.id.desc()).limit(limit).offset(offset))
            return [AuditRecord(*r) for r in rows]

