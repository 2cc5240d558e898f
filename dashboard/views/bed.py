"""Bed view: probability + accumulator over 10 min / 1 h with thresholds and alarm markers, the
skeleton of recent poses, camera health and the bed's thresholds (editable by admins)."""

from __future__ import annotations

from datetime import timedelta

import httpx
import numpy as np
import pandas as pd
import streamlit as st

from ward.dashboard.auth import can_configure
from ward.dashboard.ui import SOURCE, fmt_time, get_store, require_user, settings, timeline_chart
from ward.dashboard.view import format_age, skeleton_svg
from ward.store.dashboard_queries import BedThresholds, get_thresholds, latest_health, now_utc, set_thresholds

user = require_user()
cfg = settings()
store = get_store()
st.title("Bed view")
beds = [b for b in store.list_beds()]
if not beds:
    st.info("No beds registered yet.")
    st.stop()
keys = [b.key for b in beds]
want = st.session_state.get("bed")
bed = st.selectbox("Bed", keys, index=keys.index(want) if want in keys else 0, key="bed_select")
st.session_state["bed"] = bed
window = st.radio("Window", ["10 min", "1 h"], horizontal=True, key="bed_window")
now = now_utc()
since = now - (timedelta(minutes=10) if window == "10 min" else timedelta(hours=1))
points = store.history(bed, since, now, resolution="1s")
th = get_thresholds(store, bed)
alarms = store.list_alarms(bed=bed, since=since - timedelta(hours=6), limit=1000)
in_window = [a for a in alarms if (a.end or now) >= since]
health = latest_health(store).get(bed)

c1, c2, c3, c4 = st.columns(4)
last = points[-1] if points else None
c1.metric("Probability", f"{last.p_max:.2f}" if last else "—")
c2.metric("Accumulator", f"{last.accumulator:.2f}" if last and last.accumulator is not None else "—")
c3.metric("Camera", health.state if health else "unknown")
c4.metric("Last update", f"{format_age((now - last.t).total_seconds())} ago" if last else "never")
if not points:
    st.info(f"No probabilities for {bed} in the last {window}.")
markers = [t for a in in_window for t in (a.start, a.end) if t is not None and t >= since]
st.altair_chart(timeline_chart(points, threshold=th.probability, acc_threshold=th.accumulator, markers=markers,
                               title=f"{bed}: last {window}"), width="stretch")
if in_window:
    st.caption("Alarms in window: " + "; ".join(f"#{a.id} {a.tier} {fmt_time(a.start)} peak {a.peak:.2f}"
                                                for a in in_window))

left, right = st.columns(2)
with left:
    st.subheader("Recent poses")
    poses = None
    if cfg.api_url:
        try:
            r = httpx.get(f"{cfg.api_url.rstrip('/')}/api/beds/{bed}/poses", timeout=0.5,
                          headers=cfg.api_headers())
            if r.status_code == 200:
                poses = np.asarray(r.json()["keypoints"], dtype=float)
        except (httpx.HTTPError, ValueError, KeyError):
            poses = None
    if poses is not None and poses.size:
        st.markdown(skeleton_svg(poses), unsafe_allow_html=True)
        st.caption("Stick figure of the last poses (newest solid); no video is shown.")
    else:
        st.info("Recent poses are not stored by this deployment (keypoints are kept only in the ward's "
                "memory); a skeleton appears here when the ward API serves /api/beds/{bed}/poses.")
with right:
    st.subheader("Camera health")
    if health:
        st.markdown(f"**{health.state}** since {fmt_time(health.at)}" + (f" — {health.reason}" if health.reason else ""))
    events = store.health_events(bed=bed, since=now - timedelta(hours=24))
    if events:
        st.dataframe(pd.DataFrame([{"at": fmt_time(e.at), "state": e.state, "reason": e.reason} for e in events]),
                     hide_index=True, key="health_table")
    else:
        st.caption("No camera health events in the last 24 h.")

st.subheader("Thresholds")
st.markdown(f"Probability threshold **{th.probability:.2f}** · alarm threshold (accumulator) "
            f"**{th.accumulator:.2f}** · escalation after **{cfg.escalate_after_s:.0f} s** unacknowledged")
if can_configure(user.role):
    with st.form("thresholds_form"):
        p = st.number_input("Probability threshold", 0.0, 1.0, float(th.probability), 0.05, key="th_prob")
        a = st.number_input("Alarm threshold (accumulator)", 0.01, 1000.0, float(th.accumulator), 0.1, key="th_acc")
        if st.form_submit_button("Save thresholds"):
            set_thresholds(store, bed, BedThresholds(probability=p, accumulator=a), user=user.username, source=SOURCE)
            st.session_state["th_flash"] = f"Thresholds of {bed} saved (audited)."
            st.rerun()
if msg := st.session_state.pop("th_flash", None):
    st.success(msg)
