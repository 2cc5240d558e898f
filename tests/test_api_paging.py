"""History reads are paged and bounded: ``GET /api/beds/{bed}/probabilities`` and ``GET /api/alarms``
return at most ``limit`` rows plus a cursor, and following the cursors yields every row exactly once.

The API is the production FastAPI app driven without Ray (tests/support/api.py); the store's own
bound (a LIMIT in the SQL, not a slice in Python) is checked on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import httpx
import pytest
import sqlalchemy as sa

from ward.serve.api import HISTORY_PAGE_DEFAULT, HISTORY_PAGE_MAX
from ward.store.records import Sample
from ward.store.repository import Store

UTC = timezone.utc
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
V = ("viewer1", "viewer-pass")
STEPS = {"1s": timedelta(seconds=1), "1m": timedelta(minutes=1), "1h": timedelta(hours=1)}


@pytest.fixture()
def api(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any, Store]]:
    from support.api import api_client

    yield from api_client(tmp_path, monkeypatch)


def _write(store: Store, n: int, step: timedelta, bed: str = "bed-1") -> list[datetime]:
    store.upsert_bed(bed)
    ts = [T0 + i * step for i in range(n)]
    store.write_samples([Sample(bed, t, (i % 100) / 100) for i, t in enumerate(ts)])
    return ts


def _next_url(r: httpx.Response) -> str | None:
    return r.links.get("next", {}).get("url")


# -------------------------------------------------------------------------------------- probabilities

@pytest.mark.parametrize("resolution", ["1s", "1m", "1h"])
def test_probability_pages_return_every_point_exactly_once(api: Any, resolution: str) -> None:
    client, _inst, store = api
    ts = _write(store, 250, STEPS[resolution])
    params = {"since": (T0 - timedelta(seconds=1)).isoformat(), "until": (ts[-1] + timedelta(seconds=1)).isoformat(),
              "resolution": resolution, "limit": 100}
    r = client.get("/api/beds/bed-1/probabilities", params=params, auth=V)
    seen, sizes = [], []
    while True:
        assert r.status_code == 200, r.text
        body = r.json()
        sizes.append(len(body["points"]))
        seen += [datetime.fromisoformat(p["t"]) for p in body["points"]]
        url = _next_url(r)
        if body["next_since"] is None:
            assert url is None
            break
        # the body's cursor and the Link header agree; the Link is the request to send next
        assert datetime.fromisoformat(body["next_since"]) == seen[-1] + STEPS[resolution]
        assert httpx.URL(url).params["since"] == body["next_since"]
        r = client.get(url, auth=V)
    assert sizes == [100, 100, 50]
    assert seen == ts  # every point once, in time order


def test_probabilities_default_page_is_bounded(api: Any) -> None:
    client, _inst, store = api
    ts = _write(store, HISTORY_PAGE_DEFAULT + 5, STEPS["1s"])
    r = client.get("/api/beds/bed-1/probabilities", auth=V,
                   params={"since": "2020-01-01T00:00:00Z", "until": (ts[-1] + timedelta(seconds=1)).isoformat()})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["points"]) == body["limit"] == HISTORY_PAGE_DEFAULT
    assert datetime.fromisoformat(body["next_since"]) == ts[HISTORY_PAGE_DEFAULT]
    rest = client.get(_next_url(r), auth=V).json()
    assert [datetime.fromisoformat(p["t"]) for p in rest["points"]] == ts[HISTORY_PAGE_DEFAULT:]
    assert rest["next_since"] is None


@pytest.mark.parametrize("limit", [0, -1, HISTORY_PAGE_MAX + 1, "all"])
def test_probabilities_limit_outside_the_cap_is_422(api: Any, limit: Any) -> None:
    client, _inst, _store = api
    r = client.get("/api/beds/bed-1/probabilities", params={"limit": limit}, auth=V)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "limit", r.text


def test_a_short_history_has_no_next_page(api: Any) -> None:
    client, _inst, store = api
    ts = _write(store, 5, STEPS["1s"])
    r = client.get("/api/beds/bed-1/probabilities", auth=V,
                   params={"since": T0.isoformat(), "until": (ts[-1] + timedelta(seconds=1)).isoformat(), "limit": 5})
    assert r.status_code == 200 and len(r.json()["points"]) == 5
    assert r.json()["next_since"] is None and "link" not in r.headers


# ------------------------------------------------------------------------------------------- alarms

def _alarms(store: Store, n: int, tied: int) -> None:
    """``n`` alarms on two beds, the last ``tied`` of them starting at the same instant."""
    store.upsert_bed("bed-1")
    store.upsert_bed("bed-2")
    for i in range(n):
        start = T0 + timedelta(minutes=min(i, n - tied))
        store.open_alarm(f"bed-{1 + i % 2}", "alarm", start, peak=0.9)


def _pages(client: Any, params: dict[str, Any], on_page: Any = None) -> tuple[list[int], list[int]]:
    ids, sizes = [], []
    r = client.get("/api/alarms", params=params, auth=V)
    while True:
        assert r.status_code == 200, r.text
        ids += [a["id"] for a in r.json()]
        sizes.append(len(r.json()))
        cursor = r.headers.get("x-next-cursor")
        if cursor is None:
            assert _next_url(r) is None
            return ids, sizes
        assert httpx.URL(_next_url(r)).params["cursor"] == cursor
        if on_page is not None:
            on_page()
        r = client.get("/api/alarms", params={**params, "cursor": cursor}, auth=V)


def test_alarm_pages_return_every_alarm_exactly_once_newest_first(api: Any) -> None:
    client, _inst, store = api
    _alarms(store, 25, tied=6)  # a page boundary falls inside the tie
    ids, sizes = _pages(client, {"limit": 10})
    assert sizes == [10, 10, 5]
    assert ids == [a.id for a in store.list_alarms(limit=100)]  # the store's newest-first order
    assert len(set(ids)) == 25
    # the Link header is a complete request for the next page
    first = client.get("/api/alarms", params={"limit": 10}, auth=V)
    assert [a["id"] for a in client.get(_next_url(first), auth=V).json()] == ids[10:20]


def test_alarms_stored_while_paging_do_not_shift_pages(api: Any) -> None:
    client, _inst, store = api
    _alarms(store, 12, tied=1)
    expected = [a.id for a in store.list_alarms(limit=100)]
    later = iter(range(1, 10))
    ids, _sizes = _pages(client, {"limit": 5, "bed_id": "bed-1"},
                         on_page=lambda: store.open_alarm("bed-1", "alarm", T0 + timedelta(days=next(later))))
    assert ids == [i for i in expected if store.get_alarm(i).bed == "bed-1"]  # no duplicate, none skipped


@pytest.mark.parametrize("cursor", ["nonsense", "2026-03-01T12:00:00~x", "2026-03-01T12:00:00~5", "~5"])
def test_bad_alarm_cursor_is_422_naming_it(api: Any, cursor: str) -> None:
    client, _inst, _store = api
    r = client.get("/api/alarms", params={"cursor": cursor}, auth=V)
    assert r.status_code == 422 and "bad cursor" in r.json()["detail"], r.text


# ------------------------------------------------------------------------------------------ the store

@pytest.mark.parametrize("resolution", ["1s", "1m", "1h"])
def test_store_history_limit_is_in_the_sql(db_url: str, resolution: str) -> None:  # noqa: F811
    store = Store(db_url)
    ts = _write(store, 30, STEPS[resolution])
    statements: list[str] = []
    sa.event.listen(store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    pts = store.history("bed-1", T0, ts[-1] + timedelta(seconds=1), resolution, limit=7)
    assert [p.t for p in pts] == ts[:7]
    assert any("LIMIT" in s.upper() for s in statements), statements
    assert len(store.history("bed-1", T0, ts[-1] + timedelta(seconds=1), resolution)) == 30  # trusted: no cap
    with pytest.raises(ValueError, match="bad history limit 0"):
        store.history("bed-1", T0, None, resolution, limit=0)
    store.close()
