"""The coordinator's logic without Ray: rule per bed, episodes and their storage, recovery after a
restart, camera health and technical alarms, spilling while the database is down."""

from __future__ import annotations

import pytest

from support.serve import sim_bed, ward_args

from ward.core.messages import CameraReport, ClipScore


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _coordinator(tmp_path, clock, **bed_over):
    from ward.alarms.coordinator import WardCoordinator
    from ward.config import load_ward_config
    from ward.store import SpillingWriter, Store

    args = ward_args(tmp_path, [sim_bed("bed-1", 1, **bed_over), sim_bed("bed-2", 2)])
    cfg = load_ward_config(args)
    store = Store(cfg.database.url)
    core = WardCoordinator(cfg, store, SpillingWriter(store, cfg.database.spill_dir), clock=clock)
    core.register_beds()
    return core, store


def _feed(core, clock, bed, start, n, p):
    for i in range(n):
        clock.t = start + i
        core.push(ClipScore(bed_id=bed, t=clock.t, probability=p, capture_wall=clock.t - 0.4))


def test_rule_alarm_written_once_and_recovered_after_restart(tmp_path):
    from ward.alarms.coordinator import WardCoordinator

    clock = Clock()
    core, store = _coordinator(tmp_path, clock)
    t0 = clock.t
    _feed(core, clock, "bed-1", t0, 12, 0.95)   # default rule: alarm ~4 s after p rises
    _feed(core, clock, "bed-2", t0, 12, 0.05)
    out = core.flush()
    assert out["stored"] == 24 and out["error"] is None
    alarms = store.list_alarms(bed="bed-1", tier="alarm")
    assert len(alarms) == 1 and alarms[0].state == "active" and alarms[0].peak == pytest.approx(0.95)
    assert store.list_alarms(bed="bed-2", tier="alarm") == []
    lat = core.metrics()["latency"]
    assert lat["count"] == 24 and lat["sum"] > 0
    # restart: a new coordinator over the same database continues the alarm instead of opening another
    core2 = WardCoordinator(core.cfg, store, core.writer, clock=clock)
    rep = core2.recover()
    assert rep["bed-1"]["alarm_active"] is True and rep["bed-1"]["adopted"] == [alarms[0].id]
    assert rep["bed-1"]["samples_replayed"] == 12
    _feed(core2, clock, "bed-1", clock.t + 1, 3, 0.99)
    core2.flush()
    again = store.list_alarms(bed="bed-1", tier="alarm")
    assert len(again) == 1 and again[0].peak == pytest.approx(0.99)
    # the probability falls: the alarm ends and is closed in the database
    _feed(core2, clock, "bed-1", clock.t + 1, 25, 0.0)
    core2.flush()
    assert store.get_alarm(alarms[0].id).state == "ended"


def test_episode_peak_follows_the_rule_between_update_events(tmp_path):
    clock = Clock()
    core, store = _coordinator(tmp_path, clock)
    _feed(core, clock, "bed-1", clock.t, 12, 0.95)
    _feed(core, clock, "bed-1", clock.t + 1, 2, 0.97)  # +0.02 < update_min_step: no alarm_update event
    core.flush()
    (alarm,) = store.list_alarms(bed="bed-1", tier="alarm")
    assert alarm.peak == pytest.approx(0.97) == core.beds["bed-1"].rule.alarm_peak


def test_restart_after_long_silence_closes_stale_alarm(tmp_path):
    from ward.alarms.coordinator import RECOVER_WINDOW_S, WardCoordinator

    clock = Clock()
    core, store = _coordinator(tmp_path, clock)
    _feed(core, clock, "bed-1", clock.t, 12, 0.95)
    core.flush()
    aid = store.list_alarms(bed="bed-1", tier="alarm")[0].id
    clock.t += RECOVER_WINDOW_S + 60  # nothing stored recently: the replay finds no active alarm
    core2 = WardCoordinator(core.cfg, store, core.writer, clock=clock)
    rep = core2.recover()
    assert rep["bed-1"]["closed"] == [aid]
    core2.flush()
    assert store.get_alarm(aid).state == "ended"


def test_camera_states_health_events_and_technical_alarm(tmp_path):
    clock = Clock()
    core, store = _coordinator(tmp_path, clock, offline_alarm_after_s=30.0)
    t0 = clock.t
    core.report_status({"bed-1": CameraReport(state="offline", reason="open failed: refused", since_wall=t0),
                        "bed-2": CameraReport(state="online", reason="receiving frames", since_wall=t0)})
    clock.t = t0 + 10
    core.flush()
    assert store.list_alarms(bed="bed-1", tier="technical") == []
    clock.t = t0 + 31
    core.report_status({"bed-1": CameraReport(state="offline", reason="open failed: refused", since_wall=t0),
                        "bed-2": CameraReport(state="online", reason="receiving frames", since_wall=t0)})
    core.flush()
    tech = store.list_alarms(bed="bed-1", tier="technical")
    assert len(tech) == 1 and "refused" in tech[0].reason and tech[0].state == "active"
    assert store.list_alarms(bed="bed-2", tier="technical") == []
    clock.t = t0 + 40
    core.report_status({"bed-1": CameraReport(state="online", reason="receiving frames", since_wall=t0 + 39)})
    core.flush()
    assert store.get_alarm(tech[0].id).state == "ended"
    states = [(e.state, e.reason) for e in store.health_events(bed="bed-1")]
    assert states[0][0] == "offline" and states[-1][0] == "online"
    # a camera actor that stops reporting makes its bed offline
    clock.t = t0 + 40 + 60
    core.flush()
    snap = {b["bed_id"]: b for b in core.snapshot()}
    assert snap["bed-2"]["state"] == "offline" and "no status" in snap["bed-2"]["reason"]


def test_samples_spill_while_database_is_down(tmp_path, monkeypatch):
    from sqlalchemy.exc import OperationalError

    clock = Clock()
    core, store = _coordinator(tmp_path, clock)
    real = store.write_samples

    def down(rows):
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    monkeypatch.setattr(store, "write_samples", down)
    _feed(core, clock, "bed-2", clock.t, 5, 0.1)
    out = core.flush()
    assert out["spilled"] == 5 and out["stored"] == 0
    monkeypatch.setattr(store, "write_samples", real)
    _feed(core, clock, "bed-2", clock.t + 1, 2, 0.1)
    out = core.flush()
    assert out["stored"] == 7
    from datetime import datetime, timezone

    since, until = (datetime.fromtimestamp(clock.t + d, timezone.utc) for d in (-100, 1))
    assert len(store.history("bed-2", since, until, resolution="1s")) == 7


def test_unknown_bed_push_rejected(tmp_path):
    core, _ = _coordinator(tmp_path, Clock())
    with pytest.raises(ValueError, match="unknown bed 'nope'"):
        core.push(ClipScore(bed_id="nope", t=1.0, probability=0.5))
