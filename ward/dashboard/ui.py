"""Streamlit glue shared by the dashboard pages: the cached Store, the session's user, the footer.

Sessions: :func:`session_user` runs before every page (``dashboard/app.py``). It finds this tab's
session (the token in ``st.session_state``, or after a reload the ``ward_session`` cookie), checks it
in the database with its user re-read (disabled, role, must change password) and, when it has
ended, audits that and says why on the login page. The cookie is written by a small script
(``st.html``): Streamlit gives a page no other way to set one, so it cannot be HttpOnly; it is
SameSite=Strict, Secure on https, and worthless once the session ends server-side.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import datetime
from typing import Any

import pandas as pd
import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

from ward.dashboard import auth
from ward.dashboard.auth import SOURCE
from ward.dashboard.settings import DashboardSettings, load_settings
from ward.security import LoginFlow
from ward.dashboard.view import provenance_label
from ward.store.queries import model_versions
from ward.store.records import UserRecord
from ward.store.repository import Store
from ward.store.sessions import SessionCheck, SessionRecord, check_session, end_session

__all__ = ["SOURCE", "current_user", "require_user", "session_user", "current_session", "log_out", "get_store",
           "login_flow", "settings"]
log = logging.getLogger("ward.dashboard")
COOKIE = "ward_session"       # the browser's copy of the session token
TOKEN_KEY = "ward_session"    # st.session_state: this tab's session token
USER_KEY = "user"             # st.session_state: the user as re-read by this run's session check
SESSION_KEY = "ward_session_record"
FLASH_KEY = "login_flash"     # st.session_state: why the last session ended (shown on the login page)
CLEAR_COOKIE_KEY = "ward_clear_cookie"  # st.session_state: logged out, the cookie goes with the next run


def settings() -> DashboardSettings:
    return load_settings()


@st.cache_resource(show_spinner=False)
def _store(url: str) -> Store:
    return Store(url)


@st.cache_resource(show_spinner=False)
def _login_flow(url: str) -> LoginFlow:
    return LoginFlow(_store(url), SOURCE)


def login_flow() -> LoginFlow:
    """The dashboard process's login flow (ward.security.login, the API's too) over the process-wide
    Store. Its limiter: 5 failures per user name (20 per address) in 5 min lock for 5 min; wrong
    current passwords on the password page count as failures too."""
    get_store()  # the database banner, when it cannot be opened
    return _login_flow(settings().db_url)


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
    """The user as re-read from the database by this page run's :func:`session_user`."""
    return st.session_state.get(USER_KEY)


def current_session() -> SessionRecord | None:
    return st.session_state.get(SESSION_KEY)


def require_user() -> UserRecord:
    """This run's user (re-read from the store before the page ran); stops the page when logged out."""
    user = current_user()
    if user is None:
        st.warning("Please log in.")
        st.stop()
    return user  # type: ignore[return-value]


def session_user(store: Store, cfg: DashboardSettings, *, activity: bool) -> UserRecord | None:
    """This tab's user if its session is live, else None (after auditing why it ended).

    One indexed query (session joined with its user), so a disabled account or a lowered role takes
    effect at the next page run. ``activity``: this run was caused by the user (a click, a page
    change, a reload), which restarts the idle clock; the session watcher's and the overview's
    automatic refreshes are not activity."""
    token = st.session_state.get(TOKEN_KEY) or _cookie()
    try:
        check = check_session(store, token, now=auth.clock(), limits=cfg.session_limits(), touch=activity) \
            if token else SessionCheck(None, "unknown")
    except SQLAlchemyError as exc:
        return _database_down(exc, activity)
    if check.session is None:
        _forget(store, check, cfg, had_cookie=bool(token))
        return None
    st.session_state[TOKEN_KEY] = token
    st.session_state[SESSION_KEY] = check.session
    user = st.session_state[USER_KEY] = auth.effective_user(check.session)
    return user


def _database_down(exc: SQLAlchemyError, activity: bool) -> UserRecord | None:
    """The session cannot be checked. A page run stops with a banner (nothing is shown or done
    unchecked); the session watcher leaves the page as it is (the overview shows its own database
    banner) and checks again at its next round. The session itself is kept."""
    if not activity:
        return current_user()
    st.error(f"DATABASE UNREACHABLE ({type(exc).__name__}): the dashboard cannot check your login, so it "
             "shows nothing. Reload the page when the database server is back.", icon=":material/error:")
    st.stop()
    raise AssertionError("unreachable")  # st.stop() raises


def start_session(token: str) -> None:
    """After a successful login: this tab's session is ``token`` (the next run checks it)."""
    st.session_state[TOKEN_KEY] = token
    st.session_state.pop(FLASH_KEY, None)


def log_out(store: Store) -> None:
    """End this tab's session server-side (the cookie goes with the next run's script)."""
    token, user = st.session_state.pop(TOKEN_KEY, None), st.session_state.pop(USER_KEY, None)
    st.session_state.pop(SESSION_KEY, None)
    if token:
        end_session(store, token)
        st.session_state[CLEAR_COOKIE_KEY] = True  # the next run (the login page) deletes the cookie
    if user is not None:
        store.audit("logout", user=user.username, source=SOURCE)


def _forget(store: Store, check: SessionCheck, cfg: DashboardSettings, *, had_cookie: bool) -> None:
    """No live session: clear this tab's state and the cookie; audit and explain an ended one."""
    ended = st.session_state.pop(SESSION_KEY, None)
    for key in (TOKEN_KEY, USER_KEY):
        st.session_state.pop(key, None)
    if check.user is not None and check.ended in ("idle", "expired", "disabled"):
        kiosk = bool(ended.kiosk) if ended is not None else False
        store.audit("session.expired", user=check.user.username, source=SOURCE,
                    detail={"reason": check.ended, "wall_display": kiosk})
        message = auth.end_message(check.ended, kiosk=kiosk, limits=cfg.session_limits())
        if message:
            st.session_state[FLASH_KEY] = message
    if st.session_state.pop(CLEAR_COOKIE_KEY, False) or had_cookie:
        _cookie_script(None, None)


def write_session_cookie() -> None:
    """Keep the browser's cookie equal to this tab's session (so a reload finds it again); expires with
    the session's absolute limit. Runs every page run: idempotent, and a lost script is repaired."""
    session, token = current_session(), st.session_state.get(TOKEN_KEY)
    if session is not None and token and _cookie() != token:
        _cookie_script(token, session.expires_at)


def _cookie() -> str | None:
    """The session cookie the browser sent when this tab's page was loaded (None without one; headless
    test runs have no request)."""
    value = st.context.cookies.get(COOKIE)
    return value if isinstance(value, str) and value else None


def _cookie_script(token: str | None, expires: datetime | None) -> None:
    """Set (or with None, delete) the session cookie from the page: SameSite=Strict, Secure on https."""
    value = json.dumps(token or "")
    when = json.dumps(expires.strftime("%a, %d %b %Y %H:%M:%S GMT") if expires else "Thu, 01 Jan 1970 00:00:00 GMT")
    st.html(f"""<script>(function () {{
  var secure = window.location.protocol === "https:" ? "; Secure" : "";
  document.cookie = "{COOKIE}=" + {value} + "; Path=/; Expires=" + {when} + "; SameSite=Strict" + secure;
}})();</script>""", unsafe_allow_javascript=True, width=1)


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
        latest = store.latest_samples()
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
