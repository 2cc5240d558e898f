"""Every dashboard page through Streamlit's AppTest on a seeded temporary SQLite database."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ward.dashboard.auth import open_session
from ward.dashboard.demo import DEMO_USERS, seed_demo
from ward.dashboard.ui import TOKEN_KEY
from ward.store.repository import Store

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


@pytest.fixture()
def ward(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'ward.db'}"
    monkeypatch.setenv("WARD_DB_URL", url)
    monkeypatch.delenv("WARD_API_URL", raising=False)
    store = Store(url)
    demo = seed_demo(store, datetime.now(timezone.utc), n_beds=6, minutes=10)
    yield store, demo
    store.close()


def _app(store: Store, username: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    if username:
        at.session_state[TOKEN_KEY] = open_session(store, store.authenticate(username, DEMO_USERS[username][0]))
    return at.run()


def _button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def _texts(at: AppTest) -> str:
    return "\n".join([m.value for m in at.markdown] + [c.value for c in at.caption] + [i.value for i in at.info]
                     + [w.value for w in at.warning] + [e.value for e in at.error] + [s.value for s in at.success])


def test_login_rejects_bad_password_and_shows_overview(ward):
    store, demo = ward
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    at.text_input(key="login_user").input("nurse")
    at.text_input(key="login_password").input("wrong-password")
    _button(at, "Log in").click().run()
    assert "wrong password" in at.error[0].value
    assert store.audit_log(limit=1)[0].action == "login.failed"
    at.text_input(key="login_password").input(DEMO_USERS["nurse"][0])
    _button(at, "Log in").click().run()
    assert not at.exception
    text = _texts(at)
    assert ("**1 alarm(s) need acknowledgement** (1 active, 1 escalated) · 1 technical alarm(s) unacknowledged "
            "(1 active) · 6 beds") in text
    grid = next(m.value for m in at.markdown if "ward-grid" in m.value)
    assert grid.index('data-bed="bed-02"') < grid.index('data-bed="bed-01"')  # alarm bed first
    assert "ESCALATED" in grid  # seeded alarm is 180 s old, unacknowledged, escalation after 120 s
    latest = store.history("bed-01", datetime.now(timezone.utc) - timedelta(minutes=2),
                           datetime.now(timezone.utc) + timedelta(seconds=1), "1s")[-1]
    tile = grid.split('data-bed="bed-01"')[1].split("data-bed=")[0]
    assert f'<div class="risk">{latest.p_max:.2f}</div>' in tile
    assert "STALE DATA" in text and "bed-04" in at.warning[0].value
    assert "trained on simulated data — not for clinical use" in text
    assert any(a.action == "login" and a.username == "nurse" for a in store.audit_log())


def test_clinician_acknowledges_with_verdict_and_audit(ward):
    store, demo = ward
    at = _app(store, "nurse")
    at.switch_page("views/alarms.py").run()
    assert not at.exception
    assert "ESCALATED" in _texts(at)
    at.button(key=f"ack_{demo.alarm_id}").click().run()  # no verdict chosen yet: refused
    assert "Choose a verdict" in at.error[0].value
    assert store.get_alarm(demo.alarm_id).verdict is None
    at.radio(key=f"verdict_{demo.alarm_id}").set_value("true")
    at.text_input(key=f"note_{demo.alarm_id}").input("clonic jerks, called doctor")
    at.button(key=f"ack_{demo.alarm_id}").click().run()
    assert not at.exception
    alarm = store.get_alarm(demo.alarm_id)
    assert alarm.acknowledged and alarm.verdict == "true"
    ev = store.ack_events(demo.alarm_id)[-1]
    assert (ev.username, ev.verdict, ev.note, ev.source) == ("nurse", "true", "clinic jerks, called doctor"
                                                             .replace("clinic", "clonic"), "dashboard")
    audit = store.audit_log(limit=1)[0]
    assert audit.action == "acknowledge" and audit.username == "nurse"
    assert audit.detail["alarm_id"] == demo.alarm_id and audit.detail["verdict"] == "true"
    assert f"Alarm #{demo.alarm_id} acknowledged as true seizure" in at.success[0].value
    assert "ESCALATED" not in _texts(at)  # acknowledged alarms no longer escalate


def _grid(at: AppTest) -> str:
    return next(m.value for m in at.markdown if "ward-grid" in m.value)


def _tile(at: AppTest, bed: str) -> str:
    return _grid(at).split(f'data-bed="{bed}"')[1].split("data-bed=")[0]


def _beeps(at: AppTest) -> bool:
    return any("<audio autoplay" in m.value for m in at.markdown)


def _ack_on_alarms_page(at: AppTest, alarm_id: int, verdict: str) -> None:
    at.switch_page("views/alarms.py").run()
    at.radio(key=f"verdict_{alarm_id}").set_value(verdict)
    at.button(key=f"ack_{alarm_id}").click().run()
    assert not at.exception
    at.switch_page("views/overview.py").run()
    assert not at.exception


def test_ended_unacknowledged_alarm_counts_on_overview_until_acknowledged(ward):
    """The issue: after bed-01's seizure ended the header said 0 alarms and the tile had no badge."""
    store, demo = ward
    now = datetime.now(timezone.utc)
    ended = store.open_alarm("bed-01", "alarm", now - timedelta(minutes=5), peak=0.9, reason="simulated seizure")
    store.close_alarm(ended, now - timedelta(minutes=4))
    at = _app(store, "nurse")
    at.sidebar.toggle(key="alarm_sound").set_value(True).run()
    assert not at.exception
    assert "**2 alarm(s) need acknowledgement** (1 active, 2 escalated)" in _texts(at)
    tile = _tile(at, "bed-01")
    assert "ALARM ENDED" in tile and "ESCALATED" in tile and f"1 unacknowledged alarm(s) · latest #{ended}" in tile
    assert _beeps(at)

    _ack_on_alarms_page(at, demo.alarm_id, "true")  # bed-02's active alarm
    assert "**1 alarm(s) need acknowledgement** (0 active, 1 escalated)" in _texts(at)
    assert "ALARM ENDED" in _tile(at, "bed-01")
    assert _beeps(at)  # an ended alarm nobody acknowledged still sounds

    _ack_on_alarms_page(at, ended, "false")
    assert "**0 alarm(s) need acknowledgement** (0 active, 0 escalated)" in _texts(at)
    assert "unacknowledged alarm" not in _tile(at, "bed-01") and "ALARM" not in _tile(at, "bed-01")
    assert "ALARM · ACK" in _tile(at, "bed-02")  # acknowledged, still active: stays marked
    assert _beeps(at)  # bed-04's camera is still offline: its technical alarm sounds until acknowledged

    _ack_on_alarms_page(at, demo.technical_id, "true")
    assert "· 0 technical alarm(s) unacknowledged (0 active)" in _texts(at)
    assert "TECH ALARM" not in _tile(at, "bed-04") and not _beeps(at)
    assert [e.verdict for e in store.ack_events(demo.technical_id)] == ["true"]


def test_viewer_cannot_acknowledge(ward):
    store, demo = ward
    at = _app(store, "watcher")
    at.switch_page("views/alarms.py").run()
    assert not at.exception
    assert "viewers can see alarms but not acknowledge" in _texts(at)
    assert not [b for b in at.button if str(b.key).startswith("ack_")]
    assert not at.radio
    assert store.get_alarm(demo.alarm_id).verdict is None
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("views/admin.py")  # the admin page is not in a viewer's navigation


def test_bed_view_values(ward):
    store, demo = ward
    at = _app(store, "nurse")
    at.session_state["bed"] = "bed-02"
    at.switch_page("views/bed.py").run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    last = store.history("bed-02", datetime.now(timezone.utc) - timedelta(minutes=10),
                         datetime.now(timezone.utc) + timedelta(seconds=1), "1s")[-1]
    assert metrics["Probability"] == f"{last.p_max:.2f}"
    assert metrics["Accumulator"] == f"{last.accumulator:.2f}"
    assert metrics["Camera"] == "online"
    assert f"#{demo.alarm_id} alarm" in _texts(at)  # alarm marker listed for the window
    assert "not stored by this deployment" in _texts(at)
    assert not at.number_input  # clinicians do not configure
    at.selectbox(key="bed_select").set_value("bed-04").run()
    assert {m.label: m.value for m in at.metric}["Camera"] == "offline"


def test_history_filters_and_audited_export(ward):
    store, demo = ward
    at = _app(store, "nurse")
    at.switch_page("views/history.py").run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Alarms"] == "4" and metrics["False alarms"] == "1" and metrics["Unacknowledged"] == "3"
    at.multiselect(key="hist_tiers").set_value(["alarm"]).run()
    assert {m.label: m.value for m in at.metric}["Alarms"] == "2"
    at.multiselect(key="hist_beds").set_value(["bed-03"]).run()
    df = at.dataframe[0].value
    assert list(df["id"]) == [demo.ended_alarm_id] and list(df["verdict"]) == ["false"]
    # the CSV is made (and audited) only when the browser fetches it: drawing the page exports nothing.
    # The fetch itself, its audit row and the filters it records: tests/test_audit.py (Chromium)
    button = at.download_button(key="export_alarms")
    assert button.proto.HasField("deferred_file_id")
    assert store.audit_log(action="export.csv") == []


def test_event_review_shows_window_and_acknowledgements(ward):
    store, demo = ward
    at = _app(store, "watcher")
    at.session_state["review_alarm"] = demo.ended_alarm_id
    at.switch_page("views/review.py").run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Bed"] == "bed-03" and metrics["Verdict"] == "false" and metrics["Peak"] == "0.71"
    assert metrics["Duration"] == "40 s"
    assert "Clips and keypoints are not stored by this deployment" in _texts(at)
    acks = at.dataframe[0].value
    assert list(acks["user"]) == ["nurse"] and list(acks["note"]) == ["patient brushing teeth"]
    n = int(next(c.value for c in at.caption if "samples from" in c.value).split()[0])
    alarm = store.get_alarm(demo.ended_alarm_id)
    window = store.history("bed-03", alarm.start - timedelta(seconds=120), alarm.end + timedelta(seconds=120), "1s")
    assert n == len(window) >= 270  # 1 Hz samples from 120 s before the start to 120 s after the end


def test_admin_page_creates_user(ward):
    store, _ = ward
    at = _app(store, "admin")
    at.switch_page("views/admin.py").run()
    assert not at.exception
    assert set(at.dataframe[0].value["user"]) == set(DEMO_USERS)
    at.text_input(key="new_user_name").input("night-nurse")
    at.text_input(key="new_user_pw").input("long-enough-pw")
    at.selectbox(key="new_user_role").set_value("clinician")
    _button(at, "Create user").click().run()
    assert not at.exception
    assert store.authenticate("night-nurse", "long-enough-pw").role == "clinician"
    assert any(a.action == "user.create" and a.username == "admin" for a in store.audit_log())


def test_banners_for_unreachable_api_and_database(ward, monkeypatch):
    store, _ = ward
    monkeypatch.setenv("WARD_API_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    at = _app(store, "watcher")
    assert not at.exception
    assert "Live camera state unavailable" in at.warning[0].value and "unreachable" in at.warning[0].value
    assert any("ward-grid" in m.value for m in at.markdown)  # still shows the database's data

    from sqlalchemy.exc import OperationalError

    import ward.dashboard.data as data

    def down(*_a, **_k):
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    monkeypatch.setattr(data, "build_overview", down)
    at.run()
    assert not at.exception
    assert "DATABASE UNREACHABLE" in at.error[0].value
    assert not any("ward-grid" in m.value for m in at.markdown)  # no stale tiles passed off as live


# ------------------------------------------------------------------------- bed view: the rule that runs
# serve_configs/ward.yaml's rule, recorded with the bed as the coordinator does at start
WARD_RULES = {"p_floor": 0.8, "alarm_threshold": 0.95, "tau_rise_s": 1.5, "min_duration_s": 1.0}


def _record_ward_rules(store: Store, bed: str = "bed-01") -> None:
    from ward.store.rules import camera_rules

    store.upsert_bed(bed, camera={"source": "sim://", "rules": camera_rules(WARD_RULES, {})})


def _rule_datums(at: AppTest) -> list[float]:
    """y values of the rule lines in the bed view's chart (vega-lite ``rule`` marks with ``y.datum``)."""
    import json

    found: list[float] = []

    def walk(node):
        if isinstance(node, dict):
            mark, y = node.get("mark"), node.get("encoding", {}).get("y", {})
            if isinstance(mark, dict) and mark.get("type") == "rule" and isinstance(y, dict) and "datum" in y:
                found.append(y["datum"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(json.loads(at.get("vega_lite_chart")[0].proto.spec))
    return found


def _bed_page(store: Store, username: str, bed: str = "bed-01") -> AppTest:
    at = _app(store, username)
    at.session_state["bed"] = bed
    at.switch_page("views/bed.py").run()
    assert not at.exception
    return at


def _rule_audit(store: Store) -> list:
    return [a for a in store.audit_log(limit=1000) if a.action == "rule.override"]


def test_bed_view_draws_the_effective_rule_and_admin_overrides_it(ward):
    from ward.store.rules import current_overrides, override_history

    store, _ = ward
    _record_ward_rules(store)
    at = _bed_page(store, "admin")
    assert _rule_datums(at) == [0.8, 0.95, 0.3]  # p_floor, alarm and release threshold of the ward's rule
    assert "source: **ward config rules**" in _texts(at)

    at.number_input(key="rule_p_floor").set_value(0.4)
    at.number_input(key="rule_alarm_threshold").set_value(0.55)
    _button(at, "Save rule override").click().run()
    assert not at.exception
    assert current_overrides(store)["bed-01"].override.values() == {"p_floor": 0.4, "alarm_threshold": 0.55}
    entry = _rule_audit(store)[0]
    assert (entry.username, entry.source) == ("admin", "dashboard")
    assert entry.detail["bed"] == "bed-01" and entry.detail["old"] is None
    assert entry.detail["new"] == {"p_floor": 0.4, "alarm_threshold": 0.55}
    assert "Rule override of bed-01 saved (audited)" in at.success[0].value
    assert _rule_datums(at) == [0.4, 0.55, 0.3]
    assert "source: **dashboard override**" in _texts(at)

    # a value the rule refuses: named, nothing stored
    at.number_input(key="rule_release_threshold").set_value(0.6)
    _button(at, "Save rule override").click().run()
    assert "Rule not changed: invalid rule: release_threshold (0.6) must be below alarm_threshold (0.55)" in \
        at.error[0].value
    assert len(override_history(store, "bed-01")) == 1 and len(_rule_audit(store)) == 1

    at.button(key="rule_reset").click().run()
    assert not at.exception
    assert current_overrides(store)["bed-01"].override.values() == {}
    entry = _rule_audit(store)[0]
    assert entry.detail["old"] == {"p_floor": 0.4, "alarm_threshold": 0.55} and entry.detail["new"] is None
    assert _rule_datums(at) == [0.8, 0.95, 0.3]


def test_bed_view_rule_controls_only_for_current_admins(ward):
    from ward.store.rules import current_overrides

    store, _ = ward
    _record_ward_rules(store)
    for username in ("watcher", "nurse"):
        at = _bed_page(store, username)
        assert _rule_datums(at) == [0.8, 0.95, 0.3]
        assert not at.number_input and not [b for b in at.button if str(b.key) == "rule_reset"]
        assert not [b for b in at.button if b.label == "Save rule override"]

    at = _bed_page(store, "admin")
    store.disable_user("admin")  # meanwhile, in another session or by `ward users`
    at.number_input(key="rule_alarm_threshold").set_value(0.6)
    _button(at, "Save rule override").click().run()
    assert not at.exception
    # refused by the store's re-check of the account, or the page's session check logged the user out first
    refused = any("Rule not changed: user 'admin' is disabled" in e.value for e in at.error)
    logged_out = not [n for n in at.number_input if n.key == "rule_alarm_threshold"]
    assert refused or logged_out
    assert current_overrides(store) == {} and _rule_audit(store) == []


def test_bed_view_draws_the_rule_the_running_ward_reports(ward, monkeypatch):
    """With the ward API configured, the lines are those of the rule the coordinator runs (as /api/beds
    reports it), not the database's computation; the difference is explained."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    store, _ = ward
    _record_ward_rules(store)
    running = {"p_floor": 0.7, "alarm_threshold": 0.9, "release_threshold": 0.4}
    from ward.config import effective_rule

    rule = effective_rule(WARD_RULES, {}, running).config.model_dump()
    body = json.dumps([{"bed_id": "bed-01", "state": "online", "rule": rule, "rule_source": "override"}]).encode()

    class Handler(BaseHTTPRequestHandler):  # stands in for WardAPI's GET /api/beds
        def do_GET(self):  # noqa: N802
            ok = self.path == "/api/beds"
            self.send_response(200 if ok else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body if ok else b"{}")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("WARD_API_URL", f"http://127.0.0.1:{server.server_address[1]}")
        at = _bed_page(store, "watcher")
        assert _rule_datums(at) == [0.7, 0.9, 0.4]
        text = _texts(at)
        assert "source: **dashboard override** (running in the ward)" in text
        assert "a change saved moments ago applies within a few seconds" in text
    finally:
        server.shutdown()
        server.server_close()
