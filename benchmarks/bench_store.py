"""Storage benchmark: a ward's history in SQLite and PostgreSQL, then ingest rate and query latency.

Loads DAYS x BEDS x 1 sample/s (default 7 x 64 = 38.7 M samples) plus their minute rollups and
~2,000 alarms (scaled with days x beds) with a bulk loader (sqlite3 executemany / PostgreSQL COPY),
then measures on that data:
  * sustained ingest through Store.write_samples with realistic 1 s batches (one row per bed),
  * alarms for one bed over 30 days (target < 50 ms), 24 h timeline at 1-minute resolution
    (< 200 ms), ward-wide alarm list for a day (< 100 ms), plus 1 h / 1 s timelines and stats.

Usage:
  source scripts/services.sh && start_test_services     # or pass --pg-url for your own server
  .venv/bin/python benchmarks/bench_store.py [--days 7] [--beds 64] [--engines sqlite,postgres]
PostgreSQL: a separate database "ward_bench" is created on the server of --pg-url (default
$WARD_TEST_PG_URL) and dropped afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._util import report  # noqa: E402
from ward.store.records import Sample  # noqa: E402
from ward.store.repository import Store  # noqa: E402
from ward.store.types import to_micros  # noqa: E402

UTC = timezone.utc
START = datetime(2026, 1, 1, tzinfo=UTC)
TIERS = np.array(["alarm", "review", "technical"])
VERDICTS = np.array(["true", "false", "unsure"])


def bed_signal(rng: np.random.Generator, n: int) -> np.ndarray:
    """A plausible risk trace: low noise plus occasional smooth bumps."""
    p = np.clip(rng.beta(1.2, 12.0, n), 0, 1)
    for c in rng.integers(0, n, max(1, n // 20_000)):
        w = int(rng.integers(20, 120))
        lo, hi = max(0, c - w), min(n, c + w)
        p[lo:hi] = np.maximum(p[lo:hi], rng.uniform(0.6, 0.99) * np.hanning(hi - lo))
    return p


def minute_rollups(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m = p.reshape(-1, 60)
    return m.max(1), m.sum(1), np.full(m.shape[0], 60, dtype=np.int64)


def make_alarms(rng: np.random.Generator, days: int, beds: int, bed_ids: list[int]) -> list[dict[str, Any]]:
    n = max(beds, round(2000 * days / 7 * beds / 64))
    secs = rng.integers(0, days * 86400 - 600, n)
    out = []
    for i in range(n):
        start = START + timedelta(seconds=int(secs[i]))
        acked = rng.random() < 0.7
        out.append({"bed_id": bed_ids[i % beds], "tier": str(rng.choice(TIERS, p=[0.6, 0.3, 0.1])),
                    "started_at": start, "ended_at": start + timedelta(seconds=int(rng.integers(10, 300))),
                    "peak": float(rng.uniform(0.5, 1.0)), "state": "ended", "reason": "bench",
                    "acknowledged": acked, "verdict": str(rng.choice(VERDICTS)) if acked else None})
    return out


# ------------------------------------------------------------------------------------------ loaders
def day_block(bed_ids: list[int], day: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Probability, accumulator and pose quality of every bed for one day, shape (beds, 86400)."""
    p = np.empty((len(bed_ids), 86400))
    q = np.empty_like(p)
    for k in range(len(bed_ids)):
        rng = np.random.default_rng((seed, day, k))
        p[k] = bed_signal(rng, 86400)
        q[k] = rng.uniform(0.5, 1.0, 86400)
    return p, np.cumsum(p, axis=1) % 5.0, q


def load_sqlite(store: Store, bed_ids: list[int], days: int, seed: int) -> None:
    """Rows in primary-key order: samples time-major, rollups bed-major."""
    b = np.asarray(bed_ids, dtype=np.int64)
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        for day in range(days):
            p, acc, q = day_block(bed_ids, day, seed)
            t_us = to_micros(START) + (day * 86400 + np.arange(86400, dtype=np.int64)) * 1_000_000
            cur.execute("BEGIN")
            cur.executemany("INSERT INTO probability_samples (t, bed_id, probability, accumulator, pose_quality, "
                            "model_version_id) VALUES (?, ?, ?, ?, ?, NULL)",
                            zip(np.repeat(t_us, len(b)).tolist(), np.tile(b, 86400).tolist(), p.T.ravel().tolist(),
                                acc.T.ravel().tolist(), q.T.ravel().tolist()))
            for k, bid in enumerate(bed_ids):
                mx, sm, cnt = minute_rollups(p[k])
                cur.executemany("INSERT INTO minute_rollups (bed_id, minute, p_max, p_sum, n) VALUES (?, ?, ?, ?, ?)",
                                zip([bid] * len(mx), t_us[::60].tolist(), mx.tolist(), sm.tolist(), cnt.tolist()))
            cur.execute("COMMIT")
            print(f"  sqlite: day {day + 1}/{days} loaded", flush=True)
    finally:
        raw.close()


def load_postgres(store: Store, bed_ids: list[int], days: int, seed: int) -> None:
    import pandas as pd

    b = np.asarray(bed_ids, dtype=np.int64)
    raw = store.engine.raw_connection()
    try:
        drv = raw.driver_connection
        for day in range(days):
            p, acc, q = day_block(bed_ids, day, seed)
            day0 = np.datetime64(START.replace(tzinfo=None), "s") + day * 86400
            ts = np.char.add(np.datetime_as_string(day0 + np.arange(86400), unit="s"), "+00")
            samples = pd.DataFrame({"t": np.repeat(ts, len(b)), "bed_id": np.tile(b, 86400),
                                    "p": p.T.ravel(), "a": acc.T.ravel(), "q": q.T.ravel()})
            rollups = pd.DataFrame({"bed_id": np.repeat(b, 1440), "minute": np.tile(ts[::60], len(b)),
                                    "mx": p.reshape(len(b), 1440, 60).max(2).ravel(),
                                    "sm": p.reshape(len(b), 1440, 60).sum(2).ravel(), "n": 60})
            with drv.cursor() as cur:
                for table, cols, df in (("probability_samples", "t, bed_id, probability, accumulator, pose_quality",
                                         samples),
                                        ("minute_rollups", "bed_id, minute, p_max, p_sum, n", rollups)):
                    with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as cp:
                        for i in range(0, len(df), 500_000):
                            cp.write(df.iloc[i:i + 500_000].to_csv(sep="\t", header=False, index=False,
                                                                   float_format="%.9g"))
            drv.commit()
            print(f"  postgres: day {day + 1}/{days} loaded", flush=True)
        with drv.cursor() as cur:
            cur.execute("ANALYZE")
        drv.commit()
    finally:
        raw.close()


def load_alarms(store: Store, alarms: list[dict[str, Any]]) -> None:
    from ward.store.models import AckEvent, Alarm

    with store.engine.begin() as conn:
        ids = conn.execute(sa.insert(Alarm.__table__).returning(Alarm.__table__.c.id, sort_by_parameter_order=True), alarms).scalars().all()
        acks = [{"alarm_id": i, "username": "bench", "at": a["ended_at"], "verdict": a["verdict"], "note": None,
                 "source": "bench"} for i, a in zip(ids, alarms) if a["verdict"]]
        if acks:
            conn.execute(sa.insert(AckEvent), acks)


# ---------------------------------------------------------------------------------------- measuring
def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    fn()  # warm-up (connection, statement caches)
    ts, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        ts.append((time.perf_counter() - t) * 1000)
    ts.sort()
    return statistics.median(ts), ts[min(len(ts) - 1, int(0.95 * len(ts)))], out


def ingest(store: Store, beds: list[str], start: datetime, seconds: float) -> tuple[float, int]:
    """Sustained Store.write_samples with one 64-row (one per bed) batch per simulated second."""
    rng = np.random.default_rng(1)
    k, rows, t0 = 0, 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        t = start + timedelta(seconds=k)
        p = rng.random(len(beds))
        rows += store.write_samples([Sample(b, t, float(p[i]), 0.1, 0.9, "vsvig-bench")
                                     for i, b in enumerate(beds)]).inserted
        k += 1
    return rows / (time.perf_counter() - t0), rows


def ingest_reference(store: Store, bed_ids: list[int], start: datetime, seconds: float) -> float:
    """Floor for comparison, measured side by side: the bare driver inserting the same 64-row
    batches (one commit each) with no validation, no idempotence check and no rollups."""
    rng = np.random.default_rng(2)
    raw = store.engine.raw_connection()
    drv = raw.driver_connection
    k, rows, t0 = 0, 0, time.perf_counter()
    try:
        cur = drv.cursor()
        while time.perf_counter() - t0 < seconds:
            p = rng.random(len(bed_ids)).tolist()
            if store.dialect == "sqlite":
                t = to_micros(start + timedelta(seconds=k))
                cur.execute("BEGIN")
                cur.executemany("INSERT INTO probability_samples (bed_id, t, probability, accumulator) "
                                "VALUES (?, ?, ?, 0)", [(b, t, p[i]) for i, b in enumerate(bed_ids)])
                cur.execute("COMMIT")
            else:
                t = start + timedelta(seconds=k)
                cur.executemany("INSERT INTO probability_samples (bed_id, t, probability, accumulator) "
                                "VALUES (%s, %s, %s, 0)", [(b, t, p[i]) for i, b in enumerate(bed_ids)])
                drv.commit()
            rows += len(bed_ids)
            k += 1
    finally:
        raw.close()
    return rows / (time.perf_counter() - t0)


def run_engine(engine: str, url: str, days: int, n_beds: int, seed: int, ingest_s: float,
               repeat: int) -> list[dict[str, Any]]:
    store = Store(url)
    beds = [f"bed-{i:02d}" for i in range(1, n_beds + 1)]
    for b in beds:
        store.upsert_bed(b, ward="bench")
    bed_ids = [store.bed_id(b) for b in beds]
    n_samples = days * 86400 * n_beds
    print(f"[{engine}] loading {n_samples:,} samples ...", flush=True)
    t = time.perf_counter()
    (load_sqlite if engine == "sqlite" else load_postgres)(store, bed_ids, days, seed)
    alarms = make_alarms(np.random.default_rng(seed), days, n_beds, bed_ids)
    load_alarms(store, alarms)
    load_s = time.perf_counter() - t
    rows: list[dict[str, Any]] = [{"engine": engine, "measure": "bulk load", "value": round(n_samples / load_s),
                                   "unit": "samples/s", "target": "", "ok": "",
                                   "note": f"{n_samples:,} samples + {len(alarms)} alarms in {load_s:.0f} s"}]

    end = START + timedelta(days=days)
    rate, n = ingest(store, beds, end, ingest_s)
    rows.append({"engine": engine, "measure": f"ingest Store.write_samples ({len(beds)}-row 1 s batches)",
                 "value": round(rate), "unit": "samples/s", "target": ">= 20000", "ok": rate >= 20_000,
                 "note": f"{n:,} rows in {ingest_s:.0f} s, table of {n_samples:,}"})
    ref = ingest_reference(store, bed_ids, end + timedelta(days=2), ingest_s)
    rows.append({"engine": engine, "measure": "reference: bare driver INSERT, same batches", "value": round(ref),
                 "unit": "samples/s", "target": "", "ok": "",
                 "note": f"Store path = {rate / ref:.0%} of this floor, same run"})
    batch = [Sample(beds[0], end + timedelta(days=1, seconds=i), 0.5) for i in range(5000)]
    t = time.perf_counter()
    store.write_samples(batch)
    big = 5000 / (time.perf_counter() - t)
    rows.append({"engine": engine, "measure": "ingest one 5000-row batch (spill replay)", "value": round(big),
                 "unit": "samples/s", "target": "", "ok": "", "note": ""})

    bed = beds[len(beds) // 2]
    day = START + timedelta(days=days // 2)
    queries: list[tuple[str, Callable[[], Any], float | None]] = [
        ("alarms one bed, 30 days", lambda: store.list_alarms(bed=bed, since=end - timedelta(days=30), until=end,
                                                                limit=1000), 50.0),
        ("24 h timeline at 1 min", lambda: store.history(bed, day, day + timedelta(hours=24), "1m"), 200.0),
        ("ward-wide alarms, one day", lambda: store.list_alarms(since=day, until=day + timedelta(days=1),
                                                                  limit=1000), 100.0),
        ("7 d timeline at 1 h", lambda: store.history(bed, START, end, "1h"), None),
        ("1 h timeline at 1 s", lambda: store.history(bed, day, day + timedelta(hours=1), "1s"), None),
        ("stats all beds, 24 h", lambda: store.stats(day, day + timedelta(days=1)), None),
    ]
    for name, fn, target in queries:
        med, p95, out = timed(fn, repeat)
        rows.append({"engine": engine, "measure": name, "value": round(med, 2), "unit": "ms (median)",
                     "target": f"< {target:g} ms" if target else "", "ok": (p95 < target) if target else "",
                     "note": f"p95 {p95:.2f} ms, {len(out)} rows"})
    store.close()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--beds", type=int, default=64)
    ap.add_argument("--engines", default="sqlite,postgres")
    ap.add_argument("--pg-url", default=os.environ.get("WARD_TEST_PG_URL"))
    ap.add_argument("--sqlite-dir", default=None, help="where the SQLite file goes (default: a temp dir)")
    ap.add_argument("--ingest-seconds", type=float, default=15.0)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--keep", action="store_true", help="keep the benchmark databases")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", "--json-out", dest="json", default=None,
                    help="result JSON path (default bench_results/bench_store.json)")
    args = ap.parse_args()
    if args.days < 1 or args.beds < 1:
        ap.error("--days and --beds must be >= 1")
    try:
        import torch

        torch.set_num_threads(2)
    except ImportError:
        pass
    rows: list[dict[str, Any]] = []
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    for engine in engines:
        if engine == "sqlite":
            d = Path(args.sqlite_dir or tempfile.mkdtemp(prefix="ward-bench-"))
            d.mkdir(parents=True, exist_ok=True)
            db = d / "bench.db"
            for f in d.glob("bench.db*"):
                f.unlink()
            rows += run_engine("sqlite", f"sqlite:///{db}", args.days, args.beds, args.seed,
                               args.ingest_seconds, args.repeat)
            print(f"  sqlite file size: {db.stat().st_size / 1e9:.2f} GB")
            if not args.keep:
                for f in d.glob("bench.db*"):
                    f.unlink()
                if not args.sqlite_dir:
                    d.rmdir()
        elif engine == "postgres":
            if not args.pg_url:
                sys.exit("postgres: no --pg-url and WARD_TEST_PG_URL unset (source scripts/services.sh && "
                         "start_test_services), or use --engines sqlite")
            admin = sa.create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as c:
                c.exec_driver_sql("DROP DATABASE IF EXISTS ward_bench")
                c.exec_driver_sql("CREATE DATABASE ward_bench")
            url = sa.make_url(args.pg_url).set(database="ward_bench").render_as_string(hide_password=False)
            try:
                rows += run_engine("postgres", url, args.days, args.beds, args.seed, args.ingest_seconds,
                                   args.repeat)
                with sa.create_engine(url).connect() as c:
                    size = c.exec_driver_sql("SELECT pg_database_size('ward_bench')").scalar_one()
                print(f"  postgres database size: {size / 1e9:.2f} GB")
            finally:
                if not args.keep:
                    with admin.connect() as c:
                        c.exec_driver_sql("DROP DATABASE IF EXISTS ward_bench WITH (FORCE)")
        else:
            ap.error(f"unknown engine {engine!r}: use sqlite and/or postgres")
    report("bench_store", rows, {"days": args.days, "beds": args.beds, "samples": args.days * 86400 * args.beds,
                                 "loadavg_end": os.getloadavg()}, json_path=args.json)


if __name__ == "__main__":
    main()
