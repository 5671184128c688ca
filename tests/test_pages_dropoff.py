"""The Funnels page saves who dropped at a step as a segment; the Segments page shows such a run without clusters."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from conftest import ROOT
from core.funnels import FunnelSpec, dropped_users
from core.store import Store


@pytest.fixture
def demo_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small demo store of its own (these tests write to it), with MARKETLAB_DB pointing at it."""
    from core.sample_data import build_demo

    path = tmp_path / "demo.duckdb"
    store = Store(path)
    build_demo(store, scale=0.02)
    store.close()
    monkeypatch.setenv("MARKETLAB_DB", str(path))
    return path


def open_app(page: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    at.switch_page(page).run()
    assert not at.exception
    return at


def app_store() -> Store:
    """Through the app's own cached store: the test must not open a second connection to the file."""
    from pages._resources import get_store

    return get_store()


def test_funnel_page_saves_dropped_users_as_a_segment(demo_db: Path) -> None:
    from core.segments import list_runs, load_run, segment_user_ids

    at = open_app("pages/funnels.py")
    assert at.multiselect(key="funnel_steps").value == ["view", "add_to_cart", "checkout", "purchase"]
    at.selectbox(key="funnel_drop_step").set_value(2).run()
    at.text_input(key="funnel_drop_name").set_value("Cart <b>abandoners</b> **now**").run()
    at.button(key="funnel_drop_save").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    shown = " ".join(s.value for s in at.success)
    assert "Saved" in shown and "broken down by it" in shown

    store = app_store()
    runs = list_runs(store)
    assert [r.method for r in runs] == ["funnel_dropoff"]
    run = load_run(store, runs[0].run_id)
    assert run.segment("dropped").name == "Cart <b>abandoners</b> **now**"  # as typed; the page escapes it when shown
    spec = FunnelSpec.of("view", "add_to_cart", "checkout", "purchase", window="7d")  # the page's defaults
    assert segment_user_ids(store, run.run_id, "dropped") == sorted(dropped_users(store, spec, 2)["user_id"])

    # The offered next step: this funnel broken down by the new segment.
    at.button(key="funnel_drop_breakdown").click().run()
    assert not at.exception and not at.error
    assert at.selectbox(key="funnel_breakdown").value == f"segment:{run.run_id}"
    assert any("abandoners" in s.value for s in at.subheader)

    # The Segments page opens on it: sizes and cards, no silhouette, no map, no crash.
    at.switch_page("pages/segments.py").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.selectbox(key="seg_run_id").value == run.run_id
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Segments"] == "2" and metrics["Separation"] == "—"
    assert any("did not go on to checkout" in c.value for c in at.caption)
    assert len(at.get("download_button")) >= 2  # one export per segment card


def test_a_long_name_is_cut_to_what_core_accepts(demo_db: Path) -> None:
    from core.segments import list_runs, load_run
    from core.segments.saved_lists import MAX_NAME_CHARS

    at = open_app("pages/funnels.py")
    at.text_input(key="funnel_drop_name").set_value("n" * 500).run()
    at.button(key="funnel_drop_save").click().run()
    assert not at.exception and not at.error
    run = load_run(app_store(), list_runs(app_store())[0].run_id)
    assert run.segment("dropped").name == "n" * MAX_NAME_CHARS


def test_a_failed_save_is_explained_and_the_page_goes_on(demo_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import core.segments.saved_lists as saved_lists
    from core.errors import MarketLabError

    def refuse(*args: object, **kwargs: object) -> str:
        raise MarketLabError("The disk is full.", title="The segment could not be saved")

    monkeypatch.setattr(saved_lists, "save_dropped_as_segment", refuse)
    at = open_app("pages/funnels.py")
    at.button(key="funnel_drop_save").click().run()
    assert not at.exception
    assert any("could not be saved" in e.value for e in at.error)
    assert not at.success
    assert any("Window 7 days" in c.value for c in at.caption)  # the rest of the page still drew
