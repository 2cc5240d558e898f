"""Streamlit glue shared by the dashboard pages: the cached Store, the session's user, the footer."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime
from typing import Any

import pandas as pd
import streamlit as st

from ward.dashboard.settings import DashboardSettings, load_settings
from ward.dashboard.view import provenance_label
from ward.store.dashboard_queries import latest_samples, model_versions
from ward.store.repository import Store, UserRecord

SOURCE = "dashboard"
log = logging.getLogger("ward.dashboard")


def settings() -> DashboardSettings:
    return load_settings()


@st.cache_resource(show_spinner=False)
def _store(url: str) -> Store:
    return Store(url)


def get_store() -> Store:
    """The process-wide Store for $WARD_DB_URL (migrated); shows a clear error and stops the page when
    the database cannot be opened. The first admin account is made by the ward's start, not here."""
    url = settings().db_url
    try:
        return _store(url)
    except Exception as exc:  # noqa: BLE001 - any failure to open the DB ends the page with a banner
        st.error(f"Database unreachable ({_redact(url)}): {type(exc).__name__}: {exc}. "
                 "Check WARD_DB_URL and that the database server is running.")
        st.stop()
        raise  # unreachable; keeps type checkers happy


def _redact(url: str) -> str:
    """Database URL without its password (never shown or logged)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return "<invalid URL>"


def current_user() -> UserRecord | None:
    return st.session_state.get("user")


def require_user() -> UserRecord:
    user = current_user()
    if user is None:
        st.warning("Please log in.")
        st.stop()
    return user  # type: ignore[return-value]


def fmt_time(t: datetime | None) -> str:
    return "—" if t is None else t.strftime("%Y-%m-%d %H:%M:%S UTC")


def alarms_frame(alarms: list[Any]) -> pd.DataFrame:
    """Alarm records as a table (UTC ISO times, so a CSV export round-trips)."""
    cols = ["id", "bed", "tier", "start", "end", "peak", "state", "reason", "acknowledged", "verdict"]
    rows = [{c: getattr(a, c) for c in cols} for a in alarms]
    df = pd.DataFrame(rows, columns=cols)
    for c in ("start", "end"):
        df[c] = [t.isoformat() if t is not None else None for t in df[c]]
    return df


def footer(store: Store) -> None:
    """Model in use (the version of the newest samples) and its provenance."""
    try:
        latest = latest_samples(store)
        versions = {m.name: m for m in model_versions(store)}
    except Exception as exc:  # noqa: BLE001
        st.caption(f"Model: unknown (database error: {type(exc).__name__})")
        return
    used = Counter(s.model_version for s in latest.values() if s.model_version)
    if used:
        name = used.most_common(1)[0][0]
    elif versions:
        name = next(iter(versions))
    else:
        name = None
    desc = versions[name].description if name in versions else None
    st.divider()
    st.caption(provenance_label(name, desc), help="model version recorded with the newest probabilities")


def timeline_chart(points: list[Any], *, threshold: float | None = None, acc_threshold: float | None = None,
                   markers: list[datetime] | None = None, title: str = "") -> Any:
    """Altair chart: probability (and accumulator when present) over time, dashed threshold rules,
    red vertical rules at alarm starts/ends."""
    import altair as alt

    rows = []
    for p in points:
        rows.append({"t": p.t, "series": "probability", "value": p.p_max})
        if p.accumulator is not None:
            rows.append({"t": p.t, "series": "accumulator", "value": p.accumulator})
    df = pd.DataFrame(rows, columns=["t", "series", "value"])
    layers = [alt.Chart(df).mark_line(interpolate="step-after").encode(
        x=alt.X("t:T", title="time (UTC)", scale=alt.Scale(type="utc"), axis=alt.Axis(format="%H:%M:%S")), y=alt.Y("value:Q", title=""),
        color=alt.Color("series:N", scale=alt.Scale(domain=["probability", "accumulator"],
                                                    range=["#c62828", "#1565c0"])))]
    rules = [{"y": threshold, "what": "probability threshold"}] if threshold is not None else []
    if acc_threshold is not None and any(p.accumulator is not None for p in points):
        rules.append({"y": acc_threshold, "what": "alarm threshold (accumulator)"})
    if rules:
        layers.append(alt.Chart(pd.DataFrame(rules)).mark_rule(strokeDash=[5, 4], color="#555").encode(
            y="y:Q", tooltip=["what:N", "y:Q"]))
    if markers:
        layers.append(alt.Chart(pd.DataFrame({"t": markers})).mark_rule(color="#d50000", strokeWidth=2)
                      .encode(x=alt.X("t:T", scale=alt.Scale(type="utc"))))
    return alt.layer(*layers).properties(height=260, title=title)
