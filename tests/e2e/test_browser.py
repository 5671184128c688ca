"""MarketLab in a real browser: the pages open, a catalog upload is checked, committed and searchable,
an event log imports, and a product title holding a <script> tag stays text.

The server is shared by the session (see conftest.py) and its database starts with the small test
catalog (P1–P5) and event log (6 events); tests only add rows the others do not look at.
Every test starts at "/" and moves through the sidebar, as a person does.
Screenshots: tests/e2e/artifacts/<test name>[-step].png.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from .conftest import DATA, wait_idle

from pages._shell import PAGES

# Sidebar label -> the page's st.title (the overview is the app's front page, titled with its name)
PAGE_TITLES = {spec.title: "MarketLab" if spec.path == "pages/overview.py" else spec.title for spec in PAGES}
XSS_TITLE = "<script>window.__pwned=1</script>"

Shot = Callable[[str], Path]


# ---------------------------------------------------------------- helpers


def open_app(page: Page) -> None:
    page.goto("/")
    expect(page.get_by_role("heading", name="MarketLab", level=1)).to_be_visible()
    wait_idle(page)


def nav_links(page: Page) -> Locator:
    # MarketLab draws its own page links (pages/_shell.py), the same whichever mode Streamlit starts in.
    return page.get_by_test_id("stSidebar").get_by_test_id("stPageLink-NavLink")


def nav_labels(page: Page) -> list[str]:
    expect(nav_links(page)).to_have_count(len(PAGE_TITLES))  # the frame is drawn before the page body
    # A link's text is "<icon>\n\n<label>"; the icon is optional.
    return [text.strip().splitlines()[-1].strip() for text in nav_links(page).all_inner_texts()]


def go_to(page: Page, label: str) -> None:
    """Click a sidebar entry and wait for its page to be drawn and the script to finish."""
    nav_links(page).filter(has_text=label).click()
    title = PAGE_TITLES.get(label)
    if title:
        expect(page.get_by_role("heading", name=title, level=1)).to_be_visible()
    wait_idle(page)


def assert_no_exception(page: Page) -> None:
    expect(page.get_by_test_id("stException")).to_have_count(0)


def metric_value(page: Page, label: str) -> Locator:
    return page.get_by_test_id("stMetric").filter(has=page.get_by_test_id("stMetricLabel").filter(has_text=label)) \
        .get_by_test_id("stMetricValue")


def open_tab(page: Page, name: str) -> None:
    tab = page.get_by_role("tab", name=name)
    tab.click()
    expect(tab).to_have_attribute("aria-selected", "true")


def upload(page: Page, path: Path) -> None:
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(path))
    expect(page.get_by_test_id("stFileChipName").filter(has_text=path.name)).to_be_visible()


def choose(page: Page, selectbox_label: str, option: str) -> None:
    page.get_by_test_id("stSelectbox").filter(has_text=selectbox_label).click()
    page.get_by_role("option", name=option, exact=True).click()


def search_catalog(page: Page, text: str, expected_matches: int) -> None:
    box = page.get_by_role("textbox", name="Search")
    box.fill(text)
    box.press("Enter")
    expect(page.get_by_text(f"{expected_matches:,} product{' matches' if expected_matches == 1 else 's match'}", exact=True)).to_be_visible()
    wait_idle(page)


def open_copy_studio_on(page: Page, search: str, product: str | re.Pattern[str], variants: int | None = None) -> None:
    """Copy Studio with the product found by ``search`` chosen (and the number of variants set)."""
    open_app(page)
    go_to(page, "Copy Studio")
    box = page.get_by_role("textbox", name="Find a product")
    box.fill(search)
    box.press("Enter")
    wait_idle(page)
    expect(page.get_by_role("combobox", name="Product")).to_have_value(product)
    if variants is not None:
        box = page.get_by_role("spinbutton", name=re.compile(r"^(Variants|Ads per product)$"))
        box.fill(str(variants))
        box.press("Enter")
        wait_idle(page)


def sidebar_counts(page: Page) -> Locator:
    return page.get_by_test_id("stSidebar").get_by_text(re.compile(r"\d+ products · .* events"))


# ---------------------------------------------------------------- tests


def test_every_sidebar_page_opens(page: Page, shot: Shot, js_errors: list[str]) -> None:
    open_app(page)
    labels = nav_labels(page)
    assert set(PAGE_TITLES) <= set(labels), f"sidebar lists {labels}"
    expect(sidebar_counts(page)).to_be_visible()  # app.py ran: the store's status is in the sidebar
    # Every entry, including pages added later; the last one first so each click really navigates.
    for label in [*labels[1:], labels[0]]:
        go_to(page, label)
        expect(page.get_by_role("heading", level=1).first).to_be_visible()
        assert_no_exception(page)
        assert_reads_cleanly(page, label)
        shot(label)
    assert js_errors == []


# Text the browser cuts with an ellipsis (a metric, a button, a tab): its scrolling width is wider than its box.
_CUT_TEXT = """() => [...document.querySelectorAll('[data-testid="stMain"] *')]
    .filter(e => getComputedStyle(e).textOverflow === 'ellipsis' && e.scrollWidth > e.clientWidth + 1
                 && e.innerText.trim())
    .map(e => e.innerText.trim())"""


def assert_reads_cleanly(page: Page, label: str) -> None:
    """What a person reads: no raw run ids, no scientific notation, no None or nan, no label cut short (issue 16).

    Charts are drawn in SVG and tables on a canvas, so this reads the page's text, as a person skims it.
    """
    expect(page.get_by_test_id("stSkeleton")).to_have_count(0)  # every element drawn, not a placeholder
    text = page.get_by_test_id("stMain").inner_text()
    for pattern, what in ((r"\brun-\d{8}-\d{6}", "a raw run id"), (r"\b\d(?:\.\d+)?e[+-]\d+\b", "scientific notation"),
                          (r"(?<![\w'])(?:None|nan|NaN)(?![\w'])", "None or nan")):
        found = re.search(pattern, text)
        assert found is None, f"{label}: {what} on the page: …{text[max(0, found.start() - 60):found.end() + 60]}…"
    assert page.evaluate(_CUT_TEXT) == [], f"{label}: text cut short with an ellipsis"


def test_catalog_upload_report_commit_and_search(page: Page, shot: Shot, js_errors: list[str], tmp_path: Path) -> None:
    catalog = tmp_path / "new-catalog.csv"
    with catalog.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["product_id", "title", "brand", "category", "price", "currency"])
        w.writerow(["E2E-1", "Glacier Trail Thermos", "Glacier", "Drinkware", "31.50", "USD"])
        w.writerow(["E2E-2", "Broken Price Mug", "Glacier", "Drinkware", "-5", "USD"])
        w.writerow(["E2E-3", XSS_TITLE, "Glacier", "Drinkware", "9.99", "USD"])

    open_app(page)
    go_to(page, "Catalog")
    open_tab(page, "Upload a catalog")
    upload(page, catalog)

    # The report: the thermos and the <script> title are new, the negative price is rejected.
    expect(metric_value(page, "New rows")).to_have_text("2")
    expect(metric_value(page, "Updated rows")).to_have_text("0")
    expect(metric_value(page, "Rejected rows")).to_have_text("1")
    wait_idle(page)
    expect(page.get_by_text("new-catalog.csv: CSV, 3 rows, 6 columns", exact=False)).to_be_visible()
    expect(page.get_by_role("tab", name="Rejected (1)")).to_be_visible()
    commit = page.get_by_role("button", name="Commit 2 rows to products")
    expect(commit).to_be_disabled()
    expect(page.get_by_text("1 row is invalid, so nothing will be written")).to_be_visible()
    shot("report")

    # The rejected rows table is a canvas; its CSV download holds the same rows and reasons.
    with page.expect_download() as download:
        page.get_by_role("button", name="Download rejected rows with reasons (CSV)").click()
    rejected = list(csv.DictReader(Path(download.value.path()).read_text(encoding="utf-8-sig").splitlines()))
    wait_idle(page)
    assert [(r["product_id"], r["reason"]) for r in rejected] == [("E2E-2", "price must not be negative (got -5)")]

    # Nothing can be written until "only the valid rows" is chosen.
    page.get_by_text("Commit only the 2 valid rows").click()
    expect(commit).to_be_enabled()
    wait_idle(page)
    commit.click()
    expect(page.get_by_text("Imported 2 rows into products: 2 new, 0 updated, 1 invalid row skipped.")).to_be_visible()
    wait_idle(page)
    expect(commit).to_have_count(0)
    expect(sidebar_counts(page)).to_contain_text("7 products")
    shot("committed")

    # Browse: the new product is found and opens.
    open_tab(page, "Browse")
    search_catalog(page, "Glacier Trail", 1)
    choose(page, "Open a product", "Glacier Trail Thermos · E2E-1")
    expect(page.get_by_role("heading", name="Glacier Trail Thermos", level=3)).to_be_visible()
    expect(metric_value(page, "Price")).to_have_text("31.50 USD")
    wait_idle(page)
    shot("found")

    # The <script> title is found (the "_" in the search is literal) and shown as text, never run.
    search_catalog(page, "__pwned", 1)
    choose(page, "Open a product", f"{XSS_TITLE} · E2E-3")
    expect(page.get_by_role("heading", name=XSS_TITLE, level=3)).to_be_visible()
    wait_idle(page)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("script", has_text="__pwned").count() == 0
    assert_no_exception(page)
    assert js_errors == []


def test_import_events(page: Page, shot: Shot, js_errors: list[str]) -> None:
    open_app(page)
    go_to(page, "Import data")
    expect(page.get_by_test_id("stSidebar")).to_contain_text("6 events")
    upload(page, DATA / "events.csv")

    # The same 6 events the database was seeded with: recognised as updates, not duplicated.
    expect(metric_value(page, "New rows")).to_have_text("0")
    expect(metric_value(page, "Updated rows")).to_have_text("6")
    expect(metric_value(page, "Rejected rows")).to_have_text("0")
    expect(page.get_by_text("Every row is valid.")).to_be_visible()
    wait_idle(page)
    shot("report")

    commit = page.get_by_role("button", name="Commit 6 rows to events")
    expect(commit).to_be_enabled()
    commit.click()
    expect(page.get_by_text("Imported 6 rows into events: 0 new, 6 updated.")).to_be_visible()
    # The file's totals beside what was stored: nothing went missing.
    expect(page.get_by_text("Stored plus not stored equals the file: every row, purchase and cent is accounted for.")).to_be_visible()
    wait_idle(page)
    expect(sidebar_counts(page)).to_contain_text("6 events")
    assert_no_exception(page)
    assert js_errors == []


def test_deep_link_on_fresh_server_uses_app_navigation(page: Page, shot: Shot, fresh_app_url: str) -> None:
    page.goto(f"{fresh_app_url}/catalog")
    expect(page.get_by_role("heading", name="Catalog", level=1)).to_be_visible()
    wait_idle(page)
    assert nav_labels(page) == list(PAGE_TITLES)
    expect(sidebar_counts(page)).to_be_visible(timeout=5_000)  # app.py ran


def test_build_a_funnel_and_see_the_chart(page: Page, shot: Shot, js_errors: list[str]) -> None:
    open_app(page)
    go_to(page, "Funnels")
    # The test log: U1 views, adds to cart and buys; U2 and U3 only view.
    expect(metric_value(page, "Entered the funnel")).to_have_text("3")
    expect(metric_value(page, "Completed")).to_have_text("1")
    chart = page.get_by_test_id("stPlotlyChart").first
    expect(chart).to_be_visible()
    expect(chart).to_contain_text("Users reaching each step")
    shot("funnel")

    choose(page, "Break down by", "device")
    expect(page.get_by_role("heading", name="By device")).to_be_visible()
    wait_idle(page)
    expect(page.get_by_test_id("stPlotlyChart").filter(has_text="by device")).to_be_visible()
    shot("breakdown")
    assert_no_exception(page)
    assert js_errors == []


def test_run_a_segmentation_and_see_the_map(page: Page, shot: Shot, js_errors: list[str], demo_app_url: str) -> None:
    page.goto(f"{demo_app_url}/segments")
    expect(page.get_by_role("heading", name="Segments", level=1)).to_be_visible()
    wait_idle(page)
    page.get_by_role("button", name="Run segmentation").click()
    expect(page.get_by_text(re.compile(r"Saved \d+ behaviour segments · "))).to_be_visible(timeout=60_000)
    wait_idle(page)
    expect(page.get_by_test_id("stPlotlyChart").filter(has_text="Users on a 2-D map")).to_be_visible()
    expect(page.get_by_role("heading", name="Personas")).to_be_visible()
    shot("map")
    assert_no_exception(page)
    assert js_errors == []


def test_every_page_of_the_demo_store_reads_cleanly(page: Page, shot: Shot, js_errors: list[str], demo_app_url: str) -> None:
    """The walk a demo session takes, on the demo store (after the segmentation above): every page, as a person reads it."""
    page.goto(demo_app_url)
    expect(page.get_by_role("heading", name="MarketLab", level=1)).to_be_visible()
    wait_idle(page)
    labels = nav_labels(page)
    for label in [*labels[1:], labels[0]]:
        go_to(page, label)
        assert_no_exception(page)
        assert_reads_cleanly(page, label)
        shot(label)
    assert js_errors == []


def test_write_copy_approve_and_export(page: Page, shot: Shot, js_errors: list[str], tmp_path: Path) -> None:
    """The bundled SmolLM2 on the CPU writes a Google RSA; one asset is locked, another regenerated; the ad is
    approved and exported for Google Ads Editor with a Final URL template."""
    open_copy_studio_on(page, "Summit", re.compile(r"Summit 750 ml Insulated Steel Water Bottle"), variants=1)

    page.get_by_role("button", name="Generate 1 ad per product").click()
    # First use loads the model (converting the bundled GGUF once on a fresh machine), then writes.
    # Writing runs on the server beside the page, which shows its progress and then what it saved.
    # (The sidebar says so too, on every page: the page's own line is the one looked for.)
    expect(page.get_by_test_id("stMain").get_by_text(re.compile(r"1 product: 1 draft saved"))).to_be_visible(timeout=480_000)
    wait_idle(page)
    # The ad-strength meter, with what to do next, and the selling points the ad carries.
    expect(page.get_by_text(re.compile(r"Ad strength: (Incomplete|Poor|Average|Good|Excellent)")).first).to_be_visible()
    expect(page.get_by_text("Selling points").first).to_be_visible()
    headline = page.get_by_role("textbox", name=re.compile(r"^Headline \(\d+\D30\)"))  # "/" would end Playwright's regex
    second = page.get_by_role("textbox", name=re.compile(r"^Headline 2 \(\d+\D30\)"))
    first_text, second_text = headline.input_value(), second.input_value()
    shot("ad")

    # Streamlit draws its own box over the input: a person clicks the label, and so does the test.
    page.get_by_test_id("stCheckbox").filter(has_text="Lock").first.locator("label").click()  # the first headline
    wait_idle(page)
    expect(page.get_by_role("checkbox", name="Lock").first).to_be_checked()
    expect(page.get_by_role("button", name="↻").first).to_be_disabled()  # a locked asset is not regenerated
    for _ in range(2):  # a 135M model may write nothing new and usable in one go: then the ad is unchanged and it says so
        page.get_by_role("button", name="↻").nth(1).click()  # the second headline
        expect(page.get_by_text("Writing new text for headline 2")).to_be_visible()
        expect(page.get_by_text("Writing new text for headline 2")).to_have_count(0, timeout=300_000)  # one model call
        unchanged = page.get_by_text("The ad is unchanged")
        for _ in range(60):  # the page reruns once more after saving: wait for the new text, or the message
            wait_idle(page)
            if (second.count() == 1 and second.input_value() != second_text) or unchanged.count():
                break
            page.wait_for_timeout(500)
        if second.input_value() != second_text:
            break
        expect(unchanged.first).to_be_visible()
    assert second.input_value() != second_text and headline.input_value() == first_text
    shot("regenerated")

    page.get_by_role("button", name="Approve").first.click()
    wait_idle(page)
    expect(page.get_by_text("✅ approved")).to_have_count(1)

    url = page.get_by_role("textbox", name="Final URL template")
    url.fill("https://shop.example/p/{product_id}?utm_content={variant_id}")
    url.press("Enter")
    wait_idle(page)
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Google Ads Editor CSV (1 ad)").click()
    path = tmp_path / "rsa.csv"
    download_info.value.save_as(path)
    with path.open(newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1
    assert rows[0]["Ad type"] == "Responsive search ad" and rows[0]["Campaign"] == "MarketLab"
    headlines = [h for h in (rows[0][f"Headline {i}"] for i in range(1, 16)) if h]
    assert len(headlines) >= 3 and all(len(h) <= 30 for h in headlines), headlines
    assert headlines[0] == first_text and second.input_value() in headlines
    assert 0 < len(rows[0]["Description 1"]) <= 90 and 0 < len(rows[0]["Description 2"]) <= 90
    assert rows[0]["Final URL"].startswith("https://shop.example/p/") and "CV-" in rows[0]["Final URL"]
    assert not any(v.startswith(("=", "+", "-", "@")) for v in rows[0].values() if v)  # formula-safe

    with page.expect_download() as json_info:
        page.get_by_role("button", name=re.compile(r"JSON \(1 variant\)")).click()
    exported = json.loads(Path(json_info.value.path()).read_text())
    assert len(exported) == 1 and exported[0]["fields"]["headline"] == first_text
    shot("approved")
    assert_no_exception(page)
    assert js_errors == []


def test_writing_goes_on_while_the_marketer_browses_and_stop_keeps_saved_drafts(page: Page, shot: Shot,
                                                                                 js_errors: list[str]) -> None:
    """A model call for many candidates takes minutes on a CPU: it runs as a job beside the page, so another
    page can be opened meanwhile (the sidebar follows it), and Stop on Copy Studio ends it within seconds."""
    # 6 variants are 18 candidates in one model call: well over a minute on this CPU.
    open_copy_studio_on(page, "Trailhead", re.compile(r"Trailhead Ultralight Tent 2P"), variants=6)
    drafts_before = page.get_by_role("button", name="Approve").count()

    page.get_by_role("button", name="Generate 6 ads per product").click()
    bar = page.get_by_role("progressbar")
    expect(bar).to_be_visible(timeout=240_000)  # the model may still be loading
    expect(page.get_by_text(re.compile(r"Writing 18 candidates"))).to_be_visible(timeout=240_000)
    start = float(bar.get_attribute("aria-valuenow") or 0)
    # The bar moves while the one model call is still writing.
    page.wait_for_function(
        "start => { const b = document.querySelector('[role=progressbar]');"
        " return b && parseFloat(b.getAttribute('aria-valuenow')) > start; }", arg=start, timeout=60_000)
    shot("writing")

    # Another page opens at once, and its sidebar says the writing goes on.
    page.get_by_test_id("stSidebar").get_by_role("link", name="Overview").click()
    wait_idle(page, timeout=20_000)
    expect(page.get_by_text(re.compile(r"Writing: Google responsive search ad for 1 product"))).to_be_visible(timeout=10_000)
    shot("browsing")
    page.get_by_test_id("stSidebar").get_by_role("link", name="See it in Copy Studio").click()
    expect(page.get_by_role("progressbar").first).to_be_visible(timeout=20_000)

    # Ours, not Streamlit's own "Stop" in the header, which shows while a script runs.
    page.get_by_test_id("stMain").get_by_role("button", name="Stop", exact=True).click()
    expect(page.get_by_test_id("stMain").get_by_text("Google responsive search ad for 1 product: stopped.")).to_be_visible(timeout=15_000)
    wait_idle(page)
    expect(page.get_by_text(re.compile(r"drafts? saved"))).to_have_count(0)
    expect(page.get_by_role("button", name="Approve")).to_have_count(drafts_before)  # nothing half-written was saved
    shot("stopped")
    assert_no_exception(page)
    assert js_errors == []
