"""Probability samples: the 1 s model outputs of every bed, their minute rollups and newest value.

The hot path of the store (every bed writes a batch a second). A write is idempotent: a sample is
keyed by (bed, t), and only the rows actually inserted are folded into the minute rollups and the
per-bed latest row, so a replayed batch (the spill journal's) never double-counts. PostgreSQL does
it in one statement (unnest + CTEs); SQLite on the raw DB-API connection, where SQLAlchemy's
per-call machinery cost more than the insert itself. Reads: the newest sample per bed (one small
table) and the timeline at 1 s / 1 min / 1 h resolution (rollups, so an hour costs 60 rows).
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Iterable, Literal, Mapping, Sequence

from sqlalchemy import BigInteger, Engine, func, select, text, type_coerce
from sqlalchemy import exc as sa_exc

from ward.store.beds import BedStore
from ward.store.models import Bed, BedLatest, MinuteRollup, ModelVersion, ProbabilitySample
from ward.store.records import (HistoryPoint, LatestRecord, Sample, StoreError, WriteResult, check_choice,
                                check_range, check_utc)
from ward.store.types import EPOCH, UTCDateTime

Resolution = Literal["1s", "1m", "1h"]
RESOLUTIONS: tuple[str, ...] = ("1s", "1m", "1h")
_MINUTE_US = 60_000_000
_HOUR_US = 3_600_000_000
_ONE_US = timedelta(microseconds=1)
_CHUNK = 500  # rows per INSERT statement (well under SQLite's bound-parameter limit)
MAX_HISTORY_LIMIT = 1_000_000  # points one history() call may be asked for

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
_B = Bed.__table__


class SampleStore(BedStore):
    """Model versions and probability samples (part of :class:`~ward.store.repository.Store`)."""

    def __init__(self, engine: Engine, **who: str) -> None:
        super().__init__(engine, **who)
        self._model_ids: dict[str, int] = {}  # model version name -> id

    def register_model_version(self, name: str, description: str | None = None) -> int:
        """The id of model version ``name``, registered when new (samples carry it as a small int)."""
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
        bed_ids, model_ids = self._bed_ids, self._model_ids  # the caches of BedStore.bed_id and the above
        for key in {s.bed for s in samples if s.bed not in bed_ids}:
            self.bed_id(key)
        for name in {s.model_version for s in samples if s.model_version and s.model_version not in model_ids}:
            self.register_model_version(name)  # type: ignore[arg-type]
        sqlite = self.dialect == "sqlite"
        cols: tuple[list[Any], ...] = ([], [], [], [], [], [])
        b_, t_, p_, a_, q_, m_ = cols
        try:
            for s in samples:
                t = s.t
                if t.tzinfo is not timezone.utc:
                    t = check_utc(t, "sample time")
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
        check_choice(resolution, RESOLUTIONS, "resolution")
        if limit is not None and not 1 <= limit <= MAX_HISTORY_LIMIT:
            raise StoreError(f"bad history limit {limit}: use 1..{MAX_HISTORY_LIMIT} (or None for no cap, "
                             "trusted callers only)")
        bed_id = self.bed_id(bed)
        since, until = check_range(since, until or datetime.now(timezone.utc))
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

