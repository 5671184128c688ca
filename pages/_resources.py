"""The only Streamlit cache getters. Expensive things are made once per process and passed into core."""

from __future__ import annotations

import streamlit as st

from core.config import load_settings
from core.store import Store


@st.cache_resource(show_spinner="Opening the database…")
def _store_for(path: str) -> Store:
    return Store(path)


def get_store() -> Store:
    """The process-wide Store for the configured database (one connection, a cursor per call)."""
    # Keyed by path so a test (or a user) pointing MARKETLAB_DB elsewhere gets that database.
    return _store_for(str(load_settings().db_path))
