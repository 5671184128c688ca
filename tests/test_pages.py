"""Every page, driven headless with AppTest: renders on real data, uploads through the page, writes only on commit."""

from __future__ import annotations

import re

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from conftest import ROOT
from core.errors import QueryError
from core.store import Store
from pages._shell import PAGES as PAGE_SPECS

PAGES = [spec.path for spec in PAGE_SPECS]  # every page the app lists, including ones added later


def open_app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30).run()
    assert not at.exception
    if page:
        at.switch_page(page).run()
    return at


def count_rows(at: AppTest, table: str) -> int:
    """Through the app's own cached store: the test must not open a second connection to the file."""
    from pages._resources import get_store

    return get_store().count(table)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_real_data(db_path: Path, page: str) -> None:
    at = open_app(page)
    assert not at.exception
    assert at.title


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_an_empty_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, page: str) -> None:
    monkeypatch.setenv("MARKETLAB_DB", str(tmp_path / "empty.duckdb"))
    at = open_app(page)
    assert not at.exception


def test_overview_counts_and_charts_the_event_log(db_path: Path) -> None:
    at = open_app()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Products"] == "5" and metrics["Events"] == "6"
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert any("Events per day" in t for t in titles)


def test_catalog_search_filters_and_opens_a_product(db_path: Path) -> None:
    at = open_app("pages/catalog.py")
    at.text_input(key="catalog_search").set_value("bottle").run()
    assert any("2 products match" in c.value for c in at.caption)
    at.multiselect(key="catalog_categories").set_value(["Drinkware"]).run()
    at.selectbox(key="catalog_open").set_value("P4").run()
    assert not at.exception
    assert any("Summit Kids Bottle" in s.value for s in at.subheader)


def _upload(at: AppTest, key: str, name: str, data: bytes) -> AppTest:
    return at.file_uploader(key=key).set_value((name, data, "text/csv")).run()


def test_catalog_upload_with_a_bad_row_writes_nothing_until_the_user_skips_it(db_path: Path) -> None:
    at = open_app("pages/catalog.py")
    data = b"sku,name,price\nN1,New lamp,12.00\nN2,Broken price,-3\n"
    _upload(at, "catalog_upload", "new.csv", data)
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["New rows"] == "1" and metrics["Rejected rows"] == "1"
    assert at.button(key="catalog_commit").disabled
    assert count_rows(at, "products") == 5

    at.checkbox(key="catalog_skip_invalid").check().run()
    at.button(key="catalog_commit").click().run()
    assert not at.exception
    assert any("1 new" in s.value for s in at.success)
    assert count_rows(at, "products") == 6


def test_a_marketplace_category_path_shows_its_top_level_with_the_path_on_hover(db_path: Path) -> None:
    at = open_app("pages/catalog.py")
    path = "Sports & Outdoors | Outdoor Recreation | Skates, Skateboards & Scooters | Longboards"
    _upload(at, "catalog_upload", "amazon.csv", f'sku,name,price,category\nL1,Crossbow Longboard,237.68,"{path}"\n'.encode())
    at.button(key="catalog_commit").click().run()
    at.selectbox(key="catalog_open").set_value("L1").run()
    category = next(m for m in at.metric if m.label == "Category")
    assert category.value == "Sports & Outdoors" and category.proto.help.replace("\\", "") == path  # help is markdown, escaped


def test_unreadable_upload_shows_a_clear_error(db_path: Path) -> None:
    at = open_app("pages/catalog.py")
    _upload(at, "catalog_upload", "garbage.csv", bytes(range(256)) * 40)
    assert not at.exception
    assert any("binary" in e.value for e in at.error)
    assert count_rows(at, "products") == 5


def test_missing_required_column_is_explained_and_fixed_value_satisfies_it(db_path: Path) -> None:
    at = open_app("pages/data_import.py")
    orders = b"CustomerID,InvoiceDate,StockCode\n17850.0,2010-12-01 08:26:00,85123A\n"
    _upload(at, "import_events_upload", "orders.csv", orders)
    assert any("Missing required column" in e.value for e in at.error)
    at.text_input(key="import_events_const_event_name").set_value("purchase").run()
    assert not at.error
    at.button(key="import_events_commit").click().run()
    assert any("1 new" in s.value for s in at.success)


def test_event_log_upload_through_the_import_page(db_path: Path) -> None:
    at = open_app("pages/data_import.py")
    log = b"visitorid,timestamp,event,itemid\n42,1433221332117,view,355908\n42,1433221400000,addtocart,355908\n"
    _upload(at, "import_events_upload", "retailrocket.csv", log)
    assert {m.label: m.value for m in at.metric}["New rows"] == "2"
    at.button(key="import_events_commit").click().run()
    assert count_rows(at, "events") == 8


def test_catalog_price_ranges_are_refused_until_the_user_picks_how_to_keep_them(db_path: Path) -> None:
    at = open_app("pages/catalog.py")
    data = b'product_id,title,price\nN1,Kite,"$74.99 - $249.99"\nN2,Ball,Total price:\nN3,Cap,9.00\n'
    _upload(at, "catalog_upload", "marketplace.csv", data)
    assert {m.label: m.value for m in at.metric}["Rejected rows"] == "2"
    assert at.radio(key="catalog_price_policy").value == "reject"
    at.radio(key="catalog_price_policy").set_value("lowest").run()
    assert {m.label: m.value for m in at.metric}["New rows"] == "3"
    at.button(key="catalog_commit").click().run()
    with _store(at).cursor() as cur:
        assert cur.execute("SELECT product_id, price, attributes->>'price_as_listed' FROM products WHERE product_id LIKE 'N%' "
                           "ORDER BY product_id").fetchall() == [("N1", 74.99, "$74.99 - $249.99"), ("N2", None, "Total price:"), ("N3", 9.0, None)]


def _store(at: AppTest) -> Store:
    from pages._resources import get_store

    return get_store()


def _totals(at: AppTest):
    """The import's totals table (file / stored / not stored), by its label column."""
    return next(d.value for d in at.dataframe if "Revenue" in d.value.columns).set_index("")


def test_order_log_upload_states_its_totals_and_drops_exact_repeats_only_when_asked(db_path: Path) -> None:
    at = open_app("pages/data_import.py")
    orders = (b"customer,date,product,amount\nC1,2026-03-01,P1,12.00\nC1,2026-03-01,P1,77.00\n"
              b"C2,2026-03-02,P2,5.50\nC2,2026-03-02,P2,5.50\n")
    _upload(at, "import_events_upload", "orders.csv", orders)
    at.selectbox(key="import_events_map_customer").set_value("user_id")
    at.selectbox(key="import_events_map_date").set_value("ts")
    at.selectbox(key="import_events_map_product").set_value("product_id")
    at.selectbox(key="import_events_map_amount").set_value("revenue").run()
    at.text_input(key="import_events_const_event_name").set_value("purchase").run()
    assert {m.label: m.value for m in at.metric}["New rows"] == "4"  # $12 and $77 on one day: two purchases
    file_totals = _totals(at).loc["In the file"]
    assert (file_totals["Rows"], file_totals["Purchases"], file_totals["Revenue"]) == (4, 4, 100.0)
    assert any("1 row(s) repeat an earlier row of the file exactly (lines 5)" in i.value for i in at.info)

    at.checkbox(key="import_events_drop_duplicates").check().run()
    assert {m.label: m.value for m in at.metric}["New rows"] == "3"
    at.button(key="import_events_commit").click().run()
    assert any("3 new" in s.value for s in at.success)
    totals = _totals(at)
    assert totals.loc["Stored", "Revenue"] == 94.5 and totals.loc["Not stored (rejected or dropped)", "Rows"] == 1
    assert any("every row, purchase and cent is accounted for" in c.value for c in at.caption)
    assert count_rows(at, "events") == 6 + 3


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from core.sample_data import build_demo

    path = tmp_path_factory.mktemp("demo") / "demo.duckdb"
    store = Store(path)
    build_demo(store, scale=0.02)
    store.close()
    return path


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_the_demo_store(demo_db: Path, monkeypatch: pytest.MonkeyPatch, page: str) -> None:
    monkeypatch.setenv("MARKETLAB_DB", str(demo_db))
    at = open_app(page)
    assert not at.exception


def test_a_demo_product_opens_with_attributes_reviews_and_activity(demo_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETLAB_DB", str(demo_db))
    at = open_app("pages/catalog.py")
    at.selectbox(key="catalog_open").set_value("P0001").run()
    assert not at.exception
    shown = " ".join(m.value for m in at.markdown)
    assert "Attributes" in shown and "Activity on this product" in shown


def chart_titles(at: AppTest) -> list[str]:
    return [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]


def test_funnel_page_counts_the_demo_funnel_and_breaks_it_down(demo_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETLAB_DB", str(demo_db))
    at = open_app("pages/funnels.py")
    assert at.multiselect(key="funnel_steps").value == ["view", "add_to_cart", "checkout", "purchase"]
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["Entered the funnel"].replace(",", "")) > 0
    assert "Users reaching each step" in chart_titles(at)
    assert "Conversion of each day's entrants" in chart_titles(at)
    assert any("have not had the whole window yet" in c.value for c in at.caption)
    at.radio(key="funnel_trend_view").set_value("finishers").run()
    assert any(t.startswith("Users with a purchase each day") for t in chart_titles(at))

    offered = at.selectbox(key="funnel_breakdown").options
    assert "device" in offered and not {"product id", "session id", "demo group"} & set(offered)  # ids only on purpose
    at.selectbox(key="funnel_breakdown").set_value("device").run()
    assert not at.exception
    assert any("by device" in t for t in chart_titles(at))
    at.selectbox(key="funnel_filter_step").set_value(4).run()
    at.selectbox(key="funnel_filter_column").set_value("revenue").run()
    at.selectbox(key="funnel_filter_op").set_value(">").run()
    at.text_input(key="funnel_filter_value").set_value("0").run()
    assert not at.exception and not at.error
    everyone = int({m.label: m.value for m in at.metric}["Entered the funnel"].replace(",", ""))
    at.selectbox(key="funnel_user_column").set_value("attributes.demo_group").run()
    at.text_input(key="funnel_user_value").set_value("loyal_big_spenders").run()
    assert not at.exception and not at.error
    loyal = int({m.label: m.value for m in at.metric}["Entered the funnel"].replace(",", ""))
    assert 0 < loyal < everyone


def test_funnel_steps_reorder_with_the_swap_buttons(demo_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETLAB_DB", str(demo_db))
    at = open_app("pages/funnels.py")
    first = int({m.label: m.value for m in at.metric}["Entered the funnel"].replace(",", ""))
    at.button(key="funnel_swap_1").click().run()
    assert not at.exception
    assert at.multiselect(key="funnel_steps").value == ["add_to_cart", "view", "checkout", "purchase"]
    reordered = {m.label: m.value for m in at.metric}
    assert int(reordered["Entered the funnel"].replace(",", "")) < first  # fewer shoppers start at the cart


def test_funnel_page_explains_an_impossible_step(demo_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETLAB_DB", str(demo_db))
    at = open_app("pages/funnels.py")
    at.multiselect(key="funnel_steps").set_value([]).run()
    assert any("at least one step" in i.value for i in at.info)


def test_experiment_page_shows_variants_with_copy_and_a_verdict(demo_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETLAB_DB", str(demo_db))
    at = open_app("pages/experiments.py")
    assert not at.exception
    verdicts = [*(s.value for s in at.success), *(i.value for i in at.info), *(w.value for w in at.warning)]
    assert verdicts, "a verdict line is always shown"
    assert not any("p = " in v or "z-test" in v for v in verdicts), "the statistics are in the expander, not the verdict"
    assert any(e.label == "How this was tested" for e in at.expander)
    assert sum(m.label == "Conversion" for m in at.metric) >= 2
    assert "attributes.demo_group" not in at.selectbox(key="exp_breakdown").options  # the demo's planted truth
    at.checkbox(key="exp_breakdown_all").check().run()
    at.selectbox(key="exp_breakdown").set_value("attributes.demo_group").run()
    assert not at.exception
    assert any("for whom" in t for t in chart_titles(at))


def test_segments_page_runs_a_segmentation_and_shows_personas_map_and_propensity(demo_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETLAB_DB", str(demo_db))
    at = open_app("pages/segments.py")
    at.selectbox(key="seg_k").set_value(5).run()
    at.button(key="seg_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any(s.value.startswith("Saved 5 behaviour segments · ") for s in at.success), [s.value for s in at.success]
    cards = [c.value for c in at.caption if "for everyone" in c.value or "most viewed" in c.value]
    assert cards and not any(re.search(r"\de[+-]\d", c) for c in cards), cards  # 8,950, never 8.95e+03
    assert {m.label: m.value for m in at.metric}["Separation"] in ("Strong", "Clear", "Weak", "Barely any")
    assert {m.label: m.value for m in at.metric}["Segments"] == "5"
    assert any(t.startswith("Users on a 2-D map") for t in chart_titles(at))
    assert len(at.get("download_button")) >= 5  # one export per persona card
    def colours(title_start: str) -> dict[str, str]:
        spec = next(json.loads(c.proto.spec) for c in at.get("plotly_chart")
                    if json.loads(c.proto.spec)["layout"]["title"]["text"].startswith(title_start))
        return {t["name"]: t["marker"]["color"] for t in spec["data"] if t.get("name")}

    on_map = colours("Users on a 2-D map")
    at.button(key="seg_to_funnel").click().run()
    assert not at.exception
    assert at.selectbox(key="funnel_breakdown").value.startswith("segment:")
    in_funnel = colours("Share of step-1 users reaching each step")
    shared = set(on_map) & set(in_funnel)
    assert shared and all(on_map[name] == in_funnel[name] for name in shared)  # one colour per segment, every page


def test_propensity_is_scored_on_a_time_split_with_a_target_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.sample_data import build_demo

    store = Store(tmp_path / "medium.duckdb")
    build_demo(store, scale=0.1)  # 3,000 users: enough buyers in each window to learn from
    store.close()
    monkeypatch.setenv("MARKETLAB_DB", str(tmp_path / "medium.duckdb"))
    at = open_app("pages/segments.py")
    at.button(key="seg_run").click().run()
    at.button(key="seg_propensity").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any(t.startswith("Calibration") for t in chart_titles(at))
    assert any("target list" in b.label for b in at.get("download_button"))


def test_propensity_with_too_few_buyers_says_so(demo_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETLAB_DB", str(demo_db))
    at = open_app("pages/segments.py")
    at.button(key="seg_run").click().run()
    at.button(key="seg_propensity").click().run()
    assert not at.exception
    assert any("Not enough purchases" in e.value for e in at.error)


class FakeEngine:
    """Answers in the RSA format, one over-long headline and one unbacked claim, like the small model does."""

    def describe(self):
        from core.llm import ModelInfo

        return ModelInfo("fake", "test", "cpu", "float32", 1)

    def generate(self, prompts, *, n=1, max_new_tokens=64, temperature=0.7, top_p=0.95, seed=None, stop=()):
        from core.llm import GenerationResult

        fresh = ["Cold Water on Every Trail", "Built for Long Hikes", "Keeps Drinks Cold", "Sip Cold All Afternoon",
                 "Your Desk Companion", "A Bottle for Every Day", "Pack It for the Gym", "Cold Sips on the Commute",
                 "Ready for Road Trips", "Fill Up and Go", "Water Stays Cold", "Take It to the Beach"]
        texts = ["Headline: Summit Steel Bottle\nHeadline 2: {}\nDescription: Keeps drinks cold all day.",
                 "Headline: The Waterproof Bottle You Will Carry Everywhere Forever\nDescription: Waterproof and eco-friendly."]
        return [GenerationResult(p, v, texts[v % 2].format(fresh[((seed or 0) + v) % len(fresh)]), 10, 10, "stop", 0.01, n,
                                 seed or 0, "fake")
                for p in range(len(prompts)) for v in range(n)]


def test_copy_studio_generates_scores_and_approves_with_a_fake_model(demo_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pages._resources as resources

    monkeypatch.setenv("MARKETLAB_DB", str(demo_db))
    monkeypatch.setattr(resources, "get_engine", lambda: FakeEngine())
    at = open_app("pages/copy_studio.py")
    assert not at.exception
    at.button(key="copy_generate").click().run()
    assert not at.exception, at.exception
    assert resources.get_job_board().wait(120), "the writing job did not end"  # it runs beside the page
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any(s.value.replace("\\", "").endswith("1 draft saved.") for s in at.success), [s.value for s in at.success]
    assets = [a for a in at.text_input if a.key.startswith("copy_edit_")]
    assert len(assets) >= 5, "the ad is shown as editable assets"  # 3+ headlines, 2+ descriptions
    for asset in assets:
        if "(" in asset.label and "/" in asset.label:
            used, limit = asset.label.split("(", 1)[1].split(")")[0].split("/")
            assert int(used) <= int(limit), asset.label
    assert any(p.text.startswith("Ad strength: ") for p in at.get("progress"))
    # Lock the first headline, regenerate the second: only the second changes.
    def asset(label: str) -> str:
        return next(a.value for a in at.text_input if a.key.startswith("copy_edit_") and a.label.startswith(f"{label} ("))

    variant_id = next(c.key for c in at.checkbox if c.key.endswith("_headline")).removeprefix("copy_lock_").removesuffix("_headline")
    at.checkbox(key=f"copy_lock_{variant_id}_headline").check().run()
    assert not at.exception and at.checkbox(key=f"copy_lock_{variant_id}_headline").value
    before = (asset("Headline"), asset("Headline 2"))
    at.button(key=f"copy_regen_{variant_id}_headline_2").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert asset("Headline") == before[0] and asset("Headline 2") != before[1]
    assert at.button(key=f"copy_regen_{variant_id}_headline").disabled  # locked
    # Pin headline 1 to position 1: the meter says what that costs, and the Editor CSV carries the pin.
    at.selectbox(key=f"copy_pin_{variant_id}_headline_None").select(1).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.selectbox(key=f"copy_pin_{variant_id}_headline_1").value == 1
    assert any("Headline position 1 is pinned to one headline" in m.value for m in at.markdown)
    keywords = next(t for t in at.text_input if t.key.startswith(f"copy_keywords_{variant_id}_"))
    keywords.input("merino socks, water bottle").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert next(t for t in at.text_input if t.key.startswith(f"copy_keywords_{variant_id}_")).value == "merino socks, water bottle"
    assert any(m.value.startswith("- No headline has the keyword") and "'merino socks'" in m.value for m in at.markdown)
    approve = [b for b in at.button if b.key.startswith("copy_approve_") and not b.disabled]
    assert approve
    approve[0].click().run()
    assert not at.exception
    at.text_input(key="copy_export_url").input("https://shop.example/p/{product_id}?utm_content={variant_id}").run()
    assert any(b.key == "copy_export_json" for b in at.get("download_button"))
    assert any(b.key == "copy_export_csv" and "1 ad" in b.label for b in at.get("download_button"))  # pins are Google's: exportable


def test_a_running_copy_job_shows_progress_anywhere_and_stop_keeps_what_it_saved(demo_db: Path,
                                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Writing runs beside the page: its progress is on Copy Studio and in every page's sidebar; Stop ends it."""
    import threading

    from pages._resources import get_job_board

    monkeypatch.setenv("MARKETLAB_DB", str(demo_db))
    board = get_job_board()
    assert board.wait(60)
    started, release = threading.Event(), threading.Event()

    def work(ctx):
        ctx.report(4, "4 of 12 products written")
        ctx.keep("8 drafts saved")
        started.set()
        release.wait(30)
        ctx.report(5)
        return "12 drafts saved"

    board.submit("Google responsive search ad for 12 products", "local user", 12, work)
    assert started.wait(10)
    at = open_app("pages/copy_studio.py")
    assert not at.exception
    assert any(p.text.startswith("**Google responsive search ad for 12 products** — 4 of 12 products") for p in at.get("progress"))
    assert any("Writing: Google responsive search ad for 12 products, 4 of 12 done." in c.value.replace("\\", "")
               for c in at.sidebar.caption)
    stop = next(b for b in at.button if b.key.startswith("copy_job_stop_"))
    stop.click().run()
    release.set()
    assert board.wait(30)
    at.run()
    assert not at.exception
    assert [i.value.replace("\\", "") for i in at.info if "stopped" in i.value] == [
        "Google responsive search ad for 12 products: stopped; 8 drafts saved before that."]
    listed = at.dataframe[0].value  # every job of this server, with how it ended
    assert ("stopped", "8 drafts saved") in set(zip(listed["status"], listed["left"]))


def test_reads_are_shared_until_a_write_changes_the_data(db_path: Path) -> None:
    """cached_read: every session's rerun reuses one answer; any committed write makes the next read fresh."""
    from pages._resources import cached_read, get_store

    calls: list[int] = []

    def products(store: Store, min_price: float) -> int:
        calls.append(1)
        with store.cursor() as cur:
            return cur.execute("SELECT count(*) FROM products WHERE price >= ?", [min_price]).fetchone()[0]

    store = get_store()
    assert cached_read(products, 0.0) == cached_read(products, 0.0) == 5
    assert len(calls) == 1
    cached_read(products, 20.0)
    assert len(calls) == 2  # other arguments, another answer
    with store.transaction() as cur:
        cur.execute("DELETE FROM products WHERE product_id = 'P1'")
    assert cached_read(products, 0.0) == 4 and len(calls) == 3
    with store.transaction(derived=True):
        pass  # a derived rebuild (the funnel index) changes no answer
    cached_read(products, 0.0)
    assert len(calls) == 3
    with store.transaction(touches=("copy_variants",)):
        pass  # approving copy: what reads no copy stays cached, what reads everything does not
    cached_read(products, 0.0, reads=("products",))
    assert len(calls) == 4  # first read keyed on products alone
    with store.transaction(touches=("copy_variants",)):
        pass
    cached_read(products, 0.0, reads=("products",))
    assert len(calls) == 4
    cached_read(products, 0.0)
    assert len(calls) == 5
    with pytest.raises(QueryError, match="Unknown table"):
        with store.transaction(touches=("nonsense",)):
            pass


def test_a_chart_is_built_once_per_state_of_the_data(db_path: Path) -> None:
    import plotly.graph_objects as go

    from pages._resources import get_store
    from pages._widgets import show_chart

    built: list[int] = []

    def build() -> go.Figure:
        built.append(1)
        return go.Figure(go.Bar(x=["<b>a</b>"], y=[1]))

    for _ in range(3):
        show_chart(build, key="test_chart", inputs=("spec",))
    assert len(built) == 1
    show_chart(build, key="test_chart", inputs=("another spec",))
    assert len(built) == 2
    with get_store().transaction() as cur:
        cur.execute("DELETE FROM products WHERE product_id = 'P1'")
    show_chart(build, key="test_chart", inputs=("spec",))
    assert len(built) == 3


def test_approving_a_variant_leaves_the_cards_where_they_were(db_path: Path) -> None:
    from core.copy.variants import Variant, save_variants
    from pages._resources import get_store

    save_variants(get_store(), [Variant("P1", "meta", "friendly", {"primary_text": text, "headline": head})
                                for text, head in [("Cold for 24 hours.", "Stay cool"), ("Keeps tea hot.", "Warm all day"),
                                                   ("Steel, 750 ml.", "Built to last")]])
    at = open_app("pages/copy_studio.py")
    at.selectbox(key="copy_product").set_value("P1")
    at.selectbox(key="copy_channel").set_value("meta").run()

    def order() -> list[str]:
        return [b.key for b in at.button if b.key and b.key.startswith("copy_approve_")]

    before = order()
    assert len(before) == 3
    at.button(key=before[-1]).click().run()
    assert not at.exception
    assert order() == before and at.button(key=before[-1]).disabled


def test_an_error_a_page_did_not_catch_is_shown_as_a_message_not_a_traceback(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import core.overview

    def broken(store):  # noqa: ANN001, ANN202 - the signature of core.overview.overview
        raise QueryError("The database file was moved while the app was open.", title="The overview could not be read")

    monkeypatch.setattr(core.overview, "overview", broken)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.run()
    assert not at.exception
    assert any("The overview could not be read" in e.value for e in at.error)


def test_teaching_the_writer_runs_as_a_job_and_says_where_the_adapter_is(demo_db: Path, monkeypatch: pytest.MonkeyPatch,
                                                                         smol_tokenizer_dir: Path, tmp_path: Path) -> None:
    """Copy Studio's 'Teach the writer': what it learns from and how long, then a training job with progress in steps."""
    from conftest import build_tiny_llama
    from core.copy import teaching
    from core.llm import generator
    from pages._resources import get_job_board

    monkeypatch.setenv("MARKETLAB_DB", str(demo_db))
    tiny = build_tiny_llama(smol_tokenizer_dir, tmp_path / "tiny", max_positions=2048)
    few = teaching.Lessons(teaching.gold_lessons().pairs[:4], [])
    monkeypatch.setattr(teaching, "teaching_set", lambda store: few)  # four lessons: a few seconds of training
    monkeypatch.setattr(generator, "base_model_dir", lambda model, cache: (tiny, False))
    at = open_app("pages/copy_studio.py")
    assert not at.exception
    assert any("It would learn from 4 examples: 4 from the gold set" in m.value for m in at.markdown), [m.value for m in at.markdown][-5:]
    at.button(key="copy_teach").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert get_job_board().wait(120), "the training job did not end"
    at.run()
    assert not at.exception
    done = [s.value.replace("\\", "") for s in at.success if s.value.startswith("Teaching the writer")]
    assert done and "Adapter saved to" in done[0], [s.value for s in at.success]
    adapter = demo_db.parent / "adapters" / "mine"
    assert (adapter / "manifest.json").is_file()
    assert any(f"MARKETLAB_ADAPTER={adapter}" in i.value.replace("\\", "") for i in at.info)
