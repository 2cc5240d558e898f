"""Overview render time for a 64-bed ward (issue 8 target: < 1 s per refresh).

Seeds a temporary SQLite ward (64 beds, 1 h of 1 Hz samples each = 230 400 samples, alarms, health)
plus a stored alarm history (default: 2 years of 20 items per bed and day, i.e. the 730-day alarm
retention: clinical and technical alarms acknowledged, review items never acknowledged, one
clinical alarm in 997 left unacknowledged), then times one overview refresh three ways, side by side:
  * data+html: ward.dashboard.data.build_overview + view.overview_html (what the fragment does);
  * apptest:   a full Streamlit script run of the overview page through AppTest (login state set);
  * reference: the same tiles assembled naively from the public Store API, one set of queries per
               bed (history 1s + unacknowledged list_alarms + health_events), to show what the
               batched, indexed queries buy.

    .venv/bin/python benchmarks/bench_dashboard.py [--beds 64] [--minutes 60] [--repeats 15]
        [--history-days 730] [--items-per-bed-day 20]
"""

from __future__ import annotations

import argparse
import atexit
import itertools
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch  # noqa: E402
from sqlalchemy import insert, select  # noqa: E402

from _util import add_json_option, report  # noqa: E402
from ward.dashboard.data import build_overview  # noqa: E402
from ward.dashboard.demo import DEMO_USERS, seed_demo  # noqa: E402
from ward.dashboard.view import Tile, overview_html  # noqa: E402
from ward.store.models import Alarm, Bed  # noqa: E402
from ward.store.queries import UnackedAlarms  # noqa: E402
from ward.store.records import AlarmRecord  # noqa: E402
from ward.store.repository import Store  # noqa: E402

# Daily mix of stored alarm items per bed in the history (tier, acknowledged); 20 a day in all.
HISTORY_MIX = (("alarm", True),) * 5 + (("technical", True),) + (("review", False),) * 14


def history_rows(bed_ids: list[int], now: datetime, days: int, per_bed_day: int, unacked_every: int) -> Iterator[dict[str, Any]]:
    """Ended alarm items, ``per_bed_day`` per bed for each of ``days`` days before ``now``, in the
    HISTORY_MIX; every ``unacked_every``-th clinical alarm (a prime: spread over the beds) was never
    acknowledged."""
    slot_s, n, clinical = 86400.0 / max(per_bed_day, 1), 0, 0
    for d in range(1, days + 1):
        for b, bed_id in enumerate(bed_ids):
            for k in range(per_bed_day):
                tier, acked = HISTORY_MIX[k % len(HISTORY_MIX)]
                if tier == "alarm":
                    clinical += 1
                    acked = clinical % unacked_every != 0
                start = now - timedelta(days=d, seconds=k * slot_s + b)
                yield dict(bed_id=bed_id, tier=tier, started_at=start, ended_at=start + timedelta(seconds=40),
                           peak=0.7, state="ended", reason="history", acknowledged=acked,
                           verdict="false" if acked else None, episode_key=f"hist-{n}")
                n += 1


def seed_alarm_history(store: Store, now: datetime, days: int, per_bed_day: int, unacked_every: int = 997,
                       chunk: int = 50_000) -> int:
    """Bulk-insert the alarm history (one INSERT per chunk: the Store's one-alarm-at-a-time API would
    take hours for a million rows). Returns the number of rows inserted."""
    with store.engine.connect() as conn:
        bed_ids = [r[0] for r in conn.execute(select(Bed.id).order_by(Bed.id))]
    n = 0
    rows = history_rows(bed_ids, now, days, per_bed_day, unacked_every)
    with store.engine.begin() as conn:
        while batch := list(itertools.islice(rows, chunk)):
            conn.execute(insert(Alarm.__table__), batch)
            n += len(batch)
    return n


def _summary(alarms: list[AlarmRecord], cutoff: datetime) -> UnackedAlarms | None:
    """The aggregate the batched query computes in SQL, here from a bed's alarm list."""
    if not alarms:
        return None
    last = max(alarms, key=lambda a: a.start)
    return UnackedAlarms(len(alarms), sum(a.state == "active" for a in alarms), sum(a.start <= cutoff for a in alarms),
                         min(a.start for a in alarms), last.id, last.start, last.end)


def naive_tiles(store: Store, now: datetime, window_s: float) -> list[Tile]:
    """The same tiles from the public Store API, one set of queries per bed."""
    tiles, cutoff = [], now - timedelta(seconds=120)
    for b in store.list_beds():
        pts = store.history(b.key, now - timedelta(seconds=window_s), now + timedelta(seconds=1), "1s")
        last = store.history(b.key, now - timedelta(hours=2), now + timedelta(seconds=1), "1s")[-1:]
        unacked = store.list_alarms(bed=b.key, tier="alarm", verdict="none", limit=100_000)
        health = store.health_events(bed=b.key)[-1:]
        tiles.append(Tile(b.key, b.name, last[0].p_max if last else None, last[0].accumulator if last else None,
                          last[0].t if last else None, health[0].state if health else "unknown",
                          alarm=_summary(unacked, cutoff), spark=tuple(p.p_max for p in pts)))
    return tiles


def timed(fn, repeats: int) -> dict[str, float]:
    fn()  # warm-up (SQLite page cache, SQLAlchemy statement cache)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return {"median_ms": 1000 * statistics.median(ts), "p95_ms": 1000 * ts[min(len(ts) - 1, int(0.95 * len(ts)))],
            "max_ms": 1000 * ts[-1]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--beds", type=int, default=64)
    ap.add_argument("--minutes", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--history-days", type=int, default=730, help="days of stored alarm history (0: none)")
    ap.add_argument("--items-per-bed-day", type=int, default=20, help="alarm items per bed and history day")
    add_json_option(ap, "bench_dashboard")
    args = ap.parse_args()
    torch.set_num_threads(2)
    tmp = tempfile.mkdtemp(prefix="bench_dash_")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)  # the 2-year history is ~150 MB
    url = f"sqlite:///{tmp}/ward.db"
    os.environ["WARD_DB_URL"] = url
    store = Store(url)
    now = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    seed_demo(store, now, n_beds=args.beds, minutes=args.minutes)
    seed_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    history_rows = seed_alarm_history(store, now, args.history_days, args.items_per_bed_day)
    history_s = time.perf_counter() - t0
    window = 120.0
    rows = []

    def data_html() -> None:
        ov = build_overview(store, now, stale_after_s=10, spark_window_s=window, escalate_after_s=120)
        overview_html(ov.tiles, now, stale_after_s=10)

    rows.append({"path": "data+html (fragment body)", **timed(data_html, args.repeats)})

    def naive() -> None:
        overview_html(naive_tiles(store, now, window), now, stale_after_s=10)

    rows.append({"path": "reference: per-bed Store API", **timed(naive, max(3, args.repeats // 3))})

    from streamlit.testing.v1 import AppTest

    from ward.dashboard.auth import open_session
    from ward.dashboard.ui import TOKEN_KEY

    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=120)
    at.session_state[TOKEN_KEY] = open_session(store, store.authenticate("watcher", DEMO_USERS["watcher"][0]))
    at.run()
    assert not at.exception, at.exception
    grid = next(m.value for m in at.markdown if "ward-grid" in m.value)
    assert grid.count('class="tile') == args.beds, "overview did not render every bed"
    rows.append({"path": "apptest: full overview page run", **timed(lambda: at.run(), args.repeats)})
    for r in rows:
        r["beds"] = args.beds
        r["target_ms"] = 1000
    report("bench_dashboard", rows, {"samples": args.beds * args.minutes * 60, "seed_s": round(seed_s, 1),
                                     "alarm_history_rows": history_rows, "history_seed_s": round(history_s, 1),
                                     "db": "sqlite (temp file)", "loadavg": os.getloadavg()},
           json_path=args.json)


if __name__ == "__main__":
    main()
