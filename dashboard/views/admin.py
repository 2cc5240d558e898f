"""Admin: users and the audit log (threshold changes are made on the bed view)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from ward.dashboard.auth import can_configure
from ward.dashboard.ui import SOURCE, fmt_time, get_store, require_user
from ward.store.models import ROLES
from ward.store.records import StoreError

user = require_user()
store = get_store()
st.title("Admin")
if not can_configure(user.role):
    st.error("Only admins can open this page.")
    st.stop()
if msg := st.session_state.pop("admin_flash", None):
    st.success(msg)
st.subheader("Users")
users = store.list_users()
st.dataframe(pd.DataFrame([{"user": u.username, "role": u.role, "disabled": u.disabled,
                            "must change password": u.must_change_password, "service": u.service,
                            "created": fmt_time(u.created_at)} for u in users]),
             hide_index=True, key="users_table")
people = [u.username for u in users if not u.service]
TEMPORARY = ("Temporary password (at least 8 characters): tell it to the user; they must choose their own "
             "at their first login")


def _done(message: str) -> None:
    st.session_state["admin_flash"] = message
    st.rerun()


with st.form("new_user", clear_on_submit=True):
    st.markdown("**New user**")
    name = st.text_input("New user name", key="new_user_name")
    pw = st.text_input(TEMPORARY, type="password", key="new_user_pw")
    role = st.selectbox("Role", list(ROLES), key="new_user_role")
    if st.form_submit_button("Create user"):
        try:
            store.create_user(name.strip(), pw, role=role, must_change_password=True, actor=user.username,
                              source=SOURCE)
        except StoreError as exc:
            st.error(str(exc))
        else:
            _done(f"User {name.strip()!r} ({role}) created with a temporary password.")
with st.form("reset_password", clear_on_submit=True):
    st.markdown("**Reset a forgotten password** (logs the user out everywhere)")
    target = st.selectbox("User", people, key="reset_user")
    pw = st.text_input(TEMPORARY, type="password", key="reset_pw")
    if st.form_submit_button("Set temporary password") and target:
        try:
            store.set_password(target, pw, temporary=True, actor=user.username, source=SOURCE)
        except StoreError as exc:
            st.error(str(exc))
        else:
            _done(f"{target!r} has a temporary password and must choose their own at the next login.")
with st.form("disable_user"):
    st.markdown("**Disable a user** (ends their dashboard sessions at their next page run; tokens stop working)")
    target = st.selectbox("User", [n for n in people if n != user.username], key="disable_target")
    if st.form_submit_button("Disable user") and target:
        try:
            store.disable_user(target, actor=user.username, source=SOURCE)
        except StoreError as exc:
            st.error(str(exc))
        else:
            _done(f"User {target!r} disabled.")
st.subheader("Audit log (latest 200)")
st.dataframe(pd.DataFrame([{"at": fmt_time(r.at), "user": r.username, "action": r.action, "source": r.source,
                            "detail": r.detail} for r in store.audit_log(limit=200)]),
             hide_index=True, key="audit_table")
