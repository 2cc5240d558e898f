"""Retention: deleting what the ward no longer needs to keep, without stalling the sample writer.

The policy (days per kind of row; :class:`ward.config.RetentionPolicy`, the one type the config, the
CLI and the store share) is applied in small transactions, oldest rows first, with a pause between
them on SQLite (one writer at a time), so the coordinator's 1 s sample writes wait tens of
milliseconds, never the whole run; a run cut short keeps what it deleted. Every run is audited.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import delete, func, select

from ward.config import RetentionPolicy  # one type for the store, the config and the CLI
from ward.store.audit_log import AuditStore
from ward.store.models import Alarm, AuditLog, Bed, BedLatest, CameraHealthEvent, MinuteRollup, ProbabilitySample
from ward.store.records import StoreError, check_utc

RETENTION_BATCH = 5_000  # rows per retention DELETE transaction: the 1 s sample writer never waits long
SQLITE_RETENTION_PAUSE_S = 0.15  # between batches: SQLite's busy handler retries a waiting write every <= 100 ms


@dataclass(frozen=True, slots=True)
class _Purge:
    """One table's share of a retention run: rows matching ``conds`` go, oldest ``col`` first."""

    name: str
    table: Any
    col: Any
    conds: tuple[Any, ...]
    bed_col: Any = None


_S = ProbabilitySample.__table__
_L = BedLatest.__table__
_R = MinuteRollup.__table__
_A = Alarm.__table__
_H = CameraHealthEvent.__table__
_AUDIT = AuditLog.__table__
# report name, policy field, table, time column, extra conditions, bed column (where the primary key
# or index starts with the bed, deleting per bed keeps each batch an index range, not a table scan)
_RETENTION_TABLES: tuple[tuple[str, str, Any, Any, tuple[Any, ...], Any], ...] = (
    ("probability_samples", "raw_samples_days", _S, _S.c.t, (), None),
    ("bed_latest", "raw_samples_days", _L, _L.c.t, (), None),
    ("minute_rollups", "rollups_days", _R, _R.c.minute, (), _R.c.bed_id),
    ("alarms", "alarms_days", _A, _A.c.started_at, (_A.c.acknowledged.is_(True), _A.c.state == "ended"), None),
    ("camera_health_events", "health_days", _H, _H.c.at, (), _H.c.bed_id),
    ("audit_log", "audit_days", _AUDIT, _AUDIT.c.at, (), None),
)


class RetentionStore(AuditStore):
    """Counting and applying a retention policy (part of :class:`~ward.store.repository.Store`)."""

    def _retention_targets(self, policy: RetentionPolicy, now: datetime) -> list[_Purge]:
        """What the policy removes: one :class:`_Purge` per table it does not keep forever."""
        targets = []
        for name, field, table, col, extra, bed_col in _RETENTION_TABLES:
            days = getattr(policy, field)
            if days is not None:
                targets.append(_Purge(name, table, col, (col < now - timedelta(days=days), *extra), bed_col))
        return targets

    def count_retention(self, policy: RetentionPolicy, now: datetime | None = None) -> dict[str, int]:
        """Rows :meth:`apply_retention` would delete now, per table (a dry run: nothing is written)."""
        now = check_utc(now, "now") if now else datetime.now(timezone.utc)
        with self.engine.connect() as conn:
            return {t.name: conn.execute(select(func.count()).select_from(t.table).where(*t.conds)).scalar_one()
                    for t in self._retention_targets(policy, now)}

    def apply_retention(self, policy: RetentionPolicy, now: datetime | None = None, *,
                        batch: int = RETENTION_BATCH, pause_s: float | None = None) -> dict[str, int]:
        """Delete rows older than the policy allows; returns rows deleted per table, and writes an
        audit row with the policy and the counts. Alarms are deleted only when ended AND
        acknowledged (their ack events go with them). Rows go in transactions of about ``batch``
        rows, oldest first, ``pause_s`` apart (default: SQLite 0.15 s, PostgreSQL 0), so the
        coordinator's sample writes wait tens of milliseconds, not the whole run, and a run cut
        short keeps what it deleted. The pause matters on SQLite: one writer at a time, and a waiting
        writer retries only every 100 ms, so back-to-back batches would starve it."""
        if batch < 1 or (pause_s is not None and not 0 <= pause_s <= 60):
            raise StoreError(f"bad retention batch {batch} / pause {pause_s}: use a positive number of rows "
                             "and a pause of 0-60 s")
        if pause_s is None:
            pause_s = SQLITE_RETENTION_PAUSE_S if self.dialect == "sqlite" else 0.0
        now = check_utc(now, "now") if now else datetime.now(timezone.utc)
        deleted = {t.name: self._purge(t, batch, pause_s) for t in self._retention_targets(policy, now)}
        self.audit("retention", detail={"policy": policy.policy().model_dump(), "deleted": deleted,
                                        "now": now.isoformat()})
        return deleted

    def _purge(self, target: _Purge, batch: int, pause_s: float) -> int:
        """Delete ``target``'s rows in batches; per bed where the table's index starts with the bed."""
        if target.bed_col is None:
            return self._purge_scope(target.table, target.col, target.conds, batch, pause_s)
        with self.engine.connect() as conn:
            beds = list(conn.execute(select(Bed.id)).scalars())
        return sum(self._purge_scope(target.table, target.col, (target.bed_col == b, *target.conds), batch,
                                     pause_s) for b in beds)

    def _purge_scope(self, table: Any, col: Any, conds: tuple[Any, ...], batch: int, pause_s: float) -> int:
        """Delete the rows matching ``conds``: each transaction up to the ``batch``-th oldest row's time
        (ties at that time go too, so every round makes progress). The bound is read outside the
        delete's transaction: on SQLite a read-then-write transaction fails at once ("database is
        locked", no busy wait) when the sample writer commits in between; a lone DELETE waits."""
        total = 0
        while True:
            with self.engine.connect() as conn:
                edge = conn.execute(select(col).where(*conds).order_by(col).offset(batch - 1).limit(1)).scalar()
            bounded = conds if edge is None else (*conds, col <= edge)
            with self.engine.begin() as conn:
                total += conn.execute(delete(table).where(*bounded)).rowcount
            if edge is None:
                return total
            time.sleep(pause_s)  # let a waiting writer in before the next batch
