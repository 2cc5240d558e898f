"""Alarms: episodes opened, raised, closed and acknowledged, addressed by id or by episode key.

The coordinator opens an alarm with its own stable episode key, so every write is idempotent and
can be replayed from the spill journal while the database id does not exist yet (opening the same
key again returns the stored alarm; the peak only rises; closing again sets the same end). An
acknowledgement writes the verdict, its event and its audit row in one transaction.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timezone
from typing import Any, Sequence

from sqlalchemy import and_, func, insert, or_, select, update

from ward.store.audit import AuditAction
from ward.store.audit_log import audit_insert
from ward.store.beds import BedStore
from ward.store.models import TIERS, VERDICTS, AckEvent, Alarm, Bed
from ward.store.records import (AckRecord, AlarmRecord, StoreError, check_choice, check_episode_key, check_finite,
                                check_range, check_utc)

_A = Alarm.__table__
_B = Bed.__table__


def alarm_select() -> Any:
    """SELECT of :class:`AlarmRecord` columns (alarm joined with its bed's key); add WHERE/ORDER BY."""
    return (select(_A.c.id, _B.c.key, _A.c.tier, _A.c.started_at, _A.c.ended_at, _A.c.peak, _A.c.state,
                   _A.c.reason, _A.c.acknowledged, _A.c.verdict)
            .join_from(_A, _B, _B.c.id == _A.c.bed_id))


class AlarmStore(BedStore):
    """Alarm episodes and their acknowledgements (part of :class:`~ward.store.repository.Store`)."""

    def open_alarm(self, bed: str, tier: str, start: datetime, peak: float = 0.0,
                   reason: str | None = None, *, episode_key: str | None = None) -> int:
        """Open an alarm (state active); returns its id. ``episode_key`` is the caller's stable id of
        the episode (a fresh one is generated when omitted): opening the same key again returns the
        existing alarm's id instead of inserting a duplicate, so a replayed open is harmless."""
        check_choice(tier, TIERS, "tier")
        key = check_episode_key(episode_key) if episode_key is not None else "k-" + secrets.token_hex(16)
        bed_id = self.bed_id(bed)
        values = dict(bed_id=bed_id, tier=tier, started_at=check_utc(start, "start"),
                      peak=check_finite(peak, "peak"), state="active", reason=reason, acknowledged=False, episode_key=key)
        with self.engine.begin() as conn:
            conn.execute(self._insert(_A).values(**values).on_conflict_do_nothing(index_elements=["episode_key"]))
            row = conn.execute(select(_A.c.id, _A.c.bed_id, _A.c.tier).where(_A.c.episode_key == key)).one()
        if (row[1], row[2]) != (bed_id, tier):
            raise StoreError(f"episode key {key!r} already belongs to alarm {row[0]} (bed id {row[1]}, tier "
                             f"{row[2]!r}): generate a new key per episode")
        return int(row[0])

    def alarm_id_for_key(self, episode_key: str) -> int | None:
        """The id of the alarm opened with ``episode_key``, or None if it is not stored (yet)."""
        with self.engine.connect() as conn:
            return conn.execute(select(_A.c.id).where(_A.c.episode_key == episode_key)).scalar()

    def alarm_key(self, alarm_id: int) -> str:
        """The episode key of an alarm (alarms stored before keys existed got ``db-<id>``)."""
        with self.engine.begin() as conn:
            key = conn.execute(select(_A.c.episode_key).where(_A.c.id == alarm_id)).first()
            if key is None:
                raise StoreError(f"unknown alarm id {alarm_id}")
            if key[0] is None:  # inserted by hand without a key: give it the migration's default
                conn.execute(update(_A).where(_A.c.id == alarm_id).values(episode_key=f"db-{alarm_id}"))
                return f"db-{alarm_id}"
            return str(key[0])

    def _id_for_key(self, episode_key: str) -> int:
        aid = self.alarm_id_for_key(episode_key)
        if aid is None:
            raise StoreError(f"unknown alarm episode key {episode_key!r}: open the alarm first")
        return aid

    def update_alarm(self, alarm_id: int, *, peak: float | None = None, reason: str | None = None) -> None:
        """Raise the peak (never lowers it) and/or replace the reason of an alarm."""
        values: dict[str, Any] = {}
        if peak is not None:
            greatest = func.greatest if self.dialect == "postgresql" else func.max
            values["peak"] = greatest(Alarm.peak, check_finite(peak, "peak"))
        if reason is not None:
            values["reason"] = reason
        if not values:
            return
        with self.engine.begin() as conn:
            if conn.execute(update(Alarm).where(Alarm.id == alarm_id).values(**values)).rowcount == 0:
                raise StoreError(f"unknown alarm id {alarm_id}")

    def update_alarm_by_key(self, episode_key: str, *, peak: float | None = None,
                            reason: str | None = None) -> None:
        """:meth:`update_alarm` addressed by episode key (idempotent: the peak only rises)."""
        self.update_alarm(self._id_for_key(episode_key), peak=peak, reason=reason)

    def close_alarm(self, alarm_id: int, end: datetime) -> None:
        end = check_utc(end, "end")
        with self.engine.begin() as conn:
            start = conn.execute(select(Alarm.start).where(Alarm.id == alarm_id)).scalar()
            if start is None:
                raise StoreError(f"unknown alarm id {alarm_id}")
            if end < start:
                raise StoreError(f"alarm {alarm_id} cannot end ({end.isoformat()}) before it started "
                                 f"({start.isoformat()})")
            conn.execute(update(Alarm).where(Alarm.id == alarm_id).values(end=end, state="ended"))

    def close_alarm_by_key(self, episode_key: str, end: datetime) -> None:
        """:meth:`close_alarm` addressed by episode key (idempotent: closing again sets the same end)."""
        self.close_alarm(self._id_for_key(episode_key), end)

    def acknowledge(self, alarm_id: int, user: str, verdict: str, note: str | None = None,
                    source: str | None = None, at: datetime | None = None) -> None:
        """Record a verdict on an alarm: an AckEvent, the alarm's latest verdict, and an audit entry,
        all in one transaction."""
        check_choice(verdict, VERDICTS, "verdict")
        if not user:
            raise StoreError("acknowledge needs the acting user's name")
        at = check_utc(at, "at") if at else datetime.now(timezone.utc)
        with self.engine.begin() as conn:
            n = conn.execute(update(Alarm).where(Alarm.id == alarm_id)
                             .values(acknowledged=True, verdict=verdict)).rowcount
            if n == 0:
                raise StoreError(f"unknown alarm id {alarm_id}")
            conn.execute(insert(AckEvent).values(alarm_id=alarm_id, username=user, at=at, verdict=verdict,
                                                 note=note, source=source))
            conn.execute(audit_insert(AuditAction.ACKNOWLEDGE, user, source,
                                      {"alarm_id": alarm_id, "verdict": verdict, "note": note}, at=at))

    def get_alarm(self, alarm_id: int) -> AlarmRecord:
        with self.engine.connect() as conn:
            row = conn.execute(alarm_select().where(_A.c.id == alarm_id)).first()
        if row is None:
            raise StoreError(f"unknown alarm id {alarm_id}")
        return AlarmRecord(*row)

    def ack_events(self, alarm_id: int) -> list[AckRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(AckEvent.alarm_id, AckEvent.username, AckEvent.at, AckEvent.verdict,
                                       AckEvent.note, AckEvent.source)
                                .where(AckEvent.alarm_id == alarm_id).order_by(AckEvent.at, AckEvent.id))
            return [AckRecord(*r) for r in rows]

    def list_alarms(self, bed: str | None = None, since: datetime | None = None,
                    until: datetime | None = None, tier: str | Sequence[str] | None = None,
                    verdict: str | Sequence[str] | None = None, limit: int = 100,
                    offset: int = 0, before: tuple[datetime, int] | None = None) -> list[AlarmRecord]:
        """Alarms that started in [since, until), newest first, with their latest verdict.
        ``verdict`` accepts true / false / unsure and "none" (not yet acknowledged). ``before`` is a
        keyset cursor, the (start, id) of the last alarm of the previous page: only alarms after it
        in this order are returned, so alarms stored meanwhile never shift a page (as offset does)."""
        since, until = check_range(since, until)
        if not 1 <= limit <= 100_000 or offset < 0:
            raise StoreError(f"bad pagination limit={limit} offset={offset}: limit in 1..100000, offset >= 0")
        q = alarm_select()
        if before is not None:
            at, last_id = check_utc(before[0], "cursor time"), int(before[1])
            q = q.where(or_(_A.c.started_at < at, and_(_A.c.started_at == at, _A.c.id < last_id)))
        if bed is not None:
            q = q.where(_A.c.bed_id == self.bed_id(bed))
        if since is not None:
            q = q.where(_A.c.started_at >= since)
        if until is not None:
            q = q.where(_A.c.started_at < until)
        if tier is not None:
            tiers = [tier] if isinstance(tier, str) else list(tier)
            for t in tiers:
                check_choice(t, TIERS, "tier")
            q = q.where(_A.c.tier.in_(tiers))
        if verdict is not None:
            verdicts = [verdict] if isinstance(verdict, str) else list(verdict)
            for v in verdicts:
                check_choice(v, VERDICTS + ("none",), "verdict")
            conds = [_A.c.verdict.in_([v for v in verdicts if v != "none"])]
            if "none" in verdicts:
                conds.append(_A.c.verdict.is_(None))
            q = q.where(or_(*conds))
        q = q.order_by(_A.c.started_at.desc(), _A.c.id.desc()).limit(limit).offset(offset)
        with self.engine.connect() as conn:
            return [AlarmRecord(*r) for r in conn.execute(q)]

