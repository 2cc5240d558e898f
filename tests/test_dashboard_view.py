"""Pure dashboard logic and the dashboard's store queries (no Streamlit runtime)."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from ward.dashboard.auth import bootstrap_admin, can_acknowledge, can_configure
from ward.dashboard.data import build_overview, fetch_api_beds, ApiState
from ward.dashboard.demo import DEMO_MODEL, seed_demo
from ward.dashboard.settings import load_settings
from ward.dashboard.view import (Tile, downsample_max, history_resolution, is_escalated, is_stale, order_tiles,
                                 overview_html, provenance_label, risk_colour, skeleton_svg, sparkline_svg)
from ward.keypoints import OPENPOSE_INDEX, OPENPOSE_LIMBS
from ward.store.dashboard_queries import (BedThresholds, get_thresholds, latest_health, latest_samples,
                                          open_alarms, recent_probabilities, recent_samples,
                                          set_thresholds)
from ward.store.repository import Store, StoreError

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


@pytest.fixture()
def store(tmp_path):
    s = Store(f"sqlite:///{tmp_path / 'w.db'}")
    yield s
    s.close()


@pytest.fixture()
def demo(store):
    return seed_demo(store, NOW, n_beds=6, minutes=3, users=False)


def test_risk_colour_scale():
    assert risk_colour(0.0) == "#2e7d32"
    assert risk_colour(1.0) == "#c62828"
    assert risk_colour(0.5) == "#f9a825"
    assert risk_colour(7.0) == risk_colour(1.0)  # clipped
    assert risk_colour(None) == risk_colour(float("nan")) == "#9e9e9e"
    # red rises from calm to amber, then green falls from amber to alarm: no colour reversal
    reds = [int(risk_colour(p)[1:3], 16) for p in np.linspace(0, 0.5, 6)]
    greens = [int(risk_colour(p)[3:5], 16) for p in np.linspace(0.5, 1, 6)]
    assert reds == sorted(reds) and greens == sorted(greens, reverse=True)


def test_order_tiles_puts_active_alarms_first():
    t = NOW
    tiles = [Tile("bed-01"), Tile("bed-02", review=True),
             Tile("bed-03", alarm_id=5, alarm_start=t - timedelta(seconds=10), alarm_acknowledged=True),
             Tile("bed-04", alarm_id=6, alarm_start=t - timedelta(seconds=5)),
             Tile("bed-05", alarm_id=7, alarm_start=t - timedelta(seconds=50)), Tile("bed-00")]
    assert [x.bed for x in order_tiles(tiles)] == ["bed-05", "bed-04", "bed-03", "bed-02", "bed-00", "bed-01"]


def test_stale_and_escalation_rules():
    assert is_stale(None, NOW, 10)
    assert is_stale(NOW - timedelta(seconds=11), NOW, 10)
    assert not is_stale(NOW - timedelta(seconds=9), NOW, 10)
    start = NOW - timedelta(seconds=130)
    assert is_escalated(start, False, "alarm", NOW, 120)
    assert not is_escalated(start, True, "alarm", NOW, 120)      # acknowledged
    assert not is_escalated(start, False, "review", NOW, 120)    # review queue never escalates
    assert not is_escalated(NOW - timedelta(seconds=60), False, "alarm", NOW, 120)
    with pytest.raises(ValueError, match="escalate_after_s"):
        is_escalated(start, False, "alarm", NOW, 0)
    with pytest.raises(ValueError, match="stale_after_s"):
        is_stale(NOW, NOW, -1)


def test_downsample_keeps_peaks_and_sparkline_geometry():
    v = np.zeros(600)
    v[377] = 0.97
    d = downsample_max(v, 60)
    assert len(d) == 60 and max(d) == pytest.approx(0.97)
    svg = sparkline_svg(d, width=100, height=20)
    pts = re.search(r'points="([^"]+)"', svg).group(1).split()
    assert len(pts) == 60
    ys = [float(p.split(",")[1]) for p in pts]
    assert min(ys) == pytest.approx(19 - 0.97 * 18, abs=0.06)  # the peak is the highest point
    with pytest.raises(ValueError):
        downsample_max(v, 0)


def test_skeleton_svg_draws_limbs_of_confident_joints():
    rng = np.random.default_rng(0)
    pose = np.concatenate([rng.uniform(0, 100, (18, 2)), np.ones((18, 1))], axis=1)
    assert skeleton_svg(pose, trail=0).count("<line") == len(OPENPOSE_LIMBS)
    low = pose.copy()
    low[OPENPOSE_INDEX["r_knee"], 2] = 0.0  # hides r_hip-r_knee and r_knee-r_ank
    assert skeleton_svg(low, trail=0).count("<line") == len(OPENPOSE_LIMBS) - 2
    seq = np.stack([pose, pose, pose])
    assert skeleton_svg(seq, trail=5).count("<line") == 3 * len(OPENPOSE_LIMBS)
    with pytest.raises(ValueError, match=r"\(T, 18, 3\)"):
        skeleton_svg(np.zeros((15, 3)))


def test_provenance_label_and_roles():
    assert "not for clinical use" in provenance_label("vsvig-sim", "trained on simulated data")
    assert "not for clinical use" not in provenance_label("vsvig-official", "authors' released weights")
    assert "none recorded" in provenance_label(None, None)
    assert can_acknowledge("clinician") and can_acknowledge("admin") and not can_acknowledge("viewer")
    assert can_configure("admin") and not can_configure("clinician")


def test_history_resolution_and_settings():
    assert history_resolution(NOW, NOW + timedelta(hours=1)) == "1s"
    assert history_resolution(NOW, NOW + timedelta(days=2)) == "1m"
    assert history_resolution(NOW, NOW + timedelta(days=30)) == "1h"
    with pytest.raises(ValueError, match="inverted"):
        history_resolution(NOW, NOW)
    s = load_settings({"WARD_DB_URL": "sqlite:///x.db", "WARD_ESCALATE_AFTER_S": "30"})
    assert s.db_url == "sqlite:///x.db" and s.escalate_after_s == 30
    with pytest.raises(ValueError, match="WARD_DASH_REFRESH_S"):
        load_settings({"WARD_DASH_REFRESH_S": "0.01"})


def test_bootstrap_admin_from_env_and_one_time_password(tmp_path, caplog):
    s1 = Store(f"sqlite:///{tmp_path / 'a.db'}")
    with caplog.at_level(logging.INFO, logger="ward.dashboard"):
        assert bootstrap_admin(s1, {"WARD_ADMIN_PASSWORD": "s3cret-pass"}) == "admin"
    assert "s3cret-pass" not in caplog.text  # never log a configured password
    assert s1.authenticate("admin", "s3cret-pass").role == "admin"
    assert bootstrap_admin(s1, {"WARD_ADMIN_PASSWORD": "other-pass"}) is None  # users exist: no-op

    s2 = Store(f"sqlite:///{tmp_path / 'b.db'}")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ward.dashboard"):
        bootstrap_admin(s2, {})
        bootstrap_admin(s2, {})
    msgs = [r.getMessage() for r in caplog.records if "one-time password" in r.getMessage()]
    assert len(msgs) == 1  # printed once, never again
    password = msgs[0].split("one-time password ")[1].split(" ")[0]
    assert s2.authenticate("admin", password) is not None
    assert any(a.action == "user.bootstrap" for a in s2.audit_log())


def test_dashboard_queries(store, demo):
    latest = latest_samples(store)
    assert set(latest) == set(demo.beds)
    assert latest["bed-01"].t == NOW  # the newest sample is at `now`
    assert latest["bed-04"].t == NOW - timedelta(seconds=45)  # camera went offline 45 s ago
    assert latest["bed-01"].model_version == DEMO_MODEL
    hist = store.history("bed-02", NOW - timedelta(seconds=1), NOW + timedelta(seconds=1), "1s")
    assert latest["bed-02"].probability == pytest.approx(hist[-1].p_max)
    health = latest_health(store)
    assert health["bed-04"].state == "offline" and health["bed-03"].state == "degraded"
    assert health["bed-01"].state == "online"
    ids = [a.id for a in open_alarms(store)]
    assert demo.alarm_id in ids and demo.ended_alarm_id not in ids  # ended + acknowledged is closed
    recent = recent_samples(store, NOW - timedelta(seconds=9), ["bed-01"])
    assert list(recent) == ["bed-01"] and len(recent["bed-01"]) == 10
    probs = recent_probabilities(store, NOW - timedelta(seconds=9))
    assert set(probs) == set(demo.beds) and probs["bed-04"] == []  # bed 4 silent for 45 s
    assert probs["bed-01"] == [p for _, p, _ in recent["bed-01"]]


def test_thresholds_round_trip_and_audit(store, demo):
    assert get_thresholds(store, "bed-01") == BedThresholds()
    set_thresholds(store, "bed-01", BedThresholds(probability=0.7, accumulator=2.5), user="boss")
    assert get_thresholds(store, "bed-01") == BedThresholds(probability=0.7, accumulator=2.5)
    assert get_thresholds(store, "bed-02") == BedThresholds()
    entry = store.audit_log(limit=1)[0]
    assert entry.action == "config.thresholds" and entry.username == "boss"
    assert entry.detail["new"] == {"probability": 0.7, "accumulator": 2.5} and entry.detail["bed"] == "bed-01"
    with pytest.raises(StoreError, match="unknown bed"):
        get_thresholds(store, "bed-99")
    with pytest.raises(ValueError):
        BedThresholds(probability=1.5)


def test_build_overview_and_html(store, demo):
    ov = build_overview(store, NOW, stale_after_s=10, spark_window_s=60)
    assert ov.stale_beds == ["bed-04"] and ov.api_error is None
    by_bed = {t.bed: t for t in ov.tiles}
    assert by_bed["bed-02"].alarm_id == demo.alarm_id and not by_bed["bed-02"].alarm_acknowledged
    assert by_bed["bed-05"].review and by_bed["bed-04"].state == "offline"
    assert 0 < len(by_bed["bed-01"].spark) <= 60
    page = overview_html(ov.tiles, NOW, stale_after_s=10, escalate_after_s=120)
    beds_in_order = re.findall(r'data-bed="([^"]+)"', page)
    assert beds_in_order[0] == "bed-02" and beds_in_order[1] == "bed-05"
    first = page.split('data-bed="bed-02"')[1].split('data-bed=')[0]
    assert "ALARM" in first and "ESCALATED" in first  # unacknowledged for 180 s > 120 s
    assert f"{by_bed['bed-02'].probability:.2f}" in first


def test_api_state_merges_and_unreachable_api_is_reported(store, demo):
    api = ApiState({"bed-01": {"bed_id": "bed-01", "state": "degraded", "reason": "fps 3 < 6",
                               "since": (NOW - timedelta(seconds=30)).isoformat(), "probability": 0.42,
                               "updated_at": (NOW + timedelta(seconds=1)).isoformat()}})
    tile = {t.bed: t for t in build_overview(store, NOW, stale_after_s=10, spark_window_s=60, api=api).tiles}["bed-01"]
    assert (tile.state, tile.reason, tile.probability) == ("degraded", "fps 3 < 6", 0.42)
    dead = fetch_api_beds("http://127.0.0.1:9", timeout_s=0.3)
    assert dead is not None and dead.beds == {} and "unreachable" in dead.error
    assert fetch_api_beds(None) is None
