"""Ward overview: one tile per bed, beds with alarms awaiting acknowledgement first, refreshed in
place every 1-2 s. An alarm stays on its tile and in the header count until it is acknowledged,
whether or not it has ended."""

from __future__ import annotations

import time

import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

from ward.dashboard.data import build_overview, fetch_api_beds
from ward.dashboard.ui import fmt_time, get_store, require_user, settings
from ward.dashboard.view import AlarmSummary, beep_wav_data_uri, overview_html
from ward.store.queries import now_utc

require_user()
cfg = settings()
store = get_store()
st.title("Ward overview")
# Streamlit forgets a widget's value when its page is left; the choice is kept under a plain session
# key so the tone stays on after a nurse goes to the Alarms page to acknowledge and comes back.
sound = st.sidebar.toggle("Alarm sound", value=st.session_state.get("alarm_sound_on", False), key="alarm_sound",
                          help="Play a tone while any clinical alarm is unacknowledged (active or ended) "
                               "or a technical alarm is active and unacknowledged (the browser may need "
                               "one click on the page before it allows sound).")
st.session_state["alarm_sound_on"] = sound


@st.fragment(run_every=cfg.refresh_s)
def live() -> None:
    t0 = time.perf_counter()
    now = now_utc()
    try:
        api = fetch_api_beds(cfg.api_url, headers=cfg.api_headers())
        ov = build_overview(store, now, stale_after_s=cfg.stale_after_s, spark_window_s=cfg.spark_window_s,
                            escalate_after_s=cfg.escalate_after_s, api=api)
    except SQLAlchemyError as exc:
        st.error(f"DATABASE UNREACHABLE — the ward's data cannot be read ({type(exc).__name__}). "
                 "Tiles are not shown until it is back; check the database server.", icon=":material/error:")
        return
    if ov.api_error:
        st.warning(f"Live camera state unavailable: {ov.api_error}. Showing the database's data.", icon=":material/wifi_off:")
    if ov.stale_beds:
        shown = ", ".join(ov.stale_beds[:12]) + (" …" if len(ov.stale_beds) > 12 else "")
        st.warning(f"STALE DATA: no new probability for more than {cfg.stale_after_s:.0f} s from "
                   f"{len(ov.stale_beds)} of {len(ov.tiles)} bed(s): {shown}", icon=":material/schedule:")
    summary = AlarmSummary.of(ov.tiles)
    st.markdown(f"{summary.headline()} · {len(ov.tiles)} beds · as of {fmt_time(now)}")
    st.markdown(overview_html(ov.tiles, now, stale_after_s=cfg.stale_after_s), unsafe_allow_html=True)
    if sound and summary.sound:
        st.markdown(f'<audio autoplay src="{beep_wav_data_uri()}"></audio>', unsafe_allow_html=True)
    st.caption(f"rendered in {1000 * (time.perf_counter() - t0):.0f} ms · refresh every {cfg.refresh_s:g} s")


live()

beds = [b.key for b in store.list_beds() if b.active]
if beds:
    c1, c2 = st.columns([3, 1])
    pick = c1.selectbox("Open a bed", beds, key="overview_bed", label_visibility="collapsed")
    if c2.button("Open bed view", key="open_bed"):
        st.session_state["bed"] = pick
        st.switch_page("views/bed.py")
else:
    st.info("No beds registered yet: start the ward (`serve run serve_configs/ward.yaml`) or add beds "
            "with the store.")
