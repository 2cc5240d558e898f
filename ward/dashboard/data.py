"""Data assembly for the dashboard pages: Store (and optionally the live API) -> view objects.

The database is the source of truth (the dashboard works standalone for read-only review); the
serving API, when configured, only refines the live camera state of each bed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from ward.dashboard.view import Tile, downsample_max, is_stale
from ward.store.dashboard_queries import latest_health, latest_samples, open_alarms, recent_probabilities
from ward.store.repository import Store

SPARK_POINTS = 60


@dataclass(frozen=True)
class ApiState:
    """Result of polling the serving API: per-bed live state, or why it could not be used."""

    beds: dict[str, dict[str, Any]]
    error: str | None = None


def fetch_api_beds(api_url: str | None, timeout_s: float = 0.5,
                   headers: dict[str, str] | None = None) -> ApiState | None:
    """GET {api_url}/api/beds; None when no API is configured, an ApiState with ``error`` when it is
    unreachable or answers garbage (the dashboard then falls back to the database)."""
    if not api_url:
        return None
    url = api_url.rstrip("/") + "/api/beds"
    try:
        r = httpx.get(url, timeout=timeout_s, headers=headers)
        r.raise_for_status()
        rows = r.json()
        if not isinstance(rows, list):
            raise ValueError("expected a JSON list")
        return ApiState({str(b["bed_id"]): b for b in rows if isinstance(b, dict) and "bed_id" in b})
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        return ApiState({}, f"live API {url} unreachable or invalid ({type(exc).__name__}: {exc})")


def _parse_time(v: Any) -> datetime | None:
    if not v:
        return None
    try:
        t = datetime.fromisoformat(str(v).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else None


@dataclass(frozen=True)
class Overview:
    tiles: list[Tile]
    stale_beds: list[str]
    api_error: str | None


def build_overview(store: Store, now: datetime, *, stale_after_s: float, spark_window_s: float,
                   api: ApiState | None = None) -> Overview:
    """One tile per active bed from five indexed queries (beds, latest samples, recent window,
    camera health, open alarms), merged with the live API state when available."""
    beds = [b for b in store.list_beds() if b.active]
    latest = latest_samples(store)
    recent = recent_probabilities(store, now - timedelta(seconds=spark_window_s), [b.key for b in beds])
    health = latest_health(store)
    alarms: dict[str, Any] = {}
    reviews: set[str] = set()
    for a in open_alarms(store):
        if a.tier == "alarm" and a.state == "active":
            alarms.setdefault(a.bed, a)  # oldest active alarm of the bed
        elif a.tier == "review":
            reviews.add(a.bed)
    tiles, stale = [], []
    for b in beds:
        s, h, a = latest.get(b.key), health.get(b.key), alarms.get(b.key)
        state, reason, since = (h.state, h.reason, h.at) if h else ("unknown", None, None)
        live = api.beds.get(b.key) if api else None
        prob, acc, upd = (s.probability, s.accumulator, s.t) if s else (None, None, None)
        if live:
            state = str(live.get("state") or state)
            reason = live.get("reason", reason)
            since = _parse_time(live.get("since")) or since
            t_live = _parse_time(live.get("updated_at"))
            if t_live and (upd is None or t_live > upd) and live.get("probability") is not None:
                prob, upd = float(live["probability"]), t_live
                acc = float(live["accumulator"]) if live.get("accumulator") is not None else acc
        spark = tuple(downsample_max(recent.get(b.key, []), SPARK_POINTS))
        tile = Tile(bed=b.key, name=b.name, probability=prob, accumulator=acc, updated_at=upd, state=state,
                    reason=reason, since=since, alarm_id=a.id if a else None, alarm_start=a.start if a else None,
                    alarm_acknowledged=a.acknowledged if a else False, review=b.key in reviews, spark=spark)
        tiles.append(tile)
        if is_stale(upd, now, stale_after_s):
            stale.append(b.key)
    return Overview(tiles, stale, api.error if api else None)
