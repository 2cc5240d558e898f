"""The real dashboard in headless Chromium: log in, see the seeded alarms (an active one and an ended,
unacknowledged, escalated one), acknowledge them on the Alarms page, see the overview drop them,
screenshots.

Runs `streamlit run dashboard/app.py` on a free port against a seeded SQLite file and drives Debian's
/usr/bin/chromium with Playwright. Screenshots for the README go to docs/screenshots/.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from ward.dashboard.demo import DEMO_USERS, seed_demo
from ward.store.records import Sample
from ward.store.repository import Store

ROOT = Path(__file__).resolve().parents[1]
# README screenshots are refreshed only on request (WARD_UPDATE_SCREENSHOTS=1); otherwise they go to a
# temporary directory so a test run never modifies the work tree.
README_SHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _shrink_png(path: Path) -> None:
    """Palette-quantise a screenshot so the committed PNGs stay small."""
    from PIL import Image

    Image.open(path).convert("RGB").quantize(colors=128).save(path, optimize=True)


@pytest.fixture()
def server(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium or deselect with -m 'not browser'")
    url = f"sqlite:///{tmp_path / 'ward.db'}"
    store = Store(url)
    now = datetime.now(timezone.utc)
    demo = seed_demo(store, now, n_beds=12, minutes=10)
    # bed-07's seizure ended 5 min ago and nobody acknowledged it: escalated, and must stay visible
    ended = store.open_alarm("bed-07", "alarm", now - timedelta(minutes=6), peak=0.88, reason="simulated seizure")
    store.close_alarm(ended, now - timedelta(minutes=5))
    port = _free_port()
    env = {**os.environ, "WARD_DB_URL": url, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    env.pop("WARD_API_URL", None)
    log = open(tmp_path / "streamlit.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"),
                             "--server.headless", "true", "--server.address", "127.0.0.1",
                             "--server.port", str(port), "--browser.gatherUsageStats", "false"],
                            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    stop = threading.Event()

    def feed() -> None:
        """Live samples once a second for every bed but bed-04 (whose camera is offline)."""
        k = 0
        while not stop.wait(1.0):
            now = datetime.now(timezone.utc)
            k += 1
            store.write_samples(Sample(b, now, 0.9 if b == "bed-02" else 0.05 + 0.02 * ((k + i) % 5), 1.0
                                       if b == "bed-02" else 0.0, 0.9, "vsvig-sim-demo")
                                for i, b in enumerate(demo.beds) if b != "bed-04")

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/_stcore/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited: {(tmp_path / 'streamlit.log').read_text()[-2000:]}")
            time.sleep(0.3)
        else:
            pytest.fail("streamlit did not become healthy within 60 s")
        yield base, store, demo, ended
    finally:
        stop.set()
        feeder.join(timeout=5)
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        store.close()


def _settled(locator, timeout_s: float = 60.0, quiet_s: float = 1.0) -> None:
    """Wait until ``locator`` matches exactly one element and keeps doing so for ``quiet_s``.

    A Streamlit rerun (a widget click, the page's periodic refresh) briefly shows the old and the new
    copy of a widget side by side; acting in that moment is a strict-mode violation in Playwright.
    """
    deadline = time.monotonic() + timeout_s
    since = None
    while time.monotonic() < deadline:
        if locator.count() == 1:
            since = since or time.monotonic()
            if time.monotonic() - since >= quiet_s:
                return
        else:
            since = None
        time.sleep(0.1)
    pytest.fail(f"{locator} did not settle on one element within {timeout_s:g} s")


def _acknowledge(page, alarm_id: int, note: str) -> None:
    """On the Alarms page: choose "true seizure", write a note, press Acknowledge, see the confirmation.
    Widgets are found by their Streamlit key (class ``st-key-<key>``), so the right alarm's controls
    are used whatever the order of the list."""
    from playwright.sync_api import expect

    page.locator(f".st-key-verdict_{alarm_id}").get_by_text("true seizure").click()
    box = page.locator(f".st-key-note_{alarm_id}").get_by_label("Note")
    for _ in range(5):  # a rerun may replace the box while it is filled: fill until the value stays
        _settled(box)  # the radio click (and Enter) rerun the page: wait until its elements settle
        box.fill(note)
        box.press("Enter")
        _settled(box)
        if box.input_value() == note:
            break
    expect(box).to_have_value(note)
    page.locator(f".st-key-ack_{alarm_id}").get_by_role("button", name="Acknowledge").click()
    expect(page.get_by_text(f"Alarm #{alarm_id} acknowledged as true seizure")).to_be_visible()


def test_login_overview_acknowledge_and_screenshots(server, tmp_path):
    SHOTS = README_SHOTS if os.environ.get("WARD_UPDATE_SCREENSHOTS") == "1" else tmp_path
    from playwright.sync_api import expect, sync_playwright

    base, store, demo, ended = server
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 860})
            page.set_default_timeout(30_000)
            expect.set_options(timeout=30_000)  # a loaded 2-core machine renders charts slowly; 5 s flaked
            page.goto(base)
            page.get_by_label("User name").fill("nurse")
            page.get_by_role("textbox", name="Password").fill(DEMO_USERS["nurse"][0])
            page.get_by_role("button", name="Log in").click()

            # overview: the active alarm bed first (flashing, escalated), then the ended, unacknowledged,
            # escalated alarm of bed-07, counted in the header although it is no longer active
            expect(page.get_by_text("2 alarm(s) need acknowledgement", exact=False)).to_be_visible()
            expect(page.get_by_text("(1 active, 2 escalated)", exact=False)).to_be_visible()
            tiles = page.locator(".tile")
            expect(tiles.nth(0)).to_have_attribute("data-bed", "bed-02")
            expect(tiles.nth(0)).to_have_class("tile alarm esc")
            expect(tiles.nth(0)).to_contain_text("ESCALATED")
            expect(tiles.nth(1)).to_have_attribute("data-bed", "bed-07")
            expect(tiles.nth(1)).to_have_class("tile alarm ended esc")
            for text in ("ALARM ENDED", "ESCALATED", f"1 unacknowledged alarm(s) · latest #{ended}"):
                expect(tiles.nth(1)).to_contain_text(text)
            expect(tiles).to_have_count(12)
            expect(page.get_by_text("STALE DATA", exact=False)).to_be_visible()
            page.wait_for_timeout(500)
            page.screenshot(path=str(SHOTS / "overview.png"))

            # bed view of the alarm bed, opened from the overview
            pick = page.locator('[data-testid="stSelectbox"] input').first
            pick.click()
            pick.fill("bed-02")
            pick.press("Enter")
            page.get_by_role("button", name="Open bed view").click()
            expect(page.get_by_role("heading", name="Bed view")).to_be_visible()
            expect(page.locator('[data-testid="stVegaLiteChart"]').first).to_be_visible()
            page.wait_for_timeout(1000)
            page.screenshot(path=str(SHOTS / "bed_view.png"))

            # alarms: acknowledge both as true seizures
            page.get_by_role("link", name="Alarms").click()
            expect(page.get_by_text(f"#{demo.alarm_id} · bed-02 · alarm", exact=False)).to_be_visible()
            expect(page.get_by_text(f"#{ended} · bed-07 · alarm", exact=False)).to_be_visible()
            page.wait_for_timeout(500)
            page.screenshot(path=str(SHOTS / "alarms.png"))
            _acknowledge(page, demo.alarm_id, "seen in browser")
            _acknowledge(page, ended, "post-ictal, checked")

            # overview again: nothing left to acknowledge but bed-04's technical alarm
            page.get_by_role("link", name="Ward overview").click()
            expect(page.get_by_text("0 alarm(s) need acknowledgement", exact=False)).to_be_visible()
            bed7 = page.locator('.tile[data-bed="bed-07"]')
            expect(bed7).to_have_class("tile")
            expect(bed7).not_to_contain_text("ALARM")
            expect(page.locator('.tile[data-bed="bed-02"]')).to_contain_text("ALARM · ACK")  # still active
            expect(tiles.nth(0)).to_have_attribute("data-bed", "bed-04")  # unacknowledged technical alarm
        finally:
            browser.close()
    for aid, note in ((demo.alarm_id, "seen in browser"), (ended, "post-ictal, checked")):
        alarm = store.get_alarm(aid)
        assert alarm.acknowledged and alarm.verdict == "true"
        ev = store.ack_events(aid)[-1]
        assert (ev.username, ev.note, ev.source) == ("nurse", note, "dashboard")
    assert any(a.action == "acknowledge" and a.username == "nurse" for a in store.audit_log())
    for name in ("overview.png", "bed_view.png", "alarms.png"):
        _shrink_png(SHOTS / name)
        assert (SHOTS / name).stat().st_size < 400_000
