"""ward dashboard entry point: `streamlit run dashboard/app.py`.

Login against the ward's user store, then a multipage app (st.navigation): overview, bed view,
alarms, history, event review, change password, and an admin page for admins. The database URL
comes from $WARD_DB_URL (default sqlite:///./ward.db); $WARD_API_URL optionally adds live camera state.

Every page run first checks this tab's server-side session (ward.dashboard.ui.session_user): idle
and absolute limits, the user re-read from the database. A user whose password someone else chose
sees only the "choose your password" page; a wall-display session sees read-only pages.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import streamlit as st

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, str(_ROOT))

from ward.dashboard import auth  # noqa: E402
from ward.dashboard.ui import (FLASH_KEY, current_session, footer, get_store, log_out, login_flow,  # noqa: E402
                               session_user, settings, start_session, write_session_cookie)
from ward.security import install_log_redaction  # noqa: E402
from ward.store.records import UserRecord  # noqa: E402

install_log_redaction()

st.set_page_config(page_title="ward", page_icon="🛏️", layout="wide")
store = get_store()
cfg = settings()
SESSION_WATCH_S = 15.0  # how often an idle page checks that its session still stands
KIOSK_WARN_S = 1800.0   # a wall display warns this long before its session ends


def login_page() -> None:
    st.title("ward — log in")
    if msg := st.session_state.get(FLASH_KEY):
        st.warning(msg, icon=":material/logout:")
    with st.form("login_form"):
        username = st.text_input("User name", key="login_user")
        password = st.text_input("Password", type="password", key="login_password")
        kiosk = st.checkbox("Wall display: read-only, no logout when idle (ends after "
                            f"{auth.duration_text(cfg.kiosk_max_age_s)})", key="login_kiosk",
                            help="For a shared screen that shows the ward: it cannot acknowledge alarms, change "
                                 "rules or users, or export, so it may stay logged in without activity.")
        submitted = st.form_submit_button("Log in")
    if submitted:
        address = st.context.ip_address
        address = address if isinstance(address, str) else None  # None when run headless (AppTest)
        outcome = auth.password_login(login_flow(), username, password, address, kiosk=kiosk,
                                      limits=cfg.session_limits())
        if outcome.token is None:
            st.error(outcome.error)
            return
        start_session(outcome.token)
        st.rerun()
    st.caption("First start: the ward creates the admin account (user `admin`, or $WARD_ADMIN_USER) with "
               "the password in $WARD_ADMIN_PASSWORD, or else with a one-time password printed once in the "
               "ward's log (the `serve run` / `scripts/run.sh` output); you choose your own at the first login. "
               "More accounts: the Admin page or `ward users add`.")


@st.fragment(run_every=SESSION_WATCH_S)
def session_watch() -> None:
    """Ends the page when its session ends while nobody touches it (no page run happens then: the
    overview refreshes only its own fragment, which is no activity). A wall display warns ahead."""
    checked = st.session_state.pop("_session_checked", False)  # this run's check already ran (a full run)
    if not checked and session_user(store, cfg, activity=False) is None:
        st.rerun(scope="app")
    session = current_session()
    if session is None:
        return
    left = (session.ends_at(cfg.session_limits()) - auth.clock()).total_seconds()
    if session.kiosk and left < KIOSK_WARN_S:
        st.warning(f"This wall display logs out in {max(0, int(left // 60))} min: log in again to keep the "
                   "ward on screen.", icon=":material/timer:")
    elif session.kiosk:
        st.caption(f"Wall display (read-only) until {session.ends_at(cfg.session_limits()):%H:%M} UTC")


# every page: url path -> (file, menu title, icon), in menu order
PAGES = {
    "overview": ("views/overview.py", "Ward overview", ":material/grid_view:"),
    "bed": ("views/bed.py", "Bed view", ":material/monitor_heart:"),
    "alarms": ("views/alarms.py", "Alarms", ":material/notifications_active:"),
    "history": ("views/history.py", "History", ":material/history:"),
    "review": ("views/review.py", "Event review", ":material/manage_search:"),
    "password": ("views/password.py", "Change password", ":material/key:"),
    "admin": ("views/admin.py", "Admin", ":material/settings:"),
}
WALL_DISPLAY_PAGES = ("overview", "bed", "alarms", "review")  # no exports, no account pages


def unavailable_page() -> None:
    st.title("Not available")
    st.info("This page is not available to this session (its role, a wall display, or a password still to be "
            "chosen): use the menu.")


def allowed_pages(user: UserRecord, kiosk: bool) -> list[str]:
    """The pages this session may open."""
    if user.must_change_password:
        return ["password"]
    if kiosk:
        return list(WALL_DISPLAY_PAGES)
    return [name for name in PAGES if name != "admin" or user.role == "admin"]


def navigation(user: UserRecord | None, kiosk: bool) -> Any:
    """The menu for this session. Every other page's URL stays registered, hidden, showing the login
    form (logged out) or "not available": a page that vanished from the menu (the session ended while
    the overview refreshed itself) is otherwise "page not found", which Streamlit can render as an
    empty page when a fragment of the old page is still refreshing."""
    if user is None:
        shown, fallback = [st.Page(login_page, title="Log in", icon=":material/login:", default=True)], login_page
        names: list[str] = []
    else:
        names, fallback = allowed_pages(user, kiosk), unavailable_page
        shown = [st.Page(PAGES[n][0], title="Choose your password" if user.must_change_password else PAGES[n][1],
                         icon=PAGES[n][2], default=i == 0) for i, n in enumerate(names)]
    hidden = [st.Page(fallback, title=PAGES[n][1], url_path=n, visibility="hidden") for n in PAGES if n not in names]
    return st.navigation(shown + hidden)


user = session_user(store, cfg, activity=True)
session = current_session()
nav = navigation(user, bool(session and session.kiosk))
if user is not None:
    with st.sidebar:
        who = f"Wall display: **{user.username}** (read-only)" if session and session.kiosk else \
            f"Signed in as **{user.username}** ({user.role})"
        st.markdown(who)
        if st.button("Log out", key="logout"):
            log_out(store)
            st.rerun()
        st.session_state["_session_checked"] = True
        session_watch()
    write_session_cookie()
nav.run()
footer(store)
