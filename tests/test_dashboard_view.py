"""Pure dashboard logic and the dashboard's store queries (no Streamlit runtime)."""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
import sqlalchemy as sa

from ward.dashboard.auth import bootstrap_admin, can_acknowledge, can_configure
from ward.dashboard.data import build_overview, fetch_api_beds, ApiState
from ward.dashboard.demo import DEMO_MODEL, seed_demo
from ward.dashboard.settings import load_settings
from ward.dashboard.view import (AlarmSummary, Tile, downsample_max, escalation_cutoff, history_resolution,
                                 is_escalated, is_stale, order_tiles, overview_html, provenance_label, risk_colour,
                                 skeleton_svg, sparkline_svg, tile_html)
from ward.core.keypoints import OPENPOSE_INDEX, OPENPOSE_LIMBS
from ward.store.queries import (UnackedAlarms, active_alarms, latest_health, open_alarms, recent_probabilities,
                                recent_samples, unacknowledged_alarms)
from ward.store.records import StoreError
from ward.store.repository import Store

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


def _unacked(age_s: float, *, count: int = 1, active: bool = False, overdue: int = 0, latest_id: int = 1,
             ended_age_s: float | None = None) -> UnackedAlarms:
    """Unacknowledged alarms of a tile whose oldest (and latest) one started ``age_s`` before NOW."""
    start = NOW - timedelta(seconds=age_s)
    end = None if active else NOW - timedelta(seconds=ended_age_s if ended_age_s is not None else age_s / 2)
    return UnackedAlarms(count, int(active), overdue, start, latest_id, start, end)


def test_order_tiles_puts_what_needs_acknowledgement_first():
    tiles = [Tile("bed-01"), Tile("bed-02", review=True), Tile("bed-03", alarm_active_acked=True),
             Tile("bed-04", technical=_unacked(20)),                                   # ended technical
             Tile("bed-05", technical=_unacked(10, active=True)),                     # active technical
             Tile("bed-06", alarm=_unacked(60)),                                      # ended, not escalated
             Tile("bed-07", alarm=_unacked(30, active=True)),                         # active, not escalated
             Tile("bed-08", alarm=_unacked(300, overdue=1)),                          # escalated, ended
             Tile("bed-09", alarm=_unacked(200, active=True, overdue=1)),             # escalated, active
             Tile("bed-10", alarm=_unacked(900, overdue=1), technical=_unacked(5)),   # escalated longer, ended
             Tile("bed-00")]
    assert [t.bed for t in order_tiles(tiles)] == ["bed-09", "bed-10", "bed-08", "bed-07", "bed-06", "bed-05",
                                                   "bed-04", "bed-03", "bed-02", "bed-00", "bed-01"]


def test_stale_and_escalation_rules():
    assert is_stale(None, NOW, 10)
    assert is_stale(NOW - timedelta(seconds=11), NOW, 10)
    assert not is_stale(NOW - timedelta(seconds=9), NOW, 10)
    start = NOW - timedelta(seconds=130)
    assert is_escalated(start, False, "alarm", NOW, 120)
    assert not is_escalated(start, True, "alarm", NOW, 120)      # acknowledged
    assert not is_escalated(start, False, "review", NOW, 120)    # review queue never escalates
    assert not is_escalated(start, False, "technical", NOW, 120)  # shown until acknowledged, never escalated
    assert not is_escalated(NOW - timedelta(seconds=60), False, "alarm", NOW, 120)
    assert is_escalated(NOW - timedelta(seconds=120), False, "alarm", NOW, 120)  # the limit itself escalates
    assert escalation_cutoff(NOW, 120) == NOW - timedelta(seconds=120)
    with pytest.raises(ValueError, match="escalate_after_s"):
        is_escalated(start, False, "alarm", NOW, 0)
    with pytest.raises(ValueError, match="stale_after_s"):
        is_stale(NOW, NOW, -1)


def test_alarm_summary_counts_and_when_the_tone_plays():
    tiles = [Tile("bed-01", alarm=_unacked(300, count=3, overdue=2)),
             Tile("bed-02", alarm=_unacked(30, active=True), technical=_unacked(100, count=2)),
             Tile("bed-03", alarm_active_acked=True), Tile("bed-04", review=True)]
    summary = AlarmSummary.of(tiles)
    assert summary == AlarmSummary(unacked=4, active=1, escalated=2, technical=2, technical_active=0)
    assert summary.headline() == ("**4 alarm(s) need acknowledgement** (1 active, 2 escalated) · "
                                  "2 technical alarm(s) unacknowledged (0 active)")
    assert summary.sound
    # an ended clinical alarm nobody acknowledged keeps the tone on
    assert AlarmSummary.of([Tile("bed-01", alarm=_unacked(30))]).sound
    # a technical alarm sounds while active; once ended it stays counted but silent
    assert AlarmSummary.of([Tile("bed-01", technical=_unacked(30, active=True))]).sound
    ended_tech = AlarmSummary.of([Tile("bed-01", technical=_unacked(30))])
    assert ended_tech.technical == 1 and not ended_tech.sound
    # acknowledged (still active) alarms and review items need no acknowledgement
    quiet = AlarmSummary.of([Tile("bed-01", alarm_active_acked=True), Tile("bed-02", review=True)])
    assert quiet == AlarmSummary() and not quiet.sound


def _tile(t: Tile) -> tuple[list[str], str]:
    page = tile_html(replace(t, updated_at=NOW), NOW, stale_after_s=10)  # fresh: no "stale" class
    return re.search(r'class="([^"]+)"', page).group(1).split(), page


def test_tile_shows_unacknowledged_alarms_with_count_times_and_style():
    cls, page = _tile(Tile("bed-01", alarm=_unacked(300, count=2, overdue=2, latest_id=7, ended_age_s=240)))
    assert cls == ["tile", "alarm", "ended", "esc"]
    assert "ALARM ENDED" in page and "ESCALATED" in page
    assert "2 unacknowledged alarm(s) · latest #7 started 11:55:00 (5 min ago), ended 11:56:00 (4 min ago)" in page
    cls, page = _tile(Tile("bed-02", alarm=_unacked(40, active=True, latest_id=9)))
    assert cls == ["tile", "alarm"]                       # flashing, not escalated yet
    assert ">ALARM<" in page and "ESCALATED" not in page and "latest #9 started 11:59:20 (40 s ago), still active" in page
    cls, page = _tile(Tile("bed-03", technical=_unacked(90, active=True, latest_id=4), state="offline"))
    assert cls == ["tile", "tech", "offline"]              # technical: its own frame and badge, not the alarm style
    assert "TECH ALARM" in page and "1 unacknowledged technical alarm(s)" in page and ">ALARM<" not in page
    cls, page = _tile(Tile("bed-04", technical=_unacked(90)))
    assert "TECH ENDED" in page
    cls, page = _tile(Tile("bed-05", alarm_active_acked=True, review=True))
    assert cls == ["tile", "alarm", "acked"] and "ALARM · ACK" in page and "REVIEW" not in page
    assert "unacknowledged" not in page
    cls, page = _tile(Tile("bed-06", review=True))
    assert cls == ["tile"] and "REVIEW" in page


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
    latest = store.latest_samples()
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
    assert demo.alarm_id in ids and demo.technical_id in ids and demo.review_id in ids  # all three active
    assert demo.ended_alarm_id not in ids  # ended + acknowledged is closed
    recent = recent_samples(store, NOW - timedelta(seconds=9), ["bed-01"])
    assert list(recent) == ["bed-01"] and len(recent["bed-01"]) == 10
    probs = recent_probabilities(store, NOW - timedelta(seconds=9))
    assert set(probs) == set(demo.beds) and probs["bed-04"] == []  # bed 4 silent for 45 s
    assert probs["bed-01"] == [p for _, p, _ in recent["bed-01"]]


def test_build_overview_and_html(store, demo):
    ov = build_overview(store, NOW, stale_after_s=10, spark_window_s=60, escalate_after_s=120)
    assert ov.stale_beds == ["bed-04"] and ov.api_error is None
    by_bed = {t.bed: t for t in ov.tiles}
    alarm = by_bed["bed-02"].alarm
    assert (alarm.count, alarm.active, alarm.overdue, alarm.latest_id) == (1, 1, 1, demo.alarm_id)
    assert alarm.latest_end is None and by_bed["bed-02"].escalated == 1
    tech = by_bed["bed-04"].technical
    assert (tech.count, tech.active, tech.overdue, tech.latest_id) == (1, 1, 0, demo.technical_id)
    assert by_bed["bed-04"].state == "offline" and by_bed["bed-04"].alarm is None
    assert by_bed["bed-05"].review and not by_bed["bed-05"].needs_ack
    assert by_bed["bed-03"].alarm is None and not by_bed["bed-03"].needs_ack  # ended and acknowledged
    assert 0 < len(by_bed["bed-01"].spark) <= 60
    assert AlarmSummary.of(ov.tiles) == AlarmSummary(unacked=1, active=1, escalated=1, technical=1,
                                                     technical_active=1)
    page = overview_html(ov.tiles, NOW, stale_after_s=10)
    assert re.findall(r'data-bed="([^"]+)"', page) == ["bed-02", "bed-04", "bed-05", "bed-01", "bed-03", "bed-06"]
    first = page.split('data-bed="bed-02"')[1].split('data-bed=')[0]
    assert "ALARM" in first and "ESCALATED" in first  # unacknowledged for 180 s > 120 s
    assert f"{by_bed['bed-02'].probability:.2f}" in first
    # the escalation limit is applied at build time, to the `now` given
    later = build_overview(store, NOW, stale_after_s=10, spark_window_s=60, escalate_after_s=181)
    assert {t.bed: t for t in later.tiles}["bed-02"].escalated == 0


def test_ended_unacknowledged_alarm_stays_on_the_overview_until_acknowledged(store, demo):
    """The issue: after bed-01's seizure ended, the overview said '0 active alarm(s)' and showed no
    badge, while the alarm was still waiting for acknowledgement."""
    aid = store.open_alarm("bed-01", "alarm", NOW - timedelta(minutes=3), peak=0.9, reason="simulated seizure")
    store.close_alarm(aid, NOW - timedelta(minutes=2))
    ov = build_overview(store, NOW, stale_after_s=10, spark_window_s=60, escalate_after_s=120)
    tile = {t.bed: t for t in ov.tiles}["bed-01"]
    assert tile.alarm == UnackedAlarms(1, 0, 1, NOW - timedelta(minutes=3), aid, NOW - timedelta(minutes=3),
                                       NOW - timedelta(minutes=2))
    summary = AlarmSummary.of(ov.tiles)
    assert (summary.unacked, summary.active, summary.escalated) == (2, 1, 2) and summary.sound
    page = overview_html(ov.tiles, NOW, stale_after_s=10)
    assert re.findall(r'data-bed="([^"]+)"', page)[:2] == ["bed-02", "bed-01"]  # escalated: active, then ended
    tile_page = page.split('data-bed="bed-01"')[1].split("data-bed=")[0]
    assert "ALARM ENDED" in tile_page and "ESCALATED" in tile_page
    assert f"1 unacknowledged alarm(s) · latest #{aid} started 11:57:00 (3 min ago), ended 11:58:00 (2 min ago)" \
        in tile_page

    store.acknowledge(aid, "nurse", "true", "seen", source="test")
    ov = build_overview(store, NOW, stale_after_s=10, spark_window_s=60, escalate_after_s=120)
    assert {t.bed: t for t in ov.tiles}["bed-01"].alarm is None
    assert AlarmSummary.of(ov.tiles).unacked == 1  # only bed-02's active alarm is left
    assert "ALARM" not in overview_html(ov.tiles, NOW, stale_after_s=10).split('data-bed="bed-01"')[1].split(
        "data-bed=")[0]


@pytest.fixture()
def any_store(db_url):  # noqa: F811  (db_url: the fixture imported from test_store)
    s = Store(db_url)
    for b in ("bed-01", "bed-02", "bed-03", "bed-04"):
        s.upsert_bed(b)
    yield s
    s.close()


def _alarm(store: Store, bed: str, tier: str, age_s: float, ended_age_s: float | None = None,
           verdict: str | None = None) -> int:
    aid = store.open_alarm(bed, tier, NOW - timedelta(seconds=age_s), peak=0.8)
    if ended_age_s is not None:
        store.close_alarm(aid, NOW - timedelta(seconds=ended_age_s))
    if verdict:
        store.acknowledge(aid, "nurse", verdict, source="test")
    return aid


def test_unacknowledged_and_active_alarm_queries(any_store):
    s = any_store
    old = _alarm(s, "bed-01", "alarm", 600, ended_age_s=560)          # escalated, ended
    last = _alarm(s, "bed-01", "alarm", 90, ended_age_s=60)           # not yet escalated, ended
    _alarm(s, "bed-01", "alarm", 3600, ended_age_s=3500, verdict="false")  # acknowledged: gone
    live = _alarm(s, "bed-02", "alarm", 30)                           # active, unacknowledged
    tech = _alarm(s, "bed-03", "technical", 400, ended_age_s=300)      # technical, ended, unacknowledged
    review = _alarm(s, "bed-03", "review", 800, ended_age_s=700)       # review queue: never counted
    acked_live = _alarm(s, "bed-04", "alarm", 50, verdict="true")      # active but acknowledged
    active_review = _alarm(s, "bed-04", "review", 20)
    got = unacknowledged_alarms(s, NOW - timedelta(seconds=120))
    t = lambda sec: NOW - timedelta(seconds=sec)  # noqa: E731
    assert got == {("bed-01", "alarm"): UnackedAlarms(2, 0, 1, t(600), last, t(90), t(60)),
                   ("bed-02", "alarm"): UnackedAlarms(1, 1, 0, t(30), live, t(30), None),
                   ("bed-03", "technical"): UnackedAlarms(1, 0, 1, t(400), tech, t(400), t(300))}
    assert [a.id for a in active_alarms(s)] == [acked_live, live, active_review]
    assert [a.id for a in open_alarms(s)] == [old, tech, last, acked_live, live, active_review]  # oldest first
    assert review not in [a.id for a in open_alarms(s)]  # an ended review item is not an open alarm
    s.acknowledge(old, "nurse", "unsure", source="test")
    s.close_alarm(live, NOW)
    got = unacknowledged_alarms(s, NOW - timedelta(seconds=120))
    assert got[("bed-01", "alarm")] == UnackedAlarms(1, 0, 0, t(90), last, t(90), t(60))
    assert got[("bed-02", "alarm")] == UnackedAlarms(1, 0, 0, t(30), live, t(30), NOW)  # ended, still waiting
    with pytest.raises(StoreError, match="tier"):
        unacknowledged_alarms(s, NOW, tiers=("alarms",))


def _plans(store: Store, call) -> list[str]:
    """The database's query plan of every SELECT on the alarms table that ``call`` runs."""
    seen: list[tuple[str, object]] = []

    def grab(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and "alarms" in statement:
            seen.append((statement, parameters))

    sa.event.listen(store.engine, "before_cursor_execute", grab)
    try:
        call()
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", grab)
    plans = []
    with store.engine.connect() as conn:
        if store.dialect == "postgresql":
            conn.exec_driver_sql("SET enable_seqscan = off")  # tiny tables: ask whether an index CAN serve
        for statement, params in seen:
            prefix = "EXPLAIN QUERY PLAN " if store.dialect == "sqlite" else "EXPLAIN "
            plans.append(" ".join(str(r[-1]) for r in conn.exec_driver_sql(prefix + statement, params)))
    return plans


def test_alarm_queries_read_only_what_needs_attention_through_indexes(any_store):
    """Years of acknowledged alarms and of never-acknowledged review items must not be scanned on
    every refresh: each alarm query is an index seek (ix_alarms_unacked / ix_alarms_state)."""
    _alarm(any_store, "bed-01", "alarm", 100)
    (unacked,) = _plans(any_store, lambda: unacknowledged_alarms(any_store, NOW))
    assert "ix_alarms_unacked" in unacked and "SCAN alarms" not in unacked and "Seq Scan" not in unacked
    (active,) = _plans(any_store, lambda: active_alarms(any_store))
    assert "ix_alarms_state" in active and "SCAN alarms" not in active and "Seq Scan" not in active
    (both,) = _plans(any_store, lambda: open_alarms(any_store))
    assert "ix_alarms_unacked" in both and "ix_alarms_state" in both and "Seq Scan" not in both


def test_api_state_merges_and_unreachable_api_is_reported(store, demo):
    api = ApiState({"bed-01": {"bed_id": "bed-01", "state": "degraded", "reason": "fps 3 < 6",
                               "since": (NOW - timedelta(seconds=30)).isoformat(), "probability": 0.42,
                               "updated_at": (NOW + timedelta(seconds=1)).isoformat()}})
    tile = {t.bed: t for t in build_overview(store, NOW, stale_after_s=10, spark_window_s=60, escalate_after_s=120,
                                             api=api).tiles}["bed-01"]
    assert (tile.state, tile.reason, tile.probability) == ("degraded", "fps 3 < 6", 0.42)
    dead = fetch_api_beds("http://127.0.0.1:9", timeout_s=0.3)
    assert dead is not None and dead.beds == {} and "unreachable" in dead.error
    assert fetch_api_beds(None) is None
