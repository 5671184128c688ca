"""Real exports from ../shared/data/real import without editing the file.

Each test skips where the shared data is absent (real_file()). The numbers asserted are the
files' own: see ../shared/data/real/README.md for where each comes from and its mess.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from core.ingest import commit, ingest_file, prepare
from core.upload_reader import read_upload

from conftest import real_file


def rows(store, sql):
    with store.cursor() as cur:
        return cur.execute(sql).fetchall()


def test_amazon_product_sample_imports_whole_with_ranges_paths_and_boilerplate_handled(tmp_store):
    path = real_file("amazon_products_promptcloud_2020", "amazon_products_sample_1000.csv")
    report = ingest_file(tmp_store, "products", path, unreadable_price="lowest")
    assert report.mapping["Uniq Id"] == "product_id"
    assert report.mapping["Product Name"] == "title"
    assert report.mapping["Selling Price"] == "price"
    # "Product Description" is empty in every row; the filled "About Product" wins.
    assert report.mapping["About Product"] == "description"
    assert (report.rows, report.inserted, report.rejected) == (1000, 1000, 0)
    # Independent count of what the file holds: 15 ranges, 10 other unreadable prices.
    file = pd.read_csv(path, dtype=str)
    ranges = file["Selling Price"].str.fullmatch(r"\$[\d,.]+ - \$[\d,.]+")
    assert ranges.sum() == 15
    assert rows(tmp_store, "SELECT count(*), count(price), count(DISTINCT currency), any_value(currency) FROM products") == [(1000, 990, 1, "USD")]
    assert rows(tmp_store, "SELECT price, attributes->>'price_as_listed' FROM products WHERE attributes->>'price_as_listed' = '$74.99 - $249.99'") == [
        (74.99, "$74.99 - $249.99")]
    # Breadcrumbs: the top level is the category, the path an attribute.
    assert rows(tmp_store, "SELECT count(DISTINCT category) FROM products")[0][0] == file["Category"].str.split(" | ", regex=False).str[0].nunique() == 19
    assert rows(tmp_store, "SELECT count(*) FROM products WHERE category = 'Toys & Games'")[0][0] > 600
    assert rows(tmp_store, "SELECT count(*) FROM products WHERE attributes->>'category_path' LIKE 'Toys & Games | %'")[0][0] > 600
    # Marketplace boilerplate opens 802 descriptions as listed; none as stored, each original kept.
    assert file["About Product"].str.startswith("Make sure this fits by entering your model number.").sum() == 802
    assert rows(tmp_store, "SELECT count(*) FILTER (WHERE description LIKE '%Make sure this fits%'), "
                           "count(*) FILTER (WHERE attributes->>'description_as_listed' LIKE 'Make sure this fits%') FROM products") == [(0, 802)]


def test_amazon_unreadable_prices_are_refused_by_default_with_the_way_to_keep_them(tmp_store):
    path = real_file("amazon_products_promptcloud_2020", "amazon_products_sample_1000.csv")
    report = ingest_file(tmp_store, "products", path, skip_invalid=True)
    assert (report.inserted, report.rejected) == (975, 25)
    assert any("To keep them, choose to take the lowest price of a range" in w for w in report.warnings)
    assert all(r["reason"].startswith("price: ") and r["reason"].endswith("is not a number") for r in report.rejections)


def test_rees46_event_sample_imports_every_row_with_utc_times(tmp_store):
    path = real_file("rees46_multicategory_oct2019", "2019-Oct-sample.csv")
    report = ingest_file(tmp_store, "events", path)
    assert report.mapping["event_time"] == "ts" and report.mapping["event_type"] == "event_name"
    assert report.mapping["user_session"] == "session_id"
    assert (report.rows, report.inserted, report.rejected) == (1000, 1000, 0)
    assert rows(tmp_store, "SELECT min(ts), max(ts) FROM events") == [(datetime(2019, 10, 1, 0, 0, 0), datetime(2019, 10, 1, 0, 17, 26))]
    assert dict(rows(tmp_store, "SELECT event_name, count(*) FROM events GROUP BY 1")) == {"view": 987, "cart": 3, "purchase": 10}
    assert rows(tmp_store, "SELECT user_id, product_id FROM events WHERE session_id = '72d76fde-8bb3-4e00-8c23-a032dfed738c' LIMIT 1") == [
        ("541312140", "44600062")
    ]
    again = ingest_file(tmp_store, "events", path)
    assert (again.inserted, again.updated) == (0, 1000)
    assert tmp_store.count("events") == 1000


def test_alexa_reviews_tsv_with_two_digit_years(tmp_store):
    path = real_file("amazon_alexa_reviews", "amazon_alexa.tsv")
    report = ingest_file(tmp_store, "reviews", path)
    assert (report.encoding, report.delimiter) == ("utf-8-sig", "\t")
    assert report.mapping["rating"] == "rating" and report.mapping["verified_reviews"] == "text"
    assert (report.rows, report.inserted, report.rejected) == (3150, 3150, 0)
    # "31-Jul-18" is 31 July 2018, not 2031 and not the 18th.
    assert rows(tmp_store, "SELECT min(ts), max(ts) FROM reviews") == [(datetime(2018, 5, 16), datetime(2018, 7, 31))]
    assert rows(tmp_store, "SELECT min(rating), max(rating) FROM reviews") == [(1, 5)]
    assert tmp_store.count("reviews") == 3150


def test_womens_clothing_reviews_keep_empty_texts_and_ignore_the_index_column(tmp_store):
    path = real_file("womens_clothing_ecommerce_reviews", "Womens Clothing E-Commerce Reviews.csv")
    report = ingest_file(tmp_store, "reviews", path)
    assert report.mapping["column_1"] == "(ignore)"  # the unnamed pandas index
    assert report.mapping["Clothing ID"] == "product_id" and report.mapping["Review Text"] == "text"
    assert (report.rows, report.inserted, report.rejected) == (23486, 23486, 0)
    assert rows(tmp_store, "SELECT count(*) FILTER (WHERE text IS NULL), count(DISTINCT review_id) FROM reviews") == [(845, 23486)]
    assert rows(tmp_store, "SELECT product_id FROM reviews WHERE product_id = '767' LIMIT 1") == [("767",)]


@pytest.mark.slow
def test_uci_online_retail_stores_every_invoice_line_and_its_revenue_to_the_cent(tmp_store):
    path = real_file("uci_online_retail", "online_retail_customers_sample40.csv")
    raw = read_upload(path.name, path.read_bytes())
    plan = prepare(tmp_store, raw, "events", {"StockCode": "product_id"}, {"event_name": "purchase"})
    assert {k: plan.mapping[k] for k in ("CustomerID", "InvoiceDate", "InvoiceNo", "Quantity", "UnitPrice")} == {
        "CustomerID": "user_id", "InvoiceDate": "ts", "InvoiceNo": "order_id", "Quantity": "quantity", "UnitPrice": "unit_price"}
    # Guest checkouts have no CustomerID: the only reason anything is refused.
    assert plan.rejected["reason"].unique().tolist() == ["user_id is empty"]
    assert len(plan.rejected) == 53560
    # An item listed twice on one invoice is kept: nothing is merged unless the user asks.
    assert len(plan.valid) == 215695 - 53560

    report = commit(tmp_store, plan, skip_invalid=True)
    assert report.reconciled
    # Independent check: pandas on the file itself.
    file = pd.read_csv(path, dtype={"InvoiceNo": str, "StockCode": str})
    file["revenue"] = file["Quantity"] * file["UnitPrice"]
    customers = file[file["CustomerID"].notna()]
    stored = rows(tmp_store, "SELECT count(*), count(DISTINCT user_id), sum(revenue), "
                             "count(*) FILTER (WHERE event_name = 'purchase'), count(*) FILTER (WHERE event_name = 'return') FROM events")[0]
    assert stored[:2] == (len(customers), customers["CustomerID"].nunique())
    assert round(stored[2], 2) == round(customers["revenue"].sum(), 2) == report.totals["stored"]["revenue"]
    assert round(file["revenue"].sum(), 2) == report.totals["file"]["revenue"]
    # Cancellations ("C…" invoices, negative quantities) are kept as returns, never purchases.
    cancelled = customers["Quantity"] < 0
    assert stored[3:] == (int((~cancelled).sum()), int(cancelled.sum()))
    assert customers.loc[cancelled, "InvoiceNo"].str.startswith("C").all()
    assert rows(tmp_store, "SELECT count(*) FROM events WHERE user_id LIKE '%.%'") == [(0,)]
    assert rows(tmp_store, "SELECT order_id, product_id, quantity FROM events WHERE user_id = '17850' ORDER BY ts, product_id LIMIT 1") == [
        ("536365", "21730", 6.0)]

    again = commit(tmp_store, prepare(tmp_store, raw, "events", {"StockCode": "product_id"}, {"event_name": "purchase"}), skip_invalid=True)
    assert (again.inserted, again.updated) == (0, len(customers))
    assert rows(tmp_store, "SELECT count(*) FROM events") == [(len(customers),)]
