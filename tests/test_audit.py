"""The audit trail is complete and readable: one list of actions used by every writer, an actor and a
source on every row the store writes, no secrets, `ward audit` to read it (bounded in SQL), and no
unaudited CSV download in the dashboard.

Store tests run on SQLite and PostgreSQL (``bash scripts/test.sh tests/test_audit.py``); the CLI
through typer's runner; the dashboard check in headless Chromium against a real `streamlit run`.
"""

from __future__ import annotations

import ast
import getpass
import json
import tomllib
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest
import sqlalchemy as sa
import typer
from typer.testing import CliRunner

from ward.store import Store
from ward.store.audit import MAX_AUDIT_LIMIT, AuditAction, AuditSource, cli_actor
from ward.store.records import StoreError

UTC = timezone.utc
ROOT = Path(__file__).resolve().parents[1]
KNOWN = {a.value for a in AuditAction}


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:  # noqa: F811
    s = Store(db_url)
    yield s
    s.close()


def _count(store: Store) -> int:
    with store.engine.connect() as c:
        return c.execute(sa.text("SELECT count(*) FROM audit_log")).scalar_one()


# ------------------------------------------------------------------------------ one vocabulary
def _literal_actions(path: Path) -> list[tuple[int, str]]:
    """String literals a file passes as an audit action: the first argument of ``.audit(...)`` /
    ``._audit(...)`` / ``.audit_user_change(...)``, an ``action=`` keyword, or ``AUDIT_ACTION = ...``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            if name in ("audit", "_audit", "audit_user_change") and node.args:
                out.append(node.args[0])
            out += [k.value for k in node.keywords if k.arg == "action"]
        elif isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "AUDIT_ACTION" for t in node.targets):
            out.append(node.value)
    return [(n.lineno, n.value) for n in out if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def test_every_audit_writer_uses_a_known_action() -> None:
    """A writer's typo would be a silent gap in the trail (and `ward audit --action` could not find
    it): every literal action in the ward's code is an AuditAction."""
    files = sorted((ROOT / "ward").rglob("*.py")) + sorted((ROOT / "dashboard").rglob("*.py"))
    found = {(str(p.relative_to(ROOT)), line, a) for p in files for line, a in _literal_actions(p)}
    assert len(found) >= 5  # the scan sees the writers (dashboard login, export, bootstrap, ...)
    unknown = sorted(f for f in found if f[2] not in KNOWN)
    assert unknown == [], f"audit actions not in ward.store.audit.AuditAction: {unknown}"


def test_store_refuses_unknown_actions_and_secrets(store: Store) -> None:
    with pytest.raises(StoreError, match=r"unknown audit action 'user.create.by'.*AuditAction"):
        store.audit("user.create.by", user="admin", source="dashboard")
    for key in ("password", "token", "new_password", "Token_Hash"):
        with pytest.raises(StoreError, match="must not hold secrets"):
            store.audit(AuditAction.USER_PASSWORD, user="admin", source="cli", detail={key: "x"})
    with pytest.raises(StoreError, match="unknown audit action"):
        store.audit_log(action="loggin")
    assert _count(store) == 0


# ------------------------------------------------------------------------------ actor and source
def test_store_writers_record_actor_and_source(store: Store) -> None:
    from ward.config import RetentionConfig

    store.create_user("nurse", "nurse-password", "viewer")  # the ward's own store: actor "ward"
    cli = Store(engine=store.engine, auto_migrate=False, actor="cli:root", source=AuditSource.CLI)
    cli.set_role("nurse", "clinician")
    cli.disable_user("nurse")
    store.create_user("dr", "dr-password-1", "clinician", actor="admin1", source="dashboard")
    store.upsert_bed("bed-1")
    aid = store.open_alarm("bed-1", "alarm", datetime.now(UTC) - timedelta(minutes=1), peak=0.9)
    store.acknowledge(aid, "dr", "true", source="api")
    cli.apply_retention(RetentionConfig())
    rows: dict[str, Any] = {}
    for r in store.audit_log(limit=50):  # newest first: the newest row of each action
        rows.setdefault(r.action, r)
    seen = {a: (r.username, r.source) for a, r in rows.items()}
    assert seen == {"user.create": ("admin1", "dashboard"), "user.role": ("cli:root", "cli"),
                    "user.disable": ("cli:root", "cli"), "acknowledge": ("dr", "api"),
                    "retention": ("cli:root", "cli")}
    assert [(r.username, r.source, r.detail["username"]) for r in store.audit_log(action="user.create")] == [
        ("admin1", "dashboard", "dr"), ("ward", "ward", "nurse")]
    assert rows["user.role"].detail == {"username": "nurse", "old": "viewer", "new": "clinician"}
    text = json.dumps([r.as_dict() for r in store.audit_log(limit=50)])
    assert "nurse-password" not in text and "dr-password-1" not in text and "scrypt" not in text


def test_audit_user_change_helper(store: Store) -> None:
    """The helper the dashboard's password change calls: a user action about ``username`` by ``actor``."""
    store.audit_user_change(AuditAction.USER_PASSWORD, "nurse", actor="nurse", source="dashboard",
                            detail={"forced": True})
    row = store.audit_log(limit=1)[0]
    assert (row.action, row.username, row.source, row.detail) == (
        "user.password", "nurse", "dashboard", {"username": "nurse", "forced": True})
    with pytest.raises(StoreError, match="takes a user action"):
        store.audit_user_change("login", "nurse", actor="nurse", source="dashboard")
    with pytest.raises(StoreError, match="must not hold secrets"):
        store.audit_user_change("user.password", "nurse", actor="nurse", source="dashboard",
                                detail={"new_password": "hunter2-hunter2"})
    with pytest.raises(StoreError, match="needs the actor"):
        store.audit_user_change("user.password", "nurse", actor="", source="dashboard")
    assert _count(store) == 1


def test_cli_actor_is_the_os_user_or_explicit() -> None:
    assert cli_actor() == f"cli:{getpass.getuser()}"
    assert cli_actor(" dr.smith ") == "dr.smith"
    with pytest.raises(ValueError, match="bad --actor"):
        cli_actor("")


# ------------------------------------------------------------------------------ reading the log
def _seed(store: Store, now: datetime) -> None:
    store.audit("login", user="nurse", source="dashboard", at=now - timedelta(hours=30))
    store.audit("login.failed", user="nurse", source="api", at=now - timedelta(hours=2), detail={"address": "10.0.0.7"})
    store.audit("login", user="dr", source="api", at=now - timedelta(hours=1))
    store.audit("token.create", user="cli:root", source="cli", at=now - timedelta(minutes=5),
                detail={"token_id": 1, "username": "dr"})


def test_audit_log_filters_newest_first_and_bounded_in_sql(store: Store) -> None:
    now = datetime.now(UTC)
    _seed(store, now)
    assert [r.action for r in store.audit_log()] == ["token.create", "login", "login.failed", "login"]
    assert [r.username for r in store.audit_log(action="login")] == ["dr", "nurse"]
    assert {r.action for r in store.audit_log(action=["login.failed", "token.create"])} == {"login.failed",
                                                                                            "token.create"}
    assert [r.action for r in store.audit_log(user="nurse", since=now - timedelta(hours=24))] == ["login.failed"]
    assert [r.username for r in store.audit_log(source="api")] == ["dr", "nurse"]
    assert [r.action for r in store.audit_log(limit=2)] == ["token.create", "login"]
    assert [r.action for r in store.audit_log(limit=2, offset=2)] == ["login.failed", "login"]
    for bad in (0, MAX_AUDIT_LIMIT + 1):
        with pytest.raises(StoreError, match="bad limit"):
            store.audit_log(limit=bad)
    statements: list[str] = []
    sa.event.listen(store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    store.audit_log(action="login", limit=3)
    assert any("FROM audit_log" in s and "LIMIT" in s.upper() for s in statements), statements


def test_action_filter_reads_the_action_index_on_sqlite(tmp_path) -> None:
    s = Store(f"sqlite:///{tmp_path / 'a.db'}")
    captured: list[tuple[str, Any]] = []
    sa.event.listen(s.engine, "before_cursor_execute", lambda c, cur, st, params, *a: captured.append((st, params)))
    s.audit_log(action="token.revoke", limit=10)
    st, params = next((st, p) for st, p in captured if "FROM audit_log" in st)
    with s.engine.connect() as c:
        plan = " ".join(str(r[-1]) for r in c.exec_driver_sql("EXPLAIN QUERY PLAN " + st, params))
    assert "ix_audit_log_action_at" in plan, plan
    s.close()


# ------------------------------------------------------------------------------ `ward audit`
@pytest.fixture
def cli() -> typer.Typer:
    from ward.store import audit_cli, cli as store_cli

    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """test root"""

    store_cli.register(app)
    audit_cli.register(app)
    return app


def _run(app: typer.Typer, *args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(app, list(args), input=input)


def test_ward_audit_command(cli: typer.Typer, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    s = Store(url)
    _seed(s, datetime.now(UTC))
    res = _run(cli, "audit", "--db", url, "--json")
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert [x["action"] for x in lines] == ["token.create", "login", "login.failed", "login"]
    assert lines[0]["user"] == "cli:root" and lines[0]["detail"] == {"token_id": 1, "username": "dr"}
    assert all(set(x) == {"id", "at", "user", "action", "source", "detail"} for x in lines)

    def actions(*args: str) -> list[str]:
        r = _run(cli, "audit", "--db", url, "--json", *args)
        assert r.exit_code == 0, r.output
        return [json.loads(line)["action"] for line in r.stdout.splitlines()]

    assert actions("--last", "24h") == ["token.create", "login", "login.failed"]
    assert actions("--since", "-90m") == ["token.create", "login"]
    assert actions("--action", "login") == ["login", "login"]
    assert actions("--action", "login.failed", "--action", "token.create") == ["token.create", "login.failed"]
    assert actions("--user", "nurse") == ["login.failed", "login"]
    assert actions("--source", "cli") == ["token.create"]
    assert actions("--limit", "1") == ["token.create"]
    assert actions("--until", "-70m") == ["login.failed", "login"]

    table = _run(cli, "audit", "--db", url, "--last", "3h")
    assert table.exit_code == 0 and "login.failed" in table.stdout and "10.0.0.7" in table.stdout
    assert "nurse" in table.stdout and table.stdout.count("login") == 2  # not the 30 h old login
    empty = _run(cli, "audit", "--db", url, "--user", "nobody")
    assert empty.exit_code == 0 and "no audit rows match" in empty.output

    for args, message in ((("--action", "loggin"), "unknown audit action 'loggin'"),
                          (("--since", "-1h", "--last", "2h"), "not both"),
                          (("--last", "yesterday"), "bad --last 'yesterday'"),
                          (("--limit", "0"), "greater than or equal to 1"),
                          (("--since", "noon"), "bad time 'noon'")):
        r = _run(cli, "audit", "--db", url, *args)
        assert r.exit_code == 2 and message in r.output, (args, r.output)


def test_cli_changes_are_audited_with_the_os_user_or_actor(cli: typer.Typer, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    me = f"cli:{getpass.getuser()}"
    res = _run(cli, "users", "add", "bob", "--db", url, input="bob-password\nbob-password\n")
    assert res.exit_code == 0, res.output
    res = _run(cli, "users", "set-role", "bob", "admin", "--actor", "dr.smith", "--db", url)
    assert res.exit_code == 0 and "bob is now admin" in res.stdout, res.output
    res = _run(cli, "users", "disable", "bob", "--db", url)
    assert res.exit_code == 0, res.output
    res = _run(cli, "db", "retain", "--db", url, "--raw-samples-days", "30")
    assert res.exit_code == 0, res.output
    rows = Store(url).audit_log()
    assert [(r.action, r.username, r.source) for r in rows] == [
        ("retention", me, "cli"), ("user.disable", me, "cli"), ("user.role", "dr.smith", "cli"),
        ("user.create", me, "cli")]
    assert "bob-password" not in json.dumps([r.as_dict() for r in rows])


# ------------------------------------------------------------------------------ dashboard exports
def test_dashboard_config_disables_builtin_data_export() -> None:
    """The shipped Streamlit config (next to app.py: read whatever the working directory) turns the
    built-in export off, and the installed Streamlit knows the option (an older one would ignore it
    with only a warning)."""
    from streamlit import config

    cfg = tomllib.loads((ROOT / "dashboard" / ".streamlit" / "config.toml").read_text())
    assert cfg["client"]["disableDataExport"] is True
    assert "client.disableDataExport" in config.get_config_options()


@pytest.mark.browser
def test_dataframes_offer_no_download_and_exports_are_audited(server) -> None:
    """In Chromium: the History page's table and its chart's table view show their toolbar (search,
    fullscreen) but no "Download as CSV"; the page's own export downloads the CSV and writes an
    ``export.csv`` audit row."""
    from playwright.sync_api import expect, sync_playwright

    from test_dashboard_browser import ARGS, CHROMIUM
    from ward.dashboard.demo import DEMO_USERS

    base, store, _demo, _ended = server
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 900}, accept_downloads=True)
            page.set_default_timeout(30_000)
            expect.set_options(timeout=30_000)
            page.goto(base)
            page.get_by_label("User name").fill("nurse")
            page.get_by_role("textbox", name="Password").fill(DEMO_USERS["nurse"][0])
            page.get_by_role("button", name="Log in").click()
            page.get_by_role("link", name="History").click()
            expect(page.get_by_role("heading", name="History")).to_be_visible()

            table = page.locator('[data-testid="stDataFrame"]').first
            expect(table).to_be_visible()
            table.hover()
            toolbar = page.locator('[data-testid="stElementToolbar"]').first
            expect(toolbar.get_by_role("button", name="Search")).to_be_visible()  # the toolbar is there...
            expect(page.get_by_role("button", name="Download as CSV")).to_have_count(0)  # ...without download

            chart = page.locator('[data-testid="stVegaLiteChart"]').first
            chart.scroll_into_view_if_needed()
            chart.hover()
            page.get_by_role("button", name="Show data").click()  # the chart's table view
            shown = page.locator('[data-testid="stDataFrame"]').nth(1)
            expect(shown).to_be_visible()
            shown.hover()
            expect(page.get_by_role("button", name="Search").nth(1)).to_be_visible()
            expect(page.get_by_role("button", name="Download as CSV")).to_have_count(0)

            assert store.audit_log(action="export.csv") == []  # showing the button exports nothing
            with page.expect_download() as download:
                page.get_by_role("button", name="Export alarms (CSV)").click()
            content = Path(download.value.path()).read_text()
            assert content.startswith("id,bed,tier,start,end,peak,state,reason,acknowledged,verdict")
        finally:
            browser.close()
    rows = store.audit_log(action="export.csv")  # written before the file was served, so already there
    assert [(r.username, r.source, r.detail["what"]) for r in rows] == [("nurse", "dashboard", "alarms")]
    assert rows[0].detail["rows"] == len(content.strip().splitlines()) - 1


from test_dashboard_browser import server  # noqa: E402,F401 (fixture: seeded SQLite + `streamlit run`)
