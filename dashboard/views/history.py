"""History: alarms and risk timelines by bed and date range, with filters, plots and CSV export."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

import pandas as pd
import streamlit as st

from ward.dashboard.ui import SOURCE, alarms_frame, get_store, require_user
from ward.dashboard.view import history_resolution
from ward.store.models import TIERS, VERDICTS
from ward.store.records import StoreError

MAX_PLOTTED_BEDS = 8

user = require_user()
store = get_store()
st.title("History")
keys = [b.key for b in store.list_beds()]
today = datetime.now(timezone.utc).date()
c1, c2 = st.columns([3, 2])
beds = c1.multiselect("Beds (empty = all)", keys, key="hist_beds")
span = c2.date_input("Date range (UTC)", (today - timedelta(days=1), today), key="hist_range")
c3, c4 = st.columns(2)
tiers = c3.multiselect("Tier", list(TIERS), default=list(TIERS), key="hist_tiers")
verdicts = c4.multiselect("Verdict", list(VERDICTS) + ["none"], default=list(VERDICTS) + ["none"],
                          key="hist_verdicts")
if not isinstance(span, tuple) or len(span) != 2:
    st.info("Pick both ends of the date range.")
    st.stop()
d0, d1 = span
since = datetime.combine(d0, time.min, timezone.utc)
until = datetime.combine(d1 + timedelta(days=1), time.min, timezone.utc)
if not tiers or not verdicts:
    st.warning("Select at least one tier and one verdict.")
    st.stop()
try:
    alarms = []
    for bed in beds or [None]:
        alarms += store.list_alarms(bed=bed, since=since, until=until, tier=tiers, verdict=verdicts, limit=100_000)
except StoreError as exc:
    st.error(str(exc))
    st.stop()
alarms.sort(key=lambda a: a.start, reverse=True)
df = alarms_frame(alarms)
filters = {"beds": beds or "all", "since": since.isoformat(), "until": until.isoformat(), "tiers": tiers,
           "verdicts": verdicts}


def audited_csv(what: str, frame: pd.DataFrame):
    """The CSV of ``frame``, made only when the button is clicked (Streamlit's deferred download), and
    audited before a byte leaves (who, what, which filters): the file cannot be had without its audit
    row, even if the browser closes at once; an account disabled since the page was drawn gets none."""
    def make() -> str:
        now = store.get_user(user.username)
        if now is None or now.disabled:
            return "export refused: this account is disabled; log in again\n"
        store.audit("export.csv", user=user.username, source=SOURCE,
                    detail={"what": what, "rows": len(frame), **filters})
        return frame.to_csv(index=False)
    return make


st.subheader(f"Alarms ({len(df)})")
m = st.columns(4)
m[0].metric("Alarms", len(df))
m[1].metric("True seizures", int((df["verdict"] == "true").sum()))
m[2].metric("False alarms", int((df["verdict"] == "false").sum()))
m[3].metric("Unacknowledged", int(df["verdict"].isna().sum()))
st.dataframe(df, hide_index=True, key="hist_alarms")
st.download_button("Export alarms (CSV)", audited_csv("alarms", df), file_name=f"alarms_{d0}_{d1}.csv",
                   mime="text/csv", key="export_alarms", on_click="ignore")

st.subheader("Risk timeline")
res = history_resolution(since, min(until, datetime.now(timezone.utc) + timedelta(minutes=1)))
plot_beds = (beds or keys)[:MAX_PLOTTED_BEDS]
if len(beds or keys) > MAX_PLOTTED_BEDS:
    st.caption(f"Plotting the first {MAX_PLOTTED_BEDS} beds; select beds to plot others.")
rows = []
for bed in plot_beds:
    for p in store.history(bed, since, until, resolution=res):
        rows.append({"bed": bed, "t": p.t, "p_max": p.p_max, "p_mean": p.p_mean, "n": p.n})
tl = pd.DataFrame(rows, columns=["bed", "t", "p_max", "p_mean", "n"])
if tl.empty:
    st.info("No probabilities stored for this selection.")
else:
    import altair as alt

    st.altair_chart(alt.Chart(tl).mark_line().encode(
        x=alt.X("t:T", title="time (UTC)", scale=alt.Scale(type="utc")), y=alt.Y("p_max:Q", title="max probability"),
        color="bed:N", tooltip=["bed", "t:T", "p_max", "n"]).properties(height=280), width="stretch")
    st.caption(f"{res} resolution, maximum probability per bucket.")
    out = tl.assign(t=tl["t"].map(lambda t: t.isoformat()))
    st.download_button("Export timeline (CSV)", audited_csv("timeline", out), file_name=f"risk_{d0}_{d1}.csv",
                       mime="text/csv", key="export_timeline", on_click="ignore")
