"""MarketLab: entry point. Lists the pages and shows the store's status in the sidebar."""

from __future__ import annotations

import streamlit as st

from core.config import load_settings
from core.errors import MarketLabError
from pages._resources import get_store
from pages._widgets import plain, show_error

st.set_page_config(page_title="MarketLab", page_icon=":material/storefront:", layout="wide")

PAGES = [
    st.Page("pages/overview.py", title="Overview", icon=":material/space_dashboard:", default=True),
    st.Page("pages/catalog.py", title="Catalog", icon=":material/inventory_2:", url_path="catalog"),
    st.Page("pages/data_import.py", title="Import data", icon=":material/upload_file:", url_path="import"),
]
page = st.navigation(PAGES)

with st.sidebar:
    try:
        settings = load_settings()
        store = get_store()
        counts = store.counts()
        st.caption(plain(f"Database: {settings.db_path}"))
        st.caption(f"{counts['products']:,} products · {counts['users']:,} users · {counts['events']:,} events · {counts['reviews']:,} reviews")
    except MarketLabError as e:
        show_error(e)
        st.stop()

page.run()
