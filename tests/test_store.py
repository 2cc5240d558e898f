"""Storage tests, run against SQLite (temp file) and PostgreSQL (WARD_TEST_PG_URL, marker postgres).

scripts/services.sh starts a throwaway PostgreSQL and exports WARD_TEST_PG_URL / _CTL / _DATA /
_RUNAS; the outage test really stops and restarts that server.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import sqlalchemy as sa

from support.pg import pg_base_url, pg_ctl, reset_pg
from ward.store.engine import current_revision, ensure_schema, head_revision, make_engine, upgrade
from ward.config import RetentionPolicy
from ward.store.records import Sample, StoreError, UnknownBedError
from ward.store.repository import Store
from ward.store.spill import Overflow, SpillingWriter
from ward.store.types import UTCDateTime

_UTC_T = UTCDateTime()

UTC = timezone.utc
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    for b in ("bed-01", "bed-02", "bed-03"):
        s.upsert_bed(b, ward="W1")
    yield s
    s.close()


def _samples(bed: str, n: int, start: datetime = T0, seed: int = 0) -> list[Sample]:
    rng = np.random.default_rng(seed)
    p = rng.random(n)
    return [Sample(bed, start + timedelta(seconds=i), float(p[i]), float(i), 0.9, "vsvig-base")
            for i in range(n)]


def _count(store: Store, table: str) -> int:
    with store.engine.connect() as c:
        return c.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()


# ------------------------------------------------------------------------------------- migrations
def test_migrations_from_empty_match_models(db_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from ward.store.models import Base

    eng = make_engine(db_url)
    assert current_revision(eng) is None
    assert upgrade(eng) == head_revision()
    with eng.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        tables = set(sa.inspect(conn).get_table_names())
    assert {"probability_samples", "minute_rollups", "alarms", "ack_events", "audit_log", "users",
            "api_tokens", "camera_health_events", "patient_stays", "bed_camera_configs", "bed_latest"} <= tables
    assert ensure_schema(eng) is False  # already at head: nothing to do
    eng.dispose()


def test_store_auto_migrates_when_behind(db_url: str) -> None:
    s = Store(db_url)
    assert current_revision(s.engine) == head_revision()
    s.close()


def test_sqlite_connection_settings(tmp_path: Path) -> None:
    eng = make_engine(f"sqlite:///{tmp_path / 'x.db'}", busy_timeout_ms=1234)
    with eng.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert c.exec_driver_sql("PRAGMA busy_timeout").scalar() == 1234


@pytest.mark.parametrize("url", ["mysql://x@y/z", "not a url", f"sqlite:////nonexistent-dir-{os.getpid()}/w.db"])
def test_bad_database_url(url: str) -> None:
    with pytest.raises(ValueError):
        make_engine(url)


# ----------------------------------------------------------------------------- writes and rollups
def test_idempotent_replay_does_not_double_count(store: Store) -> None:
    rows = _samples("bed-01", 150) + _samples("bed-02", 90, seed=1)
    assert store.write_samples(rows).inserted == 240
    again = store.write_samples(rows)
    assert (again.inserted, again.duplicates) == (0, 240)
    # overlapping replay: 60 old + 60 new rows, plus an in-batch duplicate
    more = _samples("bed-01", 210)[150:] + _samples("bed-01", 150)[90:]
    res = store.write_samples(more + more[:1])
    assert (res.inserted, res.duplicates) == (60, 61)
    assert _count(store, "probability_samples") == 300

    truth = _samples("bed-01", 210)
    pts = store.history("bed-01", T0, T0 + timedelta(hours=1), "1m")
    assert [p.n for p in pts] == [60, 60, 60, 30]
    for k, p in enumerate(pts):
        ps = np.array([s.probability for s in truth[60 * k:60 * (k + 1)]])
        assert p.t == T0 + timedelta(minutes=k)
        assert p.p_max == pytest.approx(ps.max())
        assert p.p_mean == pytest.approx(ps.mean())


def test_latest_samples_track_newest_row_per_bed(store: Store) -> None:
    assert store.latest_samples() == {}
    rows = _samples("bed-01", 120) + _samples("bed-02", 30, seed=3)
    store.write_samples(rows[60:])   # newer half of bed-01 first ...
    store.write_samples(rows[:60])   # ... then an older (replayed) batch must not move "latest" back
    latest = store.latest_samples()
    assert set(latest) == {"bed-01", "bed-02"}
    assert latest["bed-01"].t == rows[119].t and latest["bed-01"].probability == pytest.approx(rows[119].probability)
    assert latest["bed-01"].accumulator == pytest.approx(119.0) and latest["bed-01"].model_version == "vsvig-base"
    assert latest["bed-02"].t == rows[-1].t
    new = Sample("bed-02", T0 + timedelta(hours=1), 0.25, 7.0, None)
    store.write_samples([new])
    got = store.latest_samples()["bed-02"]
    assert (got.t, got.probability, got.pose_quality, got.model_version) == (new.t, 0.25, None, None)


def test_history_resolutions(store: Store) -> None:
    rows = _samples("bed-02", 2 * 3600 + 30, start=T0 - timedelta(minutes=30))
    store.write_samples(rows)
    raw = store.history("bed-02", T0, T0 + timedelta(seconds=10), "1s")
    assert [p.t for p in raw] == [T0 + timedelta(seconds=i) for i in range(10)]
    assert [p.p_max for p in raw] == pytest.approx([r.probability for r in rows[1800:1810]])
    assert raw[0].accumulator == pytest.approx(1800.0)
    hours = store.history("bed-02", T0 - timedelta(hours=1), T0 + timedelta(hours=3), "1h")
    assert [p.t for p in hours] == [T0 - timedelta(hours=1), T0, T0 + timedelta(hours=1)]
    assert [p.n for p in hours] == [1800, 3600, 1830]
    p = np.array([r.probability for r in rows[1800:5400]])
    assert hours[1].p_max == pytest.approx(p.max()) and hours[1].p_mean == pytest.approx(p.mean())


def test_time_zone_handling(store: Store) -> None:
    plus2 = timezone(timedelta(hours=2))
    india = timezone(timedelta(hours=5, minutes=30))
    t_local = datetime(2026, 3, 1, 14, 0, 30, tzinfo=plus2)  # == 12:00:30 UTC
    store.write_samples([Sample("bed-01", t_local, 0.5), Sample("bed-01", datetime(2026, 3, 1, 17, 31, 0, tzinfo=india), 0.7)])
    pts = store.history("bed-01", T0, T0 + timedelta(minutes=5), "1s")
    assert [p.t for p in pts] == [T0 + timedelta(seconds=30), T0 + timedelta(minutes=1)]
    assert all(p.t.tzinfo is not None and p.t.utcoffset() == timedelta(0) for p in pts)
    minutes = store.history("bed-01", T0.astimezone(india), (T0 + timedelta(minutes=5)).astimezone(plus2), "1m")
    assert [(m.t, m.n) for m in minutes] == [(T0, 1), (T0 + timedelta(minutes=1), 1)]
    with pytest.raises(ValueError, match="naive"):
        store.write_samples([Sample("bed-01", datetime(2026, 3, 1, 12, 0), 0.5)])
    with pytest.raises(ValueError, match="naive"):
        store.history("bed-01", datetime(2026, 3, 1), None, "1m")


def test_bad_input_errors(store: Store) -> None:
    with pytest.raises(UnknownBedError, match="unknown bed 'bed-99'"):
        store.write_samples([Sample("bed-99", T0, 0.5)])
    with pytest.raises(UnknownBedError):
        store.history("bed-99", T0, T0 + timedelta(hours=1))
    with pytest.raises(StoreError, match="inverted time range"):
        store.history("bed-01", T0, T0 - timedelta(hours=1))
    with pytest.raises(StoreError, match="inverted time range"):
        store.list_alarms(since=T0, until=T0 - timedelta(seconds=1))
    with pytest.raises(StoreError, match="resolution"):
        store.history("bed-01", T0, T0 + timedelta(hours=1), "5m")
    with pytest.raises(StoreError, match="probability"):
        store.write_samples([Sample("bed-01", T0, float("nan"))])
    with pytest.raises(StoreError, match="probability"):
        store.write_samples([Sample("bed-01", T0, 1.5)])
    with pytest.raises(StoreError, match="tier"):
        store.open_alarm("bed-01", "panic", T0)
    with pytest.raises(StoreError, match="pagination"):
        store.list_alarms(limit=0)
    assert _count(store, "probability_samples") == 0  # nothing half-written


# ------------------------------------------------------------------------------------------ alarms
def test_alarm_lifecycle_and_queries(store: Store) -> None:
    a1 = store.open_alarm("bed-01", "alarm", T0, peak=0.7, reason="acc>thr")
    store.update_alarm(a1, peak=0.9)
    store.update_alarm(a1, peak=0.8)  # peak never decreases
    store.close_alarm(a1, T0 + timedelta(seconds=40))
    a2 = store.open_alarm("bed-01", "review", T0 + timedelta(hours=1), peak=0.5)
    a3 = store.open_alarm("bed-02", "technical", T0 + timedelta(hours=2), reason="camera offline")
    got = store.get_alarm(a1)
    assert (got.peak, got.state, got.end, got.verdict) == (0.9, "ended", T0 + timedelta(seconds=40), None)
    with pytest.raises(StoreError, match="before it started"):
        store.close_alarm(a2, T0)

    store.acknowledge(a1, "dr.x", "unsure", note="look again", source="10.0.0.5")
    store.acknowledge(a1, "dr.y", "true", source="10.0.0.6")
    store.acknowledge(a2, "dr.x", "false")
    with pytest.raises(StoreError, match="verdict"):
        store.acknowledge(a3, "dr.x", "maybe")
    with pytest.raises(StoreError, match="unknown alarm"):
        store.acknowledge(99999, "dr.x", "true")

    assert [e.verdict for e in store.ack_events(a1)] == ["unsure", "true"]
    assert store.get_alarm(a1).verdict == "true" and store.get_alarm(a1).acknowledged
    audit = store.audit_log(user="dr.y")
    assert audit[0].action == "acknowledge" and audit[0].detail["alarm_id"] == a1 and audit[0].source == "10.0.0.6"

    assert [a.id for a in store.list_alarms()] == [a3, a2, a1]  # newest first
    assert [a.id for a in store.list_alarms(bed="bed-01")] == [a2, a1]
    assert [a.id for a in store.list_alarms(tier=["alarm", "technical"])] == [a3, a1]
    assert [a.id for a in store.list_alarms(verdict="true")] == [a1]
    assert [a.id for a in store.list_alarms(verdict="none")] == [a3]
    assert [a.id for a in store.list_alarms(since=T0 + timedelta(minutes=30), until=T0 + timedelta(hours=2))] == [a2]
    page1 = store.list_alarms(limit=2)
    page2 = store.list_alarms(limit=2, offset=2)
    assert [a.id for a in page1 + page2] == [a3, a2, a1]


def test_stats_per_bed(store: Store) -> None:
    store.write_samples(_samples("bed-01", 1800))  # 30 minutes monitored
    a = store.open_alarm("bed-01", "alarm", T0 + timedelta(minutes=5))
    store.acknowledge(a, "dr", "false")
    store.open_alarm("bed-01", "review", T0 + timedelta(minutes=6))
    # bed-02 offline from before the window until 1h into it, then online
    store.record_health("bed-02", "offline", T0 - timedelta(hours=5), "no frames")
    store.record_health("bed-02", "online", T0 + timedelta(hours=1))
    store.record_health("bed-02", "offline", T0 + timedelta(hours=3))
    stats = {s.bed: s for s in store.stats(T0, T0 + timedelta(hours=4))}
    assert stats["bed-01"].alarms == 2 and stats["bed-01"].by_tier["review"] == 1
    assert stats["bed-01"].verdicts == {"true": 0, "false": 1, "unsure": 0, "none": 1}
    assert stats["bed-01"].hours_monitored == pytest.approx(0.5)
    assert stats["bed-02"].hours_offline == pytest.approx(2.0)
    assert stats["bed-03"].alarms == 0 and stats["bed-03"].hours_offline == 0
    assert [e.state for e in store.health_events("bed-02", since=T0)] == ["online", "offline"]
    with pytest.raises(StoreError, match="camera health state"):
        store.record_health("bed-02", "sleepy", T0)


# --------------------------------------------------------------------------------------- retention
def test_retention_keeps_unacknowledged_alarms(store: Store) -> None:
    now = T0 + timedelta(days=100)
    store.write_samples(_samples("bed-01", 120, start=T0))                        # old
    store.write_samples(_samples("bed-01", 60, start=now - timedelta(days=1)))    # recent
    old_acked = store.open_alarm("bed-01", "alarm", T0)
    store.close_alarm(old_acked, T0 + timedelta(minutes=1))
    store.acknowledge(old_acked, "dr", "false", at=T0 + timedelta(minutes=2))
    old_unacked = store.open_alarm("bed-01", "alarm", T0 + timedelta(hours=1))
    store.close_alarm(old_unacked, T0 + timedelta(hours=1, minutes=1))
    old_active_acked = store.open_alarm("bed-02", "technical", T0)
    store.acknowledge(old_active_acked, "dr", "true")
    recent = store.open_alarm("bed-01", "alarm", now - timedelta(days=1))
    store.record_health("bed-01", "offline", T0)
    store.record_health("bed-01", "online", now - timedelta(hours=1))

    policy = RetentionPolicy(raw_samples_days=30, rollups_days=60, alarms_days=90, health_days=30)
    deleted = store.apply_retention(policy, now=now)
    assert deleted["probability_samples"] == 120 and deleted["minute_rollups"] == 2
    assert deleted["alarms"] == 1 and deleted["camera_health_events"] == 1
    assert {a.id for a in store.list_alarms()} == {old_unacked, old_active_acked, recent}
    assert store.ack_events(old_acked) == []  # cascade
    assert _count(store, "probability_samples") == 60
    assert store.audit_log()[0].action == "retention"
    with pytest.raises(ValueError):
        RetentionPolicy(raw_samples_days=0)
    with pytest.raises(ValueError):
        RetentionPolicy(raw_days=3)  # extra="forbid": typos are errors


# ---------------------------------------------------------------------------------- beds, patients
def test_beds_camera_history_and_stays(store: Store) -> None:
    store.upsert_bed("bed-07", name="Bay 7", ward="W2", camera={"url": "rtsp://a"}, at=T0)
    store.upsert_bed("bed-07", camera={"url": "rtsp://a"}, at=T0 + timedelta(hours=1))  # unchanged
    store.upsert_bed("bed-07", camera={"url": "rtsp://b"}, at=T0 + timedelta(hours=2))
    hist = store.camera_config_history("bed-07")
    assert [c["url"] for _, c in hist] == ["rtsp://a", "rtsp://b"]
    bed = next(b for b in store.list_beds() if b.key == "bed-07")
    assert (bed.name, bed.ward, bed.camera) == ("Bay 7", "W2", {"url": "rtsp://b"})
    store.admit("bed-07", "P-123", T0)
    store.admit("bed-07", "P-456", T0 + timedelta(days=1))  # closes the previous stay
    store.discharge("bed-07", T0 + timedelta(days=2))
    stays = store.stays("bed-07")
    assert [(s.patient, s.discharged_at) for s in stays] == [("P-123", T0 + timedelta(days=1)),
                                                            ("P-456", T0 + timedelta(days=2))]
    with pytest.raises(StoreError, match="no admitted patient"):
        store.discharge("bed-07", T0 + timedelta(days=3))


# ------------------------------------------------------------------------------------------- users
def test_users_and_tokens(store: Store) -> None:
    u = store.create_user("alice", "correct horse", "clinician")
    assert u.role == "clinician" and not u.disabled
    assert store.authenticate("alice", "correct horse").username == "alice"
    assert store.authenticate("alice", "wrong password") is None
    assert store.authenticate("nobody", "correct horse") is None
    with store.engine.connect() as c:
        stored = c.execute(sa.text("SELECT password_hash FROM users WHERE username='alice'")).scalar_one()
    assert "correct horse" not in stored and stored.startswith("scrypt$")
    with pytest.raises(StoreError, match="already exists"):
        store.create_user("alice", "another pass")
    with pytest.raises(StoreError, match="too short"):
        store.create_user("bob", "short")
    with pytest.raises(StoreError, match="role"):
        store.create_user("bob", "long enough", "root")

    token = store.create_token("alice", "dashboard")
    assert store.authenticate_token(token).username == "alice"
    assert store.authenticate_token(token + "x") is None
    store.create_user("carol", "carol's pass", "viewer")
    t2 = store.create_token("carol")
    store.revoke_token(store.check_token(t2).token_id)  # by id: no plaintext needed
    assert store.authenticate_token(t2) is None

    store.disable_user("alice")
    assert store.authenticate("alice", "correct horse") is None
    assert store.authenticate_token(token) is None
    assert [(x.username, x.disabled) for x in store.list_users()] == [("alice", True), ("carol", False)]
    with pytest.raises(StoreError, match="unknown user"):
        store.disable_user("mallory")


def test_service_accounts_are_not_people(store: Store) -> None:
    """The ward's own accounts (svc-dashboard) never count as users for the first-admin bootstrap
    and cannot log in with a password; a person's account is never taken over as a service one."""
    svc = store.ensure_service_user("svc-dashboard")
    assert svc.service and svc.role == "viewer" and store.ensure_service_user("svc-dashboard") == svc
    store.create_user("svc-known", "known-password", service=True)
    assert store.authenticate("svc-known", "known-password") is None  # token login only
    assert store.authenticate_token(store.create_token("svc-known")).username == "svc-known"
    assert not store.has_people()
    admin = store.create_first_admin("admin", "first-admin-pw")
    assert admin is not None and admin.role == "admin" and not admin.service
    assert store.has_people()
    assert store.create_first_admin("admin2", "second-admin-pw") is None  # a person exists: no second admin
    assert [(u.username, u.service) for u in store.list_users()] == [
        ("admin", False), ("svc-dashboard", True), ("svc-known", True)]
    with pytest.raises(StoreError, match="person's account"):
        store.ensure_service_user("admin")


def test_replacing_a_token_revokes_the_earlier_ones_of_that_name(store: Store) -> None:
    store.ensure_service_user("svc-dashboard")
    other = store.create_token("svc-dashboard", "something else")
    first = store.create_token("svc-dashboard", "dashboard live view", replace=True)
    second = store.create_token("svc-dashboard", "dashboard live view", replace=True)
    assert store.authenticate_token(first) is None
    assert store.authenticate_token(second).username == "svc-dashboard"
    assert store.authenticate_token(other) is not None  # other names are left alone
    with store.engine.connect() as c:
        valid = c.execute(sa.text("SELECT count(*) FROM api_tokens WHERE name = 'dashboard live view' "
                                  "AND revoked = false")).scalar_one()
    assert valid == 1


def test_upgrade_from_0003_marks_the_dashboard_account_as_service(db_url: str) -> None:
    """A database left with only svc-dashboard by the old start (nobody could log in) is repaired:
    after the upgrade no person has an account, so the next start creates the admin."""
    eng = make_engine(db_url)
    upgrade(eng, "0003")
    with eng.begin() as c:
        c.execute(sa.text("INSERT INTO users (username, password_hash, role, disabled, created_at) "
                          "VALUES ('svc-dashboard', 'x', 'viewer', false, :t)")
                  .bindparams(sa.bindparam("t", type_=_UTC_T)), {"t": T0})
    eng.dispose()
    s = Store(db_url)
    assert [(u.username, u.service) for u in s.list_users()] == [("svc-dashboard", True)]
    assert not s.has_people()
    s.close()


def test_user_writes_while_another_connection_writes_every_few_ms(tmp_path: Path) -> None:
    """SQLite: creating accounts and tokens while the coordinator's writer commits constantly (as at the
    ward's start) waits for the lock instead of failing with "database is locked" (a read-then-write
    transaction cannot wait: SQLite refuses its upgrade at once when someone committed meanwhile)."""
    import threading

    url = f"sqlite:///{tmp_path / 'ward.db'}"
    api, writer = Store(url), Store(url)
    writer.upsert_bed("bed-01")
    stop, errors = threading.Event(), []

    def write() -> None:
        k = 0
        while not stop.is_set():
            k += 1
            try:
                writer.write_samples([Sample("bed-01", T0 + timedelta(seconds=k), 0.1, 0.0, 0.9, "v")])
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            time.sleep(0.002)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    try:
        for i in range(8):
            api.create_user(f"user{i}", "long-enough-pw")
            api.ensure_service_user(f"svc-{i}")
            api.create_token(f"svc-{i}", "live", replace=True)
            api.create_token(f"svc-{i}", "live", replace=True)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not errors
    assert len(api.list_users()) == 16
    api.close()
    writer.close()


def _start_concurrently(url: str, n: int, barrier: object, out: object) -> None:
    """One "ward start" in a fresh process: open (migrate) the store, then bootstrap its admin."""
    from ward.dashboard.auth import bootstrap_admin

    barrier.wait()  # type: ignore[attr-defined]
    try:
        store = Store(url)
        made = bootstrap_admin(store, {"WARD_ADMIN_USER": f"admin{n}", "WARD_ADMIN_PASSWORD": "concurrent-pw"})
        out.put((n, made, None))  # type: ignore[attr-defined]
        store.close()
    except Exception as exc:  # noqa: BLE001 - reported to the test
        out.put((n, None, f"{type(exc).__name__}: {exc}"))  # type: ignore[attr-defined]


def test_concurrent_starts_migrate_once_and_make_one_admin(db_url: str) -> None:
    """Three processes open a fresh database at the same moment (as the ward's replicas once did):
    none fails ("database is locked", "table already exists") and exactly one first admin exists,
    although each asks for a different admin name."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(3), ctx.Queue()
    procs = [ctx.Process(target=_start_concurrently, args=(db_url, n, barrier, out)) for n in range(3)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert [r[2] for r in results] == [None] * 3, results
    made = [r[1] for r in results if r[1] is not None]
    assert len(made) == 1, results
    s = Store(db_url)
    assert [(u.username, u.role) for u in s.list_users()] == [(made[0], "admin")]
    assert current_revision(s.engine) == head_revision()
    s.close()


# ------------------------------------------------------------------------------------------- spill
def test_spill_sqlite_locked_database(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """SQLite outage: another connection holds an EXCLUSIVE lock, so every write really fails."""
    db = tmp_path / "ward.db"
    store = Store(f"sqlite:///{db}", busy_timeout_ms=50)
    store.upsert_bed("bed-01")
    overflows: list[Overflow] = []
    writer = SpillingWriter(store, tmp_path / "spill", max_rows=250, on_overflow=overflows.append)
    rows = _samples("bed-01", 400)
    assert writer.write(rows[:100]).stored == 100

    locker = sqlite3.connect(db, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        out = writer.write(rows[100:200])
        assert (out.stored, out.spilled, out.dropped) == (0, 100, 0)
        assert writer.pending == 100 and not writer.flush()
        # a restarted process picks up the same spill
        writer2 = SpillingWriter(store, tmp_path / "spill", max_rows=250, on_overflow=overflows.append)
        assert writer2.pending == 100
        with caplog.at_level(logging.ERROR, logger="ward.store.spill"):
            out = writer2.write(rows[200:400])  # 150 fit, 50 dropped
        assert (out.spilled, out.dropped) == (150, 50)
        assert overflows == [Overflow(50, 50, 250, 250)]
        assert any("DROPPED 50" in r.message for r in caplog.records)
    finally:
        locker.rollback()
        locker.close()

    assert writer2.flush() and writer2.pending == 0
    assert not (tmp_path / "spill" / "spill.jsonl").exists()
    assert _count(store, "probability_samples") == 350
    pts = store.history("bed-01", T0, T0 + timedelta(hours=1), "1s")
    assert [p.t for p in pts] == [r.t for r in rows[:350]]  # in order, nothing but the overflow lost
    tech = store.list_alarms(tier="technical")
    assert len(tech) == 1 and "50 samples lost" in tech[0].reason
    assert tech[0].start == rows[350].t and tech[0].end == rows[399].t
    # later writes go straight through again
    assert writer2.write([Sample("bed-01", T0 + timedelta(hours=2), 0.1)]).stored == 1


@pytest.mark.postgres
def test_spill_postgres_real_outage(tmp_path: Path) -> None:
    url = pg_base_url()
    reset_pg(url)
    store = Store(url)
    store.upsert_bed("bed-01")
    writer = SpillingWriter(store, tmp_path / "spill", max_rows=10_000)
    rows = _samples("bed-01", 300)
    assert writer.write(rows[:100]).stored == 100
    pg_ctl("stop")
    try:
        assert writer.write(rows[100:200]).spilled == 100
        assert writer.write(rows[200:250]).spilled == 50
        assert not writer.flush() and writer.pending == 150
    finally:
        pg_ctl("start")
    out = writer.write(rows[250:300])  # replays the spill first, then writes
    assert (out.stored, out.spilled) == (200, 0) and writer.pending == 0
    pts = store.history("bed-01", T0, T0 + timedelta(hours=1), "1s")
    assert [p.t for p in pts] == [r.t for r in rows]
    assert sum(p.n for p in store.history("bed-01", T0, T0 + timedelta(hours=1), "1m")) == 300
    store.close()


def test_upgrade_from_0001_backfills_bed_latest(db_url: str) -> None:
    """A database created at revision 0001 is upgraded on Store() and bed_latest is backfilled."""
    eng = make_engine(db_url)
    upgrade(eng, "0001")
    with eng.begin() as c:
        c.execute(sa.text("INSERT INTO beds (id, key, active, created_at) VALUES (1, 'old', true, :t)"), {"t": T0})
        for t, p in ((T0, 0.1), (T0 + timedelta(seconds=5), 0.7)):
            c.execute(sa.text("INSERT INTO probability_samples (t, bed_id, probability, accumulator) "
                              "VALUES (:t, 1, :p, 0)").bindparams(sa.bindparam("t", type_=_UTC_T)), {"t": t, "p": p})
    eng.dispose()
    s = Store(db_url)
    assert current_revision(s.engine) == head_revision()
    latest = s.latest_samples()["old"]
    assert (latest.t, latest.probability) == (T0 + timedelta(seconds=5), 0.7)
    s.close()


def test_upgrading_an_old_database_keeps_users_and_tokens(db_url: str) -> None:
    """Migrations that change `users` rebuild it on SQLite (batch ALTER); with foreign keys on that
    DROP cascaded and deleted every API token. An old database's accounts and tokens must survive."""
    from ward.store.types import to_micros

    upgrade(db_url, "0003")
    engine = make_engine(db_url)
    now = datetime.now(timezone.utc)
    t = to_micros(now) if engine.dialect.name == "sqlite" else now
    with engine.begin() as c:
        c.execute(sa.text("INSERT INTO users (id, username, password_hash, role, disabled, created_at) "
                          "VALUES (1, 'carol', 'x', 'clinician', false, :t)"), {"t": t})
        c.execute(sa.text("INSERT INTO api_tokens (user_id, token_hash, name, created_at, revoked) "
                          "VALUES (1, :h, 'wall', :t, false)"), {"h": "0" * 64, "t": t})
    upgrade(engine, "head")
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT username, role FROM users")).all() == [("carol", "clinician")]
        assert c.execute(sa.text("SELECT user_id, name FROM api_tokens")).all() == [(1, "wall")]
        if engine.dialect.name == "sqlite":  # the connection is handed back with foreign keys on
            assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()
