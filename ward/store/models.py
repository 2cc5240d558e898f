"""SQLAlchemy 2.0 typed models for ward's clinical record.

Every timestamp is a :class:`~ward.store.types.UTCDateTime` (aware UTC in and out). Enumerations are
VARCHAR + CHECK constraints rather than native PostgreSQL enums, so migrations stay portable and
adding a value is a plain constraint change. The two big tables (samples, minute rollups) are keyed by
time and bed and, on SQLite, stored WITHOUT ROWID so the primary key is the clustered index:
samples time-major (cheap 1 s batch writes), rollups bed-major (cheap per-bed timelines).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

from sqlalchemy import (JSON, BigInteger, Boolean, CheckConstraint, Float, ForeignKey, Index, Integer,
                        MetaData, PrimaryKeyConstraint, SmallInteger, String, Text, false)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ward.store.types import UTCDateTime

TIERS = ("alarm", "review", "technical")
ALARM_STATES = ("active", "ended")
VERDICTS = ("true", "false", "unsure")
HEALTH_STATES = ("online", "degraded", "offline")
ROLES = ("viewer", "clinician", "admin")

_NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _in(col: str, values: tuple[str, ...]) -> str:
    return f"{col} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=_NAMING)


class Ward(Base):
    __tablename__ = "wards"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)


class Bed(Base):
    """A monitored bed; ``key`` is the stable name the coordinator and the UI use (e.g. "bed-07")."""

    __tablename__ = "beds"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    ward_id: Mapped[Optional[int]] = mapped_column(ForeignKey("wards.id"))
    name: Mapped[Optional[str]] = mapped_column(String(128))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class BedCameraConfig(Base):
    """Camera configuration history: a new row whenever a bed's camera config changes."""

    __tablename__ = "bed_camera_configs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bed_id: Mapped[int] = mapped_column(ForeignKey("beds.id", ondelete="CASCADE"))
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime())
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    __table_args__ = (Index("ix_bed_camera_configs_bed_from", "bed_id", "valid_from"),)


class BedRuleOverride(Base):
    """History of a bed's live rule override (set on the dashboard's bed view): one row per change,
    with who made it and when. The newest row of a bed is in effect; a row whose values are all NULL
    resets the bed to its configured rule. The columns are ward.config.LIVE_RULE_FIELDS (NULL: not
    overridden). Rows are never updated or deleted, so the previous row is the "old" of each change."""

    __tablename__ = "bed_rule_overrides"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bed_id: Mapped[int] = mapped_column(ForeignKey("beds.id", ondelete="CASCADE"))
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime())
    username: Mapped[str] = mapped_column(String(64))
    source: Mapped[Optional[str]] = mapped_column(String(128))
    p_floor: Mapped[Optional[float]] = mapped_column(Float)
    alarm_threshold: Mapped[Optional[float]] = mapped_column(Float)
    release_threshold: Mapped[Optional[float]] = mapped_column(Float)
    min_duration_s: Mapped[Optional[float]] = mapped_column(Float)
    __table_args__ = (Index("ix_bed_rule_overrides_bed_from", "bed_id", "valid_from"),)


class PatientStay(Base):
    """Pseudonymous patient id per bed between admission and discharge (null while admitted)."""

    __tablename__ = "patient_stays"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bed_id: Mapped[int] = mapped_column(ForeignKey("beds.id", ondelete="CASCADE"))
    patient_pseudonym: Mapped[str] = mapped_column(String(64))
    admitted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    discharged_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime())
    __table_args__ = (Index("ix_patient_stays_bed_admitted", "bed_id", "admitted_at"),)


class ModelVersion(Base):
    __tablename__ = "model_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    description: Mapped[Optional[str]] = mapped_column(Text)


class ProbabilitySample(Base):
    """One model output per bed per second. Primary key (t, bed_id) makes replays idempotent.

    Time-major on purpose: a 1 s batch of 64 beds lands in one or two B-tree pages instead of one
    page per bed, which made ingest ~4x faster (SQLite, 5.5 M rows); reading one bed's raw hour then
    scans all beds' rows of that hour (tens of ms), and long ranges read the minute rollups instead.
    """

    __tablename__ = "probability_samples"
    t: Mapped[datetime] = mapped_column(UTCDateTime())
    bed_id: Mapped[int] = mapped_column(ForeignKey("beds.id", ondelete="CASCADE"))
    probability: Mapped[float] = mapped_column(Float)
    accumulator: Mapped[float] = mapped_column(Float)
    pose_quality: Mapped[Optional[float]] = mapped_column(Float)
    model_version_id: Mapped[Optional[int]] = mapped_column(SmallInteger, ForeignKey("model_versions.id"))
    __table_args__ = (PrimaryKeyConstraint("t", "bed_id"), {"sqlite_with_rowid": False})


class BedLatest(Base):
    """The newest sample of each bed, maintained by every write (one tiny row per bed).

    The samples table is time-major, so "latest per bed" there would scan; this table answers it
    with one row per bed and costs writes one or two extra pages per batch."""

    __tablename__ = "bed_latest"
    bed_id: Mapped[int] = mapped_column(ForeignKey("beds.id", ondelete="CASCADE"), primary_key=True)
    t: Mapped[datetime] = mapped_column(UTCDateTime())
    probability: Mapped[float] = mapped_column(Float)
    accumulator: Mapped[float] = mapped_column(Float)
    pose_quality: Mapped[Optional[float]] = mapped_column(Float)
    model_version_id: Mapped[Optional[int]] = mapped_column(SmallInteger, ForeignKey("model_versions.id"))


class MinuteRollup(Base):
    """Per bed-minute max / sum / count of probability; mean = p_sum / n stays exact under merges."""

    __tablename__ = "minute_rollups"
    bed_id: Mapped[int] = mapped_column(ForeignKey("beds.id", ondelete="CASCADE"), primary_key=True)
    minute: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    p_max: Mapped[float] = mapped_column(Float)
    p_sum: Mapped[float] = mapped_column(Float)
    n: Mapped[int] = mapped_column(Integer)
    __table_args__ = ({"sqlite_with_rowid": False},)


class Alarm(Base):
    """An alarm / review item / technical condition. ``verdict`` mirrors the latest AckEvent."""

    __tablename__ = "alarms"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bed_id: Mapped[int] = mapped_column(ForeignKey("beds.id", ondelete="CASCADE"))
    tier: Mapped[str] = mapped_column(String(16))
    start: Mapped[datetime] = mapped_column("started_at", UTCDateTime())
    end: Mapped[Optional[datetime]] = mapped_column("ended_at", UTCDateTime())
    peak: Mapped[float] = mapped_column(Float, default=0.0)
    state: Mapped[str] = mapped_column(String(16), default="active")
    reason: Mapped[Optional[str]] = mapped_column(Text)
    acknowledged: Mapped[bool] = mapped_column(Boolean, default=False)
    verdict: Mapped[Optional[str]] = mapped_column(String(16))
    # Client-generated stable id of the episode: journaled writes made while the database was down
    # refer to it (the integer id does not exist yet), and a replayed open cannot duplicate the row.
    episode_key: Mapped[Optional[str]] = mapped_column(String(64))
    __table_args__ = (
        CheckConstraint(_in("tier", TIERS), name="tier"),
        CheckConstraint(_in("state", ALARM_STATES), name="state"),
        CheckConstraint("verdict IS NULL OR " + _in("verdict", VERDICTS), name="verdict"),
        Index("ix_alarms_bed_start", "bed_id", "started_at"),
        Index("ix_alarms_start", "started_at"),
        Index("ix_alarms_episode_key", "episode_key", unique=True),
        # The dashboard's "needs attention" reads (migration 0005): unacknowledged alarms of a tier
        # per bed, and active ones, as index seeks instead of scans of years of history.
        Index("ix_alarms_unacked", "acknowledged", "tier", "bed_id", "started_at"),
        Index("ix_alarms_state", "state", "bed_id"),
    )


class AckEvent(Base):
    __tablename__ = "ack_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alarm_id: Mapped[int] = mapped_column(ForeignKey("alarms.id", ondelete="CASCADE"), index=True)
    username: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    verdict: Mapped[str] = mapped_column(String(16))
    note: Mapped[Optional[str]] = mapped_column(Text)
    source: Mapped[Optional[str]] = mapped_column(String(128))
    __table_args__ = (CheckConstraint(_in("verdict", VERDICTS), name="verdict"),)


class AuditLog(Base):
    """Who did what, when, from where (actions: ward.store.audit.AuditAction). ``username`` is the
    actor. Read newest first, filtered by action or actor (``ward audit``): both have an index with
    the time, so a filter over years of rows is an index seek (migration 0007)."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    username: Mapped[Optional[str]] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    detail: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON)
    source: Mapped[Optional[str]] = mapped_column(String(128))
    __table_args__ = (Index("ix_audit_log_action_at", "action", "at"),
                      Index("ix_audit_log_username_at", "username", "at"))


class CameraHealthEvent(Base):
    __tablename__ = "camera_health_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bed_id: Mapped[int] = mapped_column(ForeignKey("beds.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[Optional[str]] = mapped_column(Text)
    __table_args__ = (
        CheckConstraint(_in("state", HEALTH_STATES), name="state"),
        Index("ix_camera_health_bed_at", "bed_id", "at"),
    )


class User(Base):
    """A person's account, or (``service``) an account the ward itself uses, e.g. the dashboard's
    read-only API identity. Service accounts authenticate by token only and never count as "the ward
    has users" (the first-start admin bootstrap looks at people only)."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    service: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # set when someone else chose the password (first start, an admin, `ward users passwd --temporary`):
    # the dashboard lets the user do nothing but choose their own (migration 0008)
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    __table_args__ = (CheckConstraint(_in("role", ROLES), name="role"),)


class DashboardSession(Base):
    """A dashboard login: the browser keeps a random token in a cookie, the database only its SHA-256
    (256-bit secret: no slow hash needed). A reload finds the session again; the dashboard ends it
    after ``idle`` without activity or at ``expires_at``, and logout, a password change or disabling
    the user deletes it. ``kiosk``: a read-only wall display (no idle limit; see docs/security.md)."""

    __tablename__ = "dashboard_sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_active_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    kiosk: Mapped[bool] = mapped_column(Boolean, default=False)


class ApiToken(Base):
    """API tokens are stored as SHA-256 of a 256-bit random secret (high entropy: no slow hash needed).

    ``expires_at`` is NULL only for service accounts' tokens (replaced at every ward start);
    ``last_used_at`` is updated at most every few minutes (not a write per request)."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[Optional[str]] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    expires_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime())
    last_used_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime())
    revoked_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime())
