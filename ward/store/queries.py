"""Read-only queries over several tables: the ``ward stats`` report and what the dashboard draws.

Kept apart from the tables' own modules because each reads across them (alarms with samples and
camera health, samples of many beds at once). Every query is index-friendly on both backends:
"latest row per bed" is one small table (``bed_latest``) or a correlated ``max`` per bed (an index
seek, not a scan), and recent-window reads constrain ``bed_id IN (...)`` so the composite key serves
the range. Alarm reads touch only what needs attention, through ``ix_alarms_unacked`` (acknowledged,
tier, bed, start) and ``ix_alarms_state`` (state, bed): their cost follows the alarms still waiting
for someone, not the years of acknowledged history nor the never-acknowledged review queue.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, case, false, func, or_, select

from ward.store.alarms import alarm_select
from ward.store.base import StoreBase
from ward.store.models import (TIERS, VERDICTS, Alarm, Bed, CameraHealthEvent, MinuteRollup, ModelVersion,
                               ProbabilitySample)
from ward.store.records import AlarmRecord, BedStats, HealthEvent, check_choice, check_range, check_utc

if TYPE_CHECKING:
    from ward.store.repository import Store

_S = ProbabilitySample.__table__
_R = MinuteRollup.__table__
_A = Alarm.__table__
_B = Bed.__table__
_H = CameraHealthEvent.__table__

# Tiers a person must acknowledge: clinical alarms and technical alarms (camera offline, storage
# loss). "review" items are a queue for later review, not alarms: nobody is asked to acknowledge them.
ATTENTION_TIERS = ("alarm", "technical")


class QueryStore(StoreBase):
    """The per-bed statistics report (part of :class:`~ward.store.repository.Store`)."""

    def stats(self, since: datetime, until: datetime | None = None) -> list[BedStats]:
        """Per bed over [since, until): alarms by tier and verdict, hours monitored (minutes with at
        least one sample / 60), hours offline (time the camera spent in the 'offline' state)."""
        since, until = check_range(since, until or datetime.now(timezone.utc))
        assert since is not None and until is not None
        with self.engine.connect() as conn:
            beds = dict(conn.execute(select(Bed.id, Bed.key)).all())
            alarms = conn.execute(select(_A.c.bed_id, _A.c.tier, _A.c.verdict, func.count())
                                  .where(_A.c.started_at >= since, _A.c.started_at < until)
                                  .group_by(_A.c.bed_id, _A.c.tier, _A.c.verdict)).all()
            minutes = dict(conn.execute(select(_R.c.bed_id, func.count())
                                        .where(_R.c.minute >= since.replace(second=0, microsecond=0),
                                               _R.c.minute < until).group_by(_R.c.bed_id)).all())
            H = CameraHealthEvent
            before = (select(H.bed_id, func.max(H.at).label("at")).where(H.at < since)
                      .group_by(H.bed_id).subquery())
            initial = dict(conn.execute(select(H.bed_id, H.state).join(
                before, and_(before.c.bed_id == H.bed_id, before.c.at == H.at))).all())
            events = conn.execute(select(H.bed_id, H.at, H.state).where(H.at >= since, H.at < until)
                                  .order_by(H.bed_id, H.at, H.id)).all()
        by_bed_events: dict[int, list[tuple[datetime, str]]] = defaultdict(list)
        for bid, at, st in events:
            by_bed_events[bid].append((at, st))
        out = []
        for bid, key in sorted(beds.items(), key=lambda kv: kv[1]):
            by_tier = {t: 0 for t in TIERS}
            verdicts = {v: 0 for v in VERDICTS + ("none",)}
            for b, tier, verdict, n in alarms:
                if b == bid:
                    by_tier[tier] += n
                    verdicts[verdict or "none"] += n
            offline = 0.0
            state, t0 = initial.get(bid), since
            for at, st in by_bed_events.get(bid, []) + [(until, "end")]:
                if state == "offline":
                    offline += (at - t0).total_seconds()
                state, t0 = st, at
            out.append(BedStats(key, sum(by_tier.values()), by_tier, verdicts,
                                round(minutes.get(bid, 0) / 60.0, 4), round(offline / 3600.0, 4)))
        return out


# ------------------------------------------------------------------------------ dashboard queries
@dataclass(frozen=True, slots=True)
class ModelVersionRecord:
    id: int
    name: str
    description: str | None
    created_at: datetime


def _bed_keys(conn: Any, beds: list[str] | None) -> dict[int, str]:
    """Bed id -> key for all beds, or only for the keys in ``beds``."""
    ids = dict(conn.execute(select(_B.c.id, _B.c.key)).all())
    if beds is not None:
        wanted = set(beds)
        ids = {i: k for i, k in ids.items() if k in wanted}
    return ids


def recent_samples(store: Store, since: datetime,
                   beds: list[str] | None = None) -> dict[str, list[tuple[datetime, float, float]]]:
    """Samples (t, probability, accumulator) with t >= since, per bed, oldest first."""
    since = check_utc(since, "since")
    with store.engine.connect() as conn:
        ids = _bed_keys(conn, beds)
        if not ids:
            return {}
        rows = conn.execute(select(_S.c.bed_id, _S.c.t, _S.c.probability, _S.c.accumulator)
                            .where(_S.c.bed_id.in_(list(ids)), _S.c.t >= since)
                            .order_by(_S.c.bed_id, _S.c.t)).all()
    out: dict[str, list[tuple[datetime, float, float]]] = {k: [] for k in ids.values()}
    for bid, t, p, a in rows:
        out[ids[bid]].append((t, p, a))
    return out


def recent_probabilities(store: Store, since: datetime, beds: list[str] | None = None) -> dict[str, list[float]]:
    """Probabilities with t >= since per bed, oldest first: the sparkline series, without the cost
    of converting thousands of timestamps back to datetimes."""
    since = check_utc(since, "since")
    with store.engine.connect() as conn:
        ids = _bed_keys(conn, beds)
        if not ids:
            return {}
        rows = conn.execute(select(_S.c.bed_id, _S.c.probability)
                            .where(_S.c.bed_id.in_(list(ids)), _S.c.t >= since)
                            .order_by(_S.c.bed_id, _S.c.t)).all()
    out: dict[str, list[float]] = {k: [] for k in ids.values()}
    for bid, p in rows:
        out[ids[bid]].append(p)
    return out


def latest_health(store: Store) -> dict[str, HealthEvent]:
    """Current camera health state of every bed that has reported one, with the time it began."""
    h2 = _H.alias("h2")
    latest_id = (select(h2.c.id).where(h2.c.bed_id == _B.c.id)
                 .order_by(h2.c.at.desc(), h2.c.id.desc()).limit(1).correlate(_B).scalar_subquery())
    q = (select(_B.c.key, _H.c.at, _H.c.state, _H.c.reason)
         .join_from(_B, _H, _H.c.id == latest_id))
    with store.engine.connect() as conn:
        return {r[0]: HealthEvent(*r) for r in conn.execute(q)}


@dataclass(frozen=True, slots=True)
class UnackedAlarms:
    """The unacknowledged alarms of one tier on one bed (active or ended), aggregated in SQL, so an
    overview tile costs one row however many alarms wait. Alarms of one tier on one bed do not
    overlap (the rule keeps one episode open at a time), so the newest start and newest end belong to
    the same, latest alarm."""

    count: int
    active: int                    # of them still active
    overdue: int                   # of them started at or before the cutoff the query was given
    oldest_start: datetime         # the longest-waiting one
    latest_id: int
    latest_start: datetime
    latest_end: datetime | None    # None while the latest one is still active


def _unacked(tiers: tuple[str, ...]) -> Any:
    """WHERE clause of unacknowledged alarms of ``tiers``: an index range on ix_alarms_unacked
    (``= false``, not ``IS false``, which PostgreSQL cannot match to the index)."""
    return and_(_A.c.acknowledged == false(), _A.c.tier.in_(tiers))


def unacknowledged_alarms(store: Store, overdue_if_started_by: datetime,
                          tiers: tuple[str, ...] = ATTENTION_TIERS) -> dict[tuple[str, str], UnackedAlarms]:
    """Per (bed, tier): the unacknowledged alarms of ``tiers``, active or ended, with how many started
    at or before ``overdue_if_started_by`` (the caller's escalation cutoff). One grouped query that
    reads only unacknowledged rows of those tiers."""
    cut = check_utc(overdue_if_started_by, "overdue_if_started_by")
    for t in tiers:
        check_choice(t, TIERS, "tier")
    active = func.sum(case((_A.c.state == "active", 1), else_=0))
    overdue = func.sum(case((_A.c.started_at <= cut, 1), else_=0))
    q = (select(_A.c.bed_id, _A.c.tier, func.count(), active, overdue, func.min(_A.c.started_at),
                func.max(_A.c.id), func.max(_A.c.started_at), func.max(_A.c.ended_at))
         .where(_unacked(tiers)).group_by(_A.c.bed_id, _A.c.tier))
    with store.engine.connect() as conn:
        keys = _bed_keys(conn, None)
        rows = conn.execute(q).all()
    return {(keys[bid], tier): UnackedAlarms(int(n), int(act), int(late), oldest, int(last_id), last_start,
                                             None if act else last_end)
            for bid, tier, n, act, late, oldest, last_id, last_start, last_end in rows}


def active_alarms(store: Store) -> list[AlarmRecord]:
    """Alarms of every tier still active (acknowledged or not), oldest first: an index seek on
    ix_alarms_state, as few rows as there are episodes in progress."""
    q = alarm_select().where(_A.c.state == "active").order_by(_A.c.started_at, _A.c.id)
    with store.engine.connect() as conn:
        return [AlarmRecord(*r) for r in conn.execute(q)]


def open_alarms(store: Store) -> list[AlarmRecord]:
    """What the Alarms page lists: alarms that need acknowledgement (clinical and technical, active
    or ended, until acknowledged) and anything still active (review items included). Review items
    that ended without a verdict are the review queue (History page), not open alarms: they are
    never acknowledged in routine use and would pile up here for years. Oldest first, so the
    longest-waiting one is on top."""
    q = alarm_select().where(or_(_unacked(ATTENTION_TIERS), _A.c.state == "active"))
    with store.engine.connect() as conn:
        return [AlarmRecord(*r) for r in conn.execute(q.order_by(_A.c.started_at, _A.c.id))]


def model_versions(store: Store) -> list[ModelVersionRecord]:
    """All registered model versions, newest first."""
    with store.engine.connect() as conn:
        rows = conn.execute(select(ModelVersion.id, ModelVersion.name, ModelVersion.description,
                                   ModelVersion.created_at).order_by(ModelVersion.created_at.desc(),
                                                                     ModelVersion.id.desc()))
        return [ModelVersionRecord(*r) for r in rows]


def now_utc() -> datetime:
    """The current time, aware UTC (what the dashboard's windows are measured from)."""
    return datetime.now(timezone.utc)


# A bed's rule and its live override (what the bed view draws and admins edit): ward.store.rules.
__all__ = ["ATTENTION_TIERS", "ModelVersionRecord", "QueryStore", "UnackedAlarms", "active_alarms",
           "latest_health", "model_versions", "now_utc", "open_alarms", "recent_probabilities",
           "recent_samples", "unacknowledged_alarms"]
