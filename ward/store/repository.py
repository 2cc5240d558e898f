"""The repository: the only way the coordinator, the API and the dashboard touch the database.

Small, typed, dialect-neutral (SQLite and PostgreSQL). Writes are idempotent and batched; reads
return plain frozen dataclasses (never ORM objects bound to a session), so callers in other
processes or threads can keep them. All times are aware UTC datetimes; naive datetimes raise
ValueError (see ward.store.types). Bad input raises :class:`StoreError` (a ValueError) whose
message says what was wrong and what to do.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import sqlite3
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Iterable, Literal, Mapping, Sequence

from sqlalchemy import (BigInteger, Engine, and_, delete, func, insert, or_, select, text, type_coerce,
                        update)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite as sq

from ward.config import RetentionPolicy  # one type for the store, the config and the CLI
from ward.security import PasswordCheck, PasswordPolicyError, check_password_policy, password_hasher
from ward.store.audit import MAX_AUDIT_LIMIT, SYSTEM_ACTOR, USER_ACTIONS, AuditAction, AuditSource, check_action
from ward.store.engine import ensure_schema, make_engine, setup_lock
from ward.store.models import (ALARM_STATES, HEALTH_STATES, ROLES, TIERS, VERDICTS, AckEvent, Alarm,
                               ApiToken, AuditLog, Bed, BedLatest, BedCameraConfig, CameraHealthEvent,
                               DashboardSession, MinuteRollup, ModelVersion, PatientStay, ProbabilitySample,
                               User, Ward)
from ward.store.types import EPOCH, UTCDateTime, as_utc

Resolution = Literal["1s", "1m", "1h"]
RESOLUTIONS: tuple[str, ...] = ("1s", "1m", "1h")
_MINUTE_US = 60_000_000
_HOUR_US = 3_600_000_000
_ONE_US = timedelta(microseconds=1)
_CHUNK = 500  # rows per INSERT statement (well under SQLite's bound-parameter limit)
MAX_HISTORY_LIMIT = 1_000_000  # points one history() call may be asked for
RETENTION_BATCH = 5_000  # rows per retention DELETE transaction: the 1 s sample writer never waits long
SQLITE_RETENTION_PAUSE_S = 0.15  # between batches: SQLite's busy handler retries a waiting write every <= 100 ms


class StoreError(ValueError):
    """Bad input to the store (unknown bed, inverted time range, bad enum value, ...)."""


class UnknownBedError(StoreError):
    pass


# ----------------------------------------------------------------------------------------- records
@dataclass(frozen=True, slots=True)
class Sample:
    """One model output for one bed at time ``t`` (aware datetime)."""

    bed: str
    t: datetime
    probability: float
    accumulator: float = 0.0
    pose_quality: float | None = None
    model_version: str | None = None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["t"] = as_utc(self.t).isoformat()
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Sample":
        t = d["t"]
        return cls(bed=d["bed"], t=datetime.fromisoformat(t) if isinstance(t, str) else t,
                   probability=d["probability"], accumulator=d.get("accumulator", 0.0),
                   pose_quality=d.get("pose_quality"), model_version=d.get("model_version"))


@dataclass(frozen=True, slots=True)
class WriteResult:
    inserted: int
    duplicates: int


@dataclass(frozen=True, slots=True)
class BedRecord:
    key: str
    name: str | None
    ward: str | None
    active: bool
    camera: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class AlarmRecord:
    id: int
    bed: str
    tier: str
    start: datetime
    end: datetime | None
    peak: float
    state: str
    reason: str | None
    acknowledged: bool
    verdict: str | None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["start"] = self.start.isoformat()
        d["end"] = self.end.isoformat() if self.end else None
        return d


@dataclass(frozen=True, slots=True)
class AckRecord:
    alarm_id: int
    username: str
    at: datetime
    verdict: str
    note: str | None
    source: str | None


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """A timeline point: for 1s a raw sample (n=1), for 1m/1h a bucket starting at ``t``."""

    t: datetime
    p_max: float
    p_mean: float
    n: int
    accumulator: float | None = None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["t"] = self.t.isoformat()
        return d


@dataclass(frozen=True, slots=True)
class LatestRecord:
    """The newest stored sample of one bed."""

    bed: str
    t: datetime
    probability: float
    accumulator: float
    pose_quality: float | None
    model_version: str | None


@dataclass(frozen=True, slots=True)
class BedStats:
    bed: str
    alarms: int
    by_tier: dict[str, int]
    verdicts: dict[str, int]  # true / false / unsure / none (unacknowledged)
    hours_monitored: float
    hours_offline: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class HealthEvent:
    bed: str
    at: datetime
    state: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    username: str
    role: str
    disabled: bool
    created_at: datetime
    service: bool = False  # an account the ward itself uses (token only), not a person's
    must_change_password: bool = False  # someone else chose it: the dashboard allows only a password change


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audit row; ``username`` is the actor (see ward.store.audit)."""

    at: datetime
    username: str | None
    action: str
    detail: dict[str, Any] | None
    source: str | None
    id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "at": self.at.isoformat(), "user": self.username, "action": self.action,
                "source": self.source, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """An API token as listed (``ward users tokens``): never the token or its hash."""

    id: int
    username: str
    name: str | None
    created_at: datetime
    expires_at: datetime | None  # None: never (service accounts only)
    last_used_at: datetime | None  # updated at most every TOKEN_TOUCH_S
    revoked: bool
    revoked_at: datetime | None

    def state(self, now: datetime | None = None) -> str:
        """active, expired or revoked."""
        now = now or datetime.now(timezone.utc)
        if self.revoked:
            return "revoked"
        return "expired" if self.expires_at is not None and self.expires_at <= now else "active"

    def as_dict(self, now: datetime | None = None) -> dict[str, Any]:
        iso = lambda t: t.isoformat() if t else None  # noqa: E731
        return {"id": self.id, "user": self.username, "name": self.name, "state": self.state(now),
                "created": iso(self.created_at), "expires": iso(self.expires_at),
                "last_used": iso(self.last_used_at), "revoked": iso(self.revoked_at)}


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A new token: the plaintext (shown once, stored nowhere) and its record."""

    token: str
    record: TokenRecord


@dataclass(frozen=True, slots=True)
class TokenCheck:
    """What a presented token is: ``user`` only when it may be used now, else ``refusal`` says why
    (unknown, revoked, expired, user disabled); ``token_id``/``owner`` when the token exists."""

    user: UserRecord | None
    token_id: int | None = None
    owner: str | None = None
    refusal: str | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PasswordLogin:
    """A successful password check: the user, and an opaque fingerprint of the stored password hash
    that changes with every password change (see :meth:`Store.current_login`)."""

    user: UserRecord
    credential: str


@dataclass(frozen=True, slots=True)
class StayRecord:
    bed: str
    patient: str
    admitted_at: datetime
    discharged_at: datetime | None


# ----------------------------------------------------------------------------------------- helpers
def _check_choice(value: str, allowed: Sequence[str], what: str) -> str:
    if value not in allowed:
        raise StoreError(f"bad {what} {value!r}: expected one of {', '.join(allowed)}")
    return value


def _utc(value: datetime, what: str) -> datetime:
    try:
        return as_utc(value, what)
    except ValueError as exc:
        raise StoreError(str(exc)) from None


def _range(since: datetime | None, until: datetime | None) -> tuple[datetime | None, datetime | None]:
    s = _utc(since, "since") if since is not None else None
    u = _utc(until, "until") if until is not None else None
    if s is not None and u is not None and s > u:
        raise StoreError(f"inverted time range: since {s.isoformat()} is after until {u.isoformat()}")
    return s, u


def _finite(x: Any, what: str, lo: float | None = None, hi: float | None = None) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise StoreError(f"{what} must be a number, got {x!r}") from None
    if not math.isfinite(v) or (lo is not None and v < lo) or (hi is not None and v > hi):
        raise StoreError(f"{what} {v!r} out of range [{lo}, {hi}] (NaN/inf not allowed)")
    return v


def check_episode_key(key: Any) -> str:
    """Validate a client-generated alarm episode key (1-64 printable characters)."""
    if not isinstance(key, str) or not 0 < len(key) <= 64 or not key.isprintable():
        raise StoreError(f"bad alarm episode key {key!r}: use 1-64 printable characters (e.g. uuid4().hex)")
    return key


def _redact_camera(camera: Mapping[str, Any]) -> dict[str, Any]:
    """A bed camera config fit for the database: its ``source`` URI without credentials.

    The ward config (or its secret store) keeps the real URI; viewers of the config history, the
    dashboard and database dumps only ever see ``rtsp://***@host/...``."""
    from ward.serve.sources import redact_uri, redact_uris  # noqa: PLC0415 (ward.store does not import ward.serve)

    out = {k: redact_uris(v) if isinstance(v, str) else v for k, v in camera.items()}  # any URL-valued key
    if isinstance(out.get("source"), str):
        out["source"] = redact_uri(out["source"])  # also a source missing its scheme (user:pass@host)
    return out


def check_new_user(username: str, password: str, role: str = "viewer") -> None:
    """Raise StoreError unless an account could be made of these (name, role, and an initial password
    of at least 8 characters: it is temporary unless its owner chose it; see check_password_policy)."""
    _check_choice(role, ROLES, "role")
    if not username or len(username) > 64 or not username.isprintable() or " " in username:
        raise StoreError(f"bad username {username!r}: 1-64 printable characters, no spaces")
    _check_password(username, password, temporary=True)


def _check_password(username: str, password: str, *, temporary: bool) -> None:
    """ward.security's password policy, as a StoreError."""
    try:
        check_password_policy(username, password, temporary=temporary)
    except PasswordPolicyError as exc:
        raise StoreError(str(exc)) from None


def _hash_password(password: str) -> str:
    """scrypt hash with the process's parameters (OWASP's N=2^17, r=8, p=1; ward.security)."""
    return password_hasher().hash(password)


def _verify_password(password: str, stored: str | None) -> PasswordCheck:
    """Exactly one scrypt computation whether or not ``stored`` exists (no user-name timing oracle);
    ``needs_rehash`` when the stored hash has weaker parameters than the current ones."""
    return password_hasher().verify(password, stored)


_USER_COLUMNS = (User.id, User.username, User.role, User.disabled, User.created_at, User.service,
                 User.must_change_password)
DEFAULT_TOKEN_TTL = timedelta(days=90)  # a person's token, unless asked otherwise
MAX_TOKEN_TTL = timedelta(days=366)  # the longest a person's token may live: a yearly renewal at least
TOKEN_TOUCH_S = 300.0  # last_used_at is written at most this often per token (not once per request)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _credential_fingerprint(password_hash: str) -> str:
    """Changes whenever the password does; reveals nothing usable (a hash of a salted scrypt hash)."""
    return hashlib.sha256(password_hash.encode()).hexdigest()


def _token_expiry(expires_in: timedelta | None, user: UserRecord, now: datetime) -> datetime | None:
    """When a new token of ``user`` expires: people's tokens always do, within MAX_TOKEN_TTL."""
    if expires_in is None:
        if not user.service:
            raise StoreError(f"tokens of people must expire: give {user.username!r}'s token a lifetime of at "
                             f"most {MAX_TOKEN_TTL.days} days (e.g. --expires-in 90d)")
        return None
    if not isinstance(expires_in, timedelta) or not timedelta(0) < expires_in <= MAX_TOKEN_TTL:
        raise StoreError(f"bad token lifetime {expires_in!r}: use more than 0 s and at most "
                         f"{MAX_TOKEN_TTL.days} days")
    return now + expires_in


def _token_select() -> Any:
    return select(ApiToken.id, User.username, ApiToken.name, ApiToken.created_at, ApiToken.expires_at,
                  ApiToken.last_used_at, ApiToken.revoked, ApiToken.revoked_at).join(User, ApiToken.user_id == User.id)


_SECRET_KEYS = frozenset({"password", "new_password", "old_password", "password_hash", "token", "token_hash",
                          "secret"})


def _audit_insert(action: AuditAction, user: str | None, source: str | None,
                  detail: Mapping[str, Any] | None, at: datetime | None = None) -> Any:
    """The INSERT of one audit row (run it in the transaction of the change it records). A detail key
    that names a secret is refused: the audit log is read by many and kept for years."""
    secret = _SECRET_KEYS.intersection(k.lower() for k in (detail or {}))
    if secret:
        raise StoreError(f"audit detail must not hold secrets: drop {', '.join(sorted(secret))}")
    return insert(AuditLog).values(at=at or datetime.now(timezone.utc), username=user, action=action.value,
                                   detail=dict(detail) if detail else None,
                                   source=str(source) if source is not None else None)


_PG_WRITE = text("""
WITH ins AS (
  INSERT INTO probability_samples (bed_id, t, probability, accumulator, pose_quality, model_version_id)
  SELECT * FROM unnest(CAST(:b AS integer[]), CAST(:t AS timestamptz[]), CAST(:p AS float8[]),
                       CAST(:a AS float8[]), CAST(:q AS float8[]), CAST(:m AS smallint[]))
  ON CONFLICT (bed_id, t) DO NOTHING
  RETURNING bed_id, t, probability, accumulator, pose_quality, model_version_id
), lat AS (
  INSERT INTO bed_latest (bed_id, t, probability, accumulator, pose_quality, model_version_id)
  SELECT DISTINCT ON (bed_id) bed_id, t, probability, accumulator, pose_quality, model_version_id FROM ins
  ORDER BY bed_id, t DESC
  ON CONFLICT (bed_id) DO UPDATE SET t = EXCLUDED.t, probability = EXCLUDED.probability,
    accumulator = EXCLUDED.accumulator, pose_quality = EXCLUDED.pose_quality,
    model_version_id = EXCLUDED.model_version_id
  WHERE EXCLUDED.t > bed_latest.t
  RETURNING 1
), up AS (
  INSERT INTO minute_rollups (bed_id, minute, p_max, p_sum, n)
  SELECT bed_id, date_trunc('minute', t), max(probability), sum(probability), count(*) FROM ins
  GROUP BY 1, 2
  ON CONFLICT (bed_id, minute) DO UPDATE SET
    p_max = GREATEST(minute_rollups.p_max, EXCLUDED.p_max),
    p_sum = minute_rollups.p_sum + EXCLUDED.p_sum,
    n = minute_rollups.n + EXCLUDED.n
  RETURNING 1
)
SELECT count(*) FROM ins
""")

_SQLITE_ROLLUP = """
INSERT INTO minute_rollups (bed_id, minute, p_max, p_sum, n) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (bed_id, minute) DO UPDATE SET p_max = max(p_max, excluded.p_max),
  p_sum = p_sum + excluded.p_sum, n = n + excluded.n"""


@lru_cache(maxsize=64)
def _sqlite_insert_sql(n: int) -> str:
    values = ",".join(["(?,?,?,?,?,?)"] * n)
    return ("INSERT INTO probability_samples (bed_id, t, probability, accumulator, pose_quality, "
            f"model_version_id) VALUES {values} ON CONFLICT (bed_id, t) DO NOTHING "
            "RETURNING bed_id, t, probability, accumulator, pose_quality, model_version_id")


_SQLITE_LATEST = """
INSERT INTO bed_latest (bed_id, t, probability, accumulator, pose_quality, model_version_id)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (bed_id) DO UPDATE SET t = excluded.t, probability = excluded.probability,
  accumulator = excluded.accumulator, pose_quality = excluded.pose_quality,
  model_version_id = excluded.model_version_id
WHERE excluded.t > bed_latest.t"""


def _sqlite_latest(returned: Sequence[Any]) -> list[Any]:
    """Newest freshly inserted row per bed."""
    best: dict[int, Any] = {}
    for row in returned:
        cur = best.get(row[0])
        if cur is None or row[1] > cur[1]:
            best[row[0]] = row
    return list(best.values())


def _sqlite_rollups(returned: Sequence[Any]) -> list[tuple[int, int, float, float, int]]:
    """Aggregate freshly inserted (bed_id, t_us, p) rows per bed-minute."""
    acc: dict[tuple[int, int], list[float]] = {}
    for bed_id, t_us, p, *_ in returned:
        key = (bed_id, t_us - t_us % _MINUTE_US)
        a = acc.get(key)
        if a is None:
            acc[key] = [p, p, 1]
        else:
            if p > a[0]:
                a[0] = p
            a[1] += p
            a[2] += 1
    return [(b, m, a[0], a[1], int(a[2])) for (b, m), a in acc.items()]


_S = ProbabilitySample.__table__
_R = MinuteRollup.__table__
_A = Alarm.__table__
_B = Bed.__table__


# ------------------------------------------------------------------------------------------- store
class Store:
    """Repository over one database URL (SQLite file or PostgreSQL). Thread-safe: each call uses
    its own pooled connection and transaction."""

    def __init__(self, url: str | None = None, *, engine: Engine | None = None, auto_migrate: bool = True,
                 busy_timeout_ms: int = 5000, actor: str = SYSTEM_ACTOR, source: str = AuditSource.WARD) -> None:
        """``actor``/``source``: who the changes made through this store are audited as when a call
        does not say (the ward itself by default; the CLI passes ``cli:<OS user>``, "cli")."""
        self.actor, self.source = actor, str(source)
        self.engine = engine or make_engine(url, busy_timeout_ms=busy_timeout_ms)
        self.dialect = self.engine.dialect.name
        if auto_migrate:
            ensure_schema(self.engine)
        self._bed_ids: dict[str, int] = {}
        self._bed_keys: dict[int, str] = {}
        self._model_ids: dict[str, int] = {}
        ins = pg.insert if self.dialect == "postgresql" else sq.insert
        self._insert = ins

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------------------------- beds
    def upsert_bed(self, key: str, *, name: str | None = None, ward: str | None = None,
                   camera: Mapping[str, Any] | None = None, active: bool = True,
                   at: datetime | None = None) -> BedRecord:
        """Create or update a bed; a changed camera config appends a row to its config history."""
        if not key or not isinstance(key, str) or len(key) > 64:
            raise StoreError(f"bad bed key {key!r}: use a non-empty string of at most 64 characters")
        at = _utc(at, "at") if at else datetime.now(timezone.utc)
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
        self._bed_keys[bed_id] = key
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
        bed_id = self._bed_id(bed)
        with self.engine.connect() as conn:
            rows = conn.execute(select(BedCameraConfig.valid_from, BedCameraConfig.config)
                                .where(BedCameraConfig.bed_id == bed_id)
                                .order_by(BedCameraConfig.valid_from, BedCameraConfig.id))
            return [(r[0], r[1]) for r in rows]

    def _bed_id(self, key: str) -> int:
        bed_id = self._bed_ids.get(key)
        if bed_id is None:
            self._load_beds()
            bed_id = self._bed_ids.get(key)
        if bed_id is None:
            raise UnknownBedError(f"unknown bed {key!r}: register it first with Store.upsert_bed "
                                  f"(known beds: {', '.join(sorted(self._bed_ids)) or 'none'})")
        return bed_id

    def _load_beds(self) -> None:
        """Refresh the bed key <-> id cache (beds may be added by another process)."""
        with self.engine.connect() as conn:
            for bid, key in conn.execute(select(Bed.id, Bed.key)):
                self._bed_ids[key] = bid
                self._bed_keys[bid] = key

    def _bed_key(self, bed_id: int) -> str:
        if bed_id not in self._bed_keys:
            self._load_beds()
        return self._bed_keys[bed_id]

    # ----------------------------------------------------------------------------- patient stays
    def admit(self, bed: str, patient: str, at: datetime) -> None:
        """Start a stay for a pseudonymous patient id (closes any open stay on that bed first)."""
        if not patient or len(patient) > 64:
            raise StoreError("patient pseudonym must be a non-empty string of at most 64 characters")
        bed_id, at = self._bed_id(bed), _utc(at, "at")
        with self.engine.begin() as conn:
            conn.execute(update(PatientStay).where(PatientStay.bed_id == bed_id,
                                                   PatientStay.discharged_at.is_(None))
                         .values(discharged_at=at))
            conn.execute(insert(PatientStay).values(bed_id=bed_id, patient_pseudonym=patient, admitted_at=at))

    def discharge(self, bed: str, at: datetime) -> None:
        bed_id, at = self._bed_id(bed), _utc(at, "at")
        with self.engine.begin() as conn:
            n = conn.execute(update(PatientStay).where(PatientStay.bed_id == bed_id,
                                                       PatientStay.discharged_at.is_(None))
                             .values(discharged_at=at)).rowcount
        if n == 0:
            raise StoreError(f"bed {bed!r} has no admitted patient to discharge")

    def stays(self, bed: str) -> list[StayRecord]:
        bed_id = self._bed_id(bed)
        with self.engine.connect() as conn:
            rows = conn.execute(select(PatientStay.patient_pseudonym, PatientStay.admitted_at,
                                       PatientStay.discharged_at).where(PatientStay.bed_id == bed_id)
                                .order_by(PatientStay.admitted_at))
            return [StayRecord(bed, *r) for r in rows]

    # ---------------------------------------------------------------------------- model versions
    def register_model_version(self, name: str, description: str | None = None) -> int:
        if name in self._model_ids:
            return self._model_ids[name]
        with self.engine.begin() as conn:
            conn.execute(self._insert(ModelVersion.__table__).values(
                name=name, description=description, created_at=datetime.now(timezone.utc))
                .on_conflict_do_nothing(index_elements=["name"]))
            mid = conn.execute(select(ModelVersion.id).where(ModelVersion.name == name)).scalar_one()
        self._model_ids[name] = mid
        return mid

    # ----------------------------------------------------------------------------------- samples
    def write_samples(self, rows: Iterable[Sample | Mapping[str, Any]]) -> WriteResult:
        """Insert samples; rows already stored (same bed and t) are skipped, and only rows actually
        inserted are added to the minute rollups, so replaying a batch never double-counts.
        The whole batch is validated before anything is written (all or nothing)."""
        samples = [r if isinstance(r, Sample) else Sample.from_json(r) for r in rows]
        if not samples:
            return WriteResult(0, 0)
        bed_ids, model_ids = self._bed_ids, self._model_ids
        for key in {s.bed for s in samples if s.bed not in bed_ids}:
            self._bed_id(key)
        for name in {s.model_version for s in samples if s.model_version and s.model_version not in model_ids}:
            self.register_model_version(name)  # type: ignore[arg-type]
        sqlite = self.dialect == "sqlite"
        cols: tuple[list[Any], ...] = ([], [], [], [], [], [])
        b_, t_, p_, a_, q_, m_ = cols
        try:
            for s in samples:
                t = s.t
                if t.tzinfo is not timezone.utc:
                    t = _utc(t, "sample time")
                p, acc, q = s.probability, s.accumulator, s.pose_quality
                if not 0.0 <= p <= 1.0:  # also false for NaN
                    raise StoreError(f"probability {p!r} of bed {s.bed!r} at {t.isoformat()} is not in [0, 1]")
                if acc - acc != 0 or (q is not None and q - q != 0):  # NaN or inf
                    raise StoreError(f"accumulator/pose_quality of bed {s.bed!r} at {t.isoformat()} "
                                     "must be finite numbers")
                b_.append(bed_ids[s.bed])
                t_.append((t - EPOCH) // _ONE_US if sqlite else t)
                p_.append(float(p))
                a_.append(float(acc))
                q_.append(None if q is None else float(q))
                m_.append(model_ids[s.model_version] if s.model_version else None)
        except (TypeError, AttributeError) as exc:
            raise StoreError(f"bad sample field ({exc}): t must be a datetime, probability/accumulator/"
                             "pose_quality numbers") from None
        if not sqlite:
            with self.engine.begin() as conn:
                # One round trip: insert via unnest (a short, cacheable query whatever the batch
                # size) and fold only the rows actually inserted into the rollups.
                inserted = conn.execute(_PG_WRITE, {"b": b_, "t": t_, "p": p_, "a": a_, "q": q_, "m": m_}).scalar_one()
            return WriteResult(inserted, len(samples) - inserted)
        return WriteResult(*self._write_sqlite(list(zip(b_, t_, p_, a_, q_, m_))))

    def _write_sqlite(self, rows: list[tuple[Any, ...]]) -> tuple[int, int]:
        """SQLite hot path on the raw pooled DB-API connection (SQLAlchemy's per-call machinery
        cost more than the insert itself at 64 rows per batch); times are int microseconds."""
        inserted = 0
        raw = self.engine.raw_connection()
        try:
            dc = raw.driver_connection
            cur = dc.cursor()  # type: ignore[union-attr]
            try:
                cur.execute("BEGIN")
                for i in range(0, len(rows), _CHUNK):
                    chunk = rows[i:i + _CHUNK]
                    returned = cur.execute(_sqlite_insert_sql(len(chunk)),
                                           [v for row in chunk for v in row]).fetchall()
                    inserted += len(returned)
                    if returned:
                        cur.executemany(_SQLITE_ROLLUP, _sqlite_rollups(returned))
                        cur.executemany(_SQLITE_LATEST, _sqlite_latest(returned))
                cur.execute("COMMIT")
            except sqlite3.Error as exc:  # same exception types as the SQLAlchemy paths raise
                try:
                    dc.rollback()  # type: ignore[union-attr]
                except sqlite3.Error:
                    pass
                raise sa_exc.DBAPIError.instance("INSERT INTO probability_samples ...", None, exc,
                                                 sqlite3.Error) from exc
            finally:
                cur.close()
        finally:
            raw.close()
        return inserted, len(rows) - inserted

    def latest_samples(self) -> dict[str, LatestRecord]:
        """Newest sample of every bed that has one (one small table read, whatever the history size)."""
        L = BedLatest.__table__
        q = (select(_B.c.key, L.c.t, L.c.probability, L.c.accumulator, L.c.pose_quality, ModelVersion.name)
             .join_from(L, _B, _B.c.id == L.c.bed_id)
             .outerjoin(ModelVersion, ModelVersion.id == L.c.model_version_id))
        with self.engine.connect() as conn:
            return {r[0]: LatestRecord(*r) for r in conn.execute(q)}

    def history(self, bed: str, since: datetime, until: datetime | None = None,
                resolution: str = "1m", limit: int | None = None) -> list[HistoryPoint]:
        """Risk timeline of one bed: raw samples for "1s", minute rollups for "1m", hourly
        aggregates of the rollups for "1h". Buckets are [t, t + resolution) in UTC; a bucket is
        returned when it starts in [floor(since), until). ``limit`` caps the points in SQL (the
        oldest first), so a reader serving untrusted requests never pulls a whole history; the next
        page starts at the ``t`` of the first point not returned (ask for ``limit + 1`` to learn it)."""
        _check_choice(resolution, RESOLUTIONS, "resolution")
        if limit is not None and not 1 <= limit <= MAX_HISTORY_LIMIT:
            raise StoreError(f"bad history limit {limit}: use 1..{MAX_HISTORY_LIMIT} (or None for no cap, "
                             "trusted callers only)")
        bed_id = self._bed_id(bed)
        since, until = _range(since, until or datetime.now(timezone.utc))
        assert since is not None and until is not None
        with self.engine.connect() as conn:
            if resolution == "1s":
                rows = conn.execute(select(_S.c.t, _S.c.probability, _S.c.accumulator)
                                    .where(_S.c.bed_id == bed_id, _S.c.t >= since, _S.c.t < until)
                                    .order_by(_S.c.t).limit(limit))
                return [HistoryPoint(t, p, p, 1, a) for t, p, a in rows]
            lo = since.replace(second=0, microsecond=0)
            if resolution == "1m":
                rows = conn.execute(select(_R.c.minute, _R.c.p_max, _R.c.p_sum, _R.c.n)
                                    .where(_R.c.bed_id == bed_id, _R.c.minute >= lo, _R.c.minute < until)
                                    .order_by(_R.c.minute).limit(limit))
                return [HistoryPoint(m, mx, s / n, n) for m, mx, s, n in rows]
            lo = lo.replace(minute=0)
            bucket = self._hour_bucket()
            rows = conn.execute(select(bucket.label("h"), func.max(_R.c.p_max), func.sum(_R.c.p_sum),
                                       func.sum(_R.c.n))
                                .where(_R.c.bed_id == bed_id, _R.c.minute >= lo, _R.c.minute < until)
                                .group_by(bucket).order_by(bucket).limit(limit))
            return [HistoryPoint(h, mx, s / n, int(n)) for h, mx, s, n in rows]

    def _hour_bucket(self) -> Any:
        if self.dialect == "sqlite":
            return type_coerce(type_coerce(_R.c.minute, BigInteger) // _HOUR_US * _HOUR_US, UTCDateTime())
        return type_coerce(func.date_trunc("hour", _R.c.minute), UTCDateTime())

    # ------------------------------------------------------------------------------------ alarms
    def open_alarm(self, bed: str, tier: str, start: datetime, peak: float = 0.0,
                   reason: str | None = None, *, episode_key: str | None = None) -> int:
        """Open an alarm (state active); returns its id. ``episode_key`` is the caller's stable id of
        the episode (a fresh one is generated when omitted): opening the same key again returns the
        existing alarm's id instead of inserting a duplicate, so a replayed open is harmless."""
        _check_choice(tier, TIERS, "tier")
        key = check_episode_key(episode_key) if episode_key is not None else "k-" + secrets.token_hex(16)
        bed_id = self._bed_id(bed)
        values = dict(bed_id=bed_id, tier=tier, started_at=_utc(start, "start"), peak=_finite(peak, "peak"),
                      state="active", reason=reason, acknowledged=False, episode_key=key)
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
            values["peak"] = greatest(Alarm.peak, _finite(peak, "peak"))
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
        end = _utc(end, "end")
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
        _check_choice(verdict, VERDICTS, "verdict")
        if not user:
            raise StoreError("acknowledge needs the acting user's name")
        at = _utc(at, "at") if at else datetime.now(timezone.utc)
        with self.engine.begin() as conn:
            n = conn.execute(update(Alarm).where(Alarm.id == alarm_id)
                             .values(acknowledged=True, verdict=verdict)).rowcount
            if n == 0:
                raise StoreError(f"unknown alarm id {alarm_id}")
            conn.execute(insert(AckEvent).values(alarm_id=alarm_id, username=user, at=at, verdict=verdict,
                                                 note=note, source=source))
            conn.execute(_audit_insert(AuditAction.ACKNOWLEDGE, user, source,
                                       {"alarm_id": alarm_id, "verdict": verdict, "note": note}, at=at))

    def get_alarm(self, alarm_id: int) -> AlarmRecord:
        with self.engine.connect() as conn:
            row = conn.execute(self._alarm_select().where(_A.c.id == alarm_id)).first()
        if row is None:
            raise StoreError(f"unknown alarm id {alarm_id}")
        return AlarmRecord(*row)

    def ack_events(self, alarm_id: int) -> list[AckRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(AckEvent.alarm_id, AckEvent.username, AckEvent.at, AckEvent.verdict,
                                       AckEvent.note, AckEvent.source)
                                .where(AckEvent.alarm_id == alarm_id).order_by(AckEvent.at, AckEvent.id))
            return [AckRecord(*r) for r in rows]

    @staticmethod
    def _alarm_select() -> Any:
        return (select(_A.c.id, _B.c.key, _A.c.tier, _A.c.started_at, _A.c.ended_at, _A.c.peak, _A.c.state,
                       _A.c.reason, _A.c.acknowledged, _A.c.verdict)
                .join_from(_A, _B, _B.c.id == _A.c.bed_id))

    def list_alarms(self, bed: str | None = None, since: datetime | None = None,
                    until: datetime | None = None, tier: str | Sequence[str] | None = None,
                    verdict: str | Sequence[str] | None = None, limit: int = 100,
                    offset: int = 0, before: tuple[datetime, int] | None = None) -> list[AlarmRecord]:
        """Alarms that started in [since, until), newest first, with their latest verdict.
        ``verdict`` accepts true / false / unsure and "none" (not yet acknowledged). ``before`` is a
        keyset cursor, the (start, id) of the last alarm of the previous page: only alarms after it
        in this order are returned, so alarms stored meanwhile never shift a page (as offset does)."""
        since, until = _range(since, until)
        if not 1 <= limit <= 100_000 or offset < 0:
            raise StoreError(f"bad pagination limit={limit} offset={offset}: limit in 1..100000, offset >= 0")
        q = self._alarm_select()
        if before is not None:
            at, last_id = _utc(before[0], "cursor time"), int(before[1])
            q = q.where(or_(_A.c.started_at < at, and_(_A.c.started_at == at, _A.c.id < last_id)))
        if bed is not None:
            q = q.where(_A.c.bed_id == self._bed_id(bed))
        if since is not None:
            q = q.where(_A.c.started_at >= since)
        if until is not None:
            q = q.where(_A.c.started_at < until)
        if tier is not None:
            tiers = [tier] if isinstance(tier, str) else list(tier)
            for t in tiers:
                _check_choice(t, TIERS, "tier")
            q = q.where(_A.c.tier.in_(tiers))
        if verdict is not None:
            verdicts = [verdict] if isinstance(verdict, str) else list(verdict)
            for v in verdicts:
                _check_choice(v, VERDICTS + ("none",), "verdict")
            conds = [_A.c.verdict.in_([v for v in verdicts if v != "none"])]
            if "none" in verdicts:
                conds.append(_A.c.verdict.is_(None))
            q = q.where(or_(*conds))
        q = q.order_by(_A.c.started_at.desc(), _A.c.id.desc()).limit(limit).offset(offset)
        with self.engine.connect() as conn:
            return [AlarmRecord(*r) for r in conn.execute(q)]

    # ----------------------------------------------------------------------------- camera health
    def record_health(self, bed: str, state: str, at: datetime, reason: str | None = None, *,
                      dedupe: bool = False) -> bool:
        """Append a camera health event; returns False when ``dedupe`` found the same (bed, at,
        state, reason) already stored (a replayed journal entry), True when a row was inserted."""
        _check_choice(state, HEALTH_STATES, "camera health state")
        bed_id, at = self._bed_id(bed), _utc(at, "at")
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
        since, until = _range(since, until)
        q = (select(Bed.key, CameraHealthEvent.at, CameraHealthEvent.state, CameraHealthEvent.reason)
             .join(Bed, Bed.id == CameraHealthEvent.bed_id))
        if bed is not None:
            q = q.where(CameraHealthEvent.bed_id == self._bed_id(bed))
        if since is not None:
            q = q.where(CameraHealthEvent.at >= since)
        if until is not None:
            q = q.where(CameraHealthEvent.at < until)
        with self.engine.connect() as conn:
            return [HealthEvent(*r) for r in conn.execute(q.order_by(CameraHealthEvent.at).limit(limit))]

    # ------------------------------------------------------------------------------------- stats
    def stats(self, since: datetime, until: datetime | None = None) -> list[BedStats]:
        """Per bed over [since, until): alarms by tier and verdict, hours monitored (minutes with at
        least one sample / 60), hours offline (time the camera spent in the 'offline' state)."""
        since, until = _range(since, until or datetime.now(timezone.utc))
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

    # ------------------------------------------------------------------------------------- users
    def create_user(self, username: str, password: str, role: str = "viewer", *, service: bool = False,
                    actor: str | None = None, source: str | None = None,
                    must_change_password: bool = False) -> UserRecord:
        """Create an account; ``service=True`` marks one the ward itself uses (token login only).
        Audited as ``user.create`` by ``actor`` (default: this store's actor) in the same transaction.
        ``must_change_password``: the password is a temporary one someone else chose; the dashboard
        lets the user do nothing but choose their own at the first login."""
        check_new_user(username, password, role)
        password_hash = _hash_password(password)  # slow on purpose: outside any transaction
        actor, source = self._who(actor, source)
        try:
            # Writes only, no read before them in the transaction: on SQLite a read-then-write
            # transaction fails at once ("database is locked", no busy wait) when another connection
            # (the coordinator's 1 s flush) commits in between.
            with self.engine.begin() as conn:
                conn.execute(insert(User).values(username=username, password_hash=password_hash, role=role,
                                                 disabled=False, service=service,
                                                 must_change_password=must_change_password,
                                                 created_at=datetime.now(timezone.utc)))
                conn.execute(_audit_insert(AuditAction.USER_CREATE, actor, source,
                                           {"username": username, "role": role, "service": service}))
        except sa_exc.IntegrityError:  # the name is taken (unique)
            raise StoreError(f"user {username!r} already exists") from None
        return self._user(username)  # type: ignore[return-value]

    def _user(self, username: str) -> UserRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(*_USER_COLUMNS).where(User.username == username)).first()
        return UserRecord(*row) if row else None

    def get_user(self, username: str) -> UserRecord | None:
        """The account's current state (role, disabled), or None: re-read it before acting for a
        session that logged in earlier, since an admin may have changed or disabled it meanwhile."""
        return self._user(username)

    def _known_user(self, username: str) -> UserRecord:
        user = self._user(username)
        if user is None:
            raise StoreError(f"unknown user {username!r}: see `ward users list`")
        return user

    def list_users(self) -> list[UserRecord]:
        """Every account, service accounts included (see ``UserRecord.service``)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(*_USER_COLUMNS).order_by(User.username))
            return [UserRecord(*r) for r in rows]

    def has_people(self) -> bool:
        """Whether any person has an account (enabled or not); the ward's service accounts don't count."""
        with self.engine.connect() as conn:
            return conn.execute(select(User.id).where(User.service.is_(False)).limit(1)).first() is not None

    def create_first_admin(self, username: str, password: str, *,
                           must_change_password: bool = False) -> UserRecord | None:
        """Create ``username`` as admin if no person has an account yet; None if someone does.
        ``must_change_password`` for a generated one-time password.

        Check and insert run under the database's setup lock (:func:`~ward.store.engine.setup_lock`),
        so two starts at once (or a start racing ``ward users add``) never make two first admins."""
        with setup_lock(self.engine):
            if self.has_people():
                return None
            return self.create_user(username, password, role="admin", actor=SYSTEM_ACTOR, source=AuditSource.WARD,
                                    must_change_password=must_change_password)

    def ensure_service_user(self, username: str, role: str = "viewer") -> UserRecord:
        """The ward's service account ``username``, created when missing with a random password nobody
        knows (service accounts cannot log in with a password anyway). Refuses to take over a person's
        account of that name."""
        user = self._user(username)
        if user is None:
            try:
                return self.create_user(username, secrets.token_urlsafe(32), role, service=True,
                                        actor=SYSTEM_ACTOR, source=AuditSource.WARD)
            except StoreError:  # created concurrently by another replica
                user = self._user(username)
                assert user is not None
        if not user.service:
            raise StoreError(f"user {username!r} is a person's account, not a service account: rename it "
                             f"(the ward reserves {username!r} for itself)")
        return user

    def authenticate(self, username: str, password: str) -> UserRecord | None:
        """The user if the password matches and the account is enabled, else None (always None for
        service accounts: they use tokens)."""
        login = self.password_login(username, password)
        return login.user if login else None

    def password_login(self, username: str, password: str) -> PasswordLogin | None:
        """:meth:`authenticate` plus a fingerprint of the password hash that was checked, so a caller
        that remembers the login (the API's cache of scrypt checks) can ask :meth:`current_login`
        on each request whether it still stands, with one cheap read instead of scrypt."""
        with self.engine.connect() as conn:
            row = conn.execute(select(User.password_hash, User.disabled, User.service)
                               .where(User.username == username)).first()
        check = _verify_password(password, row[0] if row else None)  # one scrypt, known user or not
        if row is None or not check or row[1] or row[2]:
            return None
        stored = self._rehash(username, row[0], password) if check.needs_rehash else row[0]
        user = self._user(username)
        return PasswordLogin(user, _credential_fingerprint(stored)) if user else None

    def current_login(self, username: str, credential: str) -> UserRecord | None:
        """The user as now stored if the account is enabled, still a person's, and its password is
        unchanged since :meth:`password_login` gave ``credential``; else None (re-check the password)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(User.password_hash, *_USER_COLUMNS).where(User.username == username)).first()
        if row is None:
            return None
        user = UserRecord(*row[1:])
        if user.disabled or user.service or not hmac.compare_digest(_credential_fingerprint(row[0]), credential):
            return None
        return user

    def disable_user(self, username: str, *, actor: str | None = None, source: str | None = None) -> None:
        """Disable an account (no login, no token); audited as ``user.disable`` in the same transaction."""
        actor, source = self._who(actor, source)
        with self.engine.begin() as conn:
            if conn.execute(update(User).where(User.username == username).values(disabled=True)).rowcount == 0:
                raise StoreError(f"unknown user {username!r}: see `ward users list`")
            conn.execute(_audit_insert(AuditAction.USER_DISABLE, actor, source, {"username": username}))

    def set_role(self, username: str, role: str, *, actor: str | None = None, source: str | None = None) -> UserRecord:
        """Change a person's role; audited as ``user.role`` with the old and the new role. Service
        accounts keep the role the ward gives them."""
        _check_choice(role, ROLES, "role")
        user = self._known_user(username)
        if user.service:
            raise StoreError(f"user {username!r} is a service account: the ward sets its role")
        actor, source = self._who(actor, source)
        with self.engine.begin() as conn:
            conn.execute(update(User).where(User.id == user.id).values(role=role))
            conn.execute(_audit_insert(AuditAction.USER_ROLE, actor, source,
                                       {"username": username, "old": user.role, "new": role}))
        return self._known_user(username)

    def audit_user_change(self, action: AuditAction | str, username: str, *, actor: str, source: str,
                          detail: Mapping[str, Any] | None = None) -> None:
        """Audit a change to ``username``'s account made outside the store's own methods (e.g. a
        password change by the dashboard): a ``user.*`` action, the target in the detail, never a
        secret (a detail key naming a password, token or hash is refused)."""
        act = self._check_action(action)
        if act not in USER_ACTIONS:
            raise StoreError(f"audit_user_change takes a user action ({', '.join(sorted(USER_ACTIONS))}), "
                             f"not {act.value!r}: use Store.audit")
        if not actor or not source:
            raise StoreError("audit_user_change needs the actor (who made the change) and the source")
        self.audit(act, user=actor, source=source, detail={"username": username, **(detail or {})})

    # --------------------------------------------------------------------------------- passwords
    def change_password(self, username: str, current: str, new: str, *, source: str,
                        keep_session: int | None = None) -> UserRecord:
        """A person replaces their own password. ``new`` must meet the policy (12+ characters, not the
        user name) and differ from ``current``, which must be right (one scrypt check). Clears
        ``must_change_password`` and ends the user's other dashboard sessions (all but
        ``keep_session``): whoever knew the old password is logged out. Audited as ``user.password``."""
        _check_password(username, new, temporary=False)
        if new == current:
            raise StoreError("the new password is the current one: choose a different password")
        with self.engine.connect() as conn:
            row = conn.execute(select(User.password_hash, User.disabled, User.service, User.must_change_password)
                               .where(User.username == username)).first()
        if row is None or not _verify_password(current, row[0]) or row[1] or row[2]:
            raise StoreError("the current password is wrong: password not changed")
        return self._store_password(username, _hash_password(new), temporary=False, actor=username, source=source,
                                    keep_session=keep_session, detail={"forced": bool(row[3])})

    def set_password(self, username: str, new: str, *, temporary: bool, actor: str | None = None,
                     source: str | None = None) -> UserRecord:
        """Set ``username``'s password for them (an admin resetting a forgotten one, ``ward users
        passwd``). ``temporary``: they must replace it at their next dashboard login (at least 8
        characters); otherwise the full policy applies. Ends all of the user's dashboard sessions.
        Audited as ``user.password`` by ``actor``."""
        user = self._known_user(username)
        if user.service:
            raise StoreError(f"user {username!r} is a service account: it logs in with tokens, not a password")
        _check_password(username, new, temporary=temporary)
        return self._store_password(username, _hash_password(new), temporary=temporary, actor=actor, source=source,
                                    keep_session=None, detail={})

    def _store_password(self, username: str, password_hash: str, *, temporary: bool, actor: str | None,
                        source: str | None, keep_session: int | None, detail: Mapping[str, Any]) -> UserRecord:
        """Write a new password hash, end the user's sessions (but ``keep_session``) and audit it, in
        one transaction (writes only, see create_user)."""
        actor, source = self._who(actor, source)
        sessions = delete(DashboardSession).where(
            DashboardSession.user_id.in_(select(User.id).where(User.username == username)))
        if keep_session is not None:
            sessions = sessions.where(DashboardSession.id != keep_session)
        with self.engine.begin() as conn:
            if conn.execute(update(User).where(User.username == username)
                            .values(password_hash=password_hash, must_change_password=temporary)).rowcount == 0:
                raise StoreError(f"unknown user {username!r}: see `ward users list`")
            conn.execute(sessions)
            conn.execute(_audit_insert(AuditAction.USER_PASSWORD, actor, source,
                                       {"username": username, "temporary": temporary, **detail}))
        return self._known_user(username)

    def _rehash(self, username: str, old_hash: str, password: str) -> str:
        """Replace a hash made with weaker scrypt parameters after a successful login (the password is
        known only then); returns the hash now stored. Skipped if the password changed meanwhile."""
        new_hash = _hash_password(password)
        with self.engine.begin() as conn:
            done = conn.execute(update(User).where(User.username == username, User.password_hash == old_hash)
                                .values(password_hash=new_hash)).rowcount
        return new_hash if done else old_hash

    # ------------------------------------------------------------------------------------ tokens
    def issue_token(self, username: str, name: str | None = None, *,
                    expires_in: timedelta | None = DEFAULT_TOKEN_TTL, replace: bool = False,
                    actor: str | None = None, source: str | None = None) -> IssuedToken:
        """A new API token for ``username`` (the plaintext, shown once, and its record); only its hash
        is stored. It expires ``expires_in`` from now (at most MAX_TOKEN_TTL); ``None`` (never) only
        for service accounts, whose token the ward replaces at every start.

        ``replace=True`` revokes the user's earlier tokens of the same ``name`` in the same transaction,
        so exactly one of them is valid (the ward's dashboard token is replaced at every start).
        Audited: ``token.create`` (and ``token.revoke`` for replaced ones), never with the token."""
        if name is not None and (len(name) > 64 or not name.isprintable()):
            raise StoreError(f"bad token name {name!r}: at most 64 printable characters")
        user = self._known_user(username)
        if user.disabled:
            raise StoreError(f"user {username!r} is disabled: no new tokens")
        now = datetime.now(timezone.utc)
        expires_at = _token_expiry(expires_in, user, now)
        actor, source = self._who(actor, source)
        token = "wt_" + secrets.token_urlsafe(32)
        with self.engine.begin() as conn:  # writes only (see create_user)
            if replace:
                same_name = ApiToken.name.is_(None) if name is None else ApiToken.name == name
                old = list(conn.execute(update(ApiToken).where(ApiToken.user_id == user.id, same_name,
                                                               ApiToken.revoked.is_(False))
                                        .values(revoked=True, revoked_at=now).returning(ApiToken.id)).scalars())
                if old:
                    conn.execute(_audit_insert(AuditAction.TOKEN_REVOKE, actor, source,
                                               {"token_ids": sorted(old), "username": username, "name": name,
                                                "reason": "replaced"}, at=now))
            token_id = conn.execute(insert(ApiToken).values(
                user_id=user.id, token_hash=_token_hash(token), name=name, created_at=now, revoked=False,
                expires_at=expires_at).returning(ApiToken.id)).scalar_one()
            conn.execute(_audit_insert(AuditAction.TOKEN_CREATE, actor, source,
                                       {"token_id": token_id, "username": username, "name": name,
                                        "expires_at": expires_at.isoformat() if expires_at else None}, at=now))
        return IssuedToken(token, TokenRecord(token_id, username, name, now, expires_at, None, False, None))

    def create_token(self, username: str, name: str | None = None, *,
                     expires_in: timedelta | None = DEFAULT_TOKEN_TTL, replace: bool = False,
                     actor: str | None = None, source: str | None = None) -> str:
        """:meth:`issue_token`, returning only the plaintext token."""
        return self.issue_token(username, name, expires_in=expires_in, replace=replace, actor=actor,
                                source=source).token

    def check_token(self, token: str, now: datetime | None = None) -> TokenCheck:
        """What a presented token is: its user when it may be used now, else why not (unknown, revoked,
        expired, user disabled). One indexed read, plus a write of ``last_used_at`` at most every
        TOKEN_TOUCH_S per token."""
        now = _utc(now, "now") if now else datetime.now(timezone.utc)
        with self.engine.connect() as conn:
            row = conn.execute(select(ApiToken.id, ApiToken.revoked, ApiToken.expires_at, ApiToken.last_used_at,
                                      *_USER_COLUMNS).join(User, ApiToken.user_id == User.id)
                               .where(ApiToken.token_hash == _token_hash(token))).first()
        if row is None:
            return TokenCheck(None, refusal="unknown")
        token_id, revoked, expires_at, last_used = row[:4]
        user = UserRecord(*row[4:])
        refusal = ("revoked" if revoked else "expired" if expires_at is not None and expires_at <= now
                   else "user disabled" if user.disabled else None)
        if refusal is not None:
            return TokenCheck(None, token_id, user.username, refusal, expires_at)
        if last_used is None or (now - last_used).total_seconds() >= TOKEN_TOUCH_S:
            self._touch_token(token_id, now)
        return TokenCheck(user, token_id, user.username, None, expires_at)

    def _touch_token(self, token_id: int, now: datetime) -> None:
        """Record a token's use; best effort (a busy or failing write never refuses a valid token)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now))
        except sa_exc.OperationalError:
            pass

    def authenticate_token(self, token: str) -> UserRecord | None:
        """The token's user if it may be used now (see :meth:`check_token` for why not)."""
        return self.check_token(token).user

    def list_tokens(self, username: str | None = None, *, include_revoked: bool = True,
                    limit: int = 1000) -> list[TokenRecord]:
        """Tokens by id (oldest first), of one user or all; never the token or its hash."""
        if not 1 <= limit <= 100_000:
            raise StoreError(f"bad limit {limit}: use 1-100000")
        q = _token_select()
        if username is not None:
            q = q.where(User.id == self._known_user(username).id)
        if not include_revoked:
            q = q.where(ApiToken.revoked.is_(False))
        with self.engine.connect() as conn:
            return [TokenRecord(*r) for r in conn.execute(q.order_by(ApiToken.id).limit(limit))]

    def get_token(self, token_id: int) -> TokenRecord:
        with self.engine.connect() as conn:
            row = conn.execute(_token_select().where(ApiToken.id == token_id)).first()
        if row is None:
            raise StoreError(f"unknown token id {token_id}: see `ward users tokens`")
        return TokenRecord(*row)

    def revoke_token(self, token_id: int, *, actor: str | None = None, source: str | None = None) -> bool:
        """Revoke a token by its id (``ward users tokens``); no plaintext needed. True if it was revoked
        now (audited ``token.revoke``), False if it already was."""
        if isinstance(token_id, bool) or not isinstance(token_id, int):
            raise StoreError(f"revoke_token takes the token's id (an integer, see `ward users tokens`), "
                             f"not {type(token_id).__name__}")
        rec = self.get_token(token_id)
        if rec.revoked:
            return False
        actor, source = self._who(actor, source)
        now = datetime.now(timezone.utc)
        with self.engine.begin() as conn:
            n = conn.execute(update(ApiToken).where(ApiToken.id == token_id, ApiToken.revoked.is_(False))
                             .values(revoked=True, revoked_at=now)).rowcount
            if n:
                conn.execute(_audit_insert(AuditAction.TOKEN_REVOKE, actor, source,
                                           {"token_ids": [token_id], "username": rec.username, "name": rec.name,
                                            "reason": "revoked"}, at=now))
        return n == 1

    # ------------------------------------------------------------------------------------- audit
    def _who(self, actor: str | None, source: str | None) -> tuple[str, str]:
        """The actor and source of a change: as given, else this store's (see ``Store(actor=...)``)."""
        return actor or self.actor, source or self.source

    @staticmethod
    def _check_action(action: AuditAction | str) -> AuditAction:
        try:
            return check_action(action)
        except ValueError as exc:
            raise StoreError(str(exc)) from None

    def audit(self, action: AuditAction | str, *, user: str | None = None, detail: Mapping[str, Any] | None = None,
              source: str | None = None, at: datetime | None = None) -> None:
        """Write one audit row. ``action`` must be an :class:`~ward.store.audit.AuditAction`; ``user``
        is the actor. A row with neither ``user`` nor ``source`` is the store's own doing (e.g. a
        retention run) and gets this store's actor and source."""
        act = self._check_action(action)
        if user is None and source is None:
            user, source = self.actor, self.source
        at = _utc(at, "at") if at else datetime.now(timezone.utc)
        with self.engine.begin() as conn:
            conn.execute(_audit_insert(act, user, source, detail, at=at))

    def audit_log(self, since: datetime | None = None, until: datetime | None = None,
                  user: str | None = None, limit: int = 100, offset: int = 0, *,
                  action: str | Sequence[str] | None = None, source: str | None = None) -> list[AuditRecord]:
        """Audit rows in [since, until), newest first, at most ``limit`` (LIMIT in SQL; max
        MAX_AUDIT_LIMIT), filtered by actor, action(s) (known actions only) and source."""
        since, until = _range(since, until)
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
            q = q.where(AuditLog.action.in_([self._check_action(a).value for a in actions]))
        if source is not None:
            q = q.where(AuditLog.source == source)
        with self.engine.connect() as conn:
            rows = conn.execute(q.order_by(AuditLog.at.desc(), AuditLog.id.desc()).limit(limit).offset(offset))
            return [AuditRecord(*r) for r in rows]

    # --------------------------------------------------------------------------------- retention
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
        now = _utc(now, "now") if now else datetime.now(timezone.utc)
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
        now = _utc(now, "now") if now else datetime.now(timezone.utc)
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


@dataclass(frozen=True, slots=True)
class _Purge:
    """One table's share of a retention run: rows matching ``conds`` go, oldest ``col`` first."""

    name: str
    table: Any
    col: Any
    conds: tuple[Any, ...]
    bed_col: Any = None


_L = BedLatest.__table__
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


__all__ = ["AckRecord", "AlarmRecord", "AuditRecord", "BedRecord", "BedStats", "HealthEvent", "HistoryPoint", "LatestRecord",
           "MAX_HISTORY_LIMIT", "RESOLUTIONS", "RetentionPolicy", "Sample", "StayRecord", "Store", "StoreError",
           "UnknownBedError",
           "UserRecord", "WriteResult", "ALARM_STATES", "DEFAULT_TOKEN_TTL", "MAX_TOKEN_TTL", "IssuedToken",
           "PasswordLogin", "TokenCheck", "TokenRecord"]
