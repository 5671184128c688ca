"""The only Streamlit cache getters. Expensive things are made once per process and passed into core."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import streamlit as st

from core.config import load_settings
from core.errors import MarketLabError
from core.jobs import JobBoard
from core.store import TABLES, Store
from pages._auth import current_user

T = TypeVar("T")
# What funnels, segments and the catalog read: approving or editing copy (copy_variants only) leaves them cached.
ALL_BUT_COPY = tuple(t for t in TABLES if t != "copy_variants")


@st.cache_resource(show_spinner="Opening the database…")
def _store_for(path: str) -> Store:
    return Store(path)


def get_store() -> Store:
    """The process-wide Store for the configured database (one connection, a cursor per call),
    acting for this session's signed-in user: core refuses a viewer's writes through it."""
    # Keyed by path so a test (or a user) pointing MARKETLAB_DB elsewhere gets that database.
    return _store_for(str(load_settings().db_path)).as_user(current_user())


@st.cache_data(max_entries=256, show_spinner=False)
def _read_through(_fn: Callable[..., T], name: str, _store: Store, db: str, version: int, args: tuple, kwargs: dict) -> T:
    return _fn(_store, *args, **kwargs)


def cached_read(fn: Callable[..., T], *args: Any, reads: Iterable[str] | None = None, **kwargs: Any) -> T:
    """``fn(store, *args, **kwargs)`` for a core query, computed once per state of the data.

    Every session reruns its page on each click, and a team looks at the same funnels and runs:
    the answer is kept, for everyone, until a write changes one of the tables it ``reads`` (any
    table unless given; ``Store.data_version``). Each caller gets its own copy (st.cache_data
    unpickles), so a page may change what it got.
    """
    store = get_store()
    return _read_through(fn, f"{fn.__module__}.{fn.__qualname__}", store, store.path, store.data_version(reads),
                         args, kwargs)


@st.cache_resource(max_entries=256, show_spinner=False)
def _built_figure(_build: Callable[[], Any], key: str, inputs: tuple, db: str, version: int) -> Any:
    # cache_resource hands every session this same object: st.plotly_chart only reads it (to_dict).
    return _build()


def cached_figure(build: Callable[[], Any], key: str, inputs: tuple, reads: Iterable[str] | None = None) -> Any:
    """``build()`` (a Plotly figure) once per ``key`` and ``inputs`` and state of the tables it ``reads``, for
    every session: building is most of a page's server time, since plotly validates every property."""
    store = get_store()
    return _built_figure(build, key, inputs, store.path, store.data_version(reads))


@st.cache_resource(show_spinner="Loading the language model (once per server)…")
def _engine_for(model: str, device: str, model_cache: str, llm_url: str, adapter: str):  # -> core.llm.Engine
    from core.llm import load_engine

    return load_engine(load_settings())


def _engine_key() -> tuple[str, str, str, str, str]:
    s = load_settings()
    return (s.model, s.device, s.model_cache, s.llm_url, s.adapter)


def get_engine():  # -> core.llm.Engine
    """The process-wide language model: loaded once, shared by every session (it is thread-safe)."""
    key = _engine_key()
    try:
        engine = _engine_for(*key)
    except MarketLabError as e:
        # cache_resource keeps no failure, so the next Generate tries again (the folder may be fixed
        # by then); the sidebar says what went wrong meanwhile.
        _FAILED[key] = e.msg
        raise
    _FAILED.pop(key, None)
    return engine


def loaded_engine_summary() -> str | None:
    """The model line for the sidebar once some page has loaded it; None before (loading is not free).

    Described now, not when it loaded: after an out-of-memory fallback the model runs on the CPU,
    and the line says so, with the engine's latest notice.
    """
    # cache_resource exposes no "is it cached" query; a module-level note set by the pages does.
    engine = _LOADED.get(_engine_key())
    if engine is None:
        return None
    notices = getattr(engine, "notices", None) or ()
    return engine.describe().summary + (f" — {notices[-1]}" if notices else "")


def engine_load_error() -> str | None:
    """Why the configured model failed to load the last time a page tried; None if it has not failed."""
    return _FAILED.get(_engine_key())


_LOADED: dict[tuple, object] = {}  # the engine cache_resource holds (not a copy): its device can change after loading
_FAILED: dict[tuple, str] = {}


def note_engine_loaded(engine) -> None:
    _LOADED[_engine_key()] = engine


@st.cache_resource(show_spinner=False)
def get_job_board() -> JobBoard:
    """The server's one job board (``core.jobs``): long work runs there, beside every session, one job at a time."""
    return JobBoard()
