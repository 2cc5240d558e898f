"""Data assembly for the dashboard pages: Store (and optionally the live API) -> view objects.

The database is the source of truth (the dashboard works standalone for read-only review); the
serving API, when configured, only refines the live camera state of each bed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import httpx

from ward.dashboard.view import ESCALATING_TIERS, Tile, downsample_max, escalation_cutoff, is_stale
from ward.store.queries import (UnackedAlarms, active_alarms, latest_health, recent_probabilities,
                                unacknowledged_alarms)
from ward.store.records import HealthEvent, LatestRecord
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


@dataclass(frozen=True)
class WardAlarms:
    """What the overview shows of the alarm table: the unacknowledged clinical and technical alarms
    per bed (active or ended), and the beds with an acknowledged clinical alarm or a review item
    still in progress."""

    alarms: dict[str, UnackedAlarms]
    technical: dict[str, UnackedAlarms]
    active_acked: set[str]
    reviews: set[str]


def ward_alarms(store: Store, now: datetime, escalate_after_s: float) -> WardAlarms:
    """Two indexed queries: unacknowledged alarms aggregated per bed and tier (only those rows are
    read, however long the history), and the alarms still active."""
    unacked = unacknowledged_alarms(store, escalation_cutoff(now, escalate_after_s))
    active = active_alarms(store)

    def tier(name: str) -> dict[str, UnackedAlarms]:
        rows = {bed: u for (bed, t), u in unacked.items() if t == name}
        if name in ESCALATING_TIERS:
            return rows
        return {bed: replace(u, overdue=0) for bed, u in rows.items()}  # technical alarms never escalate

    return WardAlarms(tier("alarm"), tier("technical"),
                      {a.bed for a in active if a.tier == "alarm" and a.acknowledged},
                      {a.bed for a in active if a.tier == "review"})


@dataclass(frozen=True)
class Live:
    """A bed's camera state and newest model output, from the database refined by the live API."""

    state: str
    reason: str | None
    since: datetime | None
    probability: float | None
    accumulator: float | None
    updated_at: datetime | None


def merge_live(s: LatestRecord | None, h: HealthEvent | None, live: dict[str, Any] | None) -> Live:
    """The database's newest sample and health event, overridden by the API's live state when it
    has one (and by its probability when that is newer than the stored one)."""
    state, reason, since = (h.state, h.reason, h.at) if h else ("unknown", None, None)
    prob, acc, upd = (s.probability, s.accumulator, s.t) if s else (None, None, None)
    if live:
        state = str(live.get("state") or state)
        reason = live.get("reason", reason)
        since = _parse_time(live.get("since")) or since
        t_live = _parse_time(live.get("updated_at"))
        if t_live and (upd is None or t_live > upd) and live.get("probability") is not None:
            prob, upd = float(live["probability"]), t_live
            acc = float(live["accumulator"]) if live.get("accumulator") is not None else acc
    return Live(state, reason, since, prob, acc, upd)


def build_overview(store: Store, now: datetime, *, stale_after_s: float, spark_window_s: float,
                   escalate_after_s: float, api: ApiState | None = None) -> Overview:
    """One tile per active bed from six indexed queries (beds, latest samples, recent window, camera
    health, unacknowledged alarms, active alarms), merged with the live API state when available.
    Escalation is counted at ``now``: alarms unacknowledged for ``escalate_after_s`` or longer."""
    beds = [b for b in store.list_beds() if b.active]
    latest = store.latest_samples()
    recent = recent_probabilities(store, now - timedelta(seconds=spark_window_s), [b.key for b in beds])
    health = latest_health(store)
    alarms = ward_alarms(store, now, escalate_after_s)
    tiles, stale = [], []
    for b in beds:
        v = merge_live(latest.get(b.key), health.get(b.key), api.beds.get(b.key) if api else None)
        spark = tuple(downsample_max(recent.get(b.key, []), SPARK_POINTS))
        tiles.append(Tile(bed=b.key, name=b.name, probability=v.probability, accumulator=v.accumulator,
                          updated_at=v.updated_at, state=v.state, reason=v.reason, since=v.since,
                          alarm=alarms.alarms.get(b.key), technical=alarms.technical.get(b.key),
                          alarm_active_acked=b.key in alarms.active_acked, review=b.key in alarms.reviews,
                          spark=spark))
        if is_stale(v.updated_at, now, stale_after_s):
            stale.append(b.key)
    return Overview(tiles, stale, api.error if api else None)
