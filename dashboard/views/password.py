"""Change one's own password; the only page while the password is a temporary one (set by the first
start, an admin or `ward users passwd --temporary`)."""

from __future__ import annotations

import streamlit as st

from ward.dashboard.ui import SOURCE, current_session, get_store, login_flow, require_user
from ward.security import MIN_PASSWORD_CHARS
from ward.store.records import StoreError

user = require_user()
session = current_session()
store = get_store()
st.title("Choose your own password" if user.must_change_password else "Change password")
if user.must_change_password:
    st.info("Your password was set by someone else (the first start, an admin or `ward users passwd "
            "--temporary`). Choose your own to use the dashboard.")
if msg := st.session_state.pop("password_flash", None):
    st.success(msg)
with st.form("password_form", clear_on_submit=True):
    current = st.text_input("Current password", type="password", key="pw_current")
    new = st.text_input(f"New password (at least {MIN_PASSWORD_CHARS} characters, not your user name)",
                        type="password", key="pw_new")
    again = st.text_input("New password again", type="password", key="pw_again")
    submitted = st.form_submit_button("Change password")


def change() -> str | None:
    """Change the password; the error to show, or None when it was changed."""
    if new != again:
        return "The two new passwords differ: type the same new password twice."
    limiter = login_flow().limiter
    if not (decision := limiter.check(user.username)):
        return f"Too many wrong passwords. Try again in {int(decision.retry_after_s + 0.999)} s."
    try:
        store.change_password(user.username, current, new, source=SOURCE,
                              keep_session=session.id if session else None)
    except StoreError as exc:
        if "current password is wrong" in str(exc):
            limiter.failure(user.username)  # a password oracle for whoever finds the tab open otherwise
        return str(exc)
    return None


if submitted:
    if (error := change()) is not None:
        st.error(error)
    else:
        st.session_state["password_flash"] = "Password changed. Your other dashboard sessions were logged out."
        st.rerun()
