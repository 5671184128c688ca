"""The frame around every page: page config, links to every page, and the store's status.

app.py draws it once per run before the page. A page also calls ``ensure_shell()`` first thing,
because Streamlit runs a page *without* app.py when a folder named pages/ sits beside the entry
script and the first request after a server start is a deep link (its legacy multipage mode,
kept until some run calls st.navigation). Drawing the frame from either place, with our own
links instead of Streamlit's auto-generated sidebar (hidden in .streamlit/config.toml), makes
both modes look and behave the same, without touching Streamlit internals.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from core.config import load_settings
from core.errors import MarketLabError
from pages._auth import sign_in_gate, sign_out
from pages._resources import engine_load_error, get_job_board, get_store, loaded_engine_summary
from pages._widgets import plain, show_error

_DRAWN = "_shell_drawn_this_run"


@dataclass(frozen=True)
class PageSpec:
    path: str
    title: str
    icon: str


# URL paths come from the file names, as in Streamlit's legacy routing, so a link resolves to the
# same page in either mode.
PAGES = (
    PageSpec("pages/overview.py", "Overview", ":material/space_dashboard:"),
    PageSpec("pages/catalog.py", "Catalog", ":material/inventory_2:"),
    PageSpec("pages/data_import.py", "Import data", ":material/upload_file:"),
    PageSpec("pages/funnels.py", "Funnels", ":material/filter_alt:"),
    PageSpec("pages/experiments.py", "Experiments", ":material/science:"),
    PageSpec("pages/segments.py", "Segments", ":material/group_work:"),
    PageSpec("pages/copy_studio.py", "Copy Studio", ":material/edit_note:"),
)


def _jobs_note(owner: str) -> None:
    """This user's jobs, wherever they are: one running, or one that ended and has not been looked at."""
    jobs = get_job_board().jobs(owner)
    running = next((j for j in jobs if j.status == "running"), None)
    ended = [j for j in jobs if not j.active and not j.seen]
    if running:
        st.caption(plain(f"Writing: {running.title}, {int(running.done)} of {running.total} done."))
    for job in ended[:2]:
        text = plain(f"{job.title}: {job.result or job.status}" + (f" — {job.error}" if job.error else ""))
        (st.success if job.status == "done" else st.warning)(text, icon=":material/edit_note:")
    if running or ended:
        st.page_link("pages/copy_studio.py", label="See it in Copy Studio", icon=":material/arrow_forward:")


def draw_shell() -> None:
    st.set_page_config(page_title="MarketLab", page_icon=":material/storefront:", layout="wide")
    try:
        user = sign_in_gate()  # stops the run on the sign-in screen until someone is signed in
    except MarketLabError as e:
        show_error(e)
        st.stop()
    with st.sidebar:
        st.markdown("### MarketLab")
        for spec in PAGES:
            st.page_link(spec.path, label=spec.title, icon=spec.icon)
        st.divider()
        try:
            settings = load_settings()
            counts = get_store().counts()
        except MarketLabError as e:
            show_error(e)
            st.stop()
        st.caption(plain(f"Database: {settings.db_path}"))
        st.caption(
            f"{counts['products']:,} products · {counts['users']:,} users · "
            f"{counts['events']:,} events · {counts['reviews']:,} reviews"
        )
        model, failed = loaded_engine_summary(), engine_load_error()
        if model:
            st.caption(plain(f"Model: {model}"))
        elif failed:
            st.caption(plain(f"Model: could not load — {failed}"))
        else:
            st.caption(plain(f"Model: {settings.model} (loads on first use, device {settings.device})"))
        _jobs_note(user.name)
        if user.how != "local":
            st.divider()
            st.caption(plain(f"Signed in as {user.name} · {user.role.value}"))
            st.button("Sign out", key="sign_out", on_click=sign_out, args=(user.how,))
    # Marked only once the frame is complete: a run that stopped above (the database locked or
    # unreadable) must not leave a mark that makes the next run's page skip the frame and its check.
    st.session_state[_DRAWN] = True


def ensure_shell() -> None:
    """Draw the frame unless app.py already did in this run."""
    if not st.session_state.pop(_DRAWN, False):
        draw_shell()
        st.session_state.pop(_DRAWN, None)
