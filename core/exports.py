"""Files the app hands back to users (rejected rows, segments, copy), safe to open in a spreadsheet."""

from __future__ import annotations

import pandas as pd

# A cell starting with one of these is run as a formula by Excel, Sheets and LibreOffice
# (OWASP "CSV injection"); a leading apostrophe makes them show it as text instead. Full-width
# forms are included because Japanese and Chinese Excel accept them as formula starters, and
# leading spaces are looked through because spreadsheets trim them on import.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠")


def neutralise_formula(value: object) -> object:
    """Prefix text that a spreadsheet would evaluate; leave numbers and other values alone."""
    if isinstance(value, str) and (value.startswith(_FORMULA_PREFIXES) or value.lstrip(" ").startswith(_FORMULA_PREFIXES)):
        return "'" + value
    return value


def safe_csv_bytes(frame: pd.DataFrame) -> bytes:
    """CSV (UTF-8 with BOM so Excel reads accents) with every formula-like text cell neutralised."""
    safe = frame.copy()
    for column in safe.columns:
        if safe[column].dtype == object or pd.api.types.is_string_dtype(safe[column]):
            safe[column] = safe[column].map(neutralise_formula)
    safe.columns = [neutralise_formula(str(c)) for c in safe.columns]
    # CRLF rows (RFC 4180), and not only for Excel's sake: the csv writer quotes a cell holding any
    # character of the line terminator, so with "\n" alone a bare "\r" inside a cell ("x\r=cmd|…")
    # went out unquoted and a spreadsheet started a new row there, with a live formula in it.
    return safe.to_csv(index=False, lineterminator="\r\n").encode("utf-8-sig")
