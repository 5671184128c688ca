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


@st.cache_resource(show_spinner="Loading the language model (once per server)…")
def _engine_for(model: str, device: str, model_cache: str, llm_url: str):  # -> core.llm.Engine
    from core.llm import load_engine

    return load_engine(load_settings())


def get_engine():  # -> core.llm.Engine
    """The process-wide language model: loaded once, shared by every session (it is thread-safe)."""
    s = load_settings()
    return _engine_for(s.model, s.device, s.model_cache, s.llm_url)


def loaded_engine_summary() -> str | None:
    """The model line for the sidebar once some page has loaded it; None before (loading is not free)."""
    s = load_settings()
    key_args = (s.model, s.device, s.model_cache, s.llm_url)
    # cache_resource exposes no "is it cached" query; a module-level note set by the copy page does.
    return _LOADED.get(key_args)


_LOADED: dict[tuple, str] = {}


def note_engine_loaded(engine) -> None:
    s = load_settings()
    _LOADED[(s.model, s.device, s.model_cache, s.llm_url)] = engine.describe().summary
