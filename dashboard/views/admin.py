"""Admin: users and the audit log (threshold changes are made on the bed view)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from ward.dashboard.auth import can_configure
from ward.dashboard.ui import SOURCE, fmt_time, get_store, require_user
from ward.store.models import ROLES
from ward.store.repository import StoreError

user = require_user()
store = get_store()
st.title("Admin")
if not can_configure(user.role):
    st.error("Only admins can open this page.")
    st.stop()
if msg := st.session_state.pop("admin_flash", None):
    st.success(msg)
st.subheader("Users")
st.dataframe(pd.DataFrame([{"user": u.username, "role": u.role, "disabled": u.disabled,
                            "created": fmt_time(u.created_at)} for u in store.list_users()]),
             hide_index=True, key="users_table")
with st.form("new_user", clear_on_submit=True):
    name = st.text_input("New user name", key="new_user_name")
    pw = st.text_input("Initial password (min. 8 characters)", type="password", key="new_user_pw")
    role = st.selectbox("Role", list(ROLES), key="new_user_role")
    if st.form_submit_button("Create user"):
        try:
            store.create_user(name.strip(), pw, role=role)
        except StoreError as exc:
            st.error(str(exc))
        else:
            store.audit("user.create.by", user=user.username, source=SOURCE, detail={"username": name.strip(),
                                                                                    "role": role})
            st.session_state["admin_flash"] = f"User {name.strip()!r} ({role}) created."
            st.rerun()
st.subheader("Audit log (latest 200)")
st.dataframe(pd.DataFrame([{"at": fmt_time(r.at), "user": r.username, "action": r.action, "source": r.source,
                            "detail": r.detail} for r in store.audit_log(limit=200)]),
             hide_index=True, key="audit_table")
