"""MarketLab: entry point. Lists the pages; the frame around them (links, store status) is pages/_shell.py."""

from __future__ import annotations

import streamlit as st

from pages._shell import PAGES, draw_shell

page = st.navigation(
    [st.Page(spec.path, title=spec.title, icon=spec.icon, default=i == 0) for i, spec in enumerate(PAGES)],
    position="hidden",  # the shell draws the links, identically in Streamlit's legacy pages/ mode
)
draw_shell()
page.run()
