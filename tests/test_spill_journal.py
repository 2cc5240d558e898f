"""The spill as an ordered journal: alarm episodes and camera health events written while the
database is down are journaled and replayed in order, exactly once, on SQLite (held under an
EXCLUSIVE lock) and PostgreSQL (really stopped with pg_ctl; run via scripts/test.sh)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa

from support.pg import pg_base_url, pg_ctl, reset_pg

from ward.core.messages import CameraReport, ClipScore
from ward.store.records import Sample, StoreError
from ward.store.repository import Store
from ward.store.spill import SpillingWriter
from ward.store.types import UTCDateTime

_UTC_T = UTCDateTime()

UTC = timezone.utc
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
KEY = "9f1c0c3e7a5b4d2e8f6a1b2c3d4e5f60"


class Backend:
    """A database of one engine plus a way to make it unavailable for real."""

    def __init__(self, kind: str, tmp: Path) -> None:
        self.kind = kind
        if kind == "sqlite":
            self.db = tmp / "ward.db"
            self.url = f"sqlite:///{self.db}"
        else:
            self.url = pg_base_url()
            reset_pg(self.url)

    def store(self) -> Store:
        return Store(self.url, busy_timeout_ms=50)

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        if self.kind == "sqlite":
            locker = sqlite3.connect(self.db, isolation_level=None)
            locker.execute("BEGIN EXCLUSIVE")
            try:
                yield
            finally:
                locker.rollback()
                locker.close()
        else:
            pg_ctl("stop")
            try:
                yield
            finally:
                pg_ctl("start")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return Backend(request.param, tmp_path)


def _count(store: Store, table: str) -> int:
    with store.engine.connect() as c:
        return c.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()


def _t(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


# ------------------------------------------------------------------------------ writer level
def test_alarm_and_health_written_during_outage_replay_once(backend: Backend, tmp_path: Path) -> None:
    store = backend.store()
    store.upsert_bed("bed-01")
    store.upsert_bed("bed-02")
    spill = tmp_path / "spill"
    writer = SpillingWriter(store, spill)
    # an alarm opened before the outage, closed during it (the close is addressed by key)
    early = writer.open_alarm("early-episode", "bed-02", "review", _t(-30), 0.4, "review rising")
    assert isinstance(early, int)
    with backend.outage():
        assert writer.write([Sample("bed-01", _t(i), 0.9) for i in range(5)]).spilled == 5
        assert writer.record_health("bed-01", "degraded", _t(0), "patient not found") is False
        assert writer.open_alarm(KEY, "bed-01", "alarm", _t(1), 0.7, "accumulator over threshold") is None
        assert writer.update_alarm(KEY, peak=0.95) is False
        assert writer.update_alarm(KEY, peak=0.8) is False  # lower: must not lower the stored peak
        assert writer.record_health("bed-01", "offline", _t(2), "no frames") is False
        assert writer.close_alarm(KEY, _t(4)) is False
        assert writer.close_alarm("early-episode", _t(3)) is False
        assert writer.record_health("bed-01", "online", _t(5), None) is False
        assert writer.alarm_id(KEY) is None  # not stored yet
        assert writer.pending == 5 + 8 and writer.pending_ops == 8
        assert not writer.flush()
        snapshot = (spill / "spill.jsonl").read_text()
        # a restarted process picks the journal up from disk
        writer = SpillingWriter(store, spill)
        assert writer.pending == 13 and writer.pending_ops == 8
    assert writer.flush() and writer.pending == 0
    assert not (spill / "spill.jsonl").exists()

    def check() -> None:
        alarms = store.list_alarms(bed="bed-01")
        assert len(alarms) == 1
        a = alarms[0]
        assert (a.tier, a.start, a.end, a.state, a.reason) == ("alarm", _t(1), _t(4), "ended",
                                                              "accumulator over threshold")
        assert a.peak == pytest.approx(0.95)
        assert writer.alarm_id(KEY) == a.id
        e = store.get_alarm(early)  # type: ignore[arg-type]
        assert (e.state, e.end) == ("ended", _t(3)) and len(store.list_alarms(bed="bed-02")) == 1
        events = [(h.at, h.state, h.reason) for h in store.health_events(bed="bed-01")]
        assert events == [(_t(0), "degraded", "patient not found"), (_t(2), "offline", "no frames"),
                          (_t(5), "online", None)]
        assert _count(store, "probability_samples") == 5

    check()
    # replaying the very same journal again (e.g. a crash before the file was removed) changes nothing
    (spill / "spill.jsonl").write_text(snapshot)
    again = SpillingWriter(store, spill)
    assert again.pending == 13 and again.flush()
    check()
    store.close()


def test_backlog_keeps_order_when_database_returns(backend: Backend, tmp_path: Path) -> None:
    """Writes made while a backlog exists go behind it, so an update never precedes its open."""
    store = backend.store()
    store.upsert_bed("bed-01")
    writer = SpillingWriter(store, tmp_path / "spill")
    with backend.outage():
        writer.open_alarm(KEY, "bed-01", "technical", _t(0), 0.0, "camera offline > 30 s")
    # database back: the next call replays the open first, then applies itself directly
    assert writer.close_alarm(KEY, _t(60)) is True and writer.pending == 0
    (a,) = store.list_alarms(bed="bed-01")
    assert (a.tier, a.state, a.end) == ("technical", "ended", _t(60))
    store.close()


# ------------------------------------------------------------------------------ sqlite-only details
def test_store_key_api_is_idempotent_and_checked(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'w.db'}")
    store.upsert_bed("bed-01")
    store.upsert_bed("bed-02")
    a = store.open_alarm("bed-01", "alarm", T0, 0.6, episode_key="k1")
    assert store.open_alarm("bed-01", "alarm", T0, 0.6, episode_key="k1") == a
    assert store.alarm_key(a) == "k1" and store.alarm_id_for_key("k1") == a
    assert store.alarm_id_for_key("nope") is None
    b = store.open_alarm("bed-01", "review", T0)  # no key given: one is generated
    assert store.alarm_key(b) not in ("k1", "") and store.alarm_id_for_key(store.alarm_key(b)) == b
    with pytest.raises(StoreError, match="already belongs to alarm"):
        store.open_alarm("bed-02", "alarm", T0, episode_key="k1")
    with pytest.raises(StoreError, match="episode key"):
        store.open_alarm("bed-01", "alarm", T0, episode_key="x" * 65)
    with pytest.raises(StoreError, match="unknown alarm episode key"):
        store.close_alarm_by_key("nope", T0)
    store.update_alarm_by_key("k1", peak=0.9)
    store.update_alarm_by_key("k1", peak=0.7)
    store.close_alarm_by_key("k1", _t(9))
    store.close_alarm_by_key("k1", _t(9))
    got = store.get_alarm(a)
    assert (got.peak, got.end, got.state) == (0.9, _t(9), "ended")
    assert store.record_health("bed-01", "offline", T0, "x", dedupe=True) is True
    assert store.record_health("bed-01", "offline", T0, "x", dedupe=True) is False
    assert store.record_health("bed-01", "offline", T0, None, dedupe=True) is True  # different reason
    assert store.record_health("bed-01", "offline", T0, "x") is True  # without dedupe: appended
    assert len(store.health_events(bed="bed-01")) == 3
    store.close()


def test_bad_ops_raise_before_journaling_and_rejected_entries_are_set_aside(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    store = Store(f"sqlite:///{db}", busy_timeout_ms=50)
    store.upsert_bed("bed-01")
    writer = SpillingWriter(store, tmp_path / "spill")
    with pytest.raises(StoreError, match="tier"):
        writer.open_alarm(KEY, "bed-01", "loud", T0)
    with pytest.raises(ValueError, match="naive"):
        writer.close_alarm(KEY, datetime(2026, 3, 1, 12, 0))
    with pytest.raises(StoreError, match="camera health state"):
        writer.record_health("bed-01", "sleepy", T0)
    with pytest.raises(StoreError, match="peak"):
        writer.update_alarm(KEY, peak=float("nan"))
    assert writer.pending == 0
    # entries for a bed the database does not know (journaled by a process with another bed list)
    ghost = [json.dumps({"op": "health", "bed": "ghost", "state": "offline", "at": T0.isoformat(), "reason": None}),
             json.dumps(Sample("ghost", T0, 0.5).to_json())]
    (tmp_path / "spill" / "spill.jsonl").write_text("\n".join(ghost) + "\n")
    writer = SpillingWriter(store, tmp_path / "spill")
    assert writer.pending == 2
    locker = sqlite3.connect(db, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        writer.write([Sample("bed-01", T0, 0.5)])
        writer.open_alarm(KEY, "bed-01", "alarm", T0, 0.9)
        writer.close_alarm(KEY, _t(5))
        # the ghost entries were set aside as soon as the database could check the bed (a read);
        # the good ones stay journaled
        assert writer.pending == 3 and writer.rejected == 2
    finally:
        locker.rollback()
        locker.close()
    assert writer.flush()  # the bad entries do not block the good ones behind them
    assert writer.rejected == 2
    rejected = [json.loads(x) for x in (tmp_path / "spill" / "rejected.jsonl").read_text().splitlines()]
    assert [r["entry"]["bed"] for r in rejected] == ["ghost", "ghost"]
    assert all("unknown bed" in r["error"] for r in rejected)
    assert _count(store, "probability_samples") == 1
    assert store.get_alarm(writer.alarm_id(KEY)).state == "ended"  # type: ignore[arg-type]
    store.close()


def test_old_sample_only_spill_and_torn_line_are_read(tmp_path: Path) -> None:
    """A spill written before operations existed (sample lines only) replays unchanged; a torn
    last line from a crash mid-append is ignored."""
    store = Store(f"sqlite:///{tmp_path / 'w.db'}")
    store.upsert_bed("bed-01")
    spill = tmp_path / "spill"
    spill.mkdir()
    lines = [json.dumps(Sample("bed-01", _t(i), 0.1 * i).to_json()) for i in range(3)]
    op = json.dumps({"op": "health", "bed": "bed-01", "state": "online", "at": _t(3).isoformat(), "reason": None})
    (spill / "spill.jsonl").write_text("\n".join(lines + [op]) + '\n{"op": "alarm_op')
    writer = SpillingWriter(store, spill)
    assert writer.flush()
    assert _count(store, "probability_samples") == 3
    assert [h.state for h in store.health_events(bed="bed-01")] == ["online"]
    store.close()


# ------------------------------------------------------------------------------ coordinator level
def _ward_cfg(tmp: Path, beds: list[str], url: str | None = None):
    """A ward config without model weights (the coordinator never loads them)."""
    from support.serve import sim_bed

    from ward.config import load_ward_config

    return load_ward_config({
        "name": "testward", "beds": [sim_bed(b, i) for i, b in enumerate(beds)],
        "models": {"pose": {"path": str(tmp / "pose.pt"), "config": "small", "input_height": 128},
                   "vsvig": {"path": str(tmp / "vsvig.pt"), "variant": "light"}},
        "database": {"url": url or f"sqlite:///{tmp / 'ward.db'}", "spill_dir": str(tmp / "spill")},
        "dashboard": {"enabled": False}}, validate_paths=False)


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_coordinator_runs_rules_through_outage_and_stores_alarm_once(backend: Backend, tmp_path: Path) -> None:
    from ward.alarms.coordinator import WardCoordinator

    cfg = _ward_cfg(tmp_path, ["bed-1", "bed-2"], backend.url)
    store = backend.store()
    clock = Clock()
    core = WardCoordinator(cfg, store, SpillingWriter(store, tmp_path / "spill"), clock=clock)
    core.register_beds()
    events: list[dict] = []
    camera = {"bed-1": "online", "bed-2": "online"}

    def feed(bed: str, n: int, p: float) -> None:
        for _ in range(n):  # camera actors report every tick; only changes become health events
            clock.t += 1
            core.report_status({b: CameraReport(state=s, reason=s, since_wall=clock.t) for b, s in camera.items()})
            events.extend(core.push(ClipScore(bed_id=bed, t=clock.t, probability=p, capture_wall=clock.t)))

    feed("bed-1", 3, 0.05)
    feed("bed-2", 12, 0.95)  # bed-2's alarm is opened while the database is up ...
    assert core.flush()["error"] is None
    (b2,) = store.list_alarms(bed="bed-2", tier="alarm")
    t_out = clock.t
    with backend.outage():
        feed("bed-2", 25, 0.0)  # ... and ends during the outage
        feed("bed-1", 12, 0.95)  # bed-1's alarm starts during the outage
        out = core.flush()  # spilled, not lost: reported as "database unavailable" (ward_flush_errors_total)
        assert out["error"].startswith("database unavailable") and out["spilled"] > 0
        snap = {b["bed_id"]: b for b in core.snapshot()}
        assert snap["bed-1"]["alarm_active"] and snap["bed-1"]["alarm_id"] is None and snap["bed-1"]["alarm_key"]
        feed("bed-1", 3, 0.99)
        camera["bed-1"] = "degraded"
        feed("bed-1", 1, 0.99)
        core.flush()
        feed("bed-1", 25, 0.0)  # and ends during the outage too
        camera["bed-1"] = "online"
        feed("bed-1", 1, 0.0)
        out = core.flush()
        assert out["error"].startswith("database unavailable") and core.writer.pending_ops > 0
        assert not core.snapshot()[0]["alarm_active"]
    n_samples = 3 + 12 + 25 + 12 + 3 + 1 + 25 + 1
    out = core.flush()  # database back: the journal replays
    assert out["error"] is None and core.writer.pending == 0
    start = next(e["t"] for e in events if e["kind"] == "alarm_start" and e["bed_id"] == "bed-1")
    end = next(e["t"] for e in events if e["kind"] == "alarm_end" and e["bed_id"] == "bed-1")
    (a1,) = store.list_alarms(bed="bed-1", tier="alarm")
    assert a1.start.timestamp() == pytest.approx(start) and a1.start.timestamp() > t_out
    assert a1.end is not None and a1.end.timestamp() == pytest.approx(end)
    assert a1.state == "ended" and a1.peak == pytest.approx(0.99)
    b2_now = store.get_alarm(b2.id)
    assert b2_now.state == "ended" and b2_now.end is not None and b2_now.end.timestamp() > t_out
    assert len(store.list_alarms(bed="bed-2", tier="alarm")) == 1
    assert [h.state for h in store.health_events(bed="bed-1")] == ["online", "degraded", "online"]
    assert [h.state for h in store.health_events(bed="bed-2")] == ["online"]
    assert store.list_alarms(tier="technical") == []
    assert _count(store, "probability_samples") == n_samples
    # a second flush (and a restarted coordinator's recovery) adds nothing
    core.flush()
    WardCoordinator(cfg, store, SpillingWriter(store, tmp_path / "spill"), clock=clock).recover()
    assert len(store.list_alarms(bed="bed-1", tier="alarm")) == 1
    store.close()


def test_recover_replays_a_leftover_journal_first(tmp_path: Path) -> None:
    """A coordinator restarted on a journal that still holds an open alarm adopts it (no duplicate)."""
    from ward.alarms.coordinator import WardCoordinator

    cfg = _ward_cfg(tmp_path, ["bed-1"])
    db = Path(cfg.database.url.removeprefix("sqlite:///"))
    store = Store(cfg.database.url, busy_timeout_ms=50)
    clock = Clock()
    core = WardCoordinator(cfg, store, SpillingWriter(store, tmp_path / "spill"), clock=clock)
    core.register_beds()
    locker = sqlite3.connect(db, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        for _ in range(12):
            clock.t += 1
            core.push(ClipScore(bed_id="bed-1", t=clock.t, probability=0.95))
        core.flush()
        key = core.snapshot()[0]["alarm_key"]
        assert key and core.writer.pending_ops >= 1
    finally:
        locker.rollback()
        locker.close()
    core2 = WardCoordinator(cfg, store, SpillingWriter(store, tmp_path / "spill"), clock=clock)
    rep = core2.recover()
    (a,) = store.list_alarms(bed="bed-1", tier="alarm")
    assert rep["bed-1"]["adopted"] == [a.id] and store.alarm_key(a.id) == key
    assert core2.snapshot()[0]["alarm_id"] == a.id and core2.snapshot()[0]["alarm_key"] == key
    store.close()


def test_upgrade_from_0002_gives_existing_alarms_a_key(backend: Backend) -> None:
    from ward.store.engine import current_revision, head_revision, make_engine, upgrade

    eng = make_engine(backend.url)
    upgrade(eng, "0002")
    with eng.begin() as c:
        c.execute(sa.text("INSERT INTO beds (id, key, active, created_at) VALUES (1, 'old', true, :t)")
                  .bindparams(sa.bindparam("t", type_=_UTC_T)), {"t": T0})
        c.execute(sa.text("INSERT INTO alarms (id, bed_id, tier, started_at, peak, state, acknowledged) "
                          "VALUES (7, 1, 'alarm', :t, 0.8, 'active', false)")
                  .bindparams(sa.bindparam("t", type_=_UTC_T)), {"t": T0})
    eng.dispose()
    store = backend.store()
    assert current_revision(store.engine) == head_revision()
    assert store.alarm_key(7) == "db-7" and store.alarm_id_for_key("db-7") == 7
    assert store.open_alarm("old", "alarm", T0, episode_key="db-7") == 7  # no duplicate
    with pytest.raises(sa.exc.IntegrityError):  # the key is unique in the database itself
        with store.engine.begin() as c:
            c.execute(sa.text("UPDATE alarms SET episode_key = 'db-7' WHERE id <> 7"))
            c.execute(sa.text("INSERT INTO alarms (bed_id, tier, started_at, peak, state, acknowledged, "
                              "episode_key) VALUES (1, 'alarm', :t, 0, 'active', false, 'db-7')")
                      .bindparams(sa.bindparam("t", type_=_UTC_T)), {"t": T0})
    store.close()
