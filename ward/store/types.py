"""Column types shared by the models: UTC timestamps that behave the same on SQLite and PostgreSQL.

Policy (documented in the README section "Storage and history"): every timestamp entering the store must be
timezone-aware. Naive datetimes are rejected with ValueError (a naive "local" time from a bedside PC
is exactly the bug we want to surface, not guess at); aware times in any zone are converted to UTC.
Values read back are always aware UTC datetimes.

On PostgreSQL the column is ``timestamptz``. On SQLite it is an INTEGER of microseconds since the
Unix epoch: compact (the samples table holds tens of millions of rows), exactly ordered, and cheap to
bucket into minutes/hours with integer division.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import BigInteger, DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US = timedelta(microseconds=1)


def as_utc(value: datetime, what: str = "timestamp") -> datetime:
    """Return ``value`` converted to UTC; reject naive datetimes with a message saying how to fix it."""
    if not isinstance(value, datetime):
        raise ValueError(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError(f"{what} {value.isoformat()} is naive: pass a timezone-aware datetime "
                         "(e.g. datetime.now(timezone.utc) or .replace(tzinfo=timezone.utc))")
    return value.astimezone(timezone.utc)


def to_micros(value: datetime) -> int:
    """UTC microseconds since the epoch (exact integer arithmetic, no float rounding)."""
    return (as_utc(value) - EPOCH) // _US


def from_micros(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=int(value))


class UTCDateTime(TypeDecorator[datetime]):
    """Aware-UTC datetime: timestamptz on PostgreSQL, int64 microseconds on SQLite."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return to_micros(value)
        return as_utc(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return from_micros(value)
        if value.tzinfo is None:  # defensive: timestamptz always comes back aware from psycopg
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)
