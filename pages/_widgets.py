"""Reusable widget groups. Each returns plain values or draws one thing; no SQL, no logic."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from core.config import load_settings
from core.contracts import contract, suggest_mapping
from core.units import duration, measure, money  # noqa: F401  (pages use them from here)
from core.errors import MarketLabError
from core.exports import safe_csv_bytes
from core.ingest import PRICE_POLICY_LABELS, IngestPlan, IngestReport, commit, prepare, totals_table
from core.overview import event_span
from core.store import Store
from core.upload_reader import ENCODING_CHOICES, FORMAT_NAMES, UPLOAD_SUFFIXES, RawTable, read_upload
from pages._resources import cached_figure

VIEWER_HELP = "Viewers read everything and change nothing: ask an editor to make the change."

PREVIEW_ROWS = 20
SHOWN_ROWS = 1000  # row-by-row tables beyond this are downloadable, not drawn


def count(n: int, noun: str, plural: str | None = None) -> str:
    """'1 row', '2 rows', '1,204 products'."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def date_range(store: Store, key: str) -> tuple[datetime | None, datetime | None]:
    """A date range within the event log's span; returns (start, end-exclusive) or (None, None) for all of it."""
    first, last = event_span(store)
    if first is None:
        return None, None
    picked = st.date_input("Dates", (first.date(), last.date()), min_value=first.date(), max_value=last.date(), key=key)
    if not isinstance(picked, (tuple, list)) or len(picked) != 2:
        return None, None  # half-picked range: keep the whole log until the second date is chosen
    start, end = picked
    if start == first.date() and end == last.date():
        return None, None
    return datetime.combine(start, time.min), datetime.combine(end + timedelta(days=1), time.min)


def show_error(error: MarketLabError) -> None:
    st.error(f"**{error.title}**  \n{plain(error.msg)}")


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$])")


def plain(text: object) -> str:
    """User data for a markdown widget, shown literally: no links, emphasis or HTML from a product title."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))


# Trace attributes whose text Plotly draws (axes, legend, hover) and fills from data.
_CHART_DATA_ATTRS = ("x", "y", "text", "hovertext", "labels", "customdata")


def _chart_text(value: Any) -> Any:
    if isinstance(value, str):
        return html.escape(value, quote=False)
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "OUS":
            return np.vectorize(_chart_text, otypes=[object])(value) if value.size else value
        return value
    if isinstance(value, (list, tuple)):
        return type(value)(_chart_text(v) for v in value)
    return value


def show_chart(figure: go.Figure | Callable[[], go.Figure], key: str | None = None, *, inputs: tuple | None = None,
               reads: tuple[str, ...] | None = None) -> None:
    """st.plotly_chart with user data shown as typed (see safe_figure).

    ``figure`` may be a function that builds it; with ``inputs`` (everything it is drawn from,
    beyond the stored data) the built figure is kept for every session until the data change
    (the tables it ``reads``, all unless given: see cached_read).
    Building is most of a page's server time (plotly validates every property it is given), and
    a team opens the same funnels and runs again and again.
    """
    if callable(figure) and inputs is not None:
        fig = cached_figure(lambda: safe_figure(figure()), key or "", inputs, reads)
    else:
        fig = safe_figure(figure() if callable(figure) else figure)
    st.plotly_chart(fig, width="stretch", key=key)


def safe_figure(fig: go.Figure) -> go.Figure:
    """The figure with every text Plotly would draw escaped, in place.

    Plotly draws a few HTML tags in any text it shows (<b>, <i>, <br>, and <a href> as a live
    link), and brands, event names, campaigns and step labels come from other people's files.
    Escaped here, once for every chart: Plotly turns the entities back into the characters.
    No MarketLab chart uses markup of its own, so titles are escaped as well.
    """
    for trace in fig.data:
        for attr in _CHART_DATA_ATTRS:
            if attr in trace and trace[attr] is not None:
                trace[attr] = _chart_text(trace[attr])
        for attr in ("name", "legendgroup", "offsetgroup"):  # groups are ids, escaped alike so they still match
            if attr in trace and trace[attr]:
                trace[attr] = _chart_text(trace[attr])
    if fig.layout.title.text:
        fig.layout.title.text = _chart_text(fig.layout.title.text)
    if fig.layout.legend.title.text:
        fig.layout.legend.title.text = _chart_text(fig.layout.legend.title.text)

    def axis(a: Any) -> None:
        if a.title.text:
            a.title.text = _chart_text(a.title.text)
        for attr in ("categoryarray", "ticktext"):
            if a[attr] is not None:
                a[attr] = _chart_text(a[attr])

    fig.for_each_xaxis(axis)
    fig.for_each_yaxis(axis)
    fig.for_each_annotation(lambda a: a.update(text=_chart_text(a.text)) if a.text else None)
    return fig


def _plan_key(raw: RawTable, table: str, mapping: dict[str, str], constants: dict[str, str], *options: object) -> tuple:
    return (table, raw.sha256, raw.encoding, tuple(sorted(mapping.items())), tuple(sorted(constants.items())), options)


def _read(name: str, data: bytes, encoding: str) -> RawTable:
    cache = st.session_state.setdefault("_raw_cache", {})
    key = (name, hash(data), encoding)
    if key not in cache:
        cache.clear()  # one file at a time per session: uploads can be large
        cache[key] = read_upload(name, data, max_bytes=load_settings().max_upload_bytes, encoding=encoding)
    return cache[key]


def mapping_editor(raw: RawTable, table: str, suggested: dict[str, str], key: str) -> tuple[dict[str, str], dict[str, str]]:
    """One dropdown per source column (suggestion preselected) and fixed values for unmapped fields."""
    spec = contract(table)
    mapping: dict[str, str] = {}
    columns = st.columns(3)
    for i, source in enumerate(raw.columns):
        sample = raw.frame[source].dropna().head(1)
        hint = f"e.g. {str(sample.iloc[0])[:60]}" if len(sample) else "empty column"
        options = spec.targets
        mapping[source] = columns[i % 3].selectbox(
            source, options, index=options.index(suggested[source]), key=f"{key}_map_{source}", help=hint,
        )
    unmapped = [f for f in spec.fields if f.name not in mapping.values() and f.kind in ("text", "id")]
    constants: dict[str, str] = {}
    if unmapped:
        with st.popover("Fixed values for fields with no column"):
            st.caption("E.g. an orders export has no event column: every row is a `purchase`.")
            for fld in unmapped:
                constants[fld.name] = st.text_input(fld.name, key=f"{key}_const_{fld.name}", help=fld.help).strip()
    return mapping, {k: v for k, v in constants.items() if v}


def show_totals(totals: dict[str, dict[str, float]]) -> None:
    st.dataframe(totals_table(totals), hide_index=True, width="content",
                 column_config={"Revenue": st.column_config.NumberColumn(format="%.2f")})


def report_metrics(inserted: int, updated: int, rejected: int) -> None:
    a, b, c = st.columns(3)
    a.metric("New rows", f"{inserted:,}")
    b.metric("Updated rows", f"{updated:,}")
    c.metric("Rejected rows", f"{rejected:,}")


def _show_plan(plan: IngestPlan, key: str) -> None:
    report_metrics(plan.inserted, plan.updated, len(plan.rejected))
    if plan.totals:
        st.caption("What the file holds, and what will not be stored (rejected or dropped rows):")
        show_totals(plan.totals)
    for warning in [*plan.raw.warnings, *plan.warnings]:
        st.info(warning)
    rows = plan.rows()
    rejected_tab, all_tab = st.tabs([f"Rejected ({len(plan.rejected):,})", f"Every row ({len(rows):,})"])
    with rejected_tab:
        if plan.rejected.empty:
            st.success("Every row is valid.")
        else:
            st.dataframe(plan.rejected.head(SHOWN_ROWS), hide_index=True, width="stretch")
            st.download_button(
                "Download rejected rows with reasons (CSV)", safe_csv_bytes(plan.rejected),
                file_name=f"rejected-{Path(plan.raw.file_name).stem}.csv", mime="text/csv", key=f"{key}_rejected_csv",
            )
    with all_tab:
        action = st.segmented_control("Show", ["insert", "update", "reject"], selection_mode="multi",
                                      default=["insert", "update", "reject"], key=f"{key}_actions")
        shown = rows[rows["action"].isin(action or [])]
        st.dataframe(shown.head(SHOWN_ROWS), hide_index=True, width="stretch")
        if len(shown) > SHOWN_ROWS:
            st.caption(f"First {SHOWN_ROWS:,} of {len(shown):,} rows shown.")


def import_flow(store: Store, table: str, key: str) -> IngestReport | None:
    """Upload → preview → mapping → row-by-row check → commit. Returns the report once committed."""
    if not store.user.can_edit:
        st.info(f"Importing data is for editors; you are signed in as a viewer. {VIEWER_HELP}")
        return None
    upload = st.file_uploader(
        f"Upload {table} ({FORMAT_NAMES})", type=UPLOAD_SUFFIXES, key=f"{key}_upload",
        help=f"Up to {load_settings().max_upload_mb:g} MB. Nothing is written until you commit.",
    )
    done = st.session_state.get(f"{key}_done")
    if upload is None:
        st.session_state.pop(f"{key}_done", None)
        return None
    encoding = st.selectbox("Text encoding", ENCODING_CHOICES, key=f"{key}_encoding",
                            help="Detected automatically; choose one if accents look wrong.")
    try:
        raw = _read(upload.name, upload.getvalue(), encoding)
    except MarketLabError as e:
        show_error(e)
        return None
    details = f"{raw.format.upper()}, {len(raw.frame):,} rows, {len(raw.columns)} columns"
    if raw.encoding:
        details += f", {raw.encoding}"
    if raw.delimiter:
        details += f", delimiter {raw.delimiter!r}"
    st.caption(plain(f"{raw.file_name}: {details}"))
    if done and done["sha"] == raw.sha256:
        report: IngestReport = done["report"]
        st.success(f"Imported {count(report.inserted + report.updated, 'row')} into {table}: "
                   f"{report.inserted:,} new, {report.updated:,} updated"
                   + (f", {count(report.rejected, 'invalid row')} skipped." if report.rejected else "."))
        if report.totals:
            show_totals(report.totals)
            if report.reconciled:
                st.caption("Stored plus not stored equals the file: every row, purchase and cent is accounted for.")
            else:
                st.error("Stored plus not stored differs from the file. Please report this file: nothing should go missing.")
        return report

    with st.expander(f"Preview: the first {PREVIEW_ROWS} rows as read", expanded=True):
        st.dataframe(raw.frame.head(PREVIEW_ROWS), hide_index=True, width="stretch")

    st.markdown("**Column mapping** — where each column of the file goes")
    mapping, constants = mapping_editor(raw, table, suggest_mapping(raw.frame, table), key)
    plans = st.session_state.setdefault("_plan_cache", {})
    drop = bool(st.session_state.get(f"{key}_drop_duplicates"))
    price_policy = st.session_state.get(f"{key}_price_policy", "reject")
    plan_key = _plan_key(raw, table, mapping, constants, drop, price_policy)
    if plan_key not in plans:
        plans.clear()
        try:
            with st.spinner(f"Checking {len(raw.frame):,} rows…"):
                plans[plan_key] = prepare(store, raw, table, mapping, constants, drop_duplicates=drop, unreadable_price=price_policy)
        except MarketLabError as e:
            show_error(e)
            return None
    plan: IngestPlan = plans[plan_key]

    st.markdown("**What will happen**")
    _show_plan(plan, key)
    if table == "products" and (price_policy != "reject" or plan.rejected["reason"].str.startswith("price: ").any()):
        # Offered where it matters: marketplace scrapes list ranges ("$74.99 - $249.99") and labels as prices.
        st.radio("Prices that are not one number", list(PRICE_POLICY_LABELS), format_func=PRICE_POLICY_LABELS.get,
                 key=f"{key}_price_policy", horizontal=True,
                 help="Whatever is not stored as the price is kept as listed, in the product's attribute price_as_listed.")
    if plan.duplicates:
        st.checkbox(f"Drop the {count(plan.duplicates, 'row')} that repeat an earlier row exactly", key=f"{key}_drop_duplicates",
                    help="Kept by default: in an order log a repeated line is usually a second purchase. "
                         "Drop them if your system records some events twice.")
    skip_invalid = False
    if len(plan.rejected):
        skip_invalid = st.checkbox(
            f"Commit only the {count(len(plan.valid), 'valid row')}", key=f"{key}_skip_invalid",
            help="By default a file with any invalid row is rejected whole.",
        )
    can_commit = len(plan.valid) > 0 and (not len(plan.rejected) or skip_invalid)
    label = f"Commit {count(len(plan.valid), 'row')} to {table}"
    if st.button(label, type="primary", disabled=not can_commit, key=f"{key}_commit"):
        try:
            with st.spinner("Writing…"):
                report = commit(store, plan, skip_invalid=skip_invalid)
        except MarketLabError as e:
            show_error(e)
            return None
        plans.clear()
        st.cache_data.clear()
        st.session_state[f"{key}_done"] = {"sha": raw.sha256, "report": report}
        st.rerun()
    if not can_commit and len(plan.rejected):
        st.warning(f"{count(len(plan.rejected), 'row is', 'rows are')} invalid, so nothing will be written unless you choose to commit only the valid rows.")
    return None



def everyday_keys(options: Sequence[Any], chosen_key: str, all_key: str) -> list[str]:
    """Breakdown keys a marketer picks from (``BreakdownOption.everyday``), all of them when ``all_key``'s
    checkbox is on, and always the one already chosen (set by another page, say a segment run)."""
    wanted = bool(st.session_state.get(all_key))
    chosen = st.session_state.get(chosen_key)
    return [o.key for o in options if wanted or o.everyday or o.key == chosen]


# One colour per segment on every page: the map, the sizes, a funnel broken down by the run.
SEGMENT_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
                   "#17becf", "#393b79", "#ad494a")


def segment_colors(names: Sequence[str]) -> dict[str, str]:
    """Segment name -> colour, by the run's own order (largest first), the same wherever the run is drawn."""
    return {name: SEGMENT_PALETTE[i % len(SEGMENT_PALETTE)] for i, name in enumerate(names)} | {"(none)": "#c7c7c7"}
