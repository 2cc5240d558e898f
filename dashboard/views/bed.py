"""Bed view: probability + accumulator over 10 min / 1 h with the lines of the rule the bed runs and
alarm markers, the skeleton of recent poses, camera health, and the bed's rule (admins set or reset a
live override; the coordinator applies it within seconds)."""

from __future__ import annotations

from datetime import timedelta

import httpx
import numpy as np
import pandas as pd
import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

from ward.dashboard.auth import can_configure
from ward.dashboard.data import fetch_api_beds
from ward.dashboard.ui import SOURCE, fmt_time, get_store, require_user, settings, timeline_chart
from ward.dashboard.view import (format_age, override_from_form, rule_lines, rule_lines_chart, rule_summary,
                                 shown_rule, skeleton_svg)
from ward.config import MAX_MIN_DURATION_S
from ward.store.queries import latest_health, now_utc
from ward.store.rules import OverrideDenied, bed_rule, override_history, set_rule_override

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
info = bed_rule(store, bed)
api = fetch_api_beds(cfg.api_url, headers=cfg.api_headers())
shown = shown_rule(api.beds.get(bed) if api else None, info.effective)
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
st.altair_chart(timeline_chart(points, markers=markers, title=f"{bed}: last {window}")
                + rule_lines_chart(rule_lines(shown.rule)), width="stretch")
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

st.subheader("Rule")
st.markdown(rule_summary(shown) + f" · escalation after **{cfg.escalate_after_s:.0f} s** unacknowledged")
if shown.note:
    st.warning(f"Rule note: {shown.note}")
if api is not None and api.error:
    st.caption(f"Live rule unavailable ({api.error}); showing the rule computed from the database.")
if not info.config_known:
    st.caption("The ward has not recorded its configured rule for this bed yet (it does at every start): "
               "the built-in defaults are assumed under any override.")
if info.override is not None and info.override.override.values():
    st.caption(f"Dashboard override {info.override.override.values()} set by {info.override.username} at "
               f"{fmt_time(info.override.at)}.")
if can_configure(user.role):
    current = info.effective.config
    with st.form("rule_form"):
        st.caption("Live override of this bed's rule (admins). Values equal to the configured rule are not "
                   "overridden; the ward applies a change within a few seconds, keeping the bed's state.")
        f1, f2, f3, f4 = st.columns(4)
        form = {"p_floor": f1.number_input("p_floor", 0.0, 1.0, float(current.p_floor), 0.05, key="rule_p_floor"),
                "alarm_threshold": f2.number_input("Alarm threshold", 0.0, 1.0, float(current.alarm_threshold), 0.05,
                                                   key="rule_alarm_threshold"),
                "release_threshold": f3.number_input("Release threshold", 0.0, 1.0, float(current.release_threshold),
                                                     0.05, key="rule_release_threshold"),
                "min_duration_s": f4.number_input("Min duration (s)", 0.0, MAX_MIN_DURATION_S,
                                                  float(current.min_duration_s), 1.0, key="rule_min_duration_s")}
        save = st.form_submit_button("Save rule override")
    reset = st.button("Reset to the configured rule", key="rule_reset",
                      disabled=info.override is None or not info.override.override.values())
    if save or reset:
        try:  # the store re-checks the user's account now and validates with the rule itself
            rec = set_rule_override(store, bed, None if reset else override_from_form(form, info.configured),
                                    user=user.username, source=SOURCE)
        except (OverrideDenied, ValueError) as exc:
            st.error(f"Rule not changed: {exc}")
        except SQLAlchemyError as exc:
            st.error(f"Rule not changed: database unreachable ({type(exc).__name__}); try again in a few seconds.")
        else:
            st.session_state["rule_flash"] = (
                f"Rule of {bed} unchanged." if rec is None else
                f"Rule override of {bed} {'reset' if reset else 'saved'} (audited); the ward applies it within a few "
                "seconds.")
            st.rerun()
    history = override_history(store, bed)
    if history:
        with st.expander(f"Override history ({len(history)})"):
            st.dataframe(pd.DataFrame([{"at": fmt_time(h.at), "by": h.username, "source": h.source,
                                        "override": str(h.override.values() or "reset")} for h in reversed(history)]),
                         hide_index=True, key="rule_history")
if msg := st.session_state.pop("rule_flash", None):
    st.success(msg)
