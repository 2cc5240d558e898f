"""Login rate limiting, the one login flow and log redaction (ward.security): semantics, thread safety, wiring."""

from __future__ import annotations

import base64
import io
import logging
import threading

import numpy as np
import pytest

from ward.security import LoginFlow, LoginLimiter, RedactingFilter, install_log_redaction, redact


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


# ------------------------------------------------------------------------------------------ limiter

def test_locks_after_max_failures_and_unlocks_after_lockout():
    c = Clock()
    lim = LoginLimiter(max_failures=3, window_s=60, lockout_s=120, clock=c)
    for i in range(2):
        assert lim.check("alice", "10.0.0.1").allowed
        assert lim.failure("alice", "10.0.0.1").allowed, f"locked too early at failure {i + 1}"
    d = lim.failure("alice", "10.0.0.1")
    assert not d.allowed and d.locked_key == "user:alice" and d.retry_after_s == pytest.approx(120)
    c.t += 119
    d = lim.check("alice", "10.0.0.2")  # another address does not help: the user name is locked
    assert not d.allowed and d.retry_after_s == pytest.approx(1)
    c.t += 1.5
    assert lim.check("alice", "10.0.0.1").allowed
    assert lim.failures("alice") == 0  # a fresh run of failures is needed for the next lockout
    assert lim.failure("alice").allowed


def test_failures_outside_the_window_do_not_count():
    c = Clock()
    lim = LoginLimiter(max_failures=3, window_s=60, lockout_s=300, clock=c)
    lim.failure("bob")
    lim.failure("bob")
    c.t += 61
    assert lim.failure("bob").allowed and lim.failures("bob") == 1
    c.t += 10
    lim.failure("bob")
    assert not lim.failure("bob").allowed


def test_success_resets_the_user_but_not_the_source():
    c = Clock()
    lim = LoginLimiter(max_failures=3, window_s=60, lockout_s=60, source_max_failures=4, clock=c)
    lim.failure("carol", "1.2.3.4")
    lim.failure("carol", "1.2.3.4")
    lim.success("carol", "1.2.3.4")
    assert lim.failures("carol") == 0
    assert lim.failure("carol", "1.2.3.4").allowed  # 1 user failure, 3 source failures
    d = lim.failure("dave", "1.2.3.4")  # 4th failure from the address: the address is locked
    assert not d.allowed and d.locked_key == "source:1.2.3.4"
    assert not lim.check("erin", "1.2.3.4").allowed  # any user from that address
    assert lim.check("erin", "5.6.7.8").allowed


def test_source_key_stops_spraying_over_many_names():
    lim = LoginLimiter(max_failures=5, clock=Clock())  # source limit defaults to 20
    results = [lim.failure(f"user{i}", "9.9.9.9").allowed for i in range(20)]
    assert all(results[:19]) and not results[19]
    assert lim.check(None, "9.9.9.9").retry_after_s > 0


def test_user_key_is_case_insensitive_and_none_keys_are_ignored():
    lim = LoginLimiter(max_failures=2, clock=Clock())
    lim.failure("Admin")
    assert not lim.failure("admin ").allowed
    assert lim.check(None, None).allowed and lim.failure(None, None).allowed


def test_memory_is_bounded():
    c = Clock()
    lim = LoginLimiter(max_failures=3, window_s=10, lockout_s=10, max_keys=50, clock=c)
    for i in range(500):
        lim.failure(f"u{i}")
        c.t += 0.01
    assert len(lim) <= 50


@pytest.mark.parametrize("kwargs", [{"max_failures": 0}, {"window_s": 0}, {"lockout_s": -1},
                                    {"source_max_failures": 0}, {"max_keys": 0}])
def test_bad_parameters_raise(kwargs):
    with pytest.raises(ValueError, match="must be"):
        LoginLimiter(**kwargs)


def test_thread_safe_counting():
    lim = LoginLimiter(max_failures=10_000, window_s=3600, lockout_s=1)
    def hammer():
        for _ in range(500):
            lim.failure("shared")
    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert lim.failures("shared") == 4000


# -------------------------------------------------------------------------------------- login flow

class FakeUser:
    def __init__(self, username: str, must_change_password: bool = False) -> None:
        self.username, self.must_change_password, self.role = username, must_change_password, "viewer"


class FakeLoginStore:
    """The LoginStore protocol over a dict of name -> (password, temporary); counts password checks."""

    def __init__(self, users: dict[str, tuple[str, bool]]) -> None:
        self.users, self.audits, self.checks = users, [], 0

    def password_login(self, username, password):
        self.checks += 1
        pw, temporary = self.users.get(username, (None, False))
        if pw is None or pw != password:
            return None
        return type("Login", (), {"user": FakeUser(username, temporary), "credential": "fp-" + pw})()

    def current_login(self, username, credential):
        pw, temporary = self.users.get(username, (None, False))
        return FakeUser(username, temporary) if pw is not None and credential == "fp-" + pw else None

    def check_token(self, token):
        known = {"good": ("alice", None), "old": ("alice", "revoked")}
        owner, refusal = known.get(token, (None, "unknown"))
        return type("Check", (), {"user": FakeUser(owner) if owner and not refusal else None, "refusal": refusal,
                                  "owner": owner, "token_id": 7 if owner else None, "expires_at": None})()

    def audit(self, action, *, user, detail, source):
        self.audits.append((action, user, detail.get("reason"), source))


def test_login_flow_locks_before_checking_and_audits_each_lockout_once():
    c = Clock()
    store = FakeLoginStore({"alice": ("right-password", False)})
    flow = LoginFlow(store, "api", LoginLimiter(max_failures=3, window_s=60, lockout_s=60, clock=c), clock=c)
    for _ in range(3):
        assert flow.login("alice", "wrong", "10.0.0.1", temporary_ok=True).refusal == "invalid"
    checks = store.checks
    for _ in range(4):
        r = flow.login(" alice ", "right-password", "10.0.0.1", temporary_ok=True)
        assert r.refusal == "rate limited" and r.retry_after_s == 60 and not r
    assert store.checks == checks  # no password check while locked
    assert [a[0] for a in store.audits] == ["login.failed"] * 3 + ["login.refused"]  # once per lockout
    c.t += 61
    r = flow.login("alice", "right-password", "10.0.0.1", temporary_ok=True, detail={"wall_display": False})
    assert r and r.user.username == "alice" and r.credential == "fp-right-password"
    assert store.audits[-1] == ("login", "alice", None, "api")


def test_login_flow_refuses_a_temporary_password_where_it_is_not_enough():
    store = FakeLoginStore({"bob": ("temp-pass", True)})
    flow = LoginFlow(store, "api")
    r = flow.password("bob", "temp-pass", None, temporary_ok=False)
    assert r.refusal == "temporary password" and not r and "dashboard" in r.message
    assert store.audits == [("login.refused", "bob", "temporary password", "api")]
    assert flow.limiter.failures("bob") == 0  # the right password: no step towards a lockout
    assert flow.password("bob", "temp-pass", None, temporary_ok=True)  # the dashboard: choose your own


def test_login_flow_tokens_and_unreadable_credentials():
    store = FakeLoginStore({})
    flow = LoginFlow(store, "api")
    assert flow.token("good", "h", audit_success=False).user.username == "alice"
    r = flow.token("old", "h")
    assert r.refusal == "token revoked" and "ward users token" in r.message
    assert flow.token("nonsense", "h").refusal == "invalid"
    assert flow.failed("", "h").message == "invalid credentials"
    assert [a[0] for a in store.audits] == ["token.refused", "login.failed", "login.failed"]
    assert flow.limiter.failures(None, "h") == 3


# ---------------------------------------------------------------------------------------- redaction

@pytest.mark.parametrize("text,secret", [
    ("login failed for admin password=hunter2!x", "hunter2!x"),
    ("headers: Authorization: Bearer wt_Q2lmZmVyZW50LXRva2VuLXZhbHVl", "wt_Q2lmZmVyZW50LXRva2VuLXZhbHVl"),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "eyJhbGciOiJIUzI1NiJ9"),
    ("Authorization: Basic " + base64.b64encode(b"nurse1:nurse-pass").decode(),
     base64.b64encode(b"nurse1:nurse-pass").decode()),
    ("connecting to postgresql+psycopg://ward:s3cr3t@db.local:5432/ward", "s3cr3t"),
    ("url=postgresql://u:p%40ss@h/db", "p%40ss"),
    ('{"username": "x", "password": "a b c"}', "a b c"),
    ("{'token': 'zzz-top-secret'}", "zzz-top-secret"),
    ("PGPASSWORD=pgsecret psql -h x", "pgsecret"),
    ("ward users add nurse --password s3kr1t", "s3kr1t"),
    ("api_key: AKIA1234567890", "AKIA1234567890"),
    ("token wt_abcdefghijklmnopqrstuv leaked", "wt_abcdefghijklmnopqrstuv"),
])
def test_redact_removes_secrets(text, secret):
    out = redact(text)
    assert secret not in out and "***" in out


@pytest.mark.parametrize("text", [
    "bed-1 online: 6.0 fps",
    'WWW-Authenticate: Bearer realm="ward", Basic realm="ward"',
    "password too short: use at least 8 characters",
    "a basic configuration problem",
    "sqlite:////tmp/ward.db",
    "http://127.0.0.1:8000/api/beds",
])
def test_redact_leaves_ordinary_text(text):
    assert redact(text) == text


def _capture(logger_name: str) -> tuple[logging.Logger, io.StringIO, logging.Handler]:
    buf = io.StringIO()
    h = logging.StreamHandler(buf)
    h.setFormatter(logging.Formatter("%(name)s %(message)s"))
    lg = logging.getLogger(logger_name)
    lg.setLevel(logging.INFO)
    return lg, buf, h


def test_filter_scrubs_args_exceptions_and_frames():
    lg, buf, h = _capture("ward.test.filter")
    h.addFilter(RedactingFilter())
    lg.addHandler(h)
    try:
        lg.info("db %s user %s", "postgresql://ward:pw123456@h/db", "x")
        frame = np.zeros((180, 320, 3), np.uint8)
        lg.info("got frame %s", frame)
        lg.info("blob %r", b"\xff" * 5000)
        try:
            raise RuntimeError("auth failed with password=topsecret")
        except RuntimeError:
            lg.exception("request failed, Authorization: Bearer abcdefgh12345678")
    finally:
        lg.removeHandler(h)
    out = buf.getvalue()
    assert "pw123456" not in out and "postgresql://***@h/db" in out  # user info masked whole, as camera URIs
    assert "topsecret" not in out and "abcdefgh12345678" not in out and "RuntimeError" in out
    assert "<ndarray shape=(180, 320, 3) dtype=uint8>" in out and "0 0 0" not in out
    assert "<5000 bytes>" in out
    assert len(out) < 3000


def test_install_covers_child_loggers_and_later_handlers():
    """Logger filters do not see records propagated from children; the record factory does."""
    install_log_redaction()
    install_log_redaction()  # idempotent
    parent, buf, h = _capture("ward.test.install")
    parent.addHandler(h)  # added after installation, no filter on it
    try:
        logging.getLogger("ward.test.install.child.deeper").warning(
            "retrying %s", "postgresql+psycopg://svc:hunter2@127.0.0.1/ward")
    finally:
        parent.removeHandler(h)
    out = buf.getvalue()
    assert "hunter2" not in out and "postgresql+psycopg://***@127.0.0.1/ward" in out


# ------------------------------------------------------------------------------------------ wiring

def test_dashboard_login_is_rate_limited_and_audited(tmp_path, monkeypatch):
    """5 wrong passwords lock the name: the right password is then refused, and every step is audited."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from ward.store.repository import Store

    url = f"sqlite:///{tmp_path / 'ward.db'}"
    monkeypatch.setenv("WARD_DB_URL", url)
    monkeypatch.delenv("WARD_API_URL", raising=False)
    store = Store(url)
    name = f"lockme{tmp_path.name[-6:]}"  # the limiter is per process: a name no other test uses
    store.create_user(name, "right-password", role="clinician")
    app = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
    at = AppTest.from_file(app, default_timeout=60).run()
    assert not at.exception

    def attempt(pw: str) -> str:
        at.text_input(key="login_user").input(name)
        at.text_input(key="login_password").input(pw)
        next(b for b in at.button if b.label == "Log in").click().run()
        assert not at.exception
        return at.error[0].value if at.error else ""

    for _ in range(5):
        assert "wrong password" in attempt("wrong-password")
    assert "Too many failed logins" in attempt("right-password")
    assert "user" not in at.session_state
    actions = [a.action for a in store.audit_log(user=name, limit=20) if a.action.startswith("login")]
    assert actions.count("login.failed") == 5 and actions[0] == "login.refused"
    assert all("right-password" not in str(a.detail) and "wrong-password" not in str(a.detail)
               for a in store.audit_log(limit=50))
    store.close()
