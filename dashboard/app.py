"""ward dashboard entry point: `streamlit run dashboard/app.py`.

Login against the ward's user store, then a multipage app (st.navigation): overview, bed view,
alarms, history, event review, and an admin page for admins. The database URL comes from
$WARD_DB_URL (default sqlite:///./ward.db); $WARD_API_URL optionally adds live camera state.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, str(_ROOT))

from ward.dashboard.ui import SOURCE, current_user, footer, get_store  # noqa: E402
from ward.security import LoginLimiter, install_log_redaction  # noqa: E402

install_log_redaction()

st.set_page_config(page_title="ward", page_icon="🛏️", layout="wide")
store = get_store()


@st.cache_resource(show_spinner=False)
def _login_limiter() -> LoginLimiter:
    """One per dashboard process: 5 failures per user name (20 per address) in 5 min lock for 5 min."""
    return LoginLimiter()


def login_page() -> None:
    st.title("ward — log in")
    with st.form("login_form"):
        username = st.text_input("User name", key="login_user")
        password = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Log in")
    if submitted:
        name, address = username.strip(), st.context.ip_address
        address = address if isinstance(address, str) else None  # None when run headless (AppTest)
        limiter = _login_limiter()
        decision = limiter.check(name or None, address)
        if not decision:
            store.audit("login.refused", user=name[:64] or None, source=SOURCE,
                        detail={"reason": "rate limited", "address": address})
            st.error(f"Too many failed logins. Try again in {int(decision.retry_after_s + 0.999)} s.")
            return
        user = store.authenticate(name, password)
        if user is None:
            limiter.failure(name or None, address)
            store.audit("login.failed", user=name[:64] or None, source=SOURCE, detail={"address": address})
            st.error("Unknown user or wrong password.")
            return
        limiter.success(user.username, address)
        store.audit("login", user=user.username, source=SOURCE)
        st.session_state["user"] = user
        st.rerun()
    st.caption("First start: the ward creates the admin account (user `admin`, or $WARD_ADMIN_USER) with "
               "the password in $WARD_ADMIN_PASSWORD, or else with a one-time password printed once in the "
               "ward's log (the `serve run` / `scripts/run.sh` output). More accounts: `ward users add`.")


user = current_user()
if user is None:
    nav = st.navigation([st.Page(login_page, title="Log in", icon=":material/login:")])
else:
    pages = [
        st.Page("views/overview.py", title="Ward overview", icon=":material/grid_view:", default=True),
        st.Page("views/bed.py", title="Bed view", icon=":material/monitor_heart:"),
        st.Page("views/alarms.py", title="Alarms", icon=":material/notifications_active:"),
        st.Page("views/history.py", title="History", icon=":material/history:"),
        st.Page("views/review.py", title="Event review", icon=":material/manage_search:"),
    ]
    if user.role == "admin":
        pages.append(st.Page("views/admin.py", title="Admin", icon=":material/settings:"))
    nav = st.navigation(pages)
    with st.sidebar:
        st.markdown(f"Signed in as **{user.username}** ({user.role})")
        if st.button("Log out", key="logout"):
            store.audit("logout", user=user.username, source=SOURCE)
            del st.session_state["user"]
            st.rerun()
nav.run()
footer(store)
