"""Retention that runs: the ``retention:`` config section, the coordinator's schedule, batched deletes,
and ``ward db retain [--dry-run]`` (store and CLI tests on SQLite and PostgreSQL, marker postgres)."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest
import sqlalchemy as sa
import yaml

from test_store_cli import app, run  # noqa: F401 (fixture: the store's typer app)
from ward.config import CLINICAL_RETENTION_FLOOR_DAYS, ConfigError, RetentionConfig, RetentionPolicy, load_ward_config
from ward.alarms.retention import RetentionRunner, RetentionSchedule
from ward.serve.metrics import render_metrics
from ward.store.records import Sample
from ward.store.repository import Store

UTC = timezone.utc
ROOT = Path(__file__).resolve().parents[1]
TABLES = ("probability_samples", "bed_latest", "minute_rollups", "alarms", "ack_events", "camera_health_events",
          "audit_log")
# The test policy: every table has a lifetime, the clinical ones at the floor.
POLICY = dict(raw_samples_days=30, rollups_days=60, alarms_days=CLINICAL_RETENTION_FLOOR_DAYS, health_days=365,
              audit_days=CLINICAL_RETENTION_FLOOR_DAYS)
# What the policy deletes from the rows _populate writes.
EXPECTED = {"probability_samples": 25, "bed_latest": 1, "minute_rollups": 1, "alarms": 1,
            "camera_health_events": 1, "audit_log": 1}


def _ward(retention: Any = None, **over: Any) -> dict[str, Any]:
    """A minimal ward config mapping (paths are not checked: validate_paths=False)."""
    args: dict[str, Any] = {"beds": [{"bed_id": "bed-1", "source": "sim://?seed=1"}],
                            "models": {"pose": {"path": "p.pt"}, "vsvig": {"path": "v.pt"}}, **over}
    if retention is not None:
        args["retention"] = retention
    return args


def _problems(retention: Any) -> list[str]:
    with pytest.raises(ConfigError) as ei:
        load_ward_config(_ward(retention), validate_paths=False)
    return ei.value.problems


# ------------------------------------------------------------------------------------------- config

def test_retention_defaults_are_conservative() -> None:
    r = load_ward_config(_ward(), validate_paths=False).retention
    assert (r.enabled, r.interval_h) == (True, 6.0)
    assert (r.raw_samples_days, r.rollups_days, r.health_days) == (30, 730, 365)
    assert r.alarms_days == r.audit_days == 3650 >= CLINICAL_RETENTION_FLOOR_DAYS
    assert type(r.policy()) is RetentionPolicy and r.policy().model_dump() == {
        "raw_samples_days": 30, "rollups_days": 730, "alarms_days": 3650, "health_days": 365, "audit_days": 3650}


@pytest.mark.parametrize("retention,expected", [
    ({"raw_days": 3}, "retention.raw_days: unknown key; did you mean 'raw_samples_days'?"),
    ({"intervall_h": 1}, "retention.intervall_h: unknown key; did you mean 'interval_h'?"),
    ({"raw_samples_days": 0}, "retention.raw_samples_days: must be > 0 (got 0)"),
    ({"rollups_days": -1}, "retention.rollups_days: must be > 0"),
    ({"health_days": 1.5}, "retention.health_days: must be an integer"),
    ({"audit_days": "10y"}, "retention.audit_days: must be an integer"),
    ({"interval_h": 0}, "retention.interval_h: must be > 0"),
    ({"interval_h": "6h"}, "retention.interval_h: must be a number"),
    ({"enabled": "yes"}, "retention.enabled: must be true or false"),
    ({"raw_samples_days": 800}, "retention.raw_samples_days: must be <= rollups_days (730) (got 800)"),
    ({"raw_samples_days": None}, "retention.raw_samples_days: must be <= rollups_days"),
    ({"alarms_days": 90}, f"retention.alarms_days: must be >= {CLINICAL_RETENTION_FLOOR_DAYS} days (got 90)"),
    ({"audit_days": 30}, "allow_short_clinical_retention"),
    ("30d", "retention: must be a mapping"),
])
def test_bad_retention_is_rejected_naming_the_key(retention: Any, expected: str) -> None:
    problems = _problems(retention)
    assert any(expected in p for p in problems), problems


def test_short_clinical_retention_needs_the_flag_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ward.config"):
        r = load_ward_config(_ward({"alarms_days": 90, "allow_short_clinical_retention": True}),
                             validate_paths=False).retention
    assert r.alarms_days == 90
    assert any("retention.alarms_days is 90 days" in m for m in caplog.messages), caplog.messages
    forever = load_ward_config(_ward({"raw_samples_days": None, "rollups_days": None, "alarms_days": None,
                                      "audit_days": None}), validate_paths=False).retention
    assert forever.policy().model_dump()["alarms_days"] is None


@pytest.mark.parametrize("name", ["ward.yaml", "ward_gpu.yaml", "ward_cluster.yaml"])
def test_serve_configs_carry_the_default_retention(name: str) -> None:
    raw = yaml.safe_load((ROOT / "serve_configs" / name).read_text(encoding="utf-8"))
    assert "retention" in raw["applications"][0]["args"], f"{name}: write the retention section out"
    cfg = load_ward_config(raw, validate_paths=False)
    assert cfg.retention == RetentionConfig()


# ------------------------------------------------------------------------------------------ schedule

def test_schedule_runs_at_start_then_every_interval() -> None:
    s = RetentionSchedule(interval_s=6 * 3600, retry_s=900)
    assert s.due(0.0) and s.due(1e9)  # never run: due whatever the clock says
    s.record(1000.0, ok=True)
    assert not s.due(1000.0) and not s.due(1000.0 + 6 * 3600 - 1)
    assert s.due(1000.0 + 6 * 3600) and s.seconds_until_due(1000.0 + 3600) == 5 * 3600


def test_schedule_retries_a_failed_run_sooner() -> None:
    s = RetentionSchedule(interval_s=6 * 3600, retry_s=900)
    s.record(0.0, ok=False)
    assert not s.due(899.0) and s.due(900.0)
    s.record(900.0, ok=True)
    assert not s.due(1800.0)  # back to the interval once a run succeeded
    short = RetentionSchedule(interval_s=60, retry_s=900)
    short.record(0.0, ok=False)
    assert short.due(60.0)  # a retry never waits longer than the interval


class _BrokenStore:
    def apply_retention(self, policy: RetentionPolicy) -> dict[str, int]:
        raise RuntimeError("database unreachable")


def test_runner_counts_failures_and_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    runner = RetentionRunner(_BrokenStore(), RetentionConfig(interval_h=1), clock=lambda: now[0])
    with caplog.at_level(logging.ERROR, logger="ward.serve"):
        assert runner.run_if_due() is True
    assert runner.metrics() == {"runs": 1, "errors": 1, "deleted": {}, "last_success": None}
    assert any("retention run failed" in m and "database unreachable" in m for m in caplog.messages)
    now[0] = 10.0
    assert runner.run_if_due() is False
    now[0] = 3600.0
    assert runner.run_if_due() is True and runner.metrics()["errors"] == 2
    text = render_metrics({"retention": runner.metrics()})
    assert "ward_retention_runs_total 2.0" in text and "ward_retention_errors_total 2.0" in text
    assert "ward_retention_last_success_timestamp_seconds NaN" in text


# ----------------------------------------------------------------------------------------- the store

@pytest.fixture
def store(db_url: str) -> Iterator[Store]:  # noqa: F811
    s = Store(db_url)
    yield s
    s.close()


def _minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def _populate(store: Store, now: datetime) -> None:
    """Old and recent rows in every table the policy governs (old = older than POLICY allows)."""
    for b in ("bed-1", "bed-2"):
        store.upsert_bed(b)
    for start, bed, n in ((now - timedelta(days=90), "bed-1", 10), (now - timedelta(days=40), "bed-1", 10),
                          (now - timedelta(days=1), "bed-1", 10), (now - timedelta(days=40), "bed-2", 5)):
        store.write_samples([Sample(bed, _minute(start) + timedelta(seconds=i), 0.5) for i in range(n)])
    ancient = now - timedelta(days=CLINICAL_RETENTION_FLOOR_DAYS + 100)
    for acked, start in ((True, ancient), (False, ancient), (True, now - timedelta(days=2))):
        aid = store.open_alarm("bed-1", "alarm", start, peak=0.9)
        store.close_alarm(aid, start + timedelta(minutes=1))
        if acked:
            store.acknowledge(aid, "dr", "true", at=now - timedelta(days=1))
    store.record_health("bed-1", "offline", now - timedelta(days=400))
    store.record_health("bed-1", "online", now - timedelta(days=3))
    store.audit("login", user="dr", at=ancient)
    store.audit("login", user="dr", at=now - timedelta(days=3))


def _counts(store: Store) -> dict[str, int]:
    with store.engine.connect() as c:
        return {t: c.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}


def test_count_then_batched_apply_deletes_only_old_rows(store: Store) -> None:
    now = datetime.now(UTC)
    _populate(store, now)
    before = _counts(store)
    policy = RetentionPolicy(**POLICY)
    assert store.count_retention(policy, now=now) == EXPECTED
    assert _counts(store) == before  # counting writes nothing
    deletes: list[str] = []
    sa.event.listen(store.engine, "before_cursor_execute",
                    lambda *a: deletes.append(a[2]) if a[2].lstrip().upper().startswith("DELETE") else None)
    assert store.apply_retention(policy, now=now, batch=4) == EXPECTED
    # 25 samples in batches of about 4 rows: several short transactions, not one long one
    assert sum("probability_samples" in d for d in deletes) >= 6, deletes
    after = _counts(store)
    gone = {t: before[t] - after[t] for t in TABLES}
    assert gone == {**EXPECTED, "ack_events": 1, "audit_log": 0}  # the run's own audit row replaces the old one
    assert [b.key for b in store.list_beds()] == ["bed-1", "bed-2"]
    assert set(store.latest_samples()) == {"bed-1"}  # bed-2's newest sample was 40 days old
    assert len(store.history("bed-1", now - timedelta(days=100), now, "1m")) == 2  # rollups kept 60 days
    assert len(store.history("bed-1", now - timedelta(days=100), now, "1s")) == 10  # raw kept 30 days
    assert {a.acknowledged for a in store.list_alarms()} == {True, False} and len(store.list_alarms()) == 2
    entry = store.audit_log(limit=1)[0]
    assert entry.action == "retention" and entry.detail["deleted"] == EXPECTED
    assert entry.detail["policy"] == POLICY
    assert store.count_retention(policy, now=now) == dict.fromkeys(EXPECTED, 0)


# ------------------------------------------------------------------------------------------- the CLI

def _policy_flags() -> list[str]:
    return [f"--{k.replace('_', '-')}={v}" for k, v in POLICY.items()]


def test_cli_dry_run_changes_nothing_then_retain_deletes_old_rows(app: Any, db_url: str) -> None:  # noqa: F811
    s = Store(db_url)
    _populate(s, datetime.now(UTC))
    before = _counts(s)
    code, out = run(app, "db", "retain", "--db", db_url, "--dry-run", "--format", "json", *_policy_flags())
    assert code == 0, out
    report = yaml.safe_load(out)
    assert {r["table"]: r["rows"] for r in report} == EXPECTED
    assert {r["action"] for r in report} == {"would delete"}
    assert _counts(s) == before  # not even an audit row
    code, out = run(app, "db", "retain", "--db", db_url, "--format", "json", *_policy_flags())
    assert code == 0, out
    assert {r["table"]: r["rows"] for r in yaml.safe_load(out)} == EXPECTED
    after = _counts(s)
    assert after["probability_samples"] == 10 and after["alarms"] == 2 and after["camera_health_events"] == 1
    assert s.audit_log(limit=1)[0].action == "retention"
    s.close()


def test_cli_reads_policy_and_database_from_the_ward_config(app: Any, tmp_path: Path) -> None:  # noqa: F811
    url = f"sqlite:///{tmp_path / 'ward.db'}"
    s = Store(url)
    _populate(s, datetime.now(UTC))
    cfg = tmp_path / "ward.yaml"
    cfg.write_text(yaml.safe_dump({"applications": [{"name": "ward", "import_path": "ward.serve.app:build_app",
                                                     "args": _ward(POLICY, database={"url": url})}]}),
                   encoding="utf-8")
    code, out = run(app, "db", "retain", "--config", str(cfg), "--dry-run", "--format", "csv")
    assert code == 0, out
    assert "probability_samples,30,25,would delete" in out and "audit_log,2190,1,would delete" in out
    # a flag overrides the config's value; 'forever' keeps a table
    code, out = run(app, "db", "retain", "--config", str(cfg), "--dry-run", "--format", "json",
                    "--raw-samples-days", "60", "--health-days", "forever")
    assert code == 0, out
    rows = {r["table"]: r for r in yaml.safe_load(out)}
    assert rows["probability_samples"]["rows"] == 10 and "camera_health_events" not in rows
    s.close()


def test_cli_resolves_the_configs_database_reference_only_when_needed(app: Any, tmp_path: Path,  # noqa: F811
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WARD_TEST_RETENTION_DB", raising=False)
    cfg = tmp_path / "ward.yaml"
    cfg.write_text(yaml.safe_dump(_ward(POLICY, database={"url_env": "WARD_TEST_RETENTION_DB"})), encoding="utf-8")
    code, out = run(app, "db", "retain", "--config", str(cfg), "--dry-run")
    assert code == 2 and "WARD_TEST_RETENTION_DB is not set" in out, out
    url = f"sqlite:///{tmp_path / 'x.db'}"
    code, out = run(app, "db", "retain", "--config", str(cfg), "--db", url, "--dry-run", "--format", "json")
    assert code == 0 and {r["table"] for r in yaml.safe_load(out)} == set(EXPECTED), out
    monkeypatch.setenv("WARD_TEST_RETENTION_DB", url)
    assert run(app, "db", "retain", "--config", str(cfg), "--dry-run")[0] == 0


@pytest.mark.parametrize("args,expected", [
    (["--alarms-days", "90"], "alarms_days: must be >= 2190 days (got 90)"),
    (["--alarms-days", "ninety"], "--alarms-days: bad number of days 'ninety'"),
    (["--raw-samples-days", "900"], "raw_samples_days: must be <= rollups_days (730)"),
    (["--config", "missing.yaml"], "cannot read ward config missing.yaml"),
])
def test_cli_bad_policy_is_named(app: Any, tmp_path: Path, args: list[str], expected: str) -> None:  # noqa: F811
    code, out = run(app, "db", "retain", "--db", f"sqlite:///{tmp_path / 'x.db'}", "--dry-run", *args)
    assert code == 2 and expected in " ".join(out.split()), out


def test_cli_short_clinical_retention_with_the_flag(app: Any, tmp_path: Path) -> None:  # noqa: F811
    url = f"sqlite:///{tmp_path / 'x.db'}"
    code, out = run(app, "db", "retain", "--db", url, "--dry-run", "--format", "json", "--alarms-days", "90",
                    "--allow-short-clinical-retention")
    assert code == 0, out
    assert {r["table"]: r["keep_days"] for r in yaml.safe_load(out)}["alarms"] == "90"


# ----------------------------------------------------------------------------------- the coordinator

def test_coordinator_applies_retention_at_start(tmp_path: Path) -> None:
    """The Serve deployment's own class, built without Ray: its retention thread runs at start."""
    from support.serve import wait_for
    from ward.serve.coordinator import Coordinator

    url = f"sqlite:///{tmp_path / 'ward.db'}"
    s = Store(url)
    _populate(s, datetime.now(UTC))
    retention = {**POLICY, "interval_h": 6.0}
    args = _ward(retention, database={"url": url, "spill_dir": str(tmp_path / "spill")},
                 dashboard={"enabled": False})
    dep = Coordinator.func_or_class(args)
    try:
        wait_for(lambda: dep.retention.metrics()["runs"] >= 1, 60, 0.1, "the first retention run")
        m = dep.retention.metrics()
        assert (m["runs"], m["errors"]) == (1, 0), m
        assert m["deleted"] == EXPECTED and m["last_success"] is not None
        assert _counts(s)["probability_samples"] == 10
        assert any(e.action == "retention" for e in s.audit_log(limit=20))
        text = render_metrics(asyncio.run(dep.metrics()))
        assert "ward_retention_runs_total 1.0" in text and "ward_retention_errors_total 0.0" in text
        assert 'ward_retention_rows_deleted_total{table="probability_samples"} 25.0' in text
        assert dep.retention.schedule.seconds_until_due(dep.retention.clock()) > 5 * 3600  # next in ~6 h
    finally:
        dep.__del__()
        s.close()
    assert not dep.retention._thread.is_alive()


def test_coordinator_with_retention_disabled_deletes_nothing(tmp_path: Path) -> None:
    from ward.serve.coordinator import Coordinator

    url = f"sqlite:///{tmp_path / 'ward.db'}"
    s = Store(url)
    _populate(s, datetime.now(UTC))
    before = _counts(s)["probability_samples"]
    args = _ward({**POLICY, "enabled": False}, database={"url": url, "spill_dir": str(tmp_path / "spill")})
    dep = Coordinator.func_or_class(args)
    try:
        assert dep.retention._thread is None and dep.retention.metrics()["runs"] == 0
        assert _counts(s)["probability_samples"] == before
    finally:
        dep.__del__()
        s.close()
