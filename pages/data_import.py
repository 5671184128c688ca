"""Import data: event logs, users and reviews, with the same checked, all-or-nothing upload as the catalog."""

from __future__ import annotations

import streamlit as st

from core.contracts import contract
from pages._resources import get_store
from pages._shell import ensure_shell
from pages._widgets import import_flow

ensure_shell()
store = get_store()
st.title("Import data")
st.caption("Upload an export, check how its columns map, see row by row what will be written, then commit. "
           "A file with invalid rows writes nothing unless you choose to skip them.")

HELP = {
    "events": "One row per event: who (user), when, what (event name), and optionally product, session, campaign, copy variant, device, source, revenue. "
              "Real exports use other names (visitorid, event_time, event_type, itemid, epoch-millisecond timestamps): map them below.",
    "users": "One row per user: id, first seen, country; every other column is kept as a profile attribute.",
    "reviews": "One row per review: rating 1–5 and text, ideally with product and user ids.",
}
table = st.segmented_control("What are you importing?", ["events", "users", "reviews"], default="events", key="import_table")
if table:
    st.caption(HELP[table])
    with st.expander("Fields"):
        st.table({"field": [f.name for f in contract(table).fields], "required": ["yes" if f.required else "" for f in contract(table).fields],
                  "meaning": [f.help for f in contract(table).fields]})
    import_flow(store, table, key=f"import_{table}")
