"""The store's vocabulary: the records its methods return, the errors they raise, the input checks.

Every read of :class:`~ward.store.repository.Store` returns plain frozen dataclasses from here (never
ORM objects bound to a session), so callers in other processes or threads can keep them. Bad input
raises :class:`StoreError` (a ValueError) whose message says what was wrong and what to do; the
``check_*`` functions are the one place those messages are written, shared by every part of the
store (and by the spill journal, which validates entries before it queues them).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

from ward.store.types import as_utc


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


# ------------------------------------------------------------------------------------ input checks
def check_choice(value: str, allowed: Sequence[str], what: str) -> str:
    """``value`` if it is one of ``allowed`` (an enum column's values), else StoreError naming them."""
    if value not in allowed:
        raise StoreError(f"bad {what} {value!r}: expected one of {', '.join(allowed)}")
    return value


def check_utc(value: datetime, what: str) -> datetime:
    """``value`` in UTC; a naive or non-datetime value is a StoreError (see ward.store.types)."""
    try:
        return as_utc(value, what)
    except ValueError as exc:
        raise StoreError(str(exc)) from None


def check_range(since: datetime | None, until: datetime | None) -> tuple[datetime | None, datetime | None]:
    """A [since, until) filter in UTC (either end may be open); an inverted range is a StoreError."""
    s = check_utc(since, "since") if since is not None else None
    u = check_utc(until, "until") if until is not None else None
    if s is not None and u is not None and s > u:
        raise StoreError(f"inverted time range: since {s.isoformat()} is after until {u.isoformat()}")
    return s, u


def check_finite(x: Any, what: str, lo: float | None = None, hi: float | None = None) -> float:
    """``x`` as a finite float within [lo, hi] (either bound optional), else StoreError."""
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

