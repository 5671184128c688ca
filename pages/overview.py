"""Overview: what is in the store, at a glance."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from core import segments
from core.config import SETTINGS, load_settings
from core.overview import overview
from pages._resources import cached_read
from pages._shell import ensure_shell
from pages._widgets import plain, show_chart

ensure_shell()
st.title("MarketLab")
st.caption("Catalog, copy, segments and funnels for your store — in one loop.")

info = cached_read(overview)
counts = info.counts
cols = st.columns(5)
for col, (label, table) in zip(cols, [("Products", "products"), ("Users", "users"), ("Events", "events"), ("Reviews", "reviews"), ("Copy variants", "copy_variants")]):
    col.metric(label, f"{counts[table]:,}")

# A first visit's path through the product, each step with what is already there.
steps = st.columns(4)
runs = cached_read(segments.list_runs)
path = (
    ("pages/data_import.py", "1 · Your data", ":material/upload_file:",
     f"{counts['products']:,} products, {counts['events']:,} events" if counts["events"] else "a catalog and an event log"),
    ("pages/copy_studio.py", "2 · Write copy", ":material/edit_note:",
     f"{counts['copy_variants']:,} variants so far" if counts["copy_variants"] else "Google, Meta, email, Amazon"),
    ("pages/segments.py", "3 · Segments", ":material/group_work:",
     f"{len(runs):,} segmentation{'s' if len(runs) != 1 else ''} saved" if runs else "behaviour, RFM, review text"),
    ("pages/funnels.py", "4 · What converts", ":material/filter_alt:", "by segment, campaign and copy variant"),
)
for col, (page, label, icon, note) in zip(steps, path):
    with col.container(border=True):
        st.page_link(page, label=label, icon=icon)
        st.caption(note)

if not any(counts.values()):
    st.info("The store is empty. Seed the demo store with `python -m core demo` (or `make run`), or import your own files on **Import data** and **Catalog**.")
    st.stop()

if info.first_event is not None:
    days = (info.last_event - info.first_event).days + 1
    st.subheader(f"Events, {info.first_event:%d %b %Y} – {info.last_event:%d %b %Y} ({days} days)")
    # A log scale, so purchases show beside views, with plain ticks (1, 10, 100, 1,000), not 2 5 2 5.
    show_chart(lambda: px.line(info.events_by_day, x="day", y="events", color="event_name", log_y=True,
                               title="Events per day by event name (log scale)",
                               labels={"day": "", "events": "events", "event_name": "event"})
               .update_yaxes(dtick=1, tickformat=",", minor={"showgrid": False}),
               key="overview_events", inputs=())
    left, right = st.columns([2, 3])
    with left:
        st.markdown("**Event names**")
        st.dataframe(info.event_names, hide_index=True, width="stretch")
    with right:
        show_chart(lambda: px.bar(info.event_names.head(8), x="event_name", y="users", title="Users per event name",
                                  labels={"event_name": "", "users": "distinct users"}),
                   key="overview_event_names", inputs=())

if not info.recent_imports.empty:
    st.subheader("Recent imports")
    st.dataframe(info.recent_imports, hide_index=True, width="stretch")

with st.expander("Settings (environment variables)"):
    current = load_settings()
    values = {"MARKETLAB_DB": str(current.db_path), "MARKETLAB_MAX_UPLOAD_MB": f"{current.max_upload_mb:g}",
              "MARKETLAB_MODEL": current.model, "MARKETLAB_DEVICE": current.device,
              "MARKETLAB_MODEL_CACHE": current.model_cache, "MARKETLAB_LLM_URL": current.llm_url,
              "MARKETLAB_ADAPTER": current.adapter}
    st.dataframe(pd.DataFrame([{"setting": s.name, "value": values[s.name], "default": s.default, "meaning": s.help} for s in SETTINGS]),
                 hide_index=True, width="stretch")
