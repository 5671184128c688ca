"""core.upload_reader: uploaded bytes become a table of raw cells, or one clear UploadError.

Bad files are built here from bytes, so each test shows exactly what a marketer uploaded.
What reaches the database is checked in test_ingest.py; these tests stop at the RawTable.
"""

from __future__ import annotations

import io
import json
import random
import zipfile

import pandas as pd
import pytest

from core.errors import UploadError
from core.upload_reader import format_size, read_upload, safe_file_name


def refused(name: str, data: bytes, **kwargs) -> UploadError:
    with pytest.raises(UploadError) as info:
        read_upload(name, data, **kwargs)
    return info.value


def records(raw) -> list[dict]:
    return raw.frame.to_dict("records")


def xlsx_bytes(frame: pd.DataFrame, **sheets: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    with pd.ExcelWriter(buf, engine="openpyxl") as writer:
        frame.to_excel(writer, sheet_name="Products", index=False)
        for name, extra in sheets.items():
            extra.to_excel(writer, sheet_name=name, index=False)
    return buf.getvalue()


# ---------------------------------------------------------------- empty, binary, too large


@pytest.mark.parametrize("data", [b"", b"  \n\r\n\t\n"], ids=["zero-bytes", "whitespace-only"])
def test_empty_file_is_refused(data):
    error = refused("catalog.csv", data)
    assert error.title == "Empty file"
    assert "catalog.csv is empty" in error.msg


def test_binary_garbage_named_csv_is_refused_as_not_text():
    garbage = random.Random(42).randbytes(4096)
    error = refused("catalog.csv", garbage)
    assert error.title == "Not a text file"
    assert "binary data" in error.msg


def test_header_only_file_is_refused():
    error = refused("catalog.csv", b"product_id,title,price\n")
    assert error.title == "No rows to import"
    assert "header but no data rows" in error.msg


def test_header_and_blank_lines_only_is_refused():
    assert refused("catalog.csv", b"product_id,title\n\n\n").title == "No rows to import"


def test_file_over_the_limit_is_refused_with_both_sizes():
    data = b"product_id,title\n" + b"P1,Bottle\n" * 300  # 3 KB
    error = refused("catalog.csv", data, max_bytes=1024)
    assert error.title == "File too large"
    assert "3 KB" in error.msg and "the limit is 1 KB" in error.msg
    assert "MARKETLAB_MAX_UPLOAD_MB" in error.msg


def test_file_at_the_limit_is_read():
    data = b"product_id,title\nP1,Bottle\n"
    assert len(read_upload("catalog.csv", data, max_bytes=len(data)).frame) == 1


def test_fractional_megabyte_limit_is_shown_as_such():
    # MARKETLAB_MAX_UPLOAD_MB=0.5 must not read "the limit is 0 MB".
    assert format_size(2**20 // 2) == "0.5 MB"
    assert format_size(200 * 2**20) == "200.0 MB"
    assert format_size(12) == "12 bytes"


# ---------------------------------------------------------------- encodings


def test_utf8_with_bom_is_read_and_bom_kept_out_of_the_header():
    raw = read_upload("catalog.csv", "product_id,title\nP1,Café crème\n".encode("utf-8-sig"))
    assert raw.encoding == "utf-8-sig"
    assert raw.columns == ["product_id", "title"]
    assert records(raw) == [{"product_id": "P1", "title": "Café crème"}]


def test_windows_1252_file_is_read():
    text = "product_id,title\nP1,Café crème\nP2,Crème brûlée — spécial «été»\n"
    raw = read_upload("catalog.csv", text.encode("cp1252"))
    assert raw.encoding == "cp1252"
    assert [r["title"] for r in records(raw)] == ["Café crème", "Crème brûlée — spécial «été»"]


def test_gb18030_file_is_read():
    # 保温水杯 in GB18030 contains a byte pair that is also valid UTF-8 (ˮ): the file must not
    # be mistaken for damaged UTF-8.
    text = "product_id,title\nP1,保温水杯\nP2,不锈钢保温杯\n"
    raw = read_upload("catalog.csv", text.encode("gb18030"))
    assert raw.encoding == "gb18030"
    assert [r["title"] for r in records(raw)] == ["保温水杯", "不锈钢保温杯"]


def test_utf16_file_with_bom_is_read():
    raw = read_upload("catalog.csv", "product_id,title\nP1,Café\n".encode("utf-16"))
    assert records(raw) == [{"product_id": "P1", "title": "Café"}]


def test_undecodable_bytes_in_a_utf8_file_are_reported_with_their_line():
    data = "product_id,title\nP1,Café crème\nP2,Crème brûlée\nP3,Tea \xff cup\n".encode("utf-8").replace(b"\xc3\xbf", b"\xff")
    error = refused("catalog.csv", data)
    assert error.title == "Undecodable text"
    assert "line 4" in error.msg and "0xff" in error.msg


def test_chosen_encoding_that_does_not_fit_names_the_line():
    data = "product_id,title\nP1,Bottle\nP2,Café\n".encode("cp1252")
    error = refused("catalog.csv", data, encoding="utf-8")
    assert error.title == "Wrong encoding"
    assert "line 3" in error.msg


def test_chosen_encoding_is_used_instead_of_detection():
    raw = read_upload("catalog.csv", "product_id,title\nP1,Café\n".encode("latin-1"), encoding="latin-1")
    assert raw.encoding == "latin-1"
    assert records(raw)[0]["title"] == "Café"


def test_unknown_encoding_name_is_refused():
    assert refused("catalog.csv", b"a\n1\n", encoding="klingon").title == "Wrong encoding"


# ---------------------------------------------------------------- delimiters, quoting, lines


@pytest.mark.parametrize(
    "name, data, delimiter",
    [
        ("export.csv", b"product_id;title;price\nP1;Tee, blue;12,50\n", ";"),
        ("export.csv", b"product_id\ttitle\tprice\nP1\tTee, blue\t12,50\n", "\t"),
        ("export.tsv", b"product_id\ttitle\tprice\nP1\tTee, blue\t12,50\n", "\t"),
        ("export.csv", b"product_id|title|price\nP1|Tee, blue|12,50\n", "|"),
    ],
    ids=["semicolon", "tab-in-csv", "tsv", "pipe"],
)
def test_delimiter_is_taken_from_the_header(name, data, delimiter):
    raw = read_upload(name, data)
    assert raw.delimiter == delimiter
    assert records(raw) == [{"product_id": "P1", "title": "Tee, blue", "price": "12,50"}]


def test_quoted_newlines_stay_in_the_cell_and_later_rows_keep_their_file_line():
    data = b'product_id,title,description\nP1,Tent,"Sleeps two.\nPacks small.\nWeighs 1.4 kg."\nP2,Hat,Wide brim\nP3,"Sock\npair",Wool\nP4,Cap,x\n'
    raw = read_upload("catalog.csv", data)
    assert raw.frame["description"].tolist()[0] == "Sleeps two.\nPacks small.\nWeighs 1.4 kg."
    assert raw.lines == [2, 5, 6, 8]


def test_crlf_file_with_quoted_newline_and_blank_line_keeps_file_lines():
    data = b'a,b\r\n1,"x\r\ny"\r\n2,3\r\n\r\n4,5\r\n'
    raw = read_upload("data.csv", data)
    assert raw.lines == [2, 4, 6]
    assert records(raw)[2] == {"a": "4", "b": "5"}


def test_blank_lines_are_dropped_but_line_numbers_still_point_into_the_file():
    raw = read_upload("data.csv", b"a,b\n1,2\n\n,\n3,4\n")
    assert records(raw) == [{"a": "1", "b": "2"}, {"a": "3", "b": "4"}]
    assert raw.lines == [2, 5]


def test_cells_stay_text_and_empty_cells_become_none():
    raw = read_upload("data.csv", b"id,price,note\n17850.0,$12.50,\n")
    assert records(raw) == [{"id": "17850.0", "price": "$12.50", "note": None}]


def test_row_with_too_many_fields_is_set_aside_at_its_file_line():
    # The bad row starts on line 4: the quoted newline in line 2 must not shift the count.
    raw = read_upload("data.csv", b'a,b\n1,"x\ny"\n2,3,4\n5,6\n')
    assert records(raw) == [{"a": "1", "b": "x\ny"}, {"a": "5", "b": "6"}]
    assert raw.lines == [2, 5]
    assert [(line, reason) for line, reason, _ in raw.ragged] == [
        (4, "line 4 has 3 fields, the header has 2 — is there an unquoted comma?")]
    assert raw.rows_in_file == 3


def test_an_unquoted_comma_never_shifts_columns():
    # pandas made the first column an index when the first data row had one field too many.
    raw = read_upload("catalog.csv", b"product_id,title,price\nP1,Trail bottle, 750 ml,12.50\nP2,Cap,9.00\n")
    assert records(raw) == [{"product_id": "P2", "title": "Cap", "price": "9.00"}]
    assert raw.ragged[0][:2] == (2, "line 2 has 4 fields, the header has 3 — is there an unquoted comma?")
    assert raw.ragged[0][2] == "P1,Trail bottle, 750 ml,12.50"


def test_short_rows_are_refused_not_padded():
    raw = read_upload("data.csv", b"a,b,c\n1,2,3\n4,5\n")
    assert records(raw) == [{"a": "1", "b": "2", "c": "3"}]
    assert raw.ragged[0][1] == "line 3 has 2 fields, the header has 3 — are values missing at the end of the line?"


def test_trailing_delimiters_are_not_ragged():
    raw = read_upload("data.csv", b"a,b\n1,2,\n3,4,,\n")
    assert records(raw) == [{"a": "1", "b": "2"}, {"a": "3", "b": "4"}] and not raw.ragged


def test_space_aligned_report_is_read_by_columns():
    # CDNOW as published: a header, then columns padded with spaces.
    text = b"customer_id   date      quantity   amount\n   00001  19970101    1   11.77\n   00002  19970112    5   77.00\n"
    raw = read_upload("cdnow.txt", text)
    assert raw.columns == ["customer_id", "date", "quantity", "amount"]
    assert records(raw)[1] == {"customer_id": "00002", "date": "19970112", "quantity": "5", "amount": "77.00"}
    assert raw.delimiter == " " and "space-aligned" in raw.warnings[0]


def test_one_column_file_says_its_delimiter_was_not_found():
    raw = read_upload("odd.csv", b"user_id:date:amount\nu1:2024-01-01:3\n")
    assert raw.columns == ["user_id:date:amount"] and not raw.warnings
    raw = read_upload("odd.csv", b"user id date amount\nu1 2024-01-01\n")
    assert "read as one column" in raw.warnings[0]


def test_headers_are_cleaned_blank_and_index_columns_named():
    raw = read_upload("data.csv", b'\xef\xbb\xbf,  Product Name ,Unnamed: 2\n0,Tent,x\n')
    assert raw.columns == ["column_1", "Product Name", "column_3"]


# ---------------------------------------------------------------- spreadsheets


def test_xlsx_is_read_with_spreadsheet_row_numbers():
    frame = pd.DataFrame({"product_id": ["P1", None, "P2"], "title": ["Tent", None, "Hat"], "price": [189.0, None, 12.5]})
    raw = read_upload("catalog.xlsx", xlsx_bytes(frame))
    assert raw.format == "xlsx"
    assert records(raw) == [{"product_id": "P1", "title": "Tent", "price": 189.0}, {"product_id": "P2", "title": "Hat", "price": 12.5}]
    assert raw.lines == [2, 4]  # the empty spreadsheet row 3 is skipped, not renumbered


def test_xlsx_with_several_sheets_reads_the_first_and_says_so():
    frame = pd.DataFrame({"product_id": ["P1"], "title": ["Tent"]})
    raw = read_upload("catalog.xlsx", xlsx_bytes(frame, Notes=pd.DataFrame({"x": [1]})))
    assert records(raw) == [{"product_id": "P1", "title": "Tent"}]
    assert raw.warnings == ["Read the first sheet, 'Products'; 1 other sheet(s) ignored."]


def test_xlsx_renamed_csv_is_refused_with_what_to_do():
    data = xlsx_bytes(pd.DataFrame({"product_id": ["P1"], "title": ["Tent"]}))
    error = refused("catalog.csv", data)
    assert error.title == "Unexpected file type"
    assert "not CSV text" in error.msg and ".xlsx" in error.msg


def test_xlsx_that_would_inflate_far_past_the_limit_is_refused_before_parsing(monkeypatch):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/worksheets/sheet1.xml", b"\0" * (8 * 2**20))  # compresses to ~8 KB
    data = buf.getvalue()
    assert len(data) < 64 * 1024

    def must_not_parse(*args, **kwargs):
        raise AssertionError("the workbook was parsed")

    monkeypatch.setattr(pd, "read_excel", must_not_parse)
    error = refused("bomb.xlsx", data, max_bytes=64 * 1024)
    assert error.title == "File too large"
    assert "would expand to 8 MB" in error.msg


def test_damaged_xlsx_is_refused():
    assert refused("catalog.xlsx", b"PK\x03\x04 not really a zip").title == "Damaged file"


def test_csv_text_renamed_xlsx_is_refused():
    error = refused("catalog.xlsx", b"product_id,title\nP1,Tent\n")
    assert error.title == "Damaged file"
    assert "does not contain xlsx data" in error.msg


def test_old_xls_is_refused_with_what_to_do():
    error = refused("catalog.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512)
    assert error.title == "Unsupported file type"
    assert "Save it as .xlsx or CSV" in error.msg


def test_unknown_extension_is_refused_listing_supported_types():
    error = refused("catalog.pdf", b"%PDF-1.4 ...")
    assert error.title == "Unsupported file type"
    assert ".csv" in error.msg and ".parquet" in error.msg


# ---------------------------------------------------------------- JSON, JSON Lines, Parquet


def test_json_array_of_objects_keeps_native_types():
    raw = read_upload("catalog.json", json.dumps([{"product_id": "P1", "price": 12.5}, {"product_id": "P2", "price": None}]).encode())
    assert raw.format == "json"
    assert records(raw) == [{"product_id": "P1", "price": 12.5}, {"product_id": "P2", "price": None}]
    assert raw.lines == [1, 2]  # record numbers


def test_json_object_wrapping_one_array_is_read():
    data = json.dumps({"meta": {"page": 1}, "products": [{"product_id": "P1"}, {"product_id": "P2"}]}).encode()
    assert records(read_upload("catalog.json", data)) == [{"product_id": "P1"}, {"product_id": "P2"}]


def test_json_nested_values_stay_json_text():
    data = json.dumps([{"product_id": "P1", "tags": ["a", "b"], "size": {"ml": 750}}]).encode()
    assert records(read_upload("catalog.json", data)) == [{"product_id": "P1", "tags": '["a", "b"]', "size": '{"ml": 750}'}]


@pytest.mark.parametrize(
    "data, expected",
    [
        (b'[{"a": 1},', "is not valid JSON (line 1"),
        (b'{"a": [{"x": 1}], "b": [{"y": 2}]}', "expected a JSON array of objects"),
        (b'"just text"', "expected a JSON array of objects"),
        (b"[1, 2]", "record 1 is not an object"),
        (b"[]", "holds an empty list"),
        (b"[" * 100_000, "nested too deeply"),  # would otherwise escape as a RecursionError
    ],
    ids=["truncated", "two-arrays", "scalar", "not-objects", "empty-list", "nested-too-deep"],
)
def test_json_that_is_not_a_list_of_objects_is_refused(data, expected):
    assert expected in refused("catalog.json", data).msg


def test_json_lines_skip_blank_lines_and_number_records_by_file_line():
    raw = read_upload("events.jsonl", b'{"user_id": "U1"}\n\n{"user_id": "U2"}\n')
    assert raw.format == "jsonl"
    assert records(raw) == [{"user_id": "U1"}, {"user_id": "U2"}]
    assert raw.lines == [1, 3]


def test_json_lines_bad_line_is_reported_by_number():
    error = refused("events.jsonl", b'{"user_id": "U1"}\n{"user_id": "U2"}\n\n{"user_id": U3}\n')
    assert error.title == "Malformed JSON Lines"
    assert "line 4 is not valid JSON" in error.msg


def test_json_lines_nested_too_deeply_is_reported_by_line():
    error = refused("events.jsonl", b'{"a": 1}\n' + b'{"a":' * 100_000 + b"\n")
    assert error.title == "Malformed JSON Lines"
    assert "line 2 is nested too deeply" in error.msg


def test_json_lines_record_that_is_not_an_object_is_reported_by_line():
    assert "line 2 is not an object" in refused("events.ndjson", b'{"a": 1}\n[1, 2]\n').msg


def test_parquet_is_read_with_native_types():
    buf = io.BytesIO()
    pd.DataFrame({"product_id": ["P1", "P2"], "price": [12.5, 3.0]}).to_parquet(buf)
    raw = read_upload("catalog.parquet", buf.getvalue())
    assert raw.format == "parquet"
    assert raw.frame["price"].tolist() == [12.5, 3.0]
    assert raw.lines == [1, 2]


def test_parquet_renamed_csv_is_read_by_its_signature():
    buf = io.BytesIO()
    pd.DataFrame({"product_id": ["P1"]}).to_parquet(buf)
    assert read_upload("catalog.csv", buf.getvalue()).format == "parquet"


def test_damaged_parquet_is_refused():
    assert refused("catalog.parquet", b"PAR1 truncated").title == "Damaged file"


# ---------------------------------------------------------------- identity


def test_file_name_is_reduced_to_a_printable_base_name():
    assert safe_file_name("../../etc/passwd.csv") == "passwd.csv"
    assert safe_file_name("C:\\Users\\ana\\Desktop\\orders\x07.csv") == "orders.csv"
    assert safe_file_name("") == "upload"


def test_sha256_identifies_the_bytes():
    a = read_upload("a.csv", b"x\n1\n")
    assert a.sha256 == read_upload("renamed.csv", b"x\n1\n").sha256
    assert a.sha256 != read_upload("a.csv", b"x\n2\n").sha256


def test_the_page_the_cli_and_the_messages_accept_the_same_suffixes() -> None:
    """One table of formats (issue 17): .tab was taken by the CLI and refused by the page's uploader."""
    from core.upload_reader import EXTENSIONS, FORMAT_NAMES, UPLOAD_SUFFIXES

    assert {f".{s}" for s in UPLOAD_SUFFIXES} == set(EXTENSIONS) and "tab" in UPLOAD_SUFFIXES
    assert FORMAT_NAMES == "CSV, TSV, Excel, JSON, JSON Lines or Parquet"
    with pytest.raises(UploadError, match=r"Supported: \.csv, \.txt, \.tsv, \.tab"):
        read_upload("catalog.numbers", b"a,b\n1,2\n")
