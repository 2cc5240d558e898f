"""Read-mostly queries the dashboard needs that the core repository does not offer.

Kept apart from :mod:`ward.store.repository` so the dashboard can grow its queries without touching
the storage API. Every query is index-friendly on both backends: "latest row per bed" is a correlated
``max(t)`` per bed (an index seek on the (bed_id, t) primary key, not a scan of the samples table),
and recent-window reads constrain ``bed_id IN (...)`` so the composite key serves the range.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import or_, select

from ward.store.models import Alarm, Bed, CameraHealthEvent, ModelVersion, ProbabilitySample
from ward.store.repository import AlarmRecord, HealthEvent, Store, StoreError, _utc

_S = ProbabilitySample.__table__
_A = Alarm.__table__
_B = Bed.__table__
_H = CameraHealthEvent.__table__


@dataclass(frozen=True, slots=True)
class LatestSample:
    """The newest stored model output of one bed."""

    bed: str
    t: datetime
    probability: float
    accumulator: float
    model_version: str | None


@dataclass(frozen=True, slots=True)
class ModelVersionRecord:
    id: int
    name: str
    description: str | None
    created_at: datetime


class BedThresholds(BaseModel):
    """Per-bed decision thresholds shown on the bed view and editable by admins.

    Stored under the ``thresholds`` key of the bed's camera configuration, so each change is a new
    row of the bed's config history (with its time) in addition to the audit entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    probability: float = Field(0.5, ge=0.0, le=1.0, description="per-clip probability threshold")
    accumulator: float = Field(1.0, gt=0.0, description="accumulator level that raises an alarm")


def latest_samples(store: Store) -> dict[str, LatestSample]:
    """Newest sample of every bed that has one, from the store's per-bed latest table (kept up to date
    by every write), so the cost does not grow with the stored history."""
    return {bed: LatestSample(r.bed, r.t, r.probability, r.accumulator, r.model_version)
            for bed, r in store.latest_samples().items()}


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
    since = _utc(since, "since")
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
    since = _utc(since, "since")
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


def open_alarms(store: Store) -> list[AlarmRecord]:
    """Alarms that still need attention: active, or ended but not yet acknowledged. Oldest first,
    so the longest-waiting one is on top."""
    q = Store._alarm_select().where(or_(_A.c.state == "active", _A.c.acknowledged.is_(False)))
    with store.engine.connect() as conn:
        return [AlarmRecord(*r) for r in conn.execute(q.order_by(_A.c.started_at, _A.c.id))]


def model_versions(store: Store) -> list[ModelVersionRecord]:
    """All registered model versions, newest first."""
    with store.engine.connect() as conn:
        rows = conn.execute(select(ModelVersion.id, ModelVersion.name, ModelVersion.description,
                                   ModelVersion.created_at).order_by(ModelVersion.created_at.desc(),
                                                                     ModelVersion.id.desc()))
        return [ModelVersionRecord(*r) for r in rows]


def _camera_config(store: Store, bed: str) -> tuple[dict[str, Any], bool]:
    for b in store.list_beds():
        if b.key == bed:
            return dict(b.camera or {}), b.active
    raise StoreError(f"unknown bed {bed!r}: register it first with Store.upsert_bed")


def get_thresholds(store: Store, bed: str) -> BedThresholds:
    """The bed's thresholds (defaults when none were ever configured)."""
    config, _ = _camera_config(store, bed)
    return BedThresholds(**(config.get("thresholds") or {}))


def set_thresholds(store: Store, bed: str, thresholds: BedThresholds, *, user: str,
                   source: str = "dashboard") -> None:
    """Write new thresholds into the bed's config history and the audit log."""
    if not user:
        raise StoreError("changing thresholds needs the acting user's name")
    config, active = _camera_config(store, bed)
    old = config.get("thresholds")
    config["thresholds"] = thresholds.model_dump()
    store.upsert_bed(bed, camera=config, active=active)
    store.audit("config.thresholds", user=user, source=source,
                detail={"bed": bed, "old": old, "new": thresholds.model_dump()})


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


__all__ = ["BedThresholds", "LatestSample", "ModelVersionRecord", "get_thresholds", "latest_health",
           "latest_samples", "model_versions", "open_alarms", "recent_probabilities", "recent_samples", "set_thresholds"]
