"""Beds: their registry (key, name, ward), their camera's config history and health, patient stays.

Every other record (samples, alarms, overrides) names its bed by key; :meth:`BedStore.bed_id` turns
the key into the database id, from a cache refreshed when another process has added a bed. A bed's
camera config is stored without credentials (``_redact_camera``): the ward config keeps the real
URI, the database and everything that shows it only ``rtsp://***@host/...``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping

from sqlalchemy import Engine, func, insert, select, update

from ward.store.base import StoreBase
from ward.store.models import HEALTH_STATES, Bed, BedCameraConfig, CameraHealthEvent, PatientStay, Ward
from ward.store.records import (BedRecord, HealthEvent, StayRecord, StoreError, UnknownBedError, check_choice,
                                check_range, check_utc)


def _redact_camera(camera: Mapping[str, Any]) -> dict[str, Any]:
    """A bed camera config fit for the database: its ``source`` URI without credentials.

    The ward config (or its secret store) keeps the real URI; viewers of the config history, the
    dashboard and database dumps only ever see ``rtsp://***@host/...``."""
    from ward.core.uris import redact_uri, redact_uris  # noqa: PLC0415

    out = {k: redact_uris(v) if isinstance(v, str) else v for k, v in camera.items()}  # any URL-valued key
    if isinstance(out.get("source"), str):
        out["source"] = redact_uri(out["source"])  # also a source missing its scheme (user:pass@host)
    return out


class BedStore(StoreBase):
    """Beds, camera config and health, patient stays (part of :class:`~ward.store.repository.Store`)."""

    def __init__(self, engine: Engine, **who: str) -> None:
        super().__init__(engine, **who)
        self._bed_ids: dict[str, int] = {}  # key -> id; read by the sample writer's hot path

    def upsert_bed(self, key: str, *, name: str | None = None, ward: str | None = None,
                   camera: Mapping[str, Any] | None = None, active: bool = True,
                   at: datetime | None = None) -> BedRecord:
        """Create or update a bed; a changed camera config appends a row to its config history."""
        if not key or not isinstance(key, str) or len(key) > 64:
            raise StoreError(f"bad bed key {key!r}: use a non-empty string of at most 64 characters")
        at = check_utc(at, "at") if at else datetime.now(timezone.utc)
        with self.engine.begin() as conn:
            ward_id = None
            if ward is not None:
                ward_id = conn.execute(select(Ward.id).where(Ward.name == ward)).scalar()
                if ward_id is None:
                    ward_id = conn.execute(insert(Ward).values(name=ward).returning(Ward.id)).scalar_one()
            bed_id = conn.execute(select(Bed.id).where(Bed.key == key)).scalar()
            if bed_id is None:
                bed_id = conn.execute(insert(Bed).values(key=key, name=name, ward_id=ward_id, active=active,
                                                         created_at=at).returning(Bed.id)).scalar_one()
            else:
                values: dict[str, Any] = {"active": active}
                if name is not None:
                    values["name"] = name
                if ward is not None:
                    values["ward_id"] = ward_id
                conn.execute(update(Bed).where(Bed.id == bed_id).values(**values))
            if camera is not None:
                camera = _redact_camera(camera)
                last = conn.execute(select(BedCameraConfig.config).where(BedCameraConfig.bed_id == bed_id)
                                    .order_by(BedCameraConfig.valid_from.desc(), BedCameraConfig.id.desc())
                                    .limit(1)).scalar()
                if last != dict(camera):
                    conn.execute(insert(BedCameraConfig).values(bed_id=bed_id, valid_from=at, config=dict(camera)))
        self._bed_ids[key] = bed_id
        return next(b for b in self.list_beds() if b.key == key)

    def list_beds(self) -> list[BedRecord]:
        latest = (select(BedCameraConfig.bed_id, func.max(BedCameraConfig.id).label("cid"))
                  .group_by(BedCameraConfig.bed_id).subquery())
        q = (select(Bed.key, Bed.name, Ward.name, Bed.active, BedCameraConfig.config)
             .outerjoin(Ward, Ward.id == Bed.ward_id)
             .outerjoin(latest, latest.c.bed_id == Bed.id)
             .outerjoin(BedCameraConfig, BedCameraConfig.id == latest.c.cid)
             .order_by(Bed.key))
        with self.engine.connect() as conn:
            return [BedRecord(*row) for row in conn.execute(q)]

    def camera_config_history(self, bed: str) -> list[tuple[datetime, dict[str, Any]]]:
        bed_id = self.bed_id(bed)
        with self.engine.connect() as conn:
            rows = conn.execute(select(BedCameraConfig.valid_from, BedCameraConfig.config)
                                .where(BedCameraConfig.bed_id == bed_id)
                                .order_by(BedCameraConfig.valid_from, BedCameraConfig.id))
            return [(r[0], r[1]) for r in rows]

    def bed_id(self, key: str) -> int:
        """The database id of bed ``key`` (cached); UnknownBedError when no such bed is registered."""
        bed_id = self._bed_ids.get(key)
        if bed_id is None:
            self._load_beds()
            bed_id = self._bed_ids.get(key)
        if bed_id is None:
            raise UnknownBedError(f"unknown bed {key!r}: register it first with Store.upsert_bed "
                                  f"(known beds: {', '.join(sorted(self._bed_ids)) or 'none'})")
        return bed_id

    def _load_beds(self) -> None:
        """Refresh the bed key -> id cache (beds may be added by another process)."""
        with self.engine.connect() as conn:
            for bid, key in conn.execute(select(Bed.id, Bed.key)):
                self._bed_ids[key] = bid

    # ----------------------------------------------------------------------------- patient stays
    def admit(self, bed: str, patient: str, at: datetime) -> None:
        """Start a stay for a pseudonymous patient id (closes any open stay on that bed first)."""
        if not patient or len(patient) > 64:
            raise StoreError("patient pseudonym must be a non-empty string of at most 64 characters")
        bed_id, at = self.bed_id(bed), check_utc(at, "at")
        with self.engine.begin() as conn:
            conn.execute(update(PatientStay).where(PatientStay.bed_id == bed_id,
                                                   PatientStay.discharged_at.is_(None))
                         .values(discharged_at=at))
            conn.execute(insert(PatientStay).values(bed_id=bed_id, patient_pseudonym=patient, admitted_at=at))

    def discharge(self, bed: str, at: datetime) -> None:
        bed_id, at = self.bed_id(bed), check_utc(at, "at")
        with self.engine.begin() as conn:
            n = conn.execute(update(PatientStay).where(PatientStay.bed_id == bed_id,
                                                       PatientStay.discharged_at.is_(None))
                             .values(discharged_at=at)).rowcount
        if n == 0:
            raise StoreError(f"bed {bed!r} has no admitted patient to discharge")

    def stays(self, bed: str) -> list[StayRecord]:
        bed_id = self.bed_id(bed)
        with self.engine.connect() as conn:
            rows = conn.execute(select(PatientStay.patient_pseudonym, PatientStay.admitted_at,
                                       PatientStay.discharged_at).where(PatientStay.bed_id == bed_id)
                                .order_by(PatientStay.admitted_at))
            return [StayRecord(bed, *r) for r in rows]

    # ----------------------------------------------------------------------------- camera health
    def record_health(self, bed: str, state: str, at: datetime, reason: str | None = None, *,
                      dedupe: bool = False) -> bool:
        """Append a camera health event; returns False when ``dedupe`` found the same (bed, at,
        state, reason) already stored (a replayed journal entry), True when a row was inserted."""
        check_choice(state, HEALTH_STATES, "camera health state")
        bed_id, at = self.bed_id(bed), check_utc(at, "at")
        H = CameraHealthEvent
        with self.engine.begin() as conn:
            if dedupe and conn.execute(select(H.id).where(
                    H.bed_id == bed_id, H.at == at, H.state == state,
                    H.reason.is_(None) if reason is None else H.reason == reason).limit(1)).first():
                return False
            conn.execute(insert(H).values(bed_id=bed_id, state=state, at=at, reason=reason))
        return True

    def health_events(self, bed: str | None = None, since: datetime | None = None,
                      until: datetime | None = None, limit: int = 1000) -> list[HealthEvent]:
        since, until = check_range(since, until)
        q = (select(Bed.key, CameraHealthEvent.at, CameraHealthEvent.state, CameraHealthEvent.reason)
             .join(Bed, Bed.id == CameraHealthEvent.bed_id))
        if bed is not None:
            q = q.where(CameraHealthEvent.bed_id == self.bed_id(bed))
        if since is not None:
            q = q.where(CameraHealthEvent.at >= since)
        if until is not None:
            q = q.where(CameraHealthEvent.at < until)
        with self.engine.connect() as conn:
            return [HealthEvent(*r) for r in conn.execute(q.order_by(CameraHealthEvent.at).limit(limit))]

