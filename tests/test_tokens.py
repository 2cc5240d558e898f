"""API tokens expire, are listed and revoked by id, and the API refuses a revoked or expired token, a
disabled user, or a changed role or password on the very next request (no 60 s cache window).

Store tests run on SQLite and PostgreSQL (``bash scripts/test.sh tests/test_tokens.py``); the API
tests drive the real FastAPI app (tests/support/api.py, no Ray); the CLI tests use typer's runner.
"""

from __future__ import annotations

import getpass
import json
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import pytest
import sqlalchemy as sa
import typer

from test_audit import _run, cli  # noqa: F401 (fixture: the `ward` CLI's store and audit commands)
from ward.store import Store
from ward.store.audit import AuditAction
from ward.store.engine import make_engine, upgrade
from ward.store.records import StoreError
from ward.store.users import DEFAULT_TOKEN_TTL, MAX_TOKEN_TTL, TOKEN_TOUCH_S

UTC = timezone.utc


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:  # noqa: F811
    s = Store(db_url)
    s.create_user("alice", "alice-password", "clinician")
    s.create_user("bob", "bob-password-1", "viewer")
    yield s
    s.close()


def _audit(store: Store, action: AuditAction) -> list[Any]:
    return store.audit_log(action=action, limit=100)


# ------------------------------------------------------------------------------------------ store
def test_people_tokens_expire_service_tokens_may_not(store: Store) -> None:
    before = datetime.now(UTC)
    issued = store.issue_token("alice", "laptop")
    rec = issued.record
    assert rec.username == "alice" and rec.name == "laptop" and rec.state() == "active"
    assert before + DEFAULT_TOKEN_TTL <= rec.expires_at <= datetime.now(UTC) + DEFAULT_TOKEN_TTL
    assert store.check_token(issued.token).user.username == "alice"
    with pytest.raises(StoreError, match="tokens of people must expire"):
        store.create_token("alice", expires_in=None)
    for bad in (MAX_TOKEN_TTL + timedelta(days=1), timedelta(0), timedelta(seconds=-5)):
        with pytest.raises(StoreError, match="bad token lifetime"):
            store.create_token("alice", expires_in=bad)
    svc = store.ensure_service_user("svc-test")
    forever = store.issue_token(svc.username, "live", expires_in=None)
    assert forever.record.expires_at is None
    assert store.check_token(forever.token, now=datetime.now(UTC) + timedelta(days=3650)).user is not None
    store.disable_user("bob")
    with pytest.raises(StoreError, match="disabled"):
        store.create_token("bob")
    with pytest.raises(StoreError, match="unknown user"):
        store.create_token("mallory")
    assert len(store.list_tokens()) == 2  # refused requests made nothing


def test_expired_token_is_refused_with_reason(store: Store) -> None:
    issued = store.issue_token("alice", expires_in=timedelta(hours=1))
    exp = issued.record.expires_at
    assert store.check_token(issued.token, now=exp - timedelta(seconds=1)).user is not None
    check = store.check_token(issued.token, now=exp)
    assert (check.user, check.refusal, check.token_id, check.owner) == (None, "expired", issued.record.id, "alice")
    assert store.authenticate_token(issued.token) is not None  # now: not yet expired
    with store.engine.begin() as c:  # an hour passes
        c.execute(sa.text("UPDATE api_tokens SET expires_at = :t WHERE id = :i"),
                  {"t": _db_time(store, datetime.now(UTC) - timedelta(seconds=1)), "i": issued.record.id})
    assert store.authenticate_token(issued.token) is None
    assert store.list_tokens("alice")[0].state() == "expired"
    assert store.check_token("wt_never-issued").refusal == "unknown"


def _db_time(store: Store, t: datetime) -> Any:
    """``t`` as the dialect stores it (SQLite: integer microseconds since the epoch)."""
    from ward.store.types import to_micros

    return to_micros(t) if store.dialect == "sqlite" else t


def test_list_and_revoke_by_id_audited_without_secrets(store: Store) -> None:
    a = store.issue_token("alice", "script")
    b = store.issue_token("bob")
    rows = store.list_tokens()
    assert [(r.id, r.username, r.name, r.revoked) for r in rows] == [
        (a.record.id, "alice", "script", False), (b.record.id, "bob", None, False)]
    assert [r.id for r in store.list_tokens("bob")] == [b.record.id]
    assert store.revoke_token(a.record.id, actor="admin1", source="cli") is True
    assert store.revoke_token(a.record.id, actor="admin1", source="cli") is False  # already: no second row
    assert store.check_token(a.token).refusal == "revoked" and store.check_token(b.token).user is not None
    listed = store.get_token(a.record.id)
    assert listed.state() == "revoked" and listed.revoked_at is not None
    assert [r.id for r in store.list_tokens(include_revoked=False)] == [b.record.id]
    with pytest.raises(StoreError, match="unknown token id 999"):
        store.revoke_token(999)
    with pytest.raises(StoreError, match="token's id"):
        store.revoke_token(a.token)  # type: ignore[arg-type]
    created = _audit(store, AuditAction.TOKEN_CREATE)
    assert {(r.detail["token_id"], r.detail["username"], r.username, r.source) for r in created} == {
        (a.record.id, "alice", "ward", "ward"), (b.record.id, "bob", "ward", "ward")}
    revoked = _audit(store, AuditAction.TOKEN_REVOKE)
    assert [(r.username, r.source, r.detail["token_ids"], r.detail["reason"]) for r in revoked] == [
        ("admin1", "cli", [a.record.id], "revoked")]
    text = json.dumps([r.as_dict() for r in store.audit_log(limit=100)], default=str)
    assert a.token not in text and b.token not in text and "wt_" not in text


def test_replacing_a_named_token_revokes_the_old_one_audited(store: Store) -> None:
    store.ensure_service_user("svc-dash")
    first = store.issue_token("svc-dash", "live", expires_in=None, replace=True)
    second = store.issue_token("svc-dash", "live", expires_in=None, replace=True)
    assert store.check_token(first.token).refusal == "revoked" and store.check_token(second.token).user
    rows = _audit(store, AuditAction.TOKEN_REVOKE)
    assert [(r.detail["token_ids"], r.detail["reason"]) for r in rows] == [([first.record.id], "replaced")]


def test_last_use_is_recorded_without_a_write_per_request(store: Store) -> None:
    issued = store.issue_token("alice")
    t0 = datetime.now(UTC)
    store.check_token(issued.token, now=t0)
    assert store.get_token(issued.record.id).last_used_at == t0
    store.check_token(issued.token, now=t0 + timedelta(seconds=TOKEN_TOUCH_S / 2))
    assert store.get_token(issued.record.id).last_used_at == t0  # not rewritten within TOKEN_TOUCH_S
    later = t0 + timedelta(seconds=TOKEN_TOUCH_S + 1)
    store.check_token(issued.token, now=later)
    assert store.get_token(issued.record.id).last_used_at == later


def test_migration_0007_gives_existing_people_tokens_an_expiry(db_url: str) -> None:  # noqa: F811
    """Tokens made before 0007 had no expiry: people's get upgrade time + 90 days (none is cut off at
    once, none lives for ever); the ward's service tokens stay non-expiring."""
    upgrade(db_url, "0006")
    engine = make_engine(db_url)
    with engine.begin() as c:
        now = _legacy_time(engine, datetime.now(UTC))
        for uid, name, service in ((1, "carol", False), (2, "svc-dashboard", True)):
            c.execute(sa.text("INSERT INTO users (id, username, password_hash, role, disabled, created_at, service) "
                              "VALUES (:i, :n, 'x', 'viewer', false, :t, :s)"), {"i": uid, "n": name, "t": now, "s": service})
            c.execute(sa.text("INSERT INTO api_tokens (user_id, token_hash, name, created_at, revoked) "
                              "VALUES (:i, :h, NULL, :t, false)"), {"i": uid, "h": f"{uid:064d}", "t": now})
    before = datetime.now(UTC)
    upgrade(engine, "0007")
    engine.dispose()
    s = Store(db_url, auto_migrate=False)
    try:
        tokens = {t.username: t for t in s.list_tokens()}
        assert tokens["svc-dashboard"].expires_at is None
        exp = tokens["carol"].expires_at
        assert before + timedelta(days=90) - timedelta(minutes=1) <= exp <= datetime.now(UTC) + timedelta(days=90)
    finally:
        s.close()


def _legacy_time(engine: Any, t: datetime) -> Any:
    from ward.store.types import to_micros

    return to_micros(t) if engine.dialect.name == "sqlite" else t


# -------------------------------------------------------------------------------------------- API
@pytest.fixture()
def api(tmp_path, monkeypatch):
    from support.api import api_client

    yield from api_client(tmp_path, monkeypatch)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_api_refuses_revoked_token_on_the_next_request(api) -> None:
    client, inst, store = api
    issued = store.issue_token("viewer1", "script")
    for _ in range(3):  # within the old 60 s cache window
        assert client.get("/api/beds", headers=_bearer(issued.token)).status_code == 200
    assert store.revoke_token(issued.record.id, actor="admin1", source="cli")
    r = client.get("/api/beds", headers=_bearer(issued.token))
    assert r.status_code == 401 and "token revoked" in r.json()["detail"]
    refused = store.audit_log(action=AuditAction.TOKEN_REFUSED)
    assert [(a.username, a.source, a.detail["token_id"], a.detail["reason"]) for a in refused] == [
        ("viewer1", "api", issued.record.id, "revoked")]


def test_api_refuses_expired_token(api) -> None:
    client, _inst, store = api
    issued = store.issue_token("viewer1", expires_in=timedelta(days=1))
    assert client.get("/api/beds", headers=_bearer(issued.token)).status_code == 200
    with store.engine.begin() as c:  # the day passes
        c.execute(sa.text("UPDATE api_tokens SET expires_at = :t WHERE id = :i"),
                  {"t": _db_time(store, datetime.now(UTC) - timedelta(seconds=1)), "i": issued.record.id})
    r = client.get("/api/beds", headers=_bearer(issued.token))
    assert r.status_code == 401 and "token expired" in r.json()["detail"] and "ward users token" in r.json()["detail"]
    assert [a.detail["reason"] for a in store.audit_log(action="token.refused")] == ["expired"]


def test_api_refuses_disabled_user_on_the_next_request(api) -> None:
    client, _inst, store = api
    token = store.create_token("nurse1")
    nurse = ("nurse1", "nurse-pass")
    assert client.get("/api/beds", auth=nurse).status_code == 200
    assert client.get("/api/beds", headers=_bearer(token)).status_code == 200
    store.disable_user("nurse1", actor="admin1", source="cli")
    assert client.get("/api/beds", auth=nurse).status_code == 401  # the cached password check is not trusted
    r = client.get("/api/beds", headers=_bearer(token))
    assert r.status_code == 401 and r.json()["detail"] == "invalid credentials"
    assert [a.detail["reason"] for a in store.audit_log(action="token.refused")] == ["user disabled"]
    assert store.audit_log(action="user.disable")[0].username == "admin1"


def test_api_applies_role_and_password_changes_on_the_next_request(api) -> None:
    from ward.store.users import hash_password

    client, _inst, store = api
    store.upsert_bed("bed-1")
    aid = store.open_alarm("bed-1", "alarm", datetime.now(UTC), peak=0.9)
    viewer = ("viewer1", "viewer-pass")
    ack = {"verdict": "true", "note": None}
    assert client.post(f"/api/alarms/{aid}/ack", json=ack, auth=viewer).status_code == 403
    store.set_role("viewer1", "clinician", actor="admin1", source="cli")
    assert client.post(f"/api/alarms/{aid}/ack", json=ack, auth=viewer).status_code == 200
    role = store.audit_log(action="user.role")[0]
    assert (role.username, role.detail) == ("admin1", {"username": "viewer1", "old": "viewer", "new": "clinician"})
    with store.engine.begin() as c:  # a password change (by whichever path) replaces the stored hash
        c.execute(sa.text("UPDATE users SET password_hash = :h WHERE username = 'viewer1'"),
                  {"h": hash_password("a-new-password-1")})
    assert client.get("/api/beds", auth=viewer).status_code == 401
    assert client.get("/api/beds", auth=("viewer1", "a-new-password-1")).status_code == 200


def test_api_refuses_a_temporary_password_until_it_is_changed(api) -> None:
    """A temporary password (first start, `ward users add`, an admin's reset) opens only the dashboard's
    "choose your password" page: HTTP Basic with it gets a 403 saying so (audited), even after the
    same user's earlier permanent password was accepted; the user's own password then works."""
    client, _inst, store = api
    nurse = ("nurse1", "nurse-pass")
    assert client.get("/api/beds", auth=nurse).status_code == 200
    store.set_password("nurse1", "temp-pass-1", temporary=True, actor="admin1", source="cli")
    for _ in range(2):
        r = client.get("/api/beds", auth=("nurse1", "temp-pass-1"))
        assert r.status_code == 403, r.text
        assert "temporary" in r.json()["detail"] and "dashboard" in r.json()["detail"], r.text
    refused = store.audit_log(action=AuditAction.LOGIN_REFUSED)
    assert [(a.username, a.source, a.detail["reason"]) for a in refused][0] == ("nurse1", "api", "temporary password")
    assert client.get("/api/beds", auth=nurse).status_code == 401  # the old password is gone
    store.change_password("nurse1", "temp-pass-1", "nurse-own-password", source="dashboard")
    assert client.get("/api/beds", auth=("nurse1", "nurse-own-password")).status_code == 200
    assert client.get("/api/beds", auth=("nurse1", "nurse-own-password")).status_code == 200  # (cached)
    token = store.create_token("nurse1")  # tokens are not passwords: unaffected
    assert client.get("/api/beds", headers=_bearer(token)).status_code == 200


def test_api_keeps_recent_credentials_while_the_database_is_unreachable(api, tmp_path) -> None:
    """The live view must survive a database outage: a credential verified within AUTH_CACHE_S still
    opens /api/beds; a credential never seen gets 503 (nothing can vouch for it)."""
    client, inst, _store = api
    viewer = ("viewer1", "viewer-pass")
    assert client.get("/api/beds", auth=viewer).status_code == 200
    good = inst.store.engine
    (tmp_path / "a-directory").mkdir()
    inst.store.engine = make_engine(f"sqlite:///{tmp_path / 'a-directory'}")  # a directory: "unable to open database file"
    try:
        assert client.get("/api/beds", auth=viewer).status_code == 200
        r = client.get("/api/beds", auth=("nurse1", "nurse-pass"))
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
    finally:
        inst.store.engine.dispose()
        inst.store.engine = good


def test_api_429_refusals_are_audited_once_per_lockout(api) -> None:
    client, _inst, store = api
    for _ in range(5):
        assert client.get("/api/beds", auth=("nurse1", "wrong-guess")).status_code == 401
    for _ in range(4):
        r = client.get("/api/beds", auth=("nurse1", "nurse-pass"))
        assert r.status_code == 429
    refused = store.audit_log(action=AuditAction.LOGIN_REFUSED)
    assert len(refused) == 1, refused  # one row per lockout, not per refused request
    row = refused[0]
    assert (row.username, row.source, row.detail["reason"], row.detail["locked"]) == (
        "nurse1", "api", "rate limited", "user")
    assert 0 < row.detail["retry_after_s"] <= 300
    assert "nurse-pass" not in json.dumps(row.detail) and "wrong-guess" not in json.dumps(row.detail)


# -------------------------------------------------------------------------------------------- CLI

def test_cli_token_lifecycle(cli: typer.Typer, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    Store(url).create_user("alice", "alice-password")
    res = _run(cli, "users", "token", "alice", "--name", "laptop", "--expires-in", "30d", "--db", url)
    assert res.exit_code == 0, res.output
    token = res.stdout.strip()
    assert token.startswith("wt_") and "\n" not in token  # stdout: only the token (scripts capture it)
    assert "token id 1 for alice" in res.stderr and "ward users revoke-token 1" in res.stderr
    store = Store(url)
    rec = store.check_token(token)
    assert rec.user.username == "alice"
    assert timedelta(days=29) < rec.expires_at - datetime.now(UTC) <= timedelta(days=30)

    res = _run(cli, "users", "tokens", "--format", "json", "--db", url)
    assert res.exit_code == 0, res.output
    listed = json.loads(res.stdout)
    assert [(t["id"], t["user"], t["name"], t["state"]) for t in listed] == [(1, "alice", "laptop", "active")]
    assert token not in res.output

    res = _run(cli, "users", "revoke-token", "1", "--db", url)
    assert res.exit_code == 0 and "revoked token 1" in res.stdout
    assert store.check_token(token).refusal == "revoked"
    row = store.audit_log(action="token.revoke")[0]
    assert (row.username, row.source) == (f"cli:{getpass.getuser()}", "cli")
    res = _run(cli, "users", "revoke-token", "1", "--db", url)
    assert res.exit_code == 0 and "already revoked" in res.stdout
    res = _run(cli, "users", "tokens", "alice", "--active", "--format", "json", "--db", url)
    assert json.loads(res.stdout) == []


@pytest.mark.parametrize(("args", "message"), [
    (("users", "token", "alice", "--expires-in", "forever"), "bad --expires-in 'forever'"),
    (("users", "token", "alice", "--expires-in", "400d"), "at most 366 days"),
    (("users", "token", "ghost"), "unknown user 'ghost'"),
    (("users", "revoke-token", "42"), "unknown token id 42"),
    (("users", "revoke-token", "wt_abc"), "valid integer"),
    (("users", "tokens", "ghost"), "unknown user 'ghost'"),
    (("users", "set-role", "alice", "root"), "bad role 'root'"),
])
def test_cli_token_errors_name_the_problem(cli: typer.Typer, tmp_path, args: tuple[str, ...], message: str) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    Store(url).create_user("alice", "alice-password")
    res = _run(cli, *args, "--db", url)
    assert res.exit_code == 2 and message in res.output, res.output
