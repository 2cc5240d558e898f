"""Retention benchmark: how long a run takes, and how long the 1 s sample writer waits meanwhile.

Loads HOURS x BEDS x 1 sample/s that are older than raw_samples_days (default 6 h x 64 beds = 1.38 M
rows: what one run deletes at steady state with interval_h 6), then applies the retention policy
while a writer thread stores one row per bed every second, as the coordinator's flush does. Per
engine and per --batches value (rows per DELETE transaction; 0 = everything in one transaction, the
behaviour before batching) it reports the run's time and the writer's worst and p99 write times and
failed writes (SQLite: "database is locked" once a write waits longer than busy_timeout, 5 s).

Usage:
  source scripts/services.sh && start_test_services     # for PostgreSQL, or pass --pg-url
  .venv/bin/python benchmarks/bench_retention.py [--hours 6] [--beds 64] [--batches 5000,0]
                   [--engines sqlite,postgres] [--json docs/results/bench_retention.json]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._util import add_json_option, report  # noqa: E402
from ward.config import RetentionPolicy  # noqa: E402
from ward.store.records import Sample  # noqa: E402
from ward.store.repository import Store  # noqa: E402
from ward.store.retention import SQLITE_RETENTION_PAUSE_S  # noqa: E402

UTC = timezone.utc
POLICY = RetentionPolicy()  # the ward's defaults: raw samples 30 days


def load_old(store: Store, beds: list[str], hours: float, now: datetime) -> int:
    """HOURS of 1 s samples per bed, ending 40 days ago (all past raw_samples_days)."""
    start = now - timedelta(days=40, hours=hours)
    n = int(hours * 3600)
    for lo in range(0, n, 60):  # one minute of all beds per call
        store.write_samples([Sample(b, start + timedelta(seconds=s), 0.1) for s in range(lo, min(n, lo + 60))
                             for b in beds])
    return n * len(beds)


class Writer(threading.Thread):
    """One row per bed every second through Store.write_samples (the coordinator's flush)."""

    def __init__(self, store: Store, beds: list[str]) -> None:
        super().__init__(daemon=True)
        self.store, self.beds = store, beds
        self.stop = threading.Event()
        self.times: list[float] = []
        self.failures = 0

    def run(self) -> None:
        while not self.stop.wait(1.0):
            t = datetime.now(UTC)
            t0 = time.perf_counter()
            try:
                self.store.write_samples([Sample(b, t, 0.2) for b in self.beds])
            except Exception:  # noqa: BLE001 - counted: the coordinator would spill this batch
                self.failures += 1
            self.times.append(time.perf_counter() - t0)


def measure(url: str, engine: str, n_beds: int, hours: float, batch: int) -> dict[str, Any]:
    store = Store(url)
    beds = [f"bed-{i:02d}" for i in range(n_beds)]
    for b in beds:
        store.upsert_bed(b)
    now = datetime.now(UTC)
    t0 = time.perf_counter()
    loaded = load_old(store, beds, hours, now)
    load_s = time.perf_counter() - t0
    writer = Writer(store, beds)
    writer.start()
    time.sleep(2.5)  # a few writes before the run
    t0 = time.perf_counter()
    deleted = store.apply_retention(POLICY, batch=batch if batch > 0 else 10**12)  # default pause between batches
    run_s = time.perf_counter() - t0
    time.sleep(1.5)
    writer.stop.set()
    writer.join()
    store.close()
    ms = np.asarray(writer.times) * 1000
    pause = (SQLITE_RETENTION_PAUSE_S if engine == "sqlite" else 0.0) if batch > 0 else None
    return {"engine": engine, "batch": batch or "one txn", "pause_s": pause,
            "rows_deleted": deleted["probability_samples"],
            "loaded": loaded, "load_s": round(load_s, 1), "retention_s": round(run_s, 2),
            "rows_per_s": round(deleted["probability_samples"] / run_s), "writes": len(ms),
            "write_max_ms": round(float(ms.max()), 1), "write_p99_ms": round(float(np.quantile(ms, 0.99)), 1),
            "write_failures": writer.failures}


def databases(engine: str, pg_url: str | None) -> Iterator[str]:
    """A fresh database URL per call (a temp SQLite file, or PostgreSQL database ward_bench_retention)."""
    if engine == "sqlite":
        with tempfile.TemporaryDirectory(prefix="ward-bench-retention-") as d:
            yield f"sqlite:///{Path(d) / 'bench.db'}"
        return
    if not pg_url:
        sys.exit("postgres: no --pg-url and WARD_TEST_PG_URL unset (source scripts/services.sh && "
                 "start_test_services), or use --engines sqlite")
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.exec_driver_sql("DROP DATABASE IF EXISTS ward_bench_retention WITH (FORCE)")
        c.exec_driver_sql("CREATE DATABASE ward_bench_retention")
    try:
        yield sa.make_url(pg_url).set(database="ward_bench_retention").render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.exec_driver_sql("DROP DATABASE IF EXISTS ward_bench_retention WITH (FORCE)")
        admin.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, default=6.0, help="hours of expired samples per bed")
    ap.add_argument("--beds", type=int, default=64)
    ap.add_argument("--batches", default="5000,0", help="rows per DELETE transaction; 0 = one transaction")
    ap.add_argument("--engines", default="sqlite,postgres")
    ap.add_argument("--pg-url", default=os.environ.get("WARD_TEST_PG_URL"))
    add_json_option(ap, "bench_retention")
    args = ap.parse_args()
    if args.hours <= 0 or args.beds < 1:
        ap.error("--hours must be > 0 and --beds >= 1")
    batches = [int(b) for b in args.batches.split(",")]
    rows = []
    for engine in [e.strip() for e in args.engines.split(",") if e.strip()]:
        if engine not in ("sqlite", "postgres"):
            ap.error(f"unknown engine {engine!r}: use sqlite and/or postgres")
        for batch in batches:
            for url in databases(engine, args.pg_url):
                rows.append(measure(url, engine, args.beds, args.hours, batch))
                print(rows[-1], flush=True)
    report("bench_retention", rows, {"hours": args.hours, "beds": args.beds}, json_path=args.json)


if __name__ == "__main__":
    main()
