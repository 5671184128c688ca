"""MarketLab: entry point. Lists the pages; the frame around them (links, store status) is pages/_shell.py."""

from __future__ import annotations

import streamlit as st

from core.errors import MarketLabError
from pages._shell import PAGES, draw_shell
from pages._widgets import show_error

page = st.navigation(
    [st.Page(spec.path, title=spec.title, icon=spec.icon, default=i == 0) for i, spec in enumerate(PAGES)],
    position="hidden",  # the shell draws the links, identically in Streamlit's legacy pages/ mode
)
draw_shell()
try:
    page.run()
except MarketLabError as e:
    # Caught once for every page: an error a page did not expect (a read at its top that fails, a
    # database that went away) shows what failed and what to do, never a traceback. Errors a page
    # can recover from are caught where it can, next to the widget they concern.
    show_error(e)
