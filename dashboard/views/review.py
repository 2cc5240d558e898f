"""Event review: the pre/post window of one alarm (probability trace, verdict history)."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import streamlit as st

from ward.dashboard.ui import fmt_time, get_store, require_user, timeline_chart
from ward.dashboard.view import rule_lines, rule_lines_chart, window_bounds
from ward.store.queries import now_utc
from ward.store.rules import bed_rule

require_user()
store = get_store()
st.title("Event review")
now = now_utc()
recent = store.list_alarms(since=now - timedelta(days=30), limit=2000)
if not recent:
    st.info("No alarms in the last 30 days.")
    st.stop()
ids = [a.id for a in recent]
want = st.session_state.get("review_alarm")
by_id = {a.id: a for a in recent}
aid = st.selectbox("Alarm", ids, index=ids.index(want) if want in ids else 0, key="review_select",
                   format_func=lambda i: f"#{i} · {by_id[i].bed} · {by_id[i].tier} · {fmt_time(by_id[i].start)}")
st.session_state["review_alarm"] = aid
a = by_id[aid]
c1, c2 = st.columns(2)
pre = c1.number_input("Seconds before", 0, 3600, 120, 30, key="review_pre")
post = c2.number_input("Seconds after", 0, 3600, 120, 30, key="review_post")
lo, _ = window_bounds(a.start, pre, 0)
_, hi = window_bounds(a.end or min(now, a.start + timedelta(hours=1)), 0, post)
points = store.history(a.bed, lo, hi, resolution="1s")
rule = bed_rule(store, a.bed, at=a.start).effective.config  # the bed's rule when the alarm started

m = st.columns(4)
m[0].metric("Bed", a.bed)
m[1].metric("Peak", f"{a.peak:.2f}")
m[2].metric("Duration", f"{((a.end or now) - a.start).total_seconds():.0f} s" + ("" if a.end else " (active)"))
m[3].metric("Verdict", a.verdict or "unacknowledged")
if a.reason:
    st.markdown(f"Reason: {a.reason}")
st.altair_chart(timeline_chart(points, markers=[t for t in (a.start, a.end) if t is not None],
                               title=f"#{a.id} {a.bed}: {pre} s before to {post} s after")
                + rule_lines_chart(rule_lines(rule)), width="stretch")
st.caption(f"{len(points)} samples from {fmt_time(lo)} to {fmt_time(hi)}.")
st.info("Clips and keypoints are not stored by this deployment, so there is no skeleton replay or video "
        "for this event; the probability and accumulator trace around the alarm is shown instead.")
acks = store.ack_events(a.id)
st.subheader("Acknowledgements")
if acks:
    st.dataframe(pd.DataFrame([{"at": fmt_time(k.at), "user": k.username, "verdict": k.verdict, "note": k.note,
                                "source": k.source} for k in acks]), hide_index=True, key="review_acks")
else:
    st.caption("Not acknowledged yet.")
