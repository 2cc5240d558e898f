"""The store's CLI (`ward alarms|history|stats|users|db`) through typer's CliRunner, on SQLite."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from ward.store.cli import parse_time, register
from ward.store.engine import head_revision
from ward.store.records import Sample
from ward.store.repository import Store

UTC = timezone.utc
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def app() -> typer.Typer:
    a = typer.Typer()

    @a.callback()
    def _root() -> None:
        """test root"""

    register(a)
    return a


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    s = Store(url)
    s.upsert_bed("bed-07")
    s.upsert_bed("bed-08")
    s.write_samples([Sample("bed-07", T0 + timedelta(seconds=i), (i % 60) / 60) for i in range(180)])
    a = s.open_alarm("bed-07", "alarm", T0 + timedelta(minutes=1), peak=0.95)
    s.close_alarm(a, T0 + timedelta(minutes=2))
    s.acknowledge(a, "dr", "true")
    s.open_alarm("bed-08", "review", T0 + timedelta(minutes=5), peak=0.6)
    s.close()
    return url


def run(app: typer.Typer, *args: str, input: str | None = None) -> tuple[int, str]:
    res = CliRunner().invoke(app, list(args), input=input)
    return res.exit_code, res.output


def test_alarms_json_csv_table(app: typer.Typer, db: str) -> None:
    code, out = run(app, "alarms", "--db", db, "--format", "json", "--since", "2026-03-01T00:00:00Z")
    assert code == 0, out
    rows = json.loads(out)
    assert [(r["bed"], r["tier"], r["verdict"]) for r in rows] == [("bed-08", "review", None), ("bed-07", "alarm", "true")]
    code, out = run(app, "alarms", "--db", db, "--format", "csv", "--bed", "bed-07")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 1 and rows[0]["peak"] == "0.95" and rows[0]["verdict"] == "true"
    code, out = run(app, "alarms", "--db", db, "--verdict", "none", "--tier", "review")
    assert code == 0 and "bed-08" in out and "bed-07" not in out


def test_history_and_stats(app: typer.Typer, db: str) -> None:
    code, out = run(app, "history", "--db", db, "--bed", "bed-07", "--since", "2026-03-01T12:00:00+00:00",
                    "--until", "2026-03-01T13:00:00+00:00", "--resolution", "1m", "--format", "json")
    assert code == 0, out
    pts = json.loads(out)
    assert [p["n"] for p in pts] == [60, 60, 60]
    assert pts[0]["p_max"] == pytest.approx(59 / 60) and pts[0]["p_mean"] == pytest.approx(59 / 120)
    code, out = run(app, "stats", "--db", db, "--since", "2026-03-01T00:00:00Z", "--until", "2026-03-02T00:00:00Z",
                    "--format", "json")
    stats = {s["bed"]: s for s in json.loads(out)}
    assert code == 0 and stats["bed-07"]["alarms"] == 1 and stats["bed-07"]["hours_monitored"] == pytest.approx(0.05)


def test_bad_input_exits_nonzero_with_message(app: typer.Typer, db: str) -> None:
    code, out = run(app, "alarms", "--db", db, "--format", "xml")
    assert code != 0 and "bad format 'xml'" in out
    code, out = run(app, "history", "--db", db, "--bed", "bed-99", "--since", "-1d")
    assert code == 2 and "unknown bed 'bed-99'" in out
    code, out = run(app, "history", "--db", db, "--bed", "bed-07", "--since", "-1d", "--until", "-2d")
    assert code == 2 and "inverted time range" in out
    code, out = run(app, "history", "--db", db, "--bed", "bed-07", "--since", "yesterday")
    assert code != 0 and "bad time 'yesterday'" in out
    code, out = run(app, "history", "--db", db, "--bed", "bed-07", "--since", "-1d", "--resolution", "7s")
    assert code == 2 and "resolution" in out


def test_users_add_list_disable(app: typer.Typer, db: str) -> None:
    code, out = run(app, "users", "add", "nurse1", "--role", "clinician", "--db", db, input="s3cret-pass\ns3cret-pass\n")
    assert code == 0, out
    code, out = run(app, "users", "list", "--db", db, "--format", "json")
    assert [(u["username"], u["role"], u["disabled"]) for u in json.loads(out)] == [("nurse1", "clinician", False)]
    assert Store(db).authenticate("nurse1", "s3cret-pass") is not None
    code, out = run(app, "users", "disable", "nurse1", "--db", db)
    assert code == 0
    assert Store(db).authenticate("nurse1", "s3cret-pass") is None
    code, out = run(app, "users", "disable", "ghost", "--db", db)
    assert code == 2 and "unknown user" in out
    code, out = run(app, "users", "add", "x", "--role", "god", "--db", db, input="longenough\nlongenough\n")
    assert code == 2 and "bad role" in out


def test_users_add_sets_a_temporary_password_unless_permanent(app: typer.Typer, db: str) -> None:
    code, out = run(app, "users", "add", "nurse2", "--db", db, input="temp-pass\ntemp-pass\n")
    assert code == 0 and "temporary password" in out, out
    assert Store(db).get_user("nurse2").must_change_password
    code, out = run(app, "users", "add", "nurse3", "--permanent", "--db", db, input="short-pw\nshort-pw\n")
    assert code == 2 and "at least 12" in out, out
    assert Store(db).get_user("nurse3") is None
    code, out = run(app, "users", "add", "nurse3", "--permanent", "--db", db,
                    input="a-long-own-password\na-long-own-password\n")
    assert code == 0 and "temporary" not in out, out
    assert not Store(db).get_user("nurse3").must_change_password


def test_db_upgrade_and_current(app: typer.Typer, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    code, out = run(app, "db", "current", "--db", url)
    assert code == 0 and "BEHIND" in out
    code, out = run(app, "db", "upgrade", "--db", url)
    assert code == 0 and f"revision {head_revision()}" in out
    code, out = run(app, "db", "current", "--db", url)
    assert "up to date" in out


def test_db_url_from_environment(app: typer.Typer, db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARD_DB_URL", db)
    code, out = run(app, "alarms", "--format", "json")
    assert code == 0 and len(json.loads(out)) == 2


def test_parse_time_forms() -> None:
    now = datetime(2026, 3, 10, 0, 0, tzinfo=UTC)
    assert parse_time("-24h", now) == now - timedelta(hours=24)
    assert parse_time("-7d", now) == now - timedelta(days=7)
    assert parse_time("-30m", now) == now - timedelta(minutes=30)
    assert parse_time("now", now) == now
    assert parse_time("2026-03-01T14:00:00+02:00") == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert parse_time("2026-03-01T12:00:00") == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # naive = UTC at the shell
    with pytest.raises(typer.BadParameter):
        parse_time("+3h", now)
