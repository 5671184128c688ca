"""Uploaded bytes -> a table of raw cells, or one clear reason why not.

Formats: CSV/TSV (any delimiter of , ; tab |, or space-aligned columns), Excel .xlsx, JSON (array of objects), JSON
Lines and Parquet. Text files are decoded by BOM, then strict UTF-8, then a detector limited
to the legacy encodings marketers' exports actually use; a UTF-8 file with broken bytes is
refused with the line of the first bad byte rather than silently mangled.

CSV cells stay strings: validation (core/ingest.py) decides what "17850.0" or "$12.50"
means, with a reason per row when it cannot. Parquet and JSON keep their native types.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePath

import numpy as np
import pandas as pd
from charset_normalizer import from_bytes

from core.errors import UploadError

# A description cell can be a whole web page; the csv module's default cap (128 KB) is not a limit
# an export respects. The upload size limit bounds the file anyway.
csv.field_size_limit(2**31 - 1)

# The one table of upload formats: the CLI, the page's uploader and the messages all derive from it,
# so a suffix is accepted everywhere or nowhere. Format -> (its name for people, the file suffixes).
FORMAT_TABLE = {
    "csv": ("CSV", (".csv", ".txt")),
    "tsv": ("TSV", (".tsv", ".tab")),
    "xlsx": ("Excel", (".xlsx",)),
    "json": ("JSON", (".json",)),
    "jsonl": ("JSON Lines", (".jsonl", ".ndjson")),
    "parquet": ("Parquet", (".parquet",)),
}
FORMATS = tuple(FORMAT_TABLE)
EXTENSIONS = {suffix: fmt for fmt, (_, suffixes) in FORMAT_TABLE.items() for suffix in suffixes}
# What the uploader accepts ("csv", "txt", …) and how a message names them ("CSV, TSV, Excel, … or Parquet").
UPLOAD_SUFFIXES = [suffix[1:] for suffix in EXTENSIONS]
FORMAT_NAMES = ", ".join(name for name, _ in list(FORMAT_TABLE.values())[:-1]) + " or " + list(FORMAT_TABLE.values())[-1][0]
# Legacy encodings tried when a file is not UTF-8. Kept short on purpose: with a long list
# the detector confuses short Western text with Cyrillic or Big5 (measured on 2-line files).
LEGACY_ENCODINGS = ("cp1252", "gb18030", "shift_jis")
ENCODING_CHOICES = ("auto", "utf-8", *LEGACY_ENCODINGS, "latin-1", "utf-16")
DELIMITERS = (",", ";", "\t", "|")
# An xlsx is a zip; refuse one that would inflate past this multiple of the upload limit.
MAX_XLSX_INFLATION = 20
# ...or past this multiple of its own size, as a whole or in any one part: real workbooks inflate
# about 12x (measured on pandas/openpyxl output), a zip bomb about 1000x. 100x is Apache POI's
# zip-bomb guard (ZipSecureFile's minimum inflate ratio of 0.01). Without it a 200 KB upload
# could hold 200 MB of sheet XML, under the limit above, that openpyxl parses for minutes into GBs.
MAX_XLSX_RATIO = 100
XLSX_RATIO_FREE = 10 * 2**20  # parts, and workbooks, that inflate to less than this are too small to matter


@dataclass
class RawTable:
    """The file's rows before mapping. ``lines[i]`` is where row i starts in the file, for messages."""

    file_name: str
    format: str
    frame: pd.DataFrame
    lines: list[int]
    sha256: str
    encoding: str | None = None
    delimiter: str | None = None
    warnings: list[str] = field(default_factory=list)
    # Records whose field count differs from the header's: (line, reason, the record as read).
    # Never part of ``frame``: a shifted row must not be read as if its columns were right.
    ragged: list[tuple[int, str, str]] = field(default_factory=list)

    @property
    def rows_in_file(self) -> int:
        return len(self.frame) + len(self.ragged)

    @property
    def columns(self) -> list[str]:
        return [str(c) for c in self.frame.columns]


def safe_file_name(name: str) -> str:
    """The base name only: an upload's name is shown and logged, never used as a path."""
    base = PurePath(name.replace("\\", "/")).name
    cleaned = "".join(ch for ch in base if ch.isprintable())
    if not cleaned.strip(". "):
        return "upload"  # "." and ".." are no base name: a path step, were anyone ever to use the name as one
    if len(cleaned) > 200:  # cut the stem, not the extension the format is detected by
        suffix = PurePath(cleaned).suffix[:20]
        cleaned = cleaned[: 200 - len(suffix)] + suffix
    return cleaned


def format_size(n_bytes: int) -> str:
    """'1.5 MB', '0.5 MB', '12 KB': the limit is a float setting, so "0 MB" must not happen."""
    if n_bytes < 1024:
        return f"{n_bytes} bytes"
    if n_bytes < 2**20 // 10:
        return f"{n_bytes / 1024:.0f} KB"
    return f"{n_bytes / 2**20:.1f} MB"


def read_upload(name: str, data: bytes, *, max_bytes: int | None = None, encoding: str = "auto") -> RawTable:
    """Parse an uploaded file. Raises UploadError with a message a marketer can act on."""
    file_name = safe_file_name(name)
    if max_bytes is not None and len(data) > max_bytes:
        raise UploadError(
            f"{file_name} is {format_size(len(data))}; the limit is {format_size(max_bytes)} "
            "(setting MARKETLAB_MAX_UPLOAD_MB).",
            title="File too large",
        )
    if not data.strip():
        raise UploadError(f"{file_name} is empty.", title="Empty file")
    fmt = _detect_format(file_name, data)
    sha = hashlib.sha256(data).hexdigest()
    if fmt in ("csv", "tsv"):
        raw = _read_delimited(file_name, data, fmt, encoding)
    elif fmt == "xlsx":
        raw = _read_xlsx(file_name, data, max_bytes)
    elif fmt == "json":
        raw = _read_json(file_name, _decode(file_name, data, encoding)[0])
    elif fmt == "jsonl":
        raw = _read_jsonl(file_name, _decode(file_name, data, encoding)[0])
    else:
        raw = _read_parquet(file_name, data)
    raw.sha256 = sha
    raw.frame.columns = _clean_headers(list(raw.frame.columns))
    if raw.frame.empty and not raw.ragged:
        raise UploadError(f"{file_name} has a header but no data rows.", title="No rows to import")
    return raw


def _detect_format(file_name: str, data: bytes) -> str:
    """Trust the content's signature over the name: exports get renamed."""
    suffix = PurePath(file_name.lower()).suffix
    by_name = EXTENSIONS.get(suffix)
    if data[:4] == b"PAR1":
        return "parquet"
    if data[:4] == b"PK\x03\x04":
        if by_name not in (None, "xlsx"):
            raise UploadError(
                f"{file_name} is a zip or Excel file, not {suffix[1:].upper()} text. Upload it as .xlsx, or export it as CSV.",
                title="Unexpected file type",
            )
        return "xlsx"
    if data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        raise UploadError(f"{file_name} is an old Excel (.xls) file. Save it as .xlsx or CSV.", title="Unsupported file type")
    if by_name is None:
        raise UploadError(
            f"{file_name}: unknown file type {suffix or '(none)'}. Supported: {', '.join(EXTENSIONS)}.",
            title="Unsupported file type",
        )
    if by_name in ("xlsx", "parquet"):
        raise UploadError(f"{file_name} does not contain {by_name} data (the file is damaged or renamed).", title="Damaged file")
    return by_name


def _decode(file_name: str, data: bytes, encoding: str) -> tuple[str, str]:
    """Text and the encoding used. Refuses binary data and corrupted UTF-8 with the line."""
    if encoding != "auto":
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError as e:
            line = data[: e.start].count(b"\n") + 1
            raise UploadError(f"{file_name} is not valid {encoding}: bad bytes on line {line}.", title="Wrong encoding") from e
        except LookupError as e:
            raise UploadError(f"Unknown encoding {encoding!r}.", title="Wrong encoding") from e
    if data.startswith(b"\xef\xbb\xbf"):
        enc = "utf-8-sig"
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        enc = "utf-16"
    else:
        enc = "utf-8"
    if enc != "utf-16" and b"\x00" in data[:65536]:
        raise UploadError(f"{file_name} contains binary data, not text. Is it the right file?", title="Not a text file")
    try:
        text = data.decode(enc)
    except UnicodeDecodeError as e:
        text, enc = _decode_legacy(file_name, data, e)
    if _looks_binary(text):
        raise UploadError(f"{file_name} contains binary data, not text. Is it the right file?", title="Not a text file")
    return text, enc


def _decode_legacy(file_name: str, data: bytes, utf8_error: UnicodeDecodeError) -> tuple[str, str]:
    line = data[: utf8_error.start].count(b"\n") + 1
    # Mostly valid multi-byte UTF-8 means the file *is* UTF-8 with damage: guessing a legacy
    # encoding would turn every accent into mojibake, so refuse and point at the line. "Mostly",
    # not "any": GB18030 text holds valid UTF-8 byte pairs by chance (保温水杯 contains ˮ), about
    # a quarter of its non-ASCII bytes, while a damaged UTF-8 file is almost all valid.
    repaired = data.decode("utf-8", errors="replace")
    high_bytes = len(data.translate(None, bytes(range(128))))  # counted in C: files are large
    valid_bytes = len(repaired.encode("utf-8")) - (len(data) - high_bytes) - 3 * repaired.count("\ufffd")
    if valid_bytes * 2 > high_bytes:
        raise UploadError(
            f"{file_name} is UTF-8 but has undecodable bytes on line {line} "
            f"(byte 0x{data[utf8_error.start]:02x}). Fix or remove that line, or choose the encoding by hand.",
            title="Undecodable text",
        ) from utf8_error
    best = from_bytes(data, cp_isolation=list(LEGACY_ENCODINGS)).best()
    if best is None:
        raise UploadError(
            f"{file_name} is not UTF-8 (bad bytes on line {line}) and no known encoding fits. "
            "Choose the encoding by hand or re-export the file as UTF-8.",
            title="Undecodable text",
        ) from utf8_error
    return str(best), best.encoding


def _looks_binary(text: str) -> bool:
    sample = text[:65536]
    control = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\r\n\t")
    return control > max(8, len(sample) // 100) or "\ufffd" * 4 in sample


WHITESPACE = " "  # the delimiter recorded for space-aligned text (runs of spaces or tabs)
REPORTED_LINES = 5  # line numbers quoted in one message before "and N more"


def _sniff_delimiter(text: str, fmt: str) -> str:
    if fmt == "tsv":
        return "\t"
    # The header line decides: csv.Sniffer is easily misled by commas inside quoted text
    # (descriptions), while a header's separators are almost never quoted.
    first_line = text.lstrip("\r\n").split("\n", 1)[0]
    counts = {d: first_line.count(d) for d in DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    if counts[best] > 0:
        return best
    # No delimiter in the header: a space-aligned report (CDNOW as published) when the header
    # and the first data lines split on whitespace into the same number of fields.
    lines = [ln for ln in text[:65536].splitlines()[:6] if ln.strip()]  # the head: not a split of the whole file
    widths = {len(ln.split()) for ln in lines}
    if len(lines) > 1 and len(widths) == 1 and widths.pop() > 1:
        return WHITESPACE
    return ","


def line_list(lines: list[int]) -> str:
    """'3, 7 and 9' or '3, 7, 9, 12, 15 and 2,041 more': a message names a few lines, not thousands."""
    shown = ", ".join(str(n) for n in lines[:REPORTED_LINES])
    rest = len(lines) - REPORTED_LINES
    if rest > 0:
        return f"{shown} and {rest:,} more"
    if len(lines) > 1:
        return f"{', '.join(str(n) for n in lines[:-1])} and {lines[-1]}"
    return shown


def _records(file_name: str, text: str, delimiter: str) -> list[tuple[int, list[str]]]:
    """(line where the record starts, its fields) for every non-blank record, header first.

    The csv module, not pandas, splits the file: pandas silently turns the first column into an
    index when a row has one field more than the header, shifting every column of the file, and
    pads short rows. Here each record keeps its own width, so ragged rows can be refused by line.
    """
    if delimiter == WHITESPACE:
        return [(n, ln.split()) for n, ln in enumerate(text.splitlines(), start=1) if ln.strip()]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"', doublequote=True)
    out: list[tuple[int, list[str]]] = []
    start = 1
    try:
        for record in reader:
            if record:  # a blank line; rows of empty cells are dropped later, vectorised
                out.append((start, record))
            start = reader.line_num + 1
    except csv.Error as e:
        raise UploadError(f"{file_name} could not be read as text columns: line {start}: {e}.", title="Malformed file") from e
    return out


def _fast_split(text: str, delimiter: str) -> tuple[list[str], pd.DataFrame, list[int]] | None:
    """(header, cells, line of each row) by pandas' C parser, for the common file it is exact for.

    That is a file with no quote character, every line of which has the header's number of
    fields: then a record is a line, and counting delimiters per line (vectorised) proves that
    no row is ragged. Anything else (quoted cells, ragged rows) returns None for the csv module,
    which is exact everywhere but ~3× slower on a million rows.
    """
    if delimiter == WHITESPACE or len(delimiter) != 1 or '"' in text:
        return None
    # Counted on the UTF-8 bytes with numpy: an ASCII byte never occurs inside a multi-byte
    # character, and a million lines cost a fraction of a second (as Python strings, 2 s).
    raw = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    ends = np.flatnonzero(raw == 10)  # pandas ends a line at \n (\r\n included); \u2028 is text to it
    if len(raw) and raw[-1] != 10:
        ends = np.append(ends, len(raw))
    starts = np.concatenate(([0], ends[:-1] + 1))

    def per_line(mask: np.ndarray) -> np.ndarray:
        at = np.flatnonzero(mask)  # sparse (delimiters, \r): cheap, unlike a per-byte running count
        return np.searchsorted(at, ends) - np.searchsorted(at, starts)

    if not len(ends):
        return None
    counts = per_line(raw == ord(delimiter))
    returns = per_line(raw == 13)
    length = ends - starts - returns
    if counts[0] == 0 or (returns > 1).any() or length[0] == 0:
        return None  # one column (a line of spaces would pass as a row), lone \r breaks, or no header
    filled = length > 0
    if not (counts[filled] == counts[0]).all():
        return None
    frame = pd.read_csv(io.StringIO(text), sep=delimiter, dtype=str, keep_default_na=False, na_filter=False,
                        skip_blank_lines=True, engine="c", quoting=csv.QUOTE_NONE, header=None)
    header, frame = [str(c) for c in frame.iloc[0]], frame.iloc[1:].reset_index(drop=True)
    frame.columns = header
    lines = (np.flatnonzero(filled) + 1)[1:].tolist()
    return header, frame, lines


def _read_delimited(file_name: str, data: bytes, fmt: str, encoding: str) -> RawTable:
    text, enc = _decode(file_name, data, encoding)
    delimiter = _sniff_delimiter(text, fmt)
    ragged: list[tuple[int, str, str]] = []
    fast = _fast_split(text, delimiter)
    if fast is not None:
        header, frame, lines = fast
    else:
        header, frame, lines, ragged = _exact_split(file_name, text, delimiter)
    warnings = []
    if delimiter == WHITESPACE:
        warnings.append("Read as space-aligned columns (no comma, semicolon, tab or | in the header).")
    elif len(header) == 1 and len(header[0].split()) > 1:
        warnings.append(f"The file was read as one column named {header[0][:60]!r}: its header has no comma, semicolon, "
                        "tab or |. If the columns are separated by something else, export the file as CSV.")
    blank = (frame == "").all(axis=1).to_numpy() if len(frame) else np.zeros(0, dtype=bool)
    if blank.any():  # ",,,": a row of empty cells is no row
        frame = frame.loc[~blank].reset_index(drop=True)
        lines = [ln for ln, is_blank in zip(lines, blank) if not is_blank]
    frame = frame.replace({"": None})
    return RawTable(file_name, fmt, frame, lines, "", encoding=enc, delimiter=delimiter,
                    warnings=warnings, ragged=ragged)


def _exact_split(file_name: str, text: str, delimiter: str) -> tuple[list[str], pd.DataFrame, list[int], list[tuple[int, str, str]]]:
    """Header, cells, lines and the ragged rows (set aside by line), record by record."""
    records = _records(file_name, text, delimiter)
    if not records:
        raise UploadError(f"{file_name} has no header row.", title="Empty file")
    (_, header), body = records[0], records[1:]
    width = len(header)
    rows: list[list[str]] = []
    lines: list[int] = []
    ragged: list[tuple[int, str, str]] = []
    for line, record in body:
        if len(record) > width and not any(cell.strip() for cell in record[width:]):
            record = record[:width]  # trailing delimiters ("a,b,c,") add only empty fields
        if len(record) == width:
            rows.append(record)
            lines.append(line)
            continue
        hint = (" — is there an unquoted comma?" if delimiter == "," else f" — is there an unquoted {_delimiter_name(delimiter)} in a value?") \
            if len(record) > width else " — are values missing at the end of the line?"
        ragged.append((line, f"line {line} has {len(record)} fields, the header has {width}{hint}",
                       _delimiter_text(delimiter).join(record)[:500]))
    # pandas' string dtype, as read_csv(dtype=str) gives: validation's string methods are vectorised on it.
    frame = pd.DataFrame(rows, columns=header, dtype=str) if rows else pd.DataFrame(columns=header, dtype=str)
    return header, frame, lines, ragged


def _delimiter_name(delimiter: str) -> str:
    return {";": "semicolon", "\t": "tab", "|": "|", WHITESPACE: "space"}.get(delimiter, repr(delimiter))


def _delimiter_text(delimiter: str) -> str:
    return "  " if delimiter == WHITESPACE else delimiter


def _read_xlsx(file_name: str, data: bytes, max_bytes: int | None) -> RawTable:
    # Sizes as the archive declares them: zipfile never inflates a part past its declared size (a
    # part that lies gets a CRC error, "Damaged file" below), so these bound what parsing can cost.
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            parts = [(info.file_size, info.compress_size) for info in archive.infolist()]
    except zipfile.BadZipFile as e:
        raise UploadError(f"{file_name} is not a valid .xlsx file.", title="Damaged file") from e
    inflated = sum(size for size, _ in parts)
    limit = (max_bytes or 200 * 2**20) * MAX_XLSX_INFLATION
    bomb = any(size > XLSX_RATIO_FREE and size > MAX_XLSX_RATIO * packed for size, packed in parts)
    if inflated > max(MAX_XLSX_RATIO * len(data), XLSX_RATIO_FREE) or bomb:
        raise UploadError(
            f"{file_name} would expand to {inflated / 2**20:.0f} MB when opened, far more than any real workbook of "
            f"{format_size(len(data))}; refused to protect the server. Export it again from Excel, or as CSV.",
            title="File too large",
        )
    if inflated > limit:
        raise UploadError(
            f"{file_name} would expand to {inflated / 2**20:.0f} MB when opened; refused to protect the server.",
            title="File too large",
        )
    try:
        sheets = pd.read_excel(io.BytesIO(data), sheet_name=None, dtype=object, engine="openpyxl")
    except Exception as e:  # openpyxl raises many kinds for damaged workbooks
        raise UploadError(f"{file_name} could not be read as Excel: {e}", title="Damaged file") from e
    if not sheets:
        raise UploadError(f"{file_name} has no sheets.", title="Empty file")
    name, frame = next(iter(sheets.items()))
    warnings = [f"Read the first sheet, {name!r}; {len(sheets) - 1} other sheet(s) ignored."] if len(sheets) > 1 else []
    frame = frame.dropna(how="all")
    lines = [int(i) + 2 for i in frame.index]  # spreadsheet row numbers: header is row 1
    frame = frame.reset_index(drop=True).astype(object).where(frame.notna().reset_index(drop=True), None)
    return RawTable(file_name, "xlsx", frame, lines, "", warnings=warnings)


def _records_frame(records: list[object], file_name: str, where: list[int], unit: str) -> RawTable:
    for record, position in zip(records, where):
        if not isinstance(record, dict):
            raise UploadError(f"{file_name}: {unit} {position} is not an object with named fields.", title="Malformed JSON")
    # Nested objects and lists stay JSON text; validation decides whether they are attributes.
    flat = [{k: json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v for k, v in r.items()} for r in records]  # type: ignore[union-attr]
    frame = pd.DataFrame.from_records(flat)
    frame = frame.astype(object).where(frame.notna(), None)
    return RawTable(file_name, "json", frame, where, "")


def _read_json(file_name: str, text: str) -> RawTable:
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as e:
        raise UploadError(f"{file_name} is not valid JSON (line {e.lineno}: {e.msg}).", title="Malformed JSON") from e
    except RecursionError as e:  # "[[[[…" a thousand deep: damaged or hostile, never an export
        raise UploadError(f"{file_name} is nested too deeply to be a table.", title="Malformed JSON") from e
    if isinstance(parsed, dict):
        # {"products": [...]} — one list of objects inside an object is common for API exports
        lists = [v for v in parsed.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise UploadError(f"{file_name}: expected a JSON array of objects.", title="Malformed JSON")
        parsed = lists[0]
    if not isinstance(parsed, list):
        raise UploadError(f"{file_name}: expected a JSON array of objects.", title="Malformed JSON")
    if not parsed:
        raise UploadError(f"{file_name} holds an empty list.", title="No rows to import")
    raw = _records_frame(parsed, file_name, list(range(1, len(parsed) + 1)), "record")
    return raw


def _read_jsonl(file_name: str, text: str) -> RawTable:
    records, lines = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise UploadError(f"{file_name}: line {number} is not valid JSON ({e.msg}).", title="Malformed JSON Lines") from e
        except RecursionError as e:  # as in _read_json
            raise UploadError(f"{file_name}: line {number} is nested too deeply to be a record.", title="Malformed JSON Lines") from e
        lines.append(number)
    if not records:
        raise UploadError(f"{file_name} is empty.", title="Empty file")
    raw = _records_frame(records, file_name, lines, "line")
    raw.format = "jsonl"
    return raw


def _read_parquet(file_name: str, data: bytes) -> RawTable:
    try:
        frame = pd.read_parquet(io.BytesIO(data))
    except Exception as e:  # pyarrow's errors are many and unexported
        raise UploadError(f"{file_name} could not be read as Parquet: {e}", title="Damaged file") from e
    return RawTable(file_name, "parquet", frame.reset_index(drop=True), list(range(1, len(frame) + 1)), "")


def _clean_headers(columns: list[object]) -> list[str]:
    """Strip whitespace and BOMs; name blank headers; make duplicates distinct (a, a_2)."""
    seen: dict[str, int] = {}
    out = []
    for position, column in enumerate(columns, start=1):
        name = str(column).replace("\ufeff", "").strip()
        if not name or name.lower().startswith("unnamed:"):
            name = f"column_{position}"
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        else:
            seen[name] = 1
        out.append(name)
    return out
