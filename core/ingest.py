"""Uploaded file -> validated rows -> one transaction -> IngestReport.

    raw = read_upload(name, data)                     # core/upload_reader.py
    plan = prepare(store, raw, "products", mapping)   # every row: insert, update or reject (with why)
    report = commit(store, plan)                      # all or nothing; or skip_invalid=True

Nothing is written by ``prepare``. ``commit`` refuses a plan with rejected rows unless the
caller chose ``skip_invalid``, and writes everything else in one transaction, so a rejected or
failed upload changes nothing. Re-uploading a file updates the rows it wrote before.

Events are stored one per row of the file, never merged: each row's key is its own identity
(content and repeat number), and the report states the file's totals (rows, users, purchases,
returns, revenue) beside what was stored and what was not, which add up to the cent.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from core.contracts import ATTRIBUTE, IGNORE, TableContract, contract, normalise_name, resolve_mapping
from core.errors import MappingError, QueryError, StoreError, UploadError
from core.store import Store, quote_ident
from core.upload_reader import RawTable, format_size, line_list, read_upload, safe_file_name

# Typed cells that exports write for "no value".
MISSING_TOKENS = ("", "na", "n/a", "nan", "null", "none", "nat", "-")
CURRENCY_SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY", "₹": "INR"}
EARLIEST, LATEST = pd.Timestamp("1970-01-01"), pd.Timestamp("2100-01-01")
REPORTED_REJECTIONS = 50  # in the JSON report; the full list is downloadable
PURCHASE_EVENT = "purchase"  # the event name funnels and RFM count as an order (features.EventNames)
RETURN_EVENT = "return"  # what a purchase row with a negative quantity or revenue is stored as
LEGACY_EVENT_KEY = ("user_id", "ts", "event_name", "product_id")
# What to do with a price cell that is not one number (marketplace scrapes: "$74.99 - $249.99",
# "Total price:"): "reject" (the default: a shop's own export with a broken price should say so)
# refuses the row and says which options would keep it; "lowest" takes a range's lowest price and
# imports other unreadable prices without a price; "none" imports every one without a price.
# The text as listed is kept in the product's attributes whenever it is not stored as the price.
PRICE_POLICIES = ("reject", "lowest", "none")
PRICE_POLICY_LABELS = {
    "reject": "Refuse the product",
    "lowest": "Take the lowest price of a range; import the others without a price",
    "none": "Import without a price",
}
_PRICE_RANGE = re.compile(r"^\s*([$€£¥₹]?\s*\d[\d,]*(?:\.\d+)?)\s*[-–]\s*([$€£¥₹]?\s*\d[\d,]*(?:\.\d+)?)\s*$")
# A breadcrumb category ("Toys & Games | Building Toys | Building Sets"): top level + full path.
_CATEGORY_PATH = re.compile(r"\s+(?:\||>|›|»)\s+")
# Sentences a marketplace adds to every listing: not the product's description.
MARKETPLACE_BOILERPLATE = ("Make sure this fits by entering your model number.",)
_BOILERPLATE = re.compile(r"\s*(?:" + "|".join(re.escape(b) for b in MARKETPLACE_BOILERPLATE) + r")\s*(?:\|\s*)?")


class InvalidRowsError(UploadError):
    """The file has invalid rows and the user did not choose to skip them. Nothing was written."""

    default_title = "Nothing was imported"

    def __init__(self, msg: str, report: "IngestReport") -> None:
        super().__init__(msg)
        self.report = report


@dataclass
class IngestReport:
    table: str
    file: str
    format: str
    rows: int
    inserted: int
    updated: int
    rejected: int
    committed: bool
    skipped_invalid: bool = False
    encoding: str | None = None
    delimiter: str | None = None
    mapping: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    rejections: list[dict[str, object]] = field(default_factory=list)  # first REPORTED_REJECTIONS
    # Events: what the file holds, what was stored, and what was not (rejected or dropped rows):
    # rows, users, purchases, returns, revenue. file = stored + not_stored, to the cent.
    totals: dict[str, dict[str, float]] = field(default_factory=dict)
    duplicates: int = 0  # rows that repeat an earlier row of the file exactly
    dropped_duplicates: int = 0  # of those, dropped at the user's request

    @property
    def reconciled(self) -> bool:
        """Stored plus not stored equals the file, row for row and cent for cent."""
        file, stored, rest = (self.totals.get(k, {}) for k in ("file", "stored", "not_stored"))
        if not stored:
            return True
        return all(abs(file.get(k, 0) - stored.get(k, 0) - rest.get(k, 0)) < 0.005 for k in ("rows", "purchases", "returns", "revenue"))

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class IngestPlan:
    """What committing would do, row by row. ``valid`` holds contract columns plus _line and _action."""

    table: str
    raw: RawTable
    mapping: dict[str, str]
    valid: pd.DataFrame
    rejected: pd.DataFrame  # line, reason, then the file's own columns
    warnings: list[str]
    totals: dict[str, dict[str, float]] = field(default_factory=dict)  # "file" and "not_stored" (events)
    duplicates: int = 0
    dropped_duplicates: int = 0

    @property
    def inserted(self) -> int:
        return int((self.valid["_action"] == "insert").sum())

    @property
    def updated(self) -> int:
        return int((self.valid["_action"] == "update").sum())

    def rows(self) -> pd.DataFrame:
        """Every row of the file with its fate, in file order: line, action, reason, mapped values."""
        shown = [c for c in contract(self.table).field_names if c in self.valid.columns]
        ok = self.valid[["_line", "_action", *shown]].rename(columns={"_line": "line", "_action": "action"})
        ok.insert(2, "reason", None)
        bad = self.rejected[["line", "reason"]].assign(action="reject")
        return pd.concat([ok, bad], ignore_index=True).sort_values("line", kind="stable").reset_index(drop=True)

    def report(self, *, committed: bool = False, skipped_invalid: bool = False,
               stored: dict[str, float] | None = None) -> IngestReport:
        totals = dict(self.totals)
        if stored is not None:
            totals["stored"] = stored
        return IngestReport(
            table=self.table,
            file=self.raw.file_name,
            format=self.raw.format,
            rows=self.raw.rows_in_file,
            inserted=self.inserted,
            updated=self.updated,
            rejected=len(self.rejected),
            committed=committed,
            skipped_invalid=skipped_invalid,
            encoding=self.raw.encoding,
            delimiter=self.raw.delimiter,
            mapping=dict(self.mapping),
            warnings=[*self.raw.warnings, *self.warnings],
            rejections=[
                {"line": int(r.line), "reason": r.reason}
                for r in self.rejected.head(REPORTED_REJECTIONS).itertuples()
            ],
            totals=totals,
            duplicates=self.duplicates,
            dropped_duplicates=self.dropped_duplicates,
        )


# ---------------------------------------------------------------- column parsers
# Each takes a column as the file gave it and returns (values, errors): errors holds a reason
# for cells that cannot be read and None elsewhere. Missing cells are not errors here;
# required-ness is checked once, afterwards.


def _text(column: pd.Series) -> pd.Series:
    """Strings (pandas "string" dtype, missing as NA), whatever the file's typing: CSV text, JSON, Parquet.

    Vectorised on purpose: a per-cell Python function made a 1M-row log take ~15 s to check.
    """
    if pd.api.types.is_float_dtype(column) and column.dropna().mod(1).eq(0).all():
        column = column.astype("Int64")  # 17850.0 read by a spreadsheet is the id 17850
    if pd.api.types.is_object_dtype(column) and not column.map(lambda v: v is None or isinstance(v, str)).all():
        column = column.map(lambda v: v if v is None or isinstance(v, str) else str(v))  # mixed JSON cells
    return column.astype("string")


def _show(value: object, limit: int = 60) -> str:
    """A cell quoted for a message, cut short: one bad cell can hold a whole web page."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _missing_as_none(values: pd.Series) -> pd.Series:
    """Stripped strings; the tokens exports write for "no value" become NA."""
    stripped = values.str.strip()
    return stripped.mask(stripped.str.lower().isin(MISSING_TOKENS))


def _no_errors(index: pd.Index) -> pd.Series:
    return pd.Series(None, index=index, dtype=object)


def parse_id(column: pd.Series) -> tuple[pd.Series, pd.Series]:
    values = _missing_as_none(_text(column))
    present = values.dropna()
    # "17850.0": a numeric id that passed through a spreadsheet; only when the whole column is so.
    if len(present) and present.str.fullmatch(r"-?\d+\.0+").all():
        values = values.str.replace(r"\.0+$", "", regex=True)
    return values, _no_errors(column.index)


def parse_text(column: pd.Series) -> tuple[pd.Series, pd.Series]:
    values = _text(column).str.strip()
    return values.mask(values == ""), _no_errors(column.index)


def parse_number(column: pd.Series, name: str, *, minimum: float | None = None) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Numbers from text like '$1,299.00', '12,50', '€ 30'. Also returns the currency symbol seen."""
    symbols = _no_errors(column.index)
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        values = column.astype(float)
        errors = _no_errors(column.index)
        # Parquet can hold inf, which DuckDB would store as a price; text "inf" is refused below too.
        infinite = pd.Series(np.isinf(values.to_numpy()), index=column.index)
        errors[infinite] = [f"{name}: {v} is not a number" for v in values[infinite]]
        values[infinite] = np.nan
    else:
        text = _missing_as_none(_text(column))
        s = text.astype("string")
        symbols = s.str.extract(r"([$€£¥₹])", expand=False).astype(object)
        cleaned = s.str.replace(r"[$€£¥₹\s]|\b(?:USD|EUR|GBP|JPY|INR)\b", "", regex=True)
        thousands = cleaned.str.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?").fillna(False)
        cleaned = cleaned.where(~thousands, cleaned.str.replace(",", "", regex=False))
        decimal_comma = cleaned.str.fullmatch(r"-?\d+,\d{1,2}").fillna(False)
        cleaned = cleaned.where(~decimal_comma, cleaned.str.replace(",", ".", regex=False))
        values = pd.to_numeric(cleaned.astype(object), errors="coerce").astype(float)
        bad = text.notna() & (values.isna() | ~np.isfinite(values.fillna(0)))
        errors = _no_errors(column.index)
        errors[bad] = [f"{name}: {_show(v)} is not a number" for v in text[bad]]
        values[bad] = np.nan
    if minimum is not None:
        low = values < minimum
        errors[low] = [f"{name} must not be negative (got {v:g})" for v in values[low]]
        values[low] = np.nan
    return values, errors, symbols


def parse_rating(column: pd.Series, name: str) -> tuple[pd.Series, pd.Series]:
    values, errors, _ = parse_number(column, name)
    bad = values.notna() & ((values % 1 != 0) | (values < 1) | (values > 5))
    errors[bad] = [f"{name} must be a whole number from 1 to 5 (got {v:g})" for v in values[bad]]
    values[bad] = np.nan
    return values.astype("Int64"), errors


def _epoch_unit(magnitude: float) -> str:
    # Seconds since 1970 are ~1e9 today; ms ~1e12, µs ~1e15, ns ~1e18.
    return "s" if magnitude < 1e11 else "ms" if magnitude < 1e14 else "us" if magnitude < 1e17 else "ns"


def _day_first(text: pd.Series) -> bool:
    """dd-mm-yyyy vs mm-dd-yyyy, decided per column: day-first only when some first part exceeds 12."""
    parts = text.str.extract(r"^\s*(\d{1,2})[-/.](\d{1,2})[-/.]\d{2,4}")
    first, second = pd.to_numeric(parts[0], errors="coerce"), pd.to_numeric(parts[1], errors="coerce")
    return bool((first > 12).any() and not (second > 12).any())


def parse_timestamp(column: pd.Series, name: str) -> tuple[pd.Series, pd.Series]:
    """UTC timestamps without zone, from datetimes, epoch numbers or text in common layouts."""
    errors = _no_errors(column.index)
    if pd.api.types.is_datetime64_any_dtype(column):
        parsed = pd.to_datetime(column, utc=True)
        text = None
    elif pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        unit = _epoch_unit(float(column.abs().median())) if column.notna().any() else "s"
        parsed = pd.to_datetime(column, unit=unit, utc=True, errors="coerce")
        text = _text(column)
    else:
        text = _missing_as_none(_text(column))
        s = text.astype("string").str.replace(r"\s*UTC$", "", regex=True)
        numeric = s.str.fullmatch(r"-?\d{9,19}(?:\.\d+)?").fillna(False)
        if text.notna().any() and numeric[text.notna()].all():
            as_number = pd.to_numeric(s.astype(object), errors="coerce")
            parsed = pd.to_datetime(as_number, unit=_epoch_unit(float(as_number.abs().median())), utc=True, errors="coerce")
        else:
            parsed = pd.to_datetime(s.astype(object), errors="coerce", utc=True, format="ISO8601")
            rest = parsed.isna() & s.notna()
            if rest.any():
                parsed[rest] = pd.to_datetime(
                    s[rest].astype(object), errors="coerce", utc=True, format="mixed", dayfirst=_day_first(s[rest])
                )
    parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[us]")
    if text is not None:
        bad = text.notna() & parsed.isna()
        errors[bad] = [f"{name}: {_show(v)} is not a date and time" for v in text[bad]]
    out_of_range = parsed.notna() & ((parsed < EARLIEST) | (parsed >= LATEST))
    errors[out_of_range] = [f"{name}: {v} is outside 1970–2099" for v in parsed[out_of_range]]
    parsed[out_of_range] = pd.NaT
    return parsed, errors


# ---------------------------------------------------------------- prepare


def _attributes_json(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """One JSON object per row from the columns mapped to attributes, skipping empty cells."""
    if not columns:
        return pd.Series(None, index=frame.index, dtype=object)
    texts = {c: _text(frame[c]) for c in columns}

    def row_json(i: int) -> str | None:
        attrs: dict[str, object] = {}
        for c in columns:
            value = texts[c].iat[i]
            if pd.isna(value) or value == "":
                continue
            if normalise_name(c) == "attributes" and value.startswith("{"):
                try:  # our own JSON export round-trips: nested attributes merge, not nest
                    attrs.update(json.loads(value))
                    continue
                except json.JSONDecodeError:
                    pass
            attrs[c] = value
        return json.dumps(attrs, ensure_ascii=False) if attrs else None

    return pd.Series([row_json(i) for i in range(len(frame))], index=frame.index, dtype=object)


def _content_key(frame: pd.DataFrame, columns: list[str], prefix: str) -> pd.Series:
    """A stable id from the row's values, so re-uploading a file without ids is idempotent."""
    joined = frame[columns].apply(lambda col: col.map(str)).agg("\x1f".join, axis=1)
    return joined.map(lambda s: prefix + hashlib.sha1(s.encode("utf-8")).hexdigest()[:16])


def _parse(
    raw: RawTable, spec: TableContract, mapping: dict[str, str], constants: dict[str, str]
) -> tuple[pd.DataFrame, pd.Series, list[str]]:
    """Contract columns and a reason (or None) per row."""
    frame = raw.frame
    by_field = {target: source for source, target in mapping.items() if target in spec.field_names}
    out = pd.DataFrame(index=frame.index)
    reasons: list[pd.Series] = []
    warnings: list[str] = []
    symbols = None
    for fld in spec.fields:
        source = by_field.get(fld.name)
        if source is not None:
            column = frame[source]
        elif constants.get(fld.name):
            column = pd.Series(constants[fld.name], index=frame.index, dtype=object)
        else:
            out[fld.name] = None
            continue
        if fld.kind == "id":
            values, errors = parse_id(column)
        elif fld.kind == "text":
            values, errors = parse_text(column)
        elif fld.kind == "money":
            values, errors, symbols = parse_number(column, fld.name, minimum=0)
        elif fld.kind == "number":
            values, errors, _ = parse_number(column, fld.name)
        elif fld.kind == "rating":
            values, errors = parse_rating(column, fld.name)
        elif fld.kind == "timestamp":
            values, errors = parse_timestamp(column, fld.name)
        else:  # pragma: no cover - contracts are static
            raise AssertionError(fld.kind)
        out[fld.name] = values
        reasons.append(errors)
        if fld.required:
            missing = values.isna() & errors.isna()
            reasons.append(pd.Series(np.where(missing, f"{fld.name} is empty", None), index=frame.index, dtype=object))
    if "currency" in spec.field_names and "currency" not in by_field and symbols is not None and symbols.notna().any():
        out["currency"] = symbols.map(CURRENCY_SYMBOLS.get)
        warnings.append("Currency taken from the price's symbol.")
    if spec.has_attributes:
        out["attributes"] = _attributes_json(frame, [s for s, t in mapping.items() if t == ATTRIBUTE])
    reason = _no_errors(frame.index)
    if reasons:
        table = pd.concat(reasons, axis=1)
        bad = table.notna().any(axis=1)  # join only the failing rows: most rows have no reason
        if bad.any():  # apply() on no rows gives an empty float Series, which turns every None into NaN
            reason[bad] = table[bad].apply(lambda row: "; ".join(r for r in row if isinstance(r, str)), axis=1)
    return out, reason, warnings


def _check_duplicates(out: pd.DataFrame, reason: pd.Series, lines: pd.Series, spec: TableContract) -> pd.Series:
    """Reasons with every row that shares its key with another row of the file rejected.

    A file that lists one id twice is ambiguous: which row is right? Reject both, say where.
    (Events never get here: each row is its own key. Reviews without ids get one from their
    line, so none repeat.)
    """
    key = list(spec.key)
    dup = out.duplicated(subset=key, keep=False) & out[key[0]].notna()
    if dup.any():
        all_lines = lines[dup].groupby(out.loc[dup, key[0]]).agg(lambda s: line_list(list(s)))
        for idx in out.index[dup]:
            kid = out.at[idx, key[0]]
            message = f"duplicate {key[0]} {_show(kid)} in this file (lines {all_lines[kid]})"
            reason[idx] = message if pd.isna(reason[idx]) else f"{reason[idx]}; {message}"
    return reason


def _row_identity(raw: RawTable) -> tuple[pd.Series, pd.Series]:
    """Each row's own identity (a hash of every cell, by column name) and which repeat of it it is.

    Two real purchases can share user, time, product and price; they cannot share a line. But a
    line number changes when a file is re-exported with rows added, so the identity is the row's
    content plus its repeat number: re-uploading the file (or a longer export of it) finds the same
    keys, and rows that repeat exactly stay separate events. Hashed by DuckDB (MD5 of the cells as
    text): 1M rows in about a second, where pandas string joins and a Python hash took 9 s.
    """
    frame = raw.frame
    columns = sorted(map(str, frame.columns))
    cells = ", ".join(f"coalesce(CAST({quote_ident(c)} AS VARCHAR), chr(0))" for c in columns)
    named = "\x1e".join(columns)
    staged = frame.set_axis(list(map(str, frame.columns)), axis=1).assign(_pos=np.arange(len(frame)))
    con = duckdb.connect()  # private and in memory: hashing needs no store
    try:
        con.register("_rows", staged)
        digest, repeat = con.execute(
            f"SELECT d, row_number() OVER (PARTITION BY d ORDER BY _pos) - 1 FROM "
            f"(SELECT _pos, md5(concat_ws(chr(31), ?, {cells})) AS d FROM _rows) ORDER BY _pos",
            [named],
        ).fetchnumpy().values()
    finally:
        con.close()
    repeat = pd.Series(np.asarray(repeat, dtype=np.int64), index=frame.index)
    digest = pd.Series(np.asarray(digest, dtype=object), index=frame.index).str[:24]
    key = "E" + digest + np.where(repeat > 0, "-" + repeat.astype(str), "")
    return pd.Series(key, index=frame.index), repeat


def event_totals(frame: pd.DataFrame) -> dict[str, float]:
    """Rows, distinct users, purchases, returns and net revenue of event rows (contract columns)."""
    if frame.empty:
        return {"rows": 0, "users": 0, "purchases": 0, "returns": 0, "revenue": 0.0}
    name = frame["event_name"]
    return {
        "rows": len(frame),
        "users": int(frame["user_id"].dropna().nunique()),
        "purchases": int((name == PURCHASE_EVENT).sum()),
        "returns": int((name == RETURN_EVENT).sum()),
        "revenue": round(float(pd.to_numeric(frame["revenue"], errors="coerce").fillna(0).sum()), 2),
    }


def _add_attributes(out: pd.DataFrame, extra: dict[str, pd.Series]) -> None:
    """Merge per-row values (NA: nothing to add) into the rows' attributes JSON."""
    rows = pd.concat(extra, axis=1)
    rows = rows[rows.notna().any(axis=1)]
    for idx, values in rows.iterrows():
        current = out.at[idx, "attributes"]
        attrs = json.loads(current) if isinstance(current, str) and current else {}
        attrs.update({k: v for k, v in values.items() if isinstance(v, str)})
        out.at[idx, "attributes"] = json.dumps(attrs, ensure_ascii=False)


def _prepare_products(raw: RawTable, mapping: dict[str, str], out: pd.DataFrame, reason: pd.Series, policy: str) -> list[str]:
    """Marketplace catalogs import whole: price ranges, breadcrumb categories, listing boilerplate."""
    if policy not in PRICE_POLICIES:
        raise UploadError(f"Unreadable prices: choose one of {', '.join(PRICE_POLICIES)}, not {policy!r}.", title="Invalid option")
    warnings: list[str] = []
    extra: dict[str, pd.Series] = {}
    by_field = {t: s for s, t in mapping.items()}
    price_source = by_field.get("price")
    if price_source is not None and policy == "reject":
        failed = reason.fillna("").str.contains("price: ", regex=False)
        if failed.any():
            warnings.append(f"{int(failed.sum()):,} product(s) have a price that is not one number (e.g. a range such as "
                            "'$74.99 - $249.99'). To keep them, choose to take the lowest price of a range or to import "
                            "them without a price (--unreadable-price lowest|none).")
    # Text cells only: a number column (Parquet, Excel) holding inf is a broken value, not a listing.
    if price_source is not None and policy != "reject" and not pd.api.types.is_numeric_dtype(raw.frame[price_source]):
        listed = _missing_as_none(_text(raw.frame[price_source]))
        failed = reason.fillna("").str.contains("price: ", regex=False) & listed.notna()
        if failed.any():
            ranges = listed[failed].str.extract(_PRICE_RANGE)
            lowest = pd.Series(np.nan, index=ranges.index)
            if policy == "lowest":
                low, _, _ = parse_number(ranges[0], "price")
                high, _, _ = parse_number(ranges[1], "price")
                lowest = pd.concat([low, high], axis=1).min(axis=1, skipna=False)
            out.loc[failed, "price"] = lowest
            extra["price_as_listed"] = listed.where(failed)
            # Only the price made these rows invalid: clear that part of the reason.
            kept = reason[failed].str.split("; ").map(lambda parts: [r for r in parts if not r.startswith("price: ")])
            reason[failed] = kept.map(lambda parts: "; ".join(parts) if parts else None)
            took, without = int(lowest.notna().sum()), int(lowest.isna().sum())
            if took:
                warnings.append(f"{took:,} price(s) were ranges such as {listed[failed][lowest.notna()].iloc[0]!r}: the lowest price "
                                "was taken; the price as listed is kept in the attribute price_as_listed.")
            if without:
                warnings.append(f"{without:,} product(s) have a price that is not one number (e.g. {_show(listed[failed][lowest.isna()].iloc[0])}): "
                                "imported without a price, the text kept in the attribute price_as_listed.")
    if out["category"].notna().any():
        parts = out["category"].str.split(_CATEGORY_PATH, regex=True)
        is_path = parts.str.len().fillna(0) > 1
        if is_path.any():
            before = out["category"].nunique()
            extra["category_path"] = out["category"].where(is_path)
            out.loc[is_path, "category"] = parts[is_path].str[0]
            warnings.append(f"{int(is_path.sum()):,} categories are paths such as {extra['category_path'].dropna().iloc[0]!r}: "
                            f"the top level is stored as the category ({out['category'].nunique():,} distinct instead of {before:,}), "
                            "the full path in the attribute category_path.")
    if out["description"].notna().any():
        cleaned = out["description"].str.replace(_BOILERPLATE, " ", regex=True).str.strip().str.strip("| ").str.strip()
        changed = out["description"].notna() & (cleaned != out["description"])
        if changed.any():
            extra["description_as_listed"] = out["description"].where(changed)
            out.loc[changed, "description"] = cleaned[changed].mask(cleaned[changed] == "")
            warnings.append(f"Marketplace boilerplate ({MARKETPLACE_BOILERPLATE[0]!r}) removed from {int(changed.sum()):,} "
                            "description(s); the text as listed is kept in the attribute description_as_listed.")
    if extra:
        _add_attributes(out, extra)
    return warnings


TOTALS_LABELS = {"file": "In the file", "stored": "Stored", "not_stored": "Not stored (rejected or dropped)"}


def totals_table(totals: dict[str, dict[str, float]]) -> pd.DataFrame:
    """The report's totals as a small table for people: one row each for the file, stored, not stored."""
    shown = [(TOTALS_LABELS[k], totals[k]) for k in TOTALS_LABELS if totals.get(k)]
    return pd.DataFrame(
        [{"": label, "Rows": int(t["rows"]), "Users": int(t["users"]), "Purchases": int(t["purchases"]),
          "Returns": int(t["returns"]), "Revenue": round(float(t["revenue"]), 2)} for label, t in shown]
    )


def _prepare_events(raw: RawTable, out: pd.DataFrame, drop_duplicates: bool) -> tuple[pd.DataFrame, list[str], pd.Series]:
    """Order-log rules: revenue from quantity × unit price, returns marked, one event per row.

    Returns the rows with their ``row_key``, the notes for the report, and which rows repeat an
    earlier row of the file exactly.
    """
    warnings: list[str] = []
    computed = out["revenue"].isna() & out["quantity"].notna() & out["unit_price"].notna()
    if computed.any():
        out.loc[computed, "revenue"] = out.loc[computed, "quantity"] * out.loc[computed, "unit_price"]
        warnings.append(f"Revenue computed as quantity × unit price for {int(computed.sum()):,} row(s).")
    negative = (out["quantity"] < 0) | (out["revenue"] < 0)
    returned = negative.fillna(False) & (out["event_name"].str.lower() == PURCHASE_EVENT).fillna(False)
    if returned.any():
        out.loc[returned, "event_name"] = RETURN_EVENT
        warnings.append(f"{int(returned.sum()):,} purchase row(s) have a negative quantity or revenue (returns, cancellations): "
                        f"stored as {RETURN_EVENT!r} events, never counted as purchases; their revenue stays negative.")
    out["row_key"], repeat = _row_identity(raw)
    repeats = repeat > 0
    duplicates = int(repeats.sum())
    if duplicates:
        where = line_list([int(x) for x in pd.Series(raw.lines, index=raw.frame.index)[repeats]])
        warnings.append(
            f"{duplicates:,} row(s) repeat an earlier row of the file exactly (lines {where}). "
            + ("They were dropped, as asked." if drop_duplicates else
               "They are kept as separate events: in an order log a repeat is usually a second purchase. "
               "Choose to drop exact duplicates if your system records events twice.")
        )
    return out, warnings, repeats


def prepare(
    store: Store, raw: RawTable, table: str, mapping: dict[str, str] | None = None, constants: dict[str, str] | None = None,
    *, drop_duplicates: bool = False, unreadable_price: str = "reject",
) -> IngestPlan:
    """Validate every row and decide insert / update / reject. Writes nothing.

    ``mapping`` overrides the suggested {source column: field}; ``constants`` gives a field one
    value for every row (e.g. event_name "purchase" for an orders export). ``drop_duplicates``
    drops event rows that repeat an earlier row of the file exactly (kept by default);
    ``unreadable_price`` is one of PRICE_POLICIES (products).
    """
    spec = contract(table)
    constants = {k: v for k, v in (constants or {}).items() if v}
    try:
        mapping = resolve_mapping(raw.frame, table, mapping, constants)
    except MappingError as e:
        if len(raw.columns) == 1 and raw.warnings:  # the file was read as one column: say why first
            raise MappingError(f"{raw.warnings[0]} {e.msg}", title="Columns not found") from e
        raise
    out, reason, warnings = _parse(raw, spec, mapping, constants)
    lines = pd.Series(raw.lines, index=raw.frame.index)
    totals: dict[str, dict[str, float]] = {}
    duplicates = dropped = 0
    if table == "products":
        warnings += _prepare_products(raw, mapping, out, reason, unreadable_price)
    if table == "events":
        out, event_warnings, repeats = _prepare_events(raw, out, drop_duplicates)
        warnings += event_warnings
        totals["file"] = {**event_totals(out), "rows": raw.rows_in_file}
        duplicates = int(repeats.sum())
        not_kept = out.iloc[0:0]
        if drop_duplicates and duplicates:
            not_kept = out[repeats & reason.isna()]
            dropped = len(not_kept)
            out, reason, lines = out[~repeats], reason[~repeats], lines[~repeats]
        not_stored = pd.concat([out[reason.notna()], not_kept])
        totals["not_stored"] = {**event_totals(not_stored), "rows": len(not_stored) + len(raw.ragged)}
    if table == "reviews":
        given = out["review_id"].notna()
        # The file's own ids: one listed twice is ambiguous, as for products, so both rows are
        # rejected rather than merged.
        if not given.all():
            # Two identical "Love it!" reviews on one day are two people, so the line is part of
            # the id: re-uploading the same file still updates rather than duplicates. Rows
            # without an id in a file that has some get one too: a NULL key cannot be stored.
            content = [c for c in ("product_id", "user_id", "rating", "title", "text", "ts") if out[c].notna().any()]
            made = _content_key(out.assign(_line=lines), [*content, "_line"], "R")
            out["review_id"] = out["review_id"].where(given, made)
            warnings.append(
                "The file has no review ids; each review's id is made from its line and content." if not given.any()
                else f"{int((~given).sum())} review(s) have no id; each one's id is made from its line and content."
            )
    if table != "events":
        reason = _check_duplicates(out, reason, lines, spec)
    ignored = [s for s, t in mapping.items() if t == IGNORE]
    if ignored:
        warnings.append(f"Ignored column(s): {', '.join(ignored)}.")

    bad = reason.notna()
    rejected = raw.frame.loc[bad[bad].index].copy()
    rejected.insert(0, "reason", reason[bad])
    rejected.insert(0, "line", lines[bad[bad].index])
    if raw.ragged:
        # Rows whose fields do not line up with the header: shown as the file had them, never mapped.
        ragged = pd.DataFrame(raw.ragged, columns=["line", "reason", "record as read"])
        rejected = pd.concat([rejected, ragged], ignore_index=True).sort_values("line", kind="stable")
    valid = out[~bad].copy()
    valid.insert(0, "_line", lines[valid.index])
    valid["_action"] = _actions(store, spec, valid)
    return IngestPlan(table, raw, mapping, valid.reset_index(drop=True), rejected.reset_index(drop=True), warnings,
                      totals=totals, duplicates=duplicates, dropped_duplicates=dropped)


def _key_match_sql(spec: TableContract, stored: str, staged: str) -> list[str]:
    """SQL conditions matching a stored row (alias ``stored``) with an uploaded one (``staged``).

    Several conditions are run as separate statements, never ORed: an OR turns DuckDB's hash
    join into a nested loop (a 162k-row re-upload took 5 minutes instead of a second).
    """
    # IS NOT DISTINCT FROM: an event without a product still matches its earlier upload.
    conditions = [" AND ".join(f"{stored}.{quote_ident(k)} IS NOT DISTINCT FROM {staged}.{quote_ident(k)}" for k in spec.key)]
    if spec.table == "events":
        # Rows stored before events had a row_key were keyed on (user, time, name, product):
        # a re-upload of their file replaces them once, and from then on matches by row_key.
        legacy = " AND ".join(f"{stored}.{k} IS NOT DISTINCT FROM {staged}.{k}" for k in LEGACY_EVENT_KEY)
        conditions.append(f"{stored}.row_key IS NULL AND {legacy}")
    return conditions


def _actions(store: Store, spec: TableContract, valid: pd.DataFrame, cur=None) -> pd.Series:
    """'update' where the key is already in the table, else 'insert'."""
    if valid.empty:
        return pd.Series([], dtype=object)
    key_columns = [*spec.key, *(LEGACY_EVENT_KEY if spec.table == "events" else ())]
    keys = valid[key_columns].reset_index(drop=True).assign(_row=range(len(valid)))

    def run(c) -> pd.Series:
        # Not unregistered in a finally: after a failed statement DuckDB refuses even that,
        # which would hide the real error; the cursor (and its registrations) is closed anyway.
        c.register("_staged_keys", keys)
        existing = c.execute(" UNION ".join(
            f"SELECT s._row FROM _staged_keys s SEMI JOIN {quote_ident(spec.table)} t ON {condition}"
            for condition in _key_match_sql(spec, "t", "s")
        )).fetchnumpy()["_row"]
        c.unregister("_staged_keys")
        action = np.full(len(valid), "insert", dtype=object)
        action[np.asarray(existing, dtype=int)] = "update"
        return pd.Series(action, index=valid.index)

    if cur is not None:
        return run(cur)
    with store.cursor() as c:
        return run(c)


# ---------------------------------------------------------------- commit


def commit(store: Store, plan: IngestPlan, *, skip_invalid: bool = False) -> IngestReport:
    """Write the plan's valid rows in one transaction. Refuses if rows were rejected, unless skip_invalid."""
    store.require_editor("importing data")
    if len(plan.rejected) and not skip_invalid:
        total = plan.raw.rows_in_file
        first = plan.rejected.iloc[0]
        where = first.reason if str(first.reason).startswith(f"line {first.line} ") else f"line {first.line}, {first.reason}"
        raise InvalidRowsError(
            f"{len(plan.rejected)} of {total} rows in {plan.raw.file_name} are invalid (first: {where}). Nothing was written. Fix the file, or commit only the valid rows (--skip-invalid).",
            report=plan.report(),
        )
    if plan.valid.empty:
        raise UploadError(f"{plan.raw.file_name} has no valid rows to commit.", title="Nothing was imported")
    spec = contract(plan.table)
    columns = store.columns(plan.table)
    staged = plan.valid.copy()
    if plan.table == "products":
        staged["updated_at"] = datetime.now(timezone.utc).replace(tzinfo=None)
    staged = staged[columns]
    column_list = ", ".join(quote_ident(c) for c in columns)
    try:
        with store.transaction() as cur:
            # Recomputed inside the transaction: another session may have written since prepare().
            actions = _actions(store, spec, staged, cur)
            cur.register("_staged", staged)  # unregistered on success only, as in _actions
            stored = None
            if plan.table == "events":
                for condition in _key_match_sql(spec, "t", "s"):
                    cur.execute(f"DELETE FROM events t USING _staged s WHERE {condition}")
                cur.execute(f"INSERT INTO events ({column_list}) SELECT {column_list} FROM _staged")
                stored = _stored_totals(cur)
            else:
                cur.execute(f"INSERT OR REPLACE INTO {quote_ident(plan.table)} ({column_list}) SELECT {column_list} FROM _staged")
            cur.unregister("_staged")
            inserted, updated = int((actions == "insert").sum()), int((actions == "update").sum())
            cur.execute(
                "INSERT INTO ingest_log VALUES (current_timestamp, ?, ?, ?, ?, ?, ?, ?)",
                [plan.table, plan.raw.file_name, plan.raw.sha256, len(plan.raw.frame), inserted, updated, len(plan.rejected)],
            )
    except QueryError as e:
        # Retitled here: the transaction was rolled back, so the message can promise that.
        raise StoreError(f"{plan.raw.file_name} could not be written ({e.msg}). Nothing was written.", title="The import failed") from e
    plan.valid["_action"] = actions.to_numpy()
    return plan.report(committed=True, skipped_invalid=bool(len(plan.rejected)), stored=stored)


def _stored_totals(cur) -> dict[str, float]:  # noqa: ANN001 - a DuckDB cursor inside the ingest transaction
    """What the events table now holds for this file's rows, counted by DuckDB: the report's check."""
    rows, users, purchases, returns, revenue = cur.execute(
        "SELECT count(*), count(DISTINCT user_id), count(*) FILTER (WHERE event_name = ?), "
        "count(*) FILTER (WHERE event_name = ?), coalesce(sum(revenue), 0) FROM events WHERE row_key IN (SELECT row_key FROM _staged)",
        [PURCHASE_EVENT, RETURN_EVENT],
    ).fetchall()[0]  # fetchall: DuckDB 2 refuses the next statement while a result is unfinished
    return {"rows": rows, "users": users, "purchases": purchases, "returns": returns, "revenue": round(float(revenue), 2)}


def ingest_file(
    store: Store,
    table: str,
    path: str | Path,
    *,
    mapping: dict[str, str] | None = None,
    constants: dict[str, str] | None = None,
    skip_invalid: bool = False,
    max_bytes: int | None = None,
    encoding: str = "auto",
    dry_run: bool = False,
    drop_duplicates: bool = False,
    unreadable_price: str = "reject",
) -> IngestReport:
    """Read, validate and (unless dry_run) commit one file: the CLI's and scripts' entry point."""
    path = Path(path)
    if not path.is_file():
        raise UploadError(f"No such file: {path}", title="File not found")
    size = path.stat().st_size
    if max_bytes is not None and size > max_bytes:
        # Checked before reading, so a huge file never reaches memory.
        raise UploadError(
            f"{safe_file_name(path.name)} is {format_size(size)}; the limit is {format_size(max_bytes)} (setting MARKETLAB_MAX_UPLOAD_MB).",
            title="File too large",
        )
    raw = read_upload(path.name, path.read_bytes(), max_bytes=max_bytes, encoding=encoding)
    plan = prepare(store, raw, table, mapping, constants, drop_duplicates=drop_duplicates, unreadable_price=unreadable_price)
    if dry_run:
        return plan.report()
    return commit(store, plan, skip_invalid=skip_invalid)

