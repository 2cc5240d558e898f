"""A deterministic demo ward in a database: for dashboard tests, screenshots and the benchmark.

Not clinical data: the probabilities are synthetic curves, and the model version is labelled as
trained on simulated data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from ward.store.records import Sample
from ward.store.repository import Store

DEMO_MODEL = "vsvig-sim-demo"
DEMO_MODEL_DESC = "VSViG weights trained on simulated data (ward sim), demo"
DEMO_USERS = {"admin": ("admin-pass-1", "admin"), "nurse": ("nurse-pass-1", "clinician"),
              "watcher": ("watcher-pass-1", "viewer")}


@dataclass(frozen=True)
class DemoWard:
    beds: list[str]
    alarm_id: int        # active, unacknowledged clinical alarm (bed 2)
    ended_alarm_id: int  # ended and acknowledged (bed 3)
    review_id: int       # open review item (bed 5, when there are >= 5 beds)
    technical_id: int    # offline camera (bed 4)


def bed_key(i: int) -> str:
    return f"bed-{i:02d}"


def seed_demo(store: Store, now: datetime, n_beds: int = 6, minutes: int = 10, users: bool = True,
              alarm_age_s: float = 180.0) -> DemoWard:
    """Fill ``store`` with ``n_beds`` beds, ``minutes`` of 1 Hz samples ending at ``now``, camera
    health, one active alarm, one ended acknowledged alarm, a review item and a technical alarm."""
    if n_beds < 4:
        raise ValueError(f"n_beds must be >= 4 for the demo's alarms, got {n_beds}")
    rng = np.random.default_rng(7)
    beds = [bed_key(i) for i in range(1, n_beds + 1)]
    store.register_model_version(DEMO_MODEL, DEMO_MODEL_DESC)
    t0 = now - timedelta(minutes=minutes)
    n = minutes * 60
    age = np.arange(n)[::-1].astype(float)  # seconds before now
    for i, key in enumerate(beds, start=1):
        store.upsert_bed(key, name=f"Bed {i}", ward="demo", at=t0 - timedelta(hours=1))
        store.record_health(key, "online", t0 - timedelta(hours=1), "camera streaming")
        p = np.clip(0.06 + 0.04 * rng.standard_normal(n) + 0.03 * np.sin(age / 40 + i), 0.0, 1.0)
        if i == 2:  # seizure-like rise over the last few minutes
            p = np.where(age < alarm_age_s + 40, np.clip(0.25 + 0.7 * (1 - age / (alarm_age_s + 40)) + 0.05
                                                         * rng.standard_normal(n), 0, 1), p)
        acc = np.maximum.accumulate(np.clip(p - 0.5, 0, None)) * 2.0
        end = n - 45 if i == 4 else n  # bed 4's camera went offline 45 s ago
        store.write_samples(Sample(key, now - timedelta(seconds=float(age[k])), float(p[k]), float(acc[k]),
                                   0.9, DEMO_MODEL) for k in range(end))
    store.record_health(beds[3], "offline", now - timedelta(seconds=45), "no frames for 30 s")
    store.record_health(beds[2], "degraded", now - timedelta(minutes=4), "patient not found")
    alarm = store.open_alarm(beds[1], "alarm", now - timedelta(seconds=alarm_age_s), peak=0.93,
                             reason="accumulator above threshold")
    ended = store.open_alarm(beds[2], "alarm", now - timedelta(minutes=8), peak=0.71, reason="short burst")
    store.close_alarm(ended, now - timedelta(minutes=7, seconds=20))
    store.acknowledge(ended, "nurse", "false", "patient brushing teeth", source="seed")
    review = store.open_alarm(beds[4 if n_beds >= 5 else 0], "review", now - timedelta(minutes=2), peak=0.55,
                              reason="sustained moderate probability")
    tech = store.open_alarm(beds[3], "technical", now - timedelta(seconds=15), reason="camera offline > 30 s")
    if users:
        for name, (pw, role) in DEMO_USERS.items():
            store.create_user(name, pw, role)
    return DemoWard(beds, alarm, ended, review, tech)


def main(argv: list[str] | None = None) -> None:
    """`python -m ward.dashboard.demo [--db URL] [--beds N]`: seed a demo ward to look at."""
    import argparse
    from datetime import timezone

    ap = argparse.ArgumentParser(description="Seed a demo ward database for the dashboard.")
    ap.add_argument("--db", default=None, help="database URL (default: $WARD_DB_URL or sqlite:///./ward.db)")
    ap.add_argument("--beds", type=int, default=12)
    ap.add_argument("--minutes", type=int, default=30)
    args = ap.parse_args(argv)
    store = Store(args.db)
    if store.list_beds():
        raise SystemExit("refusing to seed: the database already has beds (use a new file)")
    demo = seed_demo(store, datetime.now(timezone.utc), n_beds=args.beds, minutes=args.minutes)
    print(f"seeded {len(demo.beds)} beds; users: " + ", ".join(f"{u} ({r})" for u, (_, r) in DEMO_USERS.items())
          + " — demo passwords are in ward/dashboard/demo.py")


if __name__ == "__main__":
    main()
