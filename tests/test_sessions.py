"""Dashboard sessions: server-side, idle and absolute limits, the user re-read at every page run, a
read-only wall display without idle limit, and a reload that keeps the login (and a logout that ends it).

Store tests run on SQLite and PostgreSQL (``bash scripts/test.sh tests/test_sessions.py``); the page
tests use AppTest with the dashboard's clock replaced (``ward.dashboard.auth.clock``); the reload and
the idle overview are checked in headless Chromium against a real ``streamlit run``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import httpx
import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest
from support.serve import free_port, wait_for
from test_dashboard_browser import ARGS, CHROMIUM

import ward.dashboard.auth as auth
from ward.dashboard.demo import DEMO_USERS, seed_demo
from ward.store.repository import Store
from ward.store.sessions import (SessionLimits, check_session, end_session, new_session, purge_expired_sessions,
                                 token_hash)

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "dashboard" / "app.py")
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)
LIMITS = SessionLimits(idle=timedelta(minutes=15), max_age=timedelta(hours=12), kiosk_max_age=timedelta(hours=24))
PW = "a good long password"
MIN = timedelta(minutes=1)


# ------------------------------------------------------------------------------------- store
@pytest.fixture
def store(db_url: str) -> Iterator[Store]:  # noqa: F811
    s = Store(db_url)
    yield s
    s.close()


def _rows(store: Store) -> list[tuple]:
    with store.engine.connect() as c:
        return c.execute(sa.text("SELECT token_hash, kiosk FROM dashboard_sessions")).all()


def test_idle_limit_counts_from_the_last_activity_and_refreshes_are_no_activity(store):
    user = store.create_user("nina", PW, "clinician")
    token, record = new_session(store, user, kiosk=False, now=T0, limits=LIMITS)
    assert record.expires_at == T0 + timedelta(hours=12) and not record.kiosk
    assert _rows(store) == [(hashlib.sha256(token.encode()).hexdigest(), False)]  # only the hash is stored
    assert token_hash(token) != token and len(token) >= 43

    for minutes in (10, 20, 34):  # activity every < 15 min keeps it
        check = check_session(store, token, now=T0 + minutes * MIN, limits=LIMITS, touch=True)
        assert check and check.session.user.username == "nina" and check.session.last_active_at == T0 + minutes * MIN
    assert check_session(store, token, now=T0 + 48 * MIN, limits=LIMITS, touch=False)  # a refresh: no activity
    ended = check_session(store, token, now=T0 + 49 * MIN, limits=LIMITS, touch=True)  # 15 min after 34
    assert not ended and ended.ended == "idle" and ended.user.username == "nina"
    assert _rows(store) == []  # deleted: no second chance
    assert check_session(store, token, now=T0 + 49 * MIN, limits=LIMITS, touch=True).ended == "unknown"


def test_absolute_limit_ends_an_active_session(store):
    user = store.create_user("otto", PW, "viewer")
    token, _ = new_session(store, user, kiosk=False, now=T0, limits=LIMITS)
    t = T0
    while t < T0 + timedelta(hours=12) - 10 * MIN:
        t += 10 * MIN
        assert check_session(store, token, now=t, limits=LIMITS, touch=True), t
    assert check_session(store, token, now=T0 + timedelta(hours=12), limits=LIMITS, touch=True).ended == "expired"
    # a lowered setting applies to sessions that exist
    token, _ = new_session(store, user, kiosk=False, now=T0, limits=LIMITS)
    shorter = SessionLimits(LIMITS.idle, timedelta(hours=1), LIMITS.kiosk_max_age)
    assert check_session(store, token, now=T0 + 61 * MIN, limits=shorter, touch=False).ended == "expired"


def test_wall_display_has_no_idle_limit_but_ends_at_its_own_limit(store):
    user = store.create_user("ward-screen", PW, "viewer")
    token, record = new_session(store, user, kiosk=True, now=T0, limits=LIMITS)
    assert record.expires_at == T0 + timedelta(hours=24)
    assert record.ends_at(LIMITS) == T0 + timedelta(hours=24)
    check = check_session(store, token, now=T0 + timedelta(hours=23, minutes=59), limits=LIMITS, touch=False)
    assert check and check.session.kiosk
    assert check_session(store, token, now=T0 + timedelta(hours=24), limits=LIMITS, touch=False).ended == "expired"


def test_user_is_reread_disabled_ends_the_session_role_changes_apply(store):
    user = store.create_user("pia", PW, "admin")
    token, _ = new_session(store, user, kiosk=False, now=T0, limits=LIMITS)
    store.set_role("pia", "viewer")
    assert check_session(store, token, now=T0 + MIN, limits=LIMITS, touch=True).session.user.role == "viewer"
    store.disable_user("pia")
    ended = check_session(store, token, now=T0 + 2 * MIN, limits=LIMITS, touch=True)
    assert ended.ended == "disabled" and _rows(store) == []


def test_logout_and_purge(store):
    user = store.create_user("quinn", PW, "viewer")
    token, _ = new_session(store, user, kiosk=False, now=T0, limits=LIMITS)
    assert end_session(store, token) and not end_session(store, token)
    assert check_session(store, token, now=T0, limits=LIMITS, touch=True).ended == "unknown"
    for bad in ("", "x" * 500, "' OR 1=1 --"):
        assert check_session(store, bad, now=T0, limits=LIMITS, touch=True).ended == "unknown"
    new_session(store, user, kiosk=False, now=T0, limits=LIMITS)
    new_session(store, user, kiosk=True, now=T0, limits=LIMITS)
    assert purge_expired_sessions(store, T0 + timedelta(hours=13)) == 1  # the 12 h one; the wall display stays
    store.disable_user("quinn")
    with pytest.raises(ValueError, match="cannot have a dashboard session"):
        new_session(store, store.get_user("quinn"), kiosk=False, now=T0, limits=LIMITS)


# ------------------------------------------------------------------------------------- pages
class Clock:
    """The dashboard's time, moved by the test."""

    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += timedelta(minutes=minutes)


@pytest.fixture
def ward(tmp_path, monkeypatch) -> Iterator[tuple[Store, Clock]]:
    url = f"sqlite:///{tmp_path / 'ward.db'}"
    monkeypatch.setenv("WARD_DB_URL", url)
    monkeypatch.delenv("WARD_API_URL", raising=False)
    for var in ("WARD_DASH_IDLE_TIMEOUT_S", "WARD_DASH_SESSION_MAX_AGE_S", "WARD_DASH_KIOSK_MAX_AGE_S"):
        monkeypatch.delenv(var, raising=False)
    clock = Clock()
    monkeypatch.setattr(auth, "clock", clock)
    store = Store(url)
    seed_demo(store, clock.now, n_beds=4, minutes=2)
    yield store, clock
    store.close()


def _login(username: str, *, kiosk: bool = False, password: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.text_input(key="login_user").input(username)
    at.text_input(key="login_password").input(password or DEMO_USERS[username][0])
    if kiosk:
        at.checkbox(key="login_kiosk").check()
    next(b for b in at.button if b.label == "Log in").click().run()
    assert not at.exception
    return at


def _logged_in(at: AppTest) -> bool:
    return any("Signed in as" in m.value or "Wall display:" in m.value for m in at.sidebar.markdown)


def _on_login_page(at: AppTest) -> bool:
    return bool(at.title) and at.title[0].value == "ward — log in"


def _expired(store: Store) -> list:
    return [a for a in store.audit_log(limit=50) if a.action == "session.expired"]


def test_idle_session_is_logged_out_activity_keeps_it(ward):
    store, clock = ward
    at = _login("nurse")
    assert _logged_in(at) and at.title[0].value == "Ward overview"
    for minutes in (10, 14, 14.9):
        clock.advance(minutes)
        at.run()  # a click, a page change: activity
        assert _logged_in(at), minutes
    clock.advance(15)
    at.run()
    assert _on_login_page(at) and not _logged_in(at)
    assert "You were logged out after 15 min without activity." in at.warning[0].value
    entry, = _expired(store)
    assert (entry.username, entry.source, entry.detail) == ("nurse", "dashboard", {"reason": "idle",
                                                                                   "wall_display": False})
    with store.engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM dashboard_sessions")).scalar_one() == 0


def test_absolute_limit_logs_out_an_active_user(ward, monkeypatch):
    store, clock = ward
    monkeypatch.setenv("WARD_DASH_SESSION_MAX_AGE_S", "3600")
    at = _login("nurse")
    for _ in range(5):
        clock.advance(10)
        at.run()
        assert _logged_in(at)
    clock.advance(10)
    at.run()
    assert _on_login_page(at) and "Your session reached its 1 h limit" in at.warning[0].value
    assert _expired(store)[0].detail["reason"] == "expired"


def test_disabled_user_is_refused_at_the_next_action(ward):
    store, _ = ward
    alarm = next(a for a in store.list_alarms() if a.tier == "alarm" and not a.acknowledged)
    at = _login("nurse")
    at.switch_page("views/alarms.py").run()
    at.radio(key=f"verdict_{alarm.id}").set_value("true")
    store.disable_user("nurse", actor="admin", source="cli")  # meanwhile, elsewhere
    at.button(key=f"ack_{alarm.id}").click().run()
    assert not at.exception and _on_login_page(at)
    assert "Your account was disabled" in at.warning[0].value
    assert store.get_alarm(alarm.id).verdict is None and store.ack_events(alarm.id) == []
    assert not [a for a in store.audit_log(limit=50) if a.action == "acknowledge" and a.source == "dashboard"]
    assert _expired(store)[0].detail["reason"] == "disabled"


def test_lowered_role_applies_at_the_next_page_run(ward):
    store, _ = ward
    at = _login("admin")
    at.switch_page("views/admin.py").run()
    at.text_input(key="new_user_name").input("night-nurse")
    at.text_input(key="new_user_pw").input("temp-pw-77")
    store.set_role("admin", "viewer", actor="other-admin", source="cli")
    next(b for b in at.button if b.label == "Create user").click().run()
    assert not at.exception and store.get_user("night-nurse") is None
    assert at.title[0].value == "Not available"  # the page left the menu: said plainly
    assert "Signed in as **admin** (viewer)" in [m.value for m in at.sidebar.markdown]
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("views/admin.py")


def test_wall_display_is_read_only_and_not_logged_out_when_idle(ward):
    store, clock = ward
    at = _login("nurse", kiosk=True)  # a clinician starts it: it still cannot acknowledge
    assert "Wall display: **nurse** (read-only)" in [m.value for m in at.sidebar.markdown]
    assert at.title[0].value == "Ward overview"
    at.switch_page("views/alarms.py").run()
    assert "viewers can see alarms but not acknowledge" in "\n".join(i.value for i in at.info)
    assert not [b for b in at.button if str(b.key).startswith("ack_")]
    for page in ("views/history.py", "views/admin.py", "views/password.py"):  # no exports, no account pages
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            at.switch_page(page)
    login = next(a for a in store.audit_log(limit=20) if a.action == "login")
    assert login.detail["wall_display"] is True

    clock.advance(6 * 60)  # hours with nobody touching it (a person's session ends after 15 min)
    at.run()
    assert _logged_in(at)
    clock.advance(17 * 60 + 40)  # 23 h 40 min
    at.run()
    assert "This wall display logs out in 20 min" in "\n".join(w.value for w in at.sidebar.warning)
    clock.advance(20)
    at.run()
    assert _on_login_page(at) and "WALL DISPLAY LOGGED OUT" in at.warning[0].value
    assert _expired(store)[0].detail == {"reason": "expired", "wall_display": True}


def test_database_outage_shows_nothing_unchecked_and_keeps_the_session(ward, monkeypatch):
    from sqlalchemy.exc import OperationalError

    import ward.dashboard.ui as ui

    store, _ = ward
    at = _login("nurse")
    real = ui.check_session

    def down(*_a, **_k):
        raise OperationalError("SELECT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(ui, "check_session", down)
    at.run()
    assert not at.exception and "DATABASE UNREACHABLE" in at.error[0].value
    assert not at.title and not any("ward-grid" in m.value for m in at.markdown)  # no page ran unchecked
    monkeypatch.setattr(ui, "check_session", real)
    at.run()
    assert _logged_in(at) and at.title[0].value == "Ward overview"  # the session survived the outage


def test_temporary_password_cannot_start_a_wall_display(ward):
    store, _ = ward
    store.create_user("screen", "temp-pw-55", "viewer", must_change_password=True)
    at = _login("screen", kiosk=True, password="temp-pw-55")
    assert _on_login_page(at) and "choose your own password first" in at.error[0].value


def test_logout_ends_the_session_and_a_known_token_finds_it_again(ward):
    from ward.dashboard.ui import TOKEN_KEY

    store, _ = ward
    at = _login("watcher")
    token = at.session_state[TOKEN_KEY]
    script = next(h.value for h in at.html if "document.cookie" in h.value)
    assert f'"ward_session=" + "{token}"' in script and "SameSite=Strict" in script and "Secure" in script
    again = AppTest.from_file(APP, default_timeout=60)  # another run of the page with the same session
    again.session_state[TOKEN_KEY] = token
    assert _logged_in(again.run())

    next(b for b in at.button if b.label == "Log out").click().run()
    assert _on_login_page(at) and TOKEN_KEY not in at.session_state
    assert any('"ward_session=" + ""' in h.value and "1970" in h.value for h in at.html)  # cookie deleted
    assert [a.action for a in store.audit_log(limit=3)][0] == "logout"
    stale = AppTest.from_file(APP, default_timeout=60)
    stale.session_state[TOKEN_KEY] = token  # the old token is worth nothing now
    assert _on_login_page(stale.run())


# ------------------------------------------------------------------------------------- browser
@pytest.fixture
def dashboard(tmp_path) -> Iterator[tuple[str, Store]]:
    """`streamlit run dashboard/app.py` with a 60 s idle limit on a seeded SQLite database."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium or deselect with -m 'not browser'")
    url = f"sqlite:///{tmp_path / 'ward.db'}"
    store = Store(url)
    seed_demo(store, datetime.now(timezone.utc), n_beds=4, minutes=2)
    port = free_port()
    env = {**os.environ, "WARD_DB_URL": url, "WARD_DASH_IDLE_TIMEOUT_S": "60"}
    env.pop("WARD_API_URL", None)
    with open(tmp_path / "streamlit.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", APP, "--server.headless", "true",
                                 "--server.address", "127.0.0.1", "--server.port", str(port),
                                 "--browser.gatherUsageStats", "false"], cwd=tmp_path, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited: {(tmp_path / 'streamlit.log').read_text()[-2000:]}")
        return httpx.get(f"{base}/_stcore/health", timeout=1).status_code == 200

    try:
        wait_for(healthy, 90, 0.3, "the dashboard to answer")
        yield base, store
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        store.close()


@pytest.mark.browser
def test_reload_keeps_the_login_idle_overview_logs_out_wall_display_stays(dashboard):
    from playwright.sync_api import expect, sync_playwright

    base, store = dashboard
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            expect.set_options(timeout=60_000)

            def open_as(username: str, kiosk: bool):
                context = browser.new_context(viewport={"width": 1280, "height": 800})
                page = context.new_page()
                page.set_default_timeout(60_000)
                page.goto(base)
                page.get_by_label("User name").fill(username)
                page.get_by_role("textbox", name="Password").fill(DEMO_USERS[username][0])
                if kiosk:
                    page.get_by_text("Wall display: read-only", exact=False).click()
                page.get_by_role("button", name="Log in").click()
                expect(page.get_by_text(f"Wall display: {username}" if kiosk else f"Signed in as {username}",
                                        exact=False)).to_be_visible()
                expect(page.get_by_role("heading", name="Ward overview")).to_be_visible()
                wait_for(lambda: any(c["name"] == "ward_session" for c in context.cookies()), 30, 0.3,
                         "the session cookie")
                return context, page

            nurse_ctx, nurse = open_as("nurse", kiosk=False)
            idle_from = time.monotonic()  # the nurse's last activity was before this (the wall's login may be slow)
            wall_ctx, wall = open_as("watcher", kiosk=True)

            # a reload keeps the login: the cookie finds the server-side session
            cookie = next(c for c in nurse_ctx.cookies() if c["name"] == "ward_session")
            assert cookie["sameSite"] == "Strict" and cookie["path"] == "/" and not cookie["secure"]  # plain http
            with store.engine.connect() as c:
                hashes = set(c.execute(sa.text("SELECT token_hash FROM dashboard_sessions")).scalars())
            assert token_hash(cookie["value"]) in hashes and cookie["value"] not in hashes
            wall.reload()
            expect(wall.get_by_text("Wall display: watcher", exact=False)).to_be_visible()
            expect(wall.get_by_role("heading", name="Ward overview")).to_be_visible()

            # left alone on the overview (which refreshes itself every 1.5 s), the person's session ends
            # after the 60 s idle limit; the wall display stays
            expect(nurse.get_by_text("logged out after 1 min without activity", exact=False)).to_be_visible(
                timeout=180_000)
            assert time.monotonic() - idle_from >= 55
            expect(wall.get_by_text("Wall display: watcher", exact=False)).to_be_visible()
            expect(wall.locator(".tile")).to_have_count(4)

            # logout ends it: a reload shows the login page
            wall.get_by_role("button", name="Log out").click()
            expect(wall.get_by_role("button", name="Log in")).to_be_visible()
            wall.reload()
            expect(wall.get_by_role("button", name="Log in")).to_be_visible()
            expect(wall.get_by_text("Wall display: watcher", exact=False)).to_have_count(0)
            nurse_ctx.close()
            wall_ctx.close()
        finally:
            browser.close()
    with store.engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM dashboard_sessions")).scalar_one() == 0
    actions = [(a.action, a.username) for a in store.audit_log(limit=50)]
    assert ("session.expired", "nurse") in actions and ("logout", "watcher") in actions
