"""While the database is unreachable the API answers 503 + Retry-After, records nothing, and works again after."""

import sqlite3

import pytest


@pytest.fixture()
def api(tmp_path, monkeypatch):
    from support.api import api_client

    yield from api_client(tmp_path, monkeypatch)


def test_ack_during_database_outage_is_503_then_succeeds(api, tmp_path, monkeypatch):
    from datetime import datetime, timezone

    client, inst, store = api
    store.upsert_bed("bed-1")
    aid = store.open_alarm("bed-1", "alarm", datetime.now(timezone.utc), peak=0.9)
    inst.store.engine.dispose()
    # A real outage for SQLite: another process-level connection holds the write lock; the API's
    # store gives up after a short busy timeout instead of 5 s.
    monkeypatch.setattr(inst.store, "engine", _short_timeout_engine(inst.store.engine.url))
    blocker = sqlite3.connect(str(tmp_path / "api.db"), timeout=0.1)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        r = client.post(f"/api/alarms/{aid}/ack", json={"verdict": "true", "note": "seen"},
                        auth=("nurse1", "nurse-pass"))
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "5"
        assert "nothing was recorded" in r.json()["detail"]
    finally:
        blocker.rollback()
        blocker.close()
    assert store.ack_events(aid) == []
    r = client.post(f"/api/alarms/{aid}/ack", json={"verdict": "true", "note": "seen"}, auth=("nurse1", "nurse-pass"))
    assert r.status_code == 200 and r.json()["acknowledged"] is True
    assert [e.verdict for e in store.ack_events(aid)] == ["true"]


def _short_timeout_engine(url):
    from ward.store.engine import make_engine

    return make_engine(url.render_as_string(hide_password=False), busy_timeout_ms=200)
