"""The real dashboard in headless Chromium: log in, see the seeded alarm, acknowledge it, screenshots.

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
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from ward.dashboard.demo import DEMO_USERS, seed_demo
from ward.store.repository import Sample, Store

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
    demo = seed_demo(store, datetime.now(timezone.utc), n_beds=12, minutes=10)
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
        yield base, store, demo
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


def test_login_overview_acknowledge_and_screenshots(server, tmp_path):
    SHOTS = README_SHOTS if os.environ.get("WARD_UPDATE_SCREENSHOTS") == "1" else tmp_path
    from playwright.sync_api import expect, sync_playwright

    base, store, demo = server
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 860})
            page.set_default_timeout(30_000)
            page.goto(base)
            page.get_by_label("User name").fill("nurse")
            page.get_by_role("textbox", name="Password").fill(DEMO_USERS["nurse"][0])
            page.get_by_role("button", name="Log in").click()

            # overview: the alarm bed is the first tile, flashing, escalated
            expect(page.get_by_text("1 active alarm(s)", exact=False)).to_be_visible()
            first = page.locator(".tile").first
            expect(first).to_have_attribute("data-bed", "bed-02")
            expect(first).to_have_class("tile alarm")
            expect(first).to_contain_text("ESCALATED")
            expect(page.locator(".tile")).to_have_count(12)
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

            # alarms: acknowledge the seeded alarm as a true seizure
            page.get_by_role("link", name="Alarms").click()
            expect(page.get_by_text(f"#{demo.alarm_id} · bed-02 · alarm", exact=False)).to_be_visible()
            page.wait_for_timeout(500)
            page.screenshot(path=str(SHOTS / "alarms.png"))
            box = page.locator('[data-testid="stVerticalBlockBorderWrapper"]', has_text=f"#{demo.alarm_id} · bed-02")
            box = box.last if box.count() else page
            box.get_by_text("true seizure").first.click()
            box.get_by_label("Note").first.fill("seen in browser")
            box.get_by_label("Note").first.press("Enter")
            box.get_by_role("button", name="Acknowledge").first.click()
            expect(page.get_by_text(f"Alarm #{demo.alarm_id} acknowledged as true seizure")).to_be_visible()
        finally:
            browser.close()
    alarm = store.get_alarm(demo.alarm_id)
    assert alarm.acknowledged and alarm.verdict == "true"
    ev = store.ack_events(demo.alarm_id)[-1]
    assert (ev.username, ev.note, ev.source) == ("nurse", "seen in browser", "dashboard")
    assert any(a.action == "acknowledge" and a.username == "nurse" for a in store.audit_log())
    for name in ("overview.png", "bed_view.png", "alarms.png"):
        _shrink_png(SHOTS / name)
        assert (SHOTS / name).stat().st_size < 400_000
