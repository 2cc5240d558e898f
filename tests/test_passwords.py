"""Passwords: OWASP scrypt parameters, one scrypt per login whether or not the user exists, old hashes
upgraded at login, the policy, changes (store, `ward users passwd`, dashboard) audited without the
password, and the forced change of temporary passwords at the first dashboard login.

Store tests run on SQLite and PostgreSQL (``bash scripts/test.sh tests/test_passwords.py``). The suite
hashes with cheap parameters (tests/conftest.py); the tests that are about the real parameters switch
this process to OWASP's with the ``owasp`` fixture.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa
import typer
from streamlit.testing.v1 import AppTest
from test_store_cli import run

import ward.security.passwords as hashing
from ward.dashboard.auth import bootstrap_admin
from ward.security import (LEGACY_SCRYPT, OWASP_SCRYPT, TEST_SCRYPT, PasswordHasher, PasswordPolicyError,
                           ScryptParams, check_password_policy, password_hasher, use_test_password_params)
from ward.store.cli import register
from ward.store.engine import make_engine, upgrade
from ward.store.records import StoreError
from ward.store.repository import Store

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
GOOD = "a good long password"  # 20 characters


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:  # noqa: F811
    s = Store(db_url)
    yield s
    s.close()


@pytest.fixture
def owasp() -> Iterator[None]:
    """This process hashes with the production parameters for the test (restored afterwards)."""
    use_test_password_params(OWASP_SCRYPT)
    yield
    use_test_password_params(TEST_SCRYPT)


@pytest.fixture
def scrypt_calls(monkeypatch: pytest.MonkeyPatch) -> list[ScryptParams]:
    """Every scrypt computation of this process from now on, as its parameters."""
    calls: list[ScryptParams] = []
    real = hashing._scrypt

    def counting(password: str, salt: bytes, params: ScryptParams, dklen: int) -> bytes:
        calls.append(params)
        return real(password, salt, params, dklen)

    monkeypatch.setattr(hashing, "_scrypt", counting)
    return calls


def _stored_hash(store: Store, username: str) -> str:
    with store.engine.connect() as c:
        return c.execute(sa.text("SELECT password_hash FROM users WHERE username = :u"), {"u": username}).scalar_one()


def _set_hash(store: Store, username: str, value: str) -> None:
    with store.engine.begin() as c:
        c.execute(sa.text("UPDATE users SET password_hash = :h WHERE username = :u"), {"h": value, "u": username})


# ------------------------------------------------------------------------------------- hashing
def test_production_parameters_are_owasps_and_a_real_hash_round_trips(owasp):
    assert PasswordHasher().params == OWASP_SCRYPT == ScryptParams(2**17, 8, 1)
    assert OWASP_SCRYPT.memory_bytes == 128 * 2**20
    hasher = password_hasher()
    stored = hasher.hash(GOOD)
    assert stored.startswith("scrypt$131072$8$1$") and GOOD not in stored
    assert hasher.verify(GOOD, stored) and not hasher.verify(GOOD + "!", stored)
    assert stored != hasher.hash(GOOD)  # a fresh salt each time


def test_cheap_parameters_only_under_pytest(monkeypatch):
    import sys

    monkeypatch.delitem(sys.modules, "pytest")
    with pytest.raises(RuntimeError, match="test suite only"):
        use_test_password_params()


def test_unreadable_or_tampered_hashes_fail_after_one_scrypt(scrypt_calls):
    hasher = PasswordHasher(TEST_SCRYPT)
    good = hasher.hash(GOOD)
    for stored in (None, "", "bcrypt$x", "scrypt$16384$8$1$!!$!!", good.replace("scrypt$1024", "scrypt$1000"),
                   "scrypt$1073741824$8$1$" + good.split("$", 4)[4]):  # N=2^30 would need 1 TiB
        scrypt_calls.clear()
        assert not hasher.verify(GOOD, stored)
        assert scrypt_calls == [TEST_SCRYPT], stored  # same work as a real check, at the hasher's parameters


def test_policy_names_the_rule():
    for username, password, temporary, message in [
            ("nurse", "short-pw", False, r"password too short \(8 characters\): use at least 12"),
            ("nurse", "abc", True, r"password too short \(3 characters\): use at least 8"),
            ("night.nurse.01", " Night.Nurse.01 ", False, "equals the user name"),
            ("nurse", " " * 14, False, "only spaces"),
            ("nurse", "x" * 1025, False, "too long")]:
        with pytest.raises(PasswordPolicyError, match=message):
            check_password_policy(username, password, temporary=temporary)
    check_password_policy("nurse", "temp-pw1", temporary=True)
    check_password_policy("nurse", GOOD)


# ------------------------------------------------------------------------------------- store
def test_one_scrypt_per_login_whether_or_not_the_user_exists(store, scrypt_calls):
    store.create_user("alice", GOOD, "clinician")
    store.create_user("bob", GOOD)
    store.disable_user("bob")
    store.create_user("svc-x", GOOD, service=True)
    current = password_hasher().params
    for username, password, ok in [("nobody", GOOD, False), ("nobody", "wrong password", False),
                                   ("alice", "wrong password", False), ("alice", GOOD, True),
                                   ("bob", GOOD, False), ("svc-x", GOOD, False)]:
        scrypt_calls.clear()
        assert (store.authenticate(username, password) is not None) is ok, username
        assert scrypt_calls == [current], (username, password)


def test_old_hash_verifies_and_is_upgraded_at_the_next_login(store, owasp, scrypt_calls):
    store.create_user("carol", "temp-password", must_change_password=True)
    _set_hash(store, "carol", PasswordHasher(LEGACY_SCRYPT).hash(GOOD))  # what ward stored before (N=2^14)
    scrypt_calls.clear()
    assert store.authenticate("carol", "wrong password") is None
    assert scrypt_calls == [LEGACY_SCRYPT] and _stored_hash(store, "carol").startswith("scrypt$16384$")

    scrypt_calls.clear()
    login = store.password_login("carol", GOOD)
    assert login is not None and login.user.must_change_password  # the rehash keeps the account's state
    assert scrypt_calls == [LEGACY_SCRYPT, OWASP_SCRYPT]  # the check, then the new hash
    upgraded = _stored_hash(store, "carol")
    assert upgraded.startswith("scrypt$131072$8$1$")
    assert store.current_login("carol", login.credential) is not None  # the API's cached login stands

    scrypt_calls.clear()
    assert store.authenticate("carol", GOOD) is not None
    assert scrypt_calls == [OWASP_SCRYPT] and _stored_hash(store, "carol") == upgraded  # once only


def _password_audit(store: Store) -> list:
    return [a for a in store.audit_log(limit=100) if a.action == "user.password"]


def test_change_password_checks_current_and_policy_and_is_audited(store):
    from ward.dashboard.settings import load_settings
    from ward.store.sessions import check_session, new_session

    user = store.create_user("dave", "temp-pw-1", "clinician", must_change_password=True)
    limits = load_settings({}).session_limits()
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc)
    this_tab, this = new_session(store, user, kiosk=False, now=now, limits=limits)
    other_tab, _ = new_session(store, user, kiosk=False, now=now, limits=limits)

    for current, new, message in [("temp-pw-1", "too-short", "use at least 12"),
                                  ("temp-pw-1", "dave", "password too short"),
                                  ("temp-pw-1", "DAVE", "password too short"),
                                  ("wrong-pw-1", GOOD, "current password is wrong"),
                                  ("temp-pw-1", "temp-pw-1", "use at least 12")]:
        with pytest.raises(StoreError, match=message):
            store.change_password("dave", current, new, source="dashboard")
    assert _password_audit(store) == [] and store.get_user("dave").must_change_password

    changed = store.change_password("dave", "temp-pw-1", GOOD, source="dashboard", keep_session=this.id)
    assert not changed.must_change_password
    assert store.authenticate("dave", "temp-pw-1") is None and store.authenticate("dave", GOOD) is not None
    with pytest.raises(StoreError, match="the new password is the current one"):
        store.change_password("dave", GOOD, GOOD, source="dashboard")
    entry, = _password_audit(store)
    assert (entry.username, entry.source) == ("dave", "dashboard")
    assert entry.detail == {"username": "dave", "temporary": False, "forced": True}
    assert check_session(store, this_tab, now=now, limits=limits, touch=False)
    assert check_session(store, other_tab, now=now, limits=limits, touch=False).ended == "unknown"  # logged out
    assert all(GOOD not in str(a.detail) and "temp-pw-1" not in str(a.detail) for a in store.audit_log(limit=100))


def test_set_password_for_someone_else(store):
    store.create_user("erin", GOOD, "viewer")
    store.set_password("erin", "temp-pw-2", temporary=True, actor="boss", source="dashboard")
    user = store.authenticate("erin", "temp-pw-2")
    assert user is not None and user.must_change_password
    entry, = _password_audit(store)
    assert (entry.username, entry.detail) == ("boss", {"username": "erin", "temporary": True})
    with pytest.raises(StoreError, match="use at least 12"):
        store.set_password("erin", "temp-pw-3", temporary=False, actor="boss", source="dashboard")
    with pytest.raises(StoreError, match="unknown user 'ghost'"):
        store.set_password("ghost", GOOD, temporary=False)
    store.ensure_service_user("svc-dashboard")
    with pytest.raises(StoreError, match="service account"):
        store.set_password("svc-dashboard", GOOD, temporary=False)


def test_cli_passwd(tmp_path):
    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    store = Store(db)
    store.create_user("admin", "one-time-pw", "admin", must_change_password=True)

    code, out = run(app, "users", "passwd", "admin", "--db", db, input="admin\nadmin\n")
    assert code == 2 and "password too short" in out
    code, out = run(app, "users", "passwd", "admin", "--db", db, input=f"{GOOD}\n{GOOD}\n")
    assert code == 0 and "password of admin changed" in out and GOOD not in out
    user = store.authenticate("admin", GOOD)
    assert user is not None and not user.must_change_password
    code, out = run(app, "users", "passwd", "admin", "--temporary", "--db", db, input="temp-pw-9\ntemp-pw-9\n")
    assert code == 0 and "they choose their own" in out
    assert store.authenticate("admin", "temp-pw-9").must_change_password
    code, out = run(app, "users", "passwd", "ghost", "--db", db, input=f"{GOOD}\n{GOOD}\n")
    assert code == 2 and "unknown user 'ghost'" in out
    audit = _password_audit(store)
    assert [a.detail["temporary"] for a in audit] == [True, False]
    assert all(a.source == "cli" and a.username.startswith("cli:") for a in audit)
    store.close()


def test_one_time_admin_must_change_and_env_admin_need_not(tmp_path):
    one_time = Store(f"sqlite:///{tmp_path / 'a.db'}")
    assert bootstrap_admin(one_time, {}) == "admin"
    assert one_time.list_users()[0].must_change_password
    from_env = Store(f"sqlite:///{tmp_path / 'b.db'}")
    assert bootstrap_admin(from_env, {"WARD_ADMIN_PASSWORD": GOOD}) == "admin"
    assert not from_env.list_users()[0].must_change_password


def test_migration_marks_admins_still_on_their_one_time_password(tmp_path):
    """Before 0008 no password could be changed: an admin made with a generated password still has it."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    upgrade(engine, "0007")
    with engine.begin() as c:
        for name in ("admin", "chief", "nurse"):
            c.execute(sa.text("INSERT INTO users (username, password_hash, role, disabled, created_at, service) "
                              "VALUES (:u, 'scrypt$x', 'admin', 0, 0, 0)"), {"u": name})
        for name, from_env in (("admin", False), ("chief", True)):
            c.execute(sa.text("INSERT INTO audit_log (at, username, action, detail, source) "
                              "VALUES (0, 'ward', 'user.bootstrap', :d, 'ward')"),
                      {"d": f'{{"username": "{name}", "from_env": {str(from_env).lower()}}}'})
    upgrade(engine, "0008")
    with engine.connect() as c:
        marked = dict(c.execute(sa.text("SELECT username, must_change_password FROM users")).all())
    assert marked == {"admin": True, "chief": False, "nurse": False}
    engine.dispose()


# ------------------------------------------------------------------------------------- dashboard
@pytest.fixture
def dash_store(tmp_path, monkeypatch) -> Iterator[Store]:
    url = f"sqlite:///{tmp_path / 'ward.db'}"
    monkeypatch.setenv("WARD_DB_URL", url)
    monkeypatch.delenv("WARD_API_URL", raising=False)
    s = Store(url)
    yield s
    s.close()


def _login(at: AppTest, username: str, password: str, kiosk: bool = False) -> AppTest:
    at.text_input(key="login_user").input(username)
    at.text_input(key="login_password").input(password)
    if kiosk:
        at.checkbox(key="login_kiosk").check()
    next(b for b in at.button if b.label == "Log in").click().run()
    assert not at.exception
    return at


def _change(at: AppTest, current: str, new: str, again: str | None = None) -> AppTest:
    at.text_input(key="pw_current").input(current)
    at.text_input(key="pw_new").input(new)
    at.text_input(key="pw_again").input(new if again is None else again)
    next(b for b in at.button if b.label == "Change password").click().run()
    assert not at.exception
    return at


def test_dashboard_forces_a_temporary_password_to_be_changed_at_first_login(dash_store):
    store = dash_store
    store.create_user("nurse", "temp-pw-1", "clinician", must_change_password=True)
    at = _login(AppTest.from_file(APP, default_timeout=60).run(), "nurse", "temp-pw-1")
    assert at.title[0].value == "Choose your own password"
    assert "Signed in as **nurse** (clinician)" in [m.value for m in at.sidebar.markdown]
    for page in ("views/overview.py", "views/alarms.py", "views/admin.py"):  # nothing else until it is changed
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            at.switch_page(page)

    assert "differ" in _change(at, "temp-pw-1", GOOD, GOOD + "x").error[0].value
    assert "use at least 12" in _change(at, "temp-pw-1", "short-one").error[0].value
    assert "current password is wrong" in _change(at, "not-it-at-all", GOOD).error[0].value
    assert store.get_user("nurse").must_change_password and store.authenticate("nurse", GOOD) is None

    _change(at, "temp-pw-1", GOOD)
    assert not store.get_user("nurse").must_change_password and store.authenticate("nurse", GOOD) is not None
    assert "Password changed" in at.success[0].value
    at.switch_page("views/overview.py").run()  # the ward is open now
    assert not at.exception and at.title[0].value == "Ward overview"
    entry = next(a for a in store.audit_log(limit=20) if a.action == "user.password")
    assert (entry.username, entry.detail["forced"]) == ("nurse", True)


def test_dashboard_password_page_for_everyone_wrong_current_passwords_rate_limited(dash_store, tmp_path):
    store = dash_store
    name = f"pwlock{tmp_path.name[-6:]}"  # the limiter is per dashboard process: a name no other test uses
    store.create_user(name, GOOD, "viewer")
    at = _login(AppTest.from_file(APP, default_timeout=60).run(), name, GOOD)
    at.switch_page("views/password.py").run()
    assert at.title[0].value == "Change password"
    for _ in range(5):
        assert "current password is wrong" in _change(at, "wrong password!", GOOD + "2").error[0].value
    assert "Too many wrong passwords" in _change(at, GOOD, GOOD + "2").error[0].value  # even the right one
    assert store.authenticate(name, GOOD) is not None and _password_audit(store) == []
