"""A new user's first start: someone can log in, nothing crashes, and a stop leaves nothing running.

Unit tests (no Ray): the first-admin bootstrap (service accounts don't count, the env password is used
and never logged, a one-time password is logged once, a second start makes no second admin, bad env
values are named), build_app preparing the database before any replica, and the dashboard watchdog.

End-to-end (ray + browser): a temp copy of the DEFAULT config (dashboard enabled) on a fresh database,
  - through the launcher (`scripts/run.sh`, i.e. `ward run`) with WARD_ADMIN_PASSWORD: log in to the
    dashboard in headless Chromium and to the API, then SIGTERM: a clean stop (exit 0, no traceback,
    no native crash trace), no process of that ward left, both ports free;
  - through plain `serve run` without it: the one-time password from the log logs in, then SIGTERM:
    Ray's driver dies its own way there (it prints a native trace we cannot prevent from the ward),
    but the dashboard is still ended by its watchdog and nothing of the ward is left.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from support.process import (NATIVE_TRACE, ROOT, WARD_TEST_ENV, assert_nothing_left, cmdline,
                             default_config_copy, descendants, kill_leftovers, still_alive)
from support.serve import sim_bed, wait_for, ward_args
from ward.dashboard.auth import BootstrapError, bootstrap_admin
from ward.store.engine import current_revision, head_revision
from ward.store.repository import Store

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ONE_TIME = re.compile(r"one-time password (\S+)")


# ------------------------------------------------------------------------------ bootstrap (units)

def _store(tmp_path: Path, name: str = "ward.db") -> Store:
    return Store(f"sqlite:///{tmp_path / name}")


def test_service_accounts_do_not_stop_the_bootstrap_and_env_password_is_used(tmp_path, caplog):
    store = _store(tmp_path)
    store.ensure_service_user("svc-dashboard")  # what an earlier start of the ward left behind
    store.create_token("svc-dashboard", "dashboard live view", replace=True)
    with caplog.at_level(logging.INFO):
        made = bootstrap_admin(store, {"WARD_ADMIN_USER": "chief", "WARD_ADMIN_PASSWORD": "env-pass-123"})
    assert made == "chief"
    assert "env-pass-123" not in caplog.text  # a configured password is never logged
    user = store.authenticate("chief", "env-pass-123")
    assert user is not None and user.role == "admin" and not user.service
    assert any(a.action == "user.bootstrap" and a.detail == {"username": "chief", "from_env": True}
               for a in store.audit_log())


def test_one_time_password_is_logged_once_and_a_second_start_makes_no_second_admin(tmp_path, caplog):
    store = _store(tmp_path)
    with caplog.at_level(logging.INFO):
        assert bootstrap_admin(store, {}) == "admin"
        assert bootstrap_admin(store, {}) is None  # the next start
        assert bootstrap_admin(store, {"WARD_ADMIN_USER": "other", "WARD_ADMIN_PASSWORD": "other-pass"}) is None
    shown = [r for r in caplog.records if "one-time password" in r.getMessage()]
    assert len(shown) == 1 and shown[0].levelno == logging.WARNING
    assert "FIRST START" in shown[0].getMessage()  # prominent in a busy `serve run` log
    password = ONE_TIME.search(shown[0].getMessage()).group(1)
    assert store.authenticate("admin", password) is not None
    assert [(u.username, u.role) for u in store.list_users()] == [("admin", "admin")]


@pytest.mark.parametrize(("env", "named"), [({"WARD_ADMIN_PASSWORD": "short"}, "WARD_ADMIN_PASSWORD"),
                                             ({"WARD_ADMIN_USER": "two words"}, "WARD_ADMIN_USER")])
def test_bad_admin_environment_is_named(tmp_path, env, named):
    store = _store(tmp_path)
    with pytest.raises(BootstrapError, match=named):
        bootstrap_admin(store, env)
    assert store.list_users() == []


def test_build_app_migrates_and_bootstraps_before_any_replica(tmp_path, monkeypatch):
    """build_app is the start path: after it, before anything is deployed, the schema is at head and
    the admin exists; a second build (a redeploy) changes nothing; a bad env password stops it."""
    from ward.config import ConfigError
    from ward.serve.app import build_app

    monkeypatch.setenv("WARD_ADMIN_PASSWORD", "build-app-pass")
    monkeypatch.delenv("WARD_ADMIN_USER", raising=False)
    args = ward_args(tmp_path, [sim_bed("bed-1", 1)])
    build_app(args)
    build_app(args)
    store = Store(args["database"]["url"], auto_migrate=False)
    assert current_revision(store.engine) == head_revision()
    assert [(u.username, u.role) for u in store.list_users()] == [("admin", "admin")]
    assert store.authenticate("admin", "build-app-pass") is not None

    monkeypatch.setenv("WARD_ADMIN_PASSWORD", "short")
    fresh = ward_args(tmp_path / "fresh", [sim_bed("bed-1", 1)])
    (tmp_path / "fresh").mkdir()
    with pytest.raises(ConfigError, match="WARD_ADMIN_PASSWORD"):
        build_app(fresh)


def _flat(output: str) -> str:
    """CLI output without rich's box and line wrapping (where it wraps depends on the temp path)."""
    return " ".join(output.replace("│", " ").split())


def test_ward_run_checks_config_and_admin_environment_before_starting(tmp_path):
    """`ward run --check` (and `ward run`, before Ray starts) names what is wrong."""
    import yaml
    from typer.testing import CliRunner

    from ward.cli import _register_all, app

    _register_all()
    cfg_path, args = default_config_copy(tmp_path)
    runner = CliRunner()
    ok = runner.invoke(app, ["run", "--check", str(cfg_path)], env={"WARD_ADMIN_PASSWORD": "long-enough"})
    assert ok.exit_code == 0, ok.output
    bad_env = runner.invoke(app, ["run", "--check", str(cfg_path)], env={"WARD_ADMIN_PASSWORD": "short"})
    assert bad_env.exit_code == 2 and "WARD_ADMIN_PASSWORD" in _flat(bad_env.output)
    raw = yaml.safe_load(cfg_path.read_text())
    raw["applications"][0]["args"]["beds"][0]["fpss"] = 6
    cfg_path.write_text(yaml.safe_dump(raw))
    bad_cfg = runner.invoke(app, ["run", "--check", str(cfg_path)], env={"WARD_ADMIN_PASSWORD": "long-enough"})
    assert bad_cfg.exit_code == 2 and "beds[0].fpss: unknown key" in _flat(bad_cfg.output), bad_cfg.output
    missing = runner.invoke(app, ["run", "--check", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "is not a file" in _flat(missing.output)


# ------------------------------------------------------------------------------ dashboard watchdog

_FAKE_REPLICA = """
import sys, time
from ward.serve.supervisor import DashboardProcess
d = DashboardProcess([sys.executable, "-c", "import time; time.sleep(600)"])
d.start()
print(d.pid, flush=True)
time.sleep(600)
"""


def _at_least_two(procs: dict[int, int]) -> dict[int, int] | None:
    return procs if len(procs) >= 2 else None


def test_dashboard_ends_when_the_process_that_started_it_dies(tmp_path):
    """A replica killed outright (no shutdown code runs) still takes its dashboard with it."""
    replica = subprocess.Popen([sys.executable, "-c", _FAKE_REPLICA], stdout=subprocess.PIPE, cwd=ROOT)
    try:
        group = int(replica.stdout.readline())
        tree = wait_for(lambda: _at_least_two(descendants(replica.pid)), 60, what="the watchdog and its command")
        assert group in tree
    finally:
        replica.kill()
        replica.wait()
    wait_for(lambda: not still_alive(tree), 30, what=f"the dashboard group {tree} to end after its parent died")


def _group_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def test_dashboard_stop_ends_the_whole_group():
    from ward.serve.supervisor import DashboardProcess

    d = DashboardProcess([sys.executable, "-c", "import time; time.sleep(600)"])
    d.start()

    def group() -> dict[int, int] | None:
        # the watchdog and its command
        return _at_least_two({p: t for p, t in descendants(os.getpid()).items() if _group_of(p) == d.pid})

    members = wait_for(group, 60, what="the dashboard's process group")
    d.stop()
    assert not d.running and not still_alive(members)


# ------------------------------------------------------------------------------ end to end

def _dashboard_login(base: str, username: str, password: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(60_000)
            page.goto(base)
            page.get_by_label("User name").fill(username)
            page.get_by_role("textbox", name="Password").fill(password)
            page.get_by_role("button", name="Log in").click()
            expect(page.get_by_text(f"Signed in as {username}", exact=False)).to_be_visible(timeout=90_000)
        finally:
            browser.close()


@dataclass
class _Ward:
    """A ward started as a command on a temp copy of the default config (see _running_ward)."""

    proc: subprocess.Popen
    log_path: Path
    cfg_path: Path
    app: dict[str, Any]
    tree: dict[int, int] = field(default_factory=dict)  # its processes just before it was stopped

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.app['api']['port']}"

    @property
    def dash(self) -> str:
        return f"http://127.0.0.1:{self.app['dashboard']['port']}"

    def log(self) -> str:
        return self.log_path.read_text()

    def login(self, username: str, password: str) -> None:
        """The same credentials work for the API (HTTP Basic) and the dashboard (Chromium)."""
        self.api_beds(username, password)
        _dashboard_login(self.dash, username, password)

    def api_beds(self, username: str, password: str) -> None:
        r = httpx.get(f"{self.api}/api/beds", auth=(username, password), timeout=30)
        assert r.status_code == 200, r.text
        assert {b["bed_id"] for b in r.json()} == {"bed-1", "bed-2", "bed-3", "bed-4"}

    def stop(self, sig: int) -> int:
        """Send ``sig``; the command must exit within a generous 180 s and leave nothing running."""
        self.tree = descendants(self.proc.pid)
        assert any("ward.serve.supervisor" in cmdline(p) for p in self.tree), "no dashboard process found"
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=180)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running 180 s after {signal.Signals(sig).name}: {self.log()[-3000:]}") from None
        assert_nothing_left(self.tree, [self.app["api"]["port"], self.app["dashboard"]["port"]], [str(self.cfg_path)])
        return rc


@contextlib.contextmanager
def _running_ward(tmp_path: Path, command: list[str], env_over: dict[str, str]) -> Iterator[_Ward]:
    """``command + [config]`` on a fresh database, until its API and dashboard answer; afterwards
    (also when the test failed) whatever it left is killed, by pid."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium or deselect with -m 'not browser'")
    cfg_path, app = default_config_copy(tmp_path)
    env = {**os.environ, **WARD_TEST_ENV}
    for k in ("WARD_ADMIN_PASSWORD", "WARD_ADMIN_USER"):
        env.pop(k, None)
    log_path = tmp_path / "ward.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([*command, str(cfg_path)], cwd=ROOT, env={**env, **env_over}, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    ward = _Ward(proc, log_path, cfg_path, app)

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"the ward exited ({proc.returncode}): {ward.log()[-3000:]}")
        return (httpx.get(f"{ward.api}/api/health", timeout=5).status_code == 200
                and httpx.get(f"{ward.dash}/_stcore/health", timeout=5).status_code == 200)

    try:
        try:
            wait_for(up, 300, interval=2, what="the ward's API and dashboard")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; log: {ward.log()[-3000:]}") from None
        yield ward
    finally:
        kill_leftovers(proc, ward.tree)


@pytest.mark.ray
@pytest.mark.browser
def test_first_start_with_admin_password_via_run_sh_then_sigterm(tmp_path):
    password = "first-start-pass"
    with _running_ward(tmp_path, ["bash", "scripts/run.sh"], {"WARD_ADMIN_PASSWORD": password}) as ward:
        ward.login("admin", password)
        rc = ward.stop(signal.SIGTERM)
    log = ward.log()
    assert rc == 0, log[-3000:]
    assert "Traceback" not in log, log
    assert not NATIVE_TRACE.search(log), log[-3000:]
    assert "one-time password" not in log  # the env password was used
    store = Store(ward.app["database"]["url"])
    users = {u.username: u for u in store.list_users()}
    assert users["admin"].role == "admin" and users["svc-dashboard"].service
    with store.engine.connect() as c:
        valid = c.exec_driver_sql("SELECT count(*) FROM api_tokens WHERE revoked = 0").scalar_one()
    assert valid == 1  # the dashboard's token, and only one


@pytest.mark.ray
@pytest.mark.browser
def test_first_start_one_time_password_via_serve_run_then_sigterm(tmp_path):
    with _running_ward(tmp_path, [str(Path(sys.executable).parent / "serve"), "run"], {}) as ward:
        found = ONE_TIME.findall(ward.log())
        assert len(found) == 1, "the one-time password must be printed exactly once"
        # a temporary password: the API refuses it and sends the user to the dashboard, which opens
        r = httpx.get(f"{ward.api}/api/beds", auth=("admin", found[0]), timeout=30)
        assert r.status_code == 403 and "temporary" in r.json()["detail"] and "dashboard" in r.json()["detail"], r.text
        _dashboard_login(ward.dash, "admin", found[0])
        store = Store(ward.app["database"]["url"])
        store.change_password("admin", found[0], "admin-own-password", source="dashboard")  # as its page does
        store.close()
        ward.api_beds("admin", "admin-own-password")
        assert "Traceback" not in ward.log(), ward.log()
        # Plain `serve run` ends through Ray's own SIGTERM path (exit status 1, a native trace that the
        # ward cannot prevent there); what the ward guarantees is that nothing of it survives, the
        # dashboard included.
        ward.stop(signal.SIGTERM)
    assert "Traceback" not in ward.log()
