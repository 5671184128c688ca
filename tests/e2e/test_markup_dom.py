"""Hostile HTML, JavaScript and markdown stored by users is shown as text in the real browser, never run.

Issue: "HTML/JavaScript in product titles, reviews and generated copy (checked in the browser DOM:
rendered as text, no script runs, no unsafe_allow_html with user data)".

The module serves the app on a database of its own (built below, no other test touches it): a
catalog whose title, description, brand, category and attributes carry payloads, reviews with
payloads, a saved Meta ad draft whose fields carry payloads, and an event log that puts that draft
in a campaign. Every payload that could run tries to set ``window.__ml_pwned``; every one that
could only render as markup wraps a marker word (``ml-bold``, ``ml-stars``, ``ml-click``…) that
no page uses, so an element built from user data is found by its text.

Each test checks, on the page where the values are drawn:
1. no payload ran: ``window.__ml_pwned`` is undefined and the page raised no JavaScript error;
2. the literal payload is on the page as text (a heading, st.text, a metric, a text area, an
   alert, a data-grid cell), i.e. escaped, not swallowed;
3. nothing was built from it: no ``img`` with ``onerror`` or ``src=x``, no ``script`` holding the
   payload, no ``javascript:`` link, no ``a``/``b``/``strong``/``i``/``em`` element around a marker.

st.dataframe draws on a canvas; its cells are also in the grid's accessibility table, so the
payloads in review and attribute tables are checked there as text.

Only this module's server runs: ``browser_context_args`` and ``warm_app`` are overridden here so
that the session server of conftest.py (base_url, app_db) is not started for these tests.
Screenshots: tests/e2e/artifacts/<test name>[-step].png.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from core.copy.variants import Variant, rescore, save_variants
from core.store import Store

from .conftest import _run_cli, serve_app, wait_idle
from .test_browser import assert_no_exception, choose, go_to, metric_value, nav_labels, open_app, open_copy_studio_on, search_catalog

Shot = Callable[[str], Path]

# ---------------------------------------------------------------- the payloads

SCRIPT = "<script>window.__ml_pwned=1</script>"
IMG = '<img src=x onerror="window.__ml_pwned=2">'
BOLD = "<b>ml-bold</b>"
LINK = "[ml-click](javascript:window.__ml_pwned=3)"
STARS = "**ml-stars**"

# XSS-1: every kind of payload in the title, HTML in the brand, HTML and markdown in the description.
TITLE = f"{SCRIPT} {IMG} {BOLD} {LINK} {STARS} Bottle"
BRAND = f"{BOLD} Brand"
DESCRIPTION = f'<img src=x onerror="window.__ml_pwned=4"> {LINK} {BOLD}'
MATERIAL = "<script>window.__ml_pwned=5</script>"  # an attribute: drawn in a data grid
# XSS-3: markdown in the brand and category, the fields a product page shows as metrics.
RIVAL_TITLE = "Rival Mug"
RIVAL_BRAND = "<i>ml-rival</i> **ml-co**"
RIVAL_CATEGORY = f"{STARS} [ml-click](javascript:window.__ml_pwned=9)"

REVIEW_TITLE = "<script>window.__ml_pwned=6</script>"
REVIEW_TEXT = f'<img src=x onerror="window.__ml_pwned=7"> {STARS} [ml-click](javascript:window.__ml_pwned=8)'

# A saved Meta ad draft for XSS-1 (every field within Meta's limits, so it is shown as compliant);
# its description names XSS-3's brand, which the scores report as an unsupported brand claim.
VARIANT_ID = "CV-mlmarkup00000001"
COPY = {
    "primary_text": f"<script>window.__ml_pwned=10</script> [ml-click](javascript:window.__ml_pwned=11) {STARS}",
    "headline": "<img src=x onerror=window.__ml_pwned=12>",
    "description": RIVAL_BRAND,
}
META = "Meta (Facebook/Instagram) ad"
CAMPAIGN = "ml_markup_launch"

# Words inside the markup payloads: an element whose whole text is one of them was built from user data.
MARKERS = ["ml-bold", "ml-stars", "ml-click", "ml-rival", "ml-co"]

INJECTED_JS = """markers => {
  const found = [];
  const html = el => el.outerHTML.slice(0, 160);
  for (const el of document.querySelectorAll('script'))
    if (el.textContent.includes('__ml_pwned')) found.push('script: ' + html(el));
  for (const el of document.querySelectorAll('[onerror], [onload], [onclick], [onmouseover]')) found.push('handler: ' + html(el));
  for (const el of document.querySelectorAll('img[src="x"]')) found.push('img: ' + html(el));
  for (const el of document.querySelectorAll('a')) {
    const href = (el.getAttribute('href') || el.getAttribute('xlink:href') || '').trim().toLowerCase();
    if (href.startsWith('javascript:') || markers.includes(el.textContent.trim())) found.push('link: ' + html(el));
  }
  for (const el of document.querySelectorAll('b, strong, i, em'))
    if (markers.includes(el.textContent.trim())) found.push('markup: ' + html(el));
  return found;
}"""


# ---------------------------------------------------------------- the store and its server


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _build_store(workdir: Path) -> Path:
    db = workdir / "markup.duckdb"
    env = {**os.environ, "MARKETLAB_DB": str(db)}
    products = _write_csv(workdir / "products.csv",
                          ["product_id", "title", "brand", "category", "price", "currency", "description", "material"], [
                              ["XSS-1", TITLE, BRAND, "Drinkware", "19.99", "USD", DESCRIPTION, MATERIAL],
                              ["XSS-2", "Plain Steel Flask", BRAND, "Drinkware", "9.99", "USD", "A steel flask.", "steel"],
                              ["XSS-3", RIVAL_TITLE, RIVAL_BRAND, RIVAL_CATEGORY, "12.00", "USD", "A mug.", "ceramic"],
                          ])
    reviews = _write_csv(workdir / "reviews.csv", ["review_id", "product_id", "user_id", "rating", "title", "text", "ts"], [
        ["R-1", "XSS-1", "U1", "5", REVIEW_TITLE, REVIEW_TEXT, "2026-10-01 12:00:00"],
        ["R-2", "XSS-1", "U2", "1", BOLD, "Leaks.", "2026-10-02 12:00:00"],
    ])
    events = _write_csv(workdir / "events.csv", ["user_id", "ts", "event_name", "product_id", "campaign", "variant_id"], [
        ["U1", "2026-10-01 10:00:00", "view", "XSS-1", CAMPAIGN, VARIANT_ID],
        ["U1", "2026-10-01 10:05:00", "purchase", "XSS-1", "", ""],
        ["U2", "2026-10-01 11:00:00", "view", "XSS-2", CAMPAIGN, "CV-mlmarkup00000002"],
        ["U3", "2026-10-01 12:00:00", "view", "XSS-3", "", ""],
    ])
    for table, path in (("products", products), ("reviews", reviews), ("events", events)):
        _run_cli("ingest", table, str(path), "--db", str(db), env=env)

    # The draft as the page's own path stores copy: scored against the product and its siblings.
    store = Store(db)
    try:
        variant = Variant(product_id="XSS-1", channel="meta", tone="friendly", fields=dict(COPY), model="test",
                          variant_id=VARIANT_ID)
        variant.scores = rescore(store, variant)
        assert variant.compliant, variant.scores
        save_variants(store, [variant])
    finally:
        store.close()
    return db


@pytest.fixture(scope="module")
def markup_url(chromium_executable: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app on a database full of hostile values; the only server these tests start."""
    workdir = tmp_path_factory.mktemp("e2e-markup")
    with serve_app(_build_store(workdir), workdir) as url:
        yield url


@pytest.fixture(scope="module")
def browser_context_args(markup_url: str) -> dict:
    """Replaces conftest's (which asks for base_url and so starts the session server): this module's server."""
    return {"base_url": markup_url, "viewport": {"width": 1280, "height": 2000}}


@pytest.fixture(scope="module", autouse=True)
def warm_app(browser: Browser, browser_context_args: dict) -> None:
    """conftest's warm_app, on this module's server: the first script run is paid here, not by a test."""
    context = browser.new_context(**browser_context_args)
    try:
        page = context.new_page()
        page.goto("/")
        expect(page.get_by_role("heading", level=1)).to_be_visible(timeout=60_000)
        wait_idle(page, timeout=60_000)
    finally:
        context.close()


# ---------------------------------------------------------------- checks


def assert_inert(page: Page, js_errors: list[str]) -> None:
    """No payload ran and no element was built from one, anywhere in the document."""
    assert page.evaluate("typeof window.__ml_pwned") == "undefined", f"a payload ran: window.__ml_pwned = {page.evaluate('window.__ml_pwned')!r}"
    assert page.evaluate(INJECTED_JS, MARKERS) == []
    assert_no_exception(page)
    assert js_errors == []


def grid_with(page: Page, text: str) -> Locator:
    """The st.dataframe whose cells (its accessibility table) hold ``text``."""
    return page.get_by_test_id("stDataFrame").filter(has_text=text)


# ---------------------------------------------------------------- tests


def test_catalog_search_and_product_page_show_payloads_as_text(page: Page, shot: Shot, js_errors: list[str]) -> None:
    open_app(page)
    go_to(page, "Catalog")
    # The list: the title sits in the grid as text; searching the literal <script> tag finds it.
    expect(grid_with(page, TITLE)).to_have_count(1)
    search_catalog(page, SCRIPT, 1)
    assert_inert(page, js_errors)
    shot("search")

    choose(page, "Open a product", f"{TITLE} · XSS-1")
    heading = page.get_by_role("heading", name=TITLE, level=3)
    expect(heading).to_have_text(TITLE)
    wait_idle(page)
    expect(page.get_by_role("combobox", name="Open a product")).to_have_value(f"{TITLE} · XSS-1")
    expect(page.get_by_test_id("stMain").get_by_test_id("stText")).to_have_text(DESCRIPTION)
    expect(metric_value(page, "Brand")).to_have_text(BRAND)
    expect(metric_value(page, "Reviews")).to_have_text("2 · 3.0★")
    # Attributes and reviews are data grids: their payloads are cells, as text.
    expect(grid_with(page, MATERIAL)).to_have_count(1)
    reviews = grid_with(page, REVIEW_TEXT)
    expect(reviews).to_have_count(1)
    expect(reviews).to_contain_text(REVIEW_TITLE)
    expect(reviews).to_contain_text(BOLD)
    shot("product")
    assert_inert(page, js_errors)


def test_copy_studio_drafts_show_payloads_as_text(page: Page, shot: Shot, js_errors: list[str]) -> None:
    open_copy_studio_on(page, "XSS-1", f"{TITLE} · XSS-1")
    choose(page, "Channel", META)
    wait_idle(page)

    # The saved draft: each field in its text area exactly as stored.
    for label, key in (("Primary text", "primary_text"), ("Headline", "headline"), ("Description", "description")):
        expect(page.get_by_role("textbox", name=re.compile(rf"^{label} \("))).to_have_value(COPY[key])
    expect(page.get_by_text("Within every limit of the channel.")).to_be_visible()
    # The scores quote the copy: the brand claim in a warning, the claims in the explanation — as text.
    expect(page.get_by_test_id("stAlert").filter(has_text="brand not in product data")) \
        .to_have_text(f"claims '{RIVAL_BRAND}': brand not in product data")
    expect(page.get_by_test_id("stCaptionContainer").filter(has_text="unsupported claims")) \
        .to_contain_text(f"'{RIVAL_BRAND.lower()}'")
    shot("one-product")
    assert_inert(page, js_errors)

    # Many products by brand: the brand is an option as text, and each product's title a heading.
    page.get_by_text("Many, by category or brand").click()
    wait_idle(page)
    page.get_by_test_id("stMultiSelect").filter(has_text="Brand").click()
    page.get_by_role("option", name=BRAND, exact=True).click()
    page.keyboard.press("Escape")
    expect(page.get_by_role("heading", name=TITLE, level=3)).to_have_text(TITLE)
    wait_idle(page)
    expect(page.get_by_role("textbox", name=re.compile(r"^Headline"))).to_have_value(COPY["headline"])
    shot("by-brand")
    assert_inert(page, js_errors)


def test_experiments_show_the_variant_copy_as_text(page: Page, shot: Shot, js_errors: list[str]) -> None:
    open_app(page)
    go_to(page, "Experiments")
    expect(page.get_by_role("combobox", name="Campaign")).to_have_value(re.compile(rf"^{CAMPAIGN} "))
    expect(page.get_by_test_id("stText")).to_have_text([COPY["primary_text"], COPY["headline"], COPY["description"]])
    expect(page.get_by_text("No copy saved for this variant.")).to_be_visible()
    shot()
    assert_inert(page, js_errors)


def test_no_page_runs_or_renders_stored_payloads(page: Page, shot: Shot, js_errors: list[str]) -> None:
    """Every sidebar page, opened on this store: none runs a payload or builds an element from one."""
    open_app(page)
    labels = nav_labels(page)
    for label in [*labels[1:], labels[0]]:
        go_to(page, label)
        shot(label)
        assert_inert(page, js_errors)


def test_catalog_product_metrics_show_brand_and_category_as_text(page: Page, shot: Shot, js_errors: list[str]) -> None:
    """The product page's Brand and Category metrics: st.metric renders its value as markdown."""
    open_app(page)
    go_to(page, "Catalog")
    choose(page, "Open a product", f"{RIVAL_TITLE} · XSS-3")
    expect(page.get_by_role("heading", name=RIVAL_TITLE, level=3)).to_be_visible()
    wait_idle(page)
    shot()
    expect(metric_value(page, "Price")).to_have_text("12.00 USD")
    # Both metrics and what the document holds, in one message: markdown emphasis and a link built from data.
    problems = [f"{label} metric shows {shown!r}, the stored value is {stored!r}"
                for label, stored in (("Brand", RIVAL_BRAND), ("Category", RIVAL_CATEGORY))
                if (shown := metric_value(page, label).inner_text().strip()) != stored]
    problems += page.evaluate(INJECTED_JS, MARKERS)
    assert not problems, "\n".join(problems)
    assert_inert(page, js_errors)


def test_funnel_breakdown_by_brand_shows_brands_as_text(page: Page, shot: Shot, js_errors: list[str]) -> None:
    """A brand in a Plotly legend: Plotly draws <b>, <i>, <a href> and friends in its labels."""
    open_app(page)
    go_to(page, "Funnels")
    choose(page, "Break down by", "product brand")
    expect(page.get_by_role("heading", name="By product brand")).to_be_visible()
    wait_idle(page)
    chart = page.get_by_test_id("stPlotlyChart").filter(has_text="by product brand")
    expect(chart).to_be_visible()
    shot()
    assert_inert(page, js_errors)
    legend = chart.locator(".legendtext")
    expect(legend).to_have_count(2)
    drawn = legend.evaluate_all("els => els.map(e => [e.textContent, e.innerHTML])")
    assert sorted(text for text, _ in drawn) == sorted([BRAND, RIVAL_BRAND]), \
        "legend entries drawn as markup: " + "; ".join(html for _, html in drawn)
