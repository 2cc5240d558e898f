"""Alarms: open alarms with acknowledgement (verdict + note), escalation marker, recent alarms.

Open = clinical and technical alarms not yet acknowledged (active or ended) plus anything still
active; review items that ended without a verdict are the review queue (History page)."""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

from ward.dashboard.auth import can_acknowledge
from ward.dashboard.ui import SOURCE, alarms_frame, fmt_time, get_store, require_user, settings
from ward.dashboard.view import format_age, is_escalated
from ward.store.queries import ATTENTION_TIERS, now_utc, open_alarms
from ward.store.records import StoreError

VERDICT_LABELS = {"true": "true seizure", "false": "false alarm", "unsure": "unsure"}
# A technical alarm (camera offline, storage loss) is not a seizure: same verdicts, other words.
TECH_VERDICT_LABELS = {"true": "real fault", "false": "false alarm", "unsure": "unsure"}

user = require_user()
cfg = settings()
store = get_store()
now = now_utc()
st.title("Alarms")
if msg := st.session_state.pop("ack_flash", None):
    st.success(msg)

items = open_alarms(store)
st.subheader(f"Open ({len(items)})")
if not items:
    st.info("No open alarms.")
st.caption("Clinical and technical alarms stay here, and on the ward overview, until acknowledged, even after "
           "they end. Review items are listed while active; ended ones without a verdict are on the History "
           "page (tier review, verdict none).")
allowed = can_acknowledge(user.role)
if items and not allowed:
    st.info(f"You are signed in as a {user.role}: viewers can see alarms but not acknowledge them.")
for a in items:
    esc = is_escalated(a.start, a.acknowledged, a.tier, now, cfg.escalate_after_s)
    labels = TECH_VERDICT_LABELS if a.tier == "technical" else VERDICT_LABELS
    with st.container(border=True):
        head = (f"**#{a.id} · {a.bed} · {a.tier}** — started {fmt_time(a.start)} "
                f"({format_age((now - a.start).total_seconds())} ago), peak {a.peak:.2f}, {a.state}")
        if a.reason:
            head += f" — {a.reason}"
        if esc:
            head += f" · :red[**ESCALATED**: unacknowledged for more than {cfg.escalate_after_s:.0f} s]"
        if a.acknowledged:
            head += f" · acknowledged ({labels.get(a.verdict or '', a.verdict)})"
        elif a.tier in ATTENTION_TIERS:
            head += " · :red[**not acknowledged**]"
        st.markdown(head)
        if not allowed:
            continue
        c1, c2, c3 = st.columns([2, 3, 1])
        verdict = c1.radio("Verdict", list(labels), format_func=labels.get, horizontal=True,
                           key=f"verdict_{a.id}", index=None)
        note = c2.text_input("Note", key=f"note_{a.id}", max_chars=500)
        if c3.button("Acknowledge", key=f"ack_{a.id}", type="primary"):
            if verdict is None:
                st.error(f"Choose a verdict ({' / '.join(labels.values())}) before acknowledging.")
            else:
                try:
                    store.acknowledge(a.id, user.username, verdict, note.strip() or None, source=SOURCE)
                except StoreError as exc:
                    st.error(str(exc))
                else:
                    st.session_state["ack_flash"] = f"Alarm #{a.id} acknowledged as {labels[verdict]}."
                    st.rerun()

st.subheader("Recent (last 24 h)")
recent = store.list_alarms(since=now - timedelta(hours=24), limit=1000)
if recent:
    st.dataframe(alarms_frame(recent), hide_index=True, key="recent_alarms")
    pick = st.selectbox("Review an alarm", [a.id for a in recent], key="review_pick",
                        format_func=lambda i: next(f"#{a.id} {a.bed} {fmt_time(a.start)}" for a in recent if a.id == i))
    if st.button("Open event review", key="open_review"):
        st.session_state["review_alarm"] = pick
        st.switch_page("views/review.py")
else:
    st.caption("No alarms in the last 24 h.")
