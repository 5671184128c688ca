"""How a funnel is counted: a FunnelSpec planned as parameterised SQL, run on the funnel index.

The counting rules are in the package docstring (``core.funnels``); this module plans each step's
rows as SQL over ``funnel_events`` (every name checked, every value bound), runs the chain joins on
one cursor's temp tables, and summarises them into a FunnelResult. ``funnel_levels`` and
``dropped_users`` reuse that plan; the pickers' look-ups (event names, breakdown options, the
last step's users) sit beside them because they answer the same page.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from core.breakdowns import Schema, segment_join, segment_key, user_column
from core.errors import QueryError
from core.funnels.contract import (
    _BINS, _OPS, MAX_GROUPS, NONE_LABEL, OTHER_LABEL, BreakdownOption, Condition, FunnelResult, FunnelSpec, StepStat,
    StepTiming, _epoch_us, _us,
)
from core.funnels.index import _EVENT_COLUMNS, _ID_COLUMNS, ensure_index
from core.segment_titles import run_title
from core.store import Store, quote_ident

# ---------------------------------------------------------------------------------------
# Checking names against the funnel index
# ---------------------------------------------------------------------------------------

def _event_column(schema: Schema, column: str, *, products: bool) -> tuple[str, bool]:
    """SQL for a column of an event row (alias f) or of its product (alias p); whether p is needed."""
    name = column.strip()
    if name.startswith("product."):
        name = name[len("product."):]
        if products and name in schema.products:
            return f"p.{quote_ident(name)}", True
    elif name in schema.events and name in _EVENT_COLUMNS:
        return f"f.{quote_ident(name)}", False
    elif products and name in schema.products and name != "product_id":
        return f"p.{quote_ident(name)}", True
    allowed = [c for c in _EVENT_COLUMNS if c in schema.events] + ([f"product.{c}" for c in schema.products] if products else [])
    raise QueryError(f"{column!r} is not an event column. Use one of: {', '.join(allowed)}.", title="Unknown column in the funnel")


def _condition_sql(expr: str, expr_params: list[Any], cond: Condition) -> tuple[str, list[Any]]:
    op = _OPS[cond.op]
    if op in ("IS NULL", "IS NOT NULL"):
        return f"{expr} {op}", list(expr_params)
    if op in ("IN", "NOT IN"):
        if not cond.value:
            return ("false" if op == "IN" else "true"), []
        marks = ", ".join("?" for _ in cond.value)
        return f"{expr} {op} ({marks})", [*expr_params, *cond.value]
    if cond.value is None:
        raise QueryError(f"The filter on {cond.column!r} needs a value.", title="Invalid funnel filter")
    return f"{expr} {op} ?", [*expr_params, cond.value]


# ---------------------------------------------------------------------------------------
# Planning: step row sets as SQL
# ---------------------------------------------------------------------------------------

@dataclass
class _Breakdown:
    kind: str  # event | user | segment
    expr: str = ""  # event: over f/p; user: over us; segment: over the segment join
    params: list[Any] = field(default_factory=list)
    needs_products: bool = False
    join: str = ""  # segment: the LEFT JOINs from core.breakdowns that expr reads


@dataclass
class _Plan:
    steps: list[tuple[str, list[Any]]]  # per step: SELECT u, t[, b] ... with its parameters
    window_us: int
    breakdown: _Breakdown | None
    empty_steps: list[str]


def _resolve_breakdown(store: Store, schema: Schema, key: str | None) -> _Breakdown | None:
    if not key:
        return None
    key = key.strip()
    # Checked here, at planning, so an unknown run is refused before any step runs.
    segment = segment_join(store, key, user_id="fu.user_id")
    if segment is not None:
        return _Breakdown("segment", segment.expr, segment.params, join=segment.join)
    if key in ("user_id", "ts", "t", "u", "ev"):
        raise QueryError(f"Cannot break a funnel down by {key!r}.", title="Unknown breakdown")
    if key.startswith(("user.", "users.", "attributes.")):
        expr, params = user_column(schema, key)
        return _Breakdown("user", expr, params)
    try:
        expr, needs_products = _event_column(schema, key, products=True)
        return _Breakdown("event", expr, [], needs_products)
    except QueryError:
        pass
    try:
        expr, params = user_column(schema, key)
        return _Breakdown("user", expr, params)
    except QueryError:
        options = ", ".join(o.key for o in breakdown_options(store))
        raise QueryError(f"{key!r} is not an event column, user column, user attribute or segment run. Try: {options}.",
                         title="Unknown breakdown") from None


def _plan(store: Store, spec: FunnelSpec, cur: duckdb.DuckDBPyConnection) -> _Plan:
    schema = Schema.load(store)
    breakdown = _resolve_breakdown(store, schema, spec.breakdown)
    codes = dict(cur.execute(
        "SELECT event_name, ev FROM funnel_event_names WHERE list_contains(?, event_name)",
        [[s.event_name for s in spec.steps]],
    ).fetchall())

    common, common_params, common_products = [], [], False
    if spec.start:
        common.append("f.t >= ?")
        common_params.append(_epoch_us(spec.start))
    if spec.end:
        common.append("f.t < ?")
        common_params.append(_epoch_us(spec.end))
    for cond in spec.event_filters:
        expr, needs = _event_column(schema, cond.column, products=True)
        sql, params = _condition_sql(expr, [], cond)
        common.append(sql)
        common_params += params
        common_products |= needs
    if spec.user_filters:
        parts, uparams = [], []
        for cond in spec.user_filters:
            expr, eparams = user_column(schema, cond.column)
            sql, params = _condition_sql(expr, eparams, cond)
            parts.append(sql)
            uparams += params
        cur.execute(
            "CREATE OR REPLACE TEMP TABLE _uf AS SELECT fu.u FROM funnel_users fu JOIN users us ON us.user_id = fu.user_id WHERE "
            + " AND ".join(parts),
            uparams,
        )
        common.append("f.u IN (SELECT u FROM _uf)")

    steps = []
    for k, step in enumerate(spec.steps):
        where, params, products = ["f.ev = ?"], [codes.get(step.event_name, -1)], common_products
        for cond in step.filters:
            expr, needs = _event_column(schema, cond.column, products=True)
            sql, p = _condition_sql(expr, [], cond)
            where.append(sql)
            params += p
            products |= needs
        where += common
        params += common_params
        select = "f.u, f.t"
        if k == 0 and breakdown and breakdown.kind == "event":
            select += f", {breakdown.expr} AS b"
            products |= breakdown.needs_products
        join = " LEFT JOIN products p ON p.product_id = f.product_id" if products else ""
        steps.append((f"SELECT {select} FROM funnel_events f{join} WHERE {' AND '.join(where)}", params))
    empty = [s.event_name for s in spec.steps if s.event_name not in codes]
    return _Plan(steps, _us(spec.window), breakdown, empty)


# ---------------------------------------------------------------------------------------
# Running: temp tables on one cursor
# ---------------------------------------------------------------------------------------

def _run(cur: duckdb.DuckDBPyConnection, spec: FunnelSpec, plan: _Plan) -> None:
    """Leaves, on this cursor: _first(u, t0[, b]) for users with a step-1 event, _c{k}(u, t, st, pt)
    for every step-k event ending a valid chain (st: latest possible start, pt: latest possible
    step-(k-1) event), and _lv(u, t0, lvl[, b]) with each user's deepest step."""
    n = len(spec.steps)
    w = plan.window_us
    s1_sql, s1_params = plan.steps[0]
    has_b = plan.breakdown is not None and plan.breakdown.kind == "event"
    if has_b:
        # The first step-1 event and, on ties, the smallest non-empty value.
        cur.execute(
            f"CREATE OR REPLACE TEMP TABLE _first AS SELECT u, m.t AS t0, m.b AS b FROM ("
            f"SELECT u, min(struct_pack(t := t, n := b IS NULL, b := b::VARCHAR)) AS m FROM ({s1_sql}) GROUP BY u)",
            s1_params,
        )
    else:
        cur.execute(f"CREATE OR REPLACE TEMP TABLE _first AS SELECT u, min(t) AS t0 FROM ({s1_sql}) GROUP BY u", s1_params)

    if spec.mode == "strict":
        _run_strict(cur, spec, plan)
    else:
        # Step 1 rows as chain starts: all of them, or each user's first one only.
        start_sql, start_params = ("SELECT u, t0 AS t FROM _first", []) if spec.first_touch_only else (f"SELECT u, t FROM ({s1_sql})", s1_params)
        later = set(spec.repeated_steps()) if spec.repeat_needs_later else set()
        for k in range(2, n + 1):
            sk_sql, sk_params = plan.steps[k - 1]
            before = "<" if k in later else "<="  # a repeated step's event must come after the previous one
            if k == 2:
                cur.execute(
                    f"CREATE OR REPLACE TEMP TABLE _c2 AS SELECT s.u, s.t, max(p.t) AS st, max(p.t) AS pt "
                    f"FROM (SELECT DISTINCT u, t FROM ({sk_sql})) s JOIN ({start_sql}) p "
                    f"ON p.u = s.u AND p.t {before} s.t AND p.t >= s.t - {w} GROUP BY s.u, s.t",
                    sk_params + start_params,
                )
            else:
                cur.execute(
                    f"CREATE OR REPLACE TEMP TABLE _c{k} AS SELECT s.u, s.t, max(c.st) AS st, max(c.t) AS pt "
                    f"FROM (SELECT DISTINCT u, t FROM ({sk_sql}) WHERE u IN (SELECT u FROM _c{k - 1})) s "
                    f"JOIN _c{k - 1} c ON c.u = s.u AND c.t {before} s.t AND c.st >= s.t - {w} GROUP BY s.u, s.t",
                    sk_params,
                )
    if n == 1:
        cur.execute("CREATE OR REPLACE TEMP TABLE _lv AS SELECT *, 1 AS lvl FROM _first")
        return
    # Users in _c{k} are a subset of those in _c{k-1}: the deepest k that has the user is its level.
    deepest = " UNION ALL ".join(f"SELECT DISTINCT u, {k} AS lvl FROM _c{k}" for k in range(2, n + 1))
    cur.execute(
        f"CREATE OR REPLACE TEMP TABLE _lv AS SELECT f.*, coalesce(d.lvl, 1) AS lvl FROM _first f "
        f"LEFT JOIN (SELECT u, max(lvl) AS lvl FROM ({deepest}) GROUP BY u) d ON d.u = f.u"
    )


def _run_strict(cur: duckdb.DuckDBPyConnection, spec: FunnelSpec, plan: _Plan) -> None:
    n = len(spec.steps)
    w = plan.window_us
    if n == 1:
        return
    union, params = [], []
    for k, (sql, p) in enumerate(plan.steps, start=1):
        union.append(f"SELECT DISTINCT u, t, {k} AS k FROM ({sql}) WHERE u IN (SELECT u FROM _first)")
        params += p
    lags = ", ".join(f"lag(k, {j}) OVER w AS k{j}, lag(t, {j}) OVER w AS t{j}" for j in range(1, n))
    cur.execute(
        f"CREATE OR REPLACE TEMP TABLE _seq AS SELECT u, t, k, {lags} FROM ({' UNION ALL '.join(union)}) "
        "WINDOW w AS (PARTITION BY u ORDER BY t, k)",
        params,
    )
    for k in range(2, n + 1):
        contiguous = " AND ".join(f"k{j} = {k - j}" for j in range(1, k))
        first = " AND st = (SELECT t0 FROM _first WHERE _first.u = x.u)" if spec.first_touch_only else ""
        cur.execute(
            f"CREATE OR REPLACE TEMP TABLE _c{k} AS SELECT * FROM (SELECT u, t, t{k - 1} AS st, t1 AS pt FROM _seq "
            f"WHERE k = {k} AND {contiguous}) x WHERE t - st <= {w}{first}"
        )


# ---------------------------------------------------------------------------------------
# Summaries
# ---------------------------------------------------------------------------------------

def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def _step_stats(spec: FunnelSpec, reached: Sequence[int]) -> list[StepStat]:
    out = []
    for i, step in enumerate(spec.steps):
        users = int(reached[i])
        nxt = int(reached[i + 1]) if i + 1 < len(reached) else users
        out.append(StepStat(
            i + 1, step.title, users,
            None if i == 0 else _ratio(users, int(reached[i - 1])),
            _ratio(users, int(reached[0])),
            users - nxt,
        ))
    return out


def _reached_from_levels(levels: Iterable[tuple[int, int]], n: int) -> list[int]:
    at = defaultdict(int)
    for lvl, users in levels:
        at[int(lvl)] += int(users)
    return [sum(v for lvl, v in at.items() if lvl >= k) for k in range(1, n + 1)]


def _histogram(values: np.ndarray, window_s: float) -> tuple[tuple[str, float, float, int], ...]:
    edges = [e for e in _BINS if e < window_s] + [window_s]
    # Bin i holds edges[i] <= v < edges[i + 1]; the last bin also holds v == window.
    idx = np.clip(np.searchsorted(np.asarray(edges[1:-1], dtype=float), values, side="right"), 0, len(edges) - 2)
    counts = np.bincount(idx, minlength=len(edges) - 1)
    return tuple((f"{_human(edges[i])}–{_human(edges[i + 1])}", float(edges[i]), float(edges[i + 1]), int(counts[i])) for i in range(len(counts)))


def _human(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s" if seconds else "0"


def _timing(cur: duckdb.DuckDBPyConnection, table: str, column: str, k_from: int, k_to: int, window_s: float) -> StepTiming:
    # For each user: the earliest event ending a valid chain, and its gap (column) in seconds.
    gaps = cur.execute(f"SELECT arg_min({column}, t) / 1e6 AS g FROM {table} GROUP BY u").fetchnumpy()["g"]
    gaps = np.asarray(gaps, dtype=float)
    median = p90 = None
    if len(gaps):
        median, p90 = (float(q) for q in np.quantile(gaps, [0.5, 0.9]))
    return StepTiming(k_from, k_to, len(gaps), median, p90, _histogram(gaps, window_s))


def _group_expr(cur: duckdb.DuckDBPyConnection, plan: _Plan) -> str | None:
    """Adds column g (text, NULL = none) to _lv for the breakdown; returns the grouping SQL."""
    b = plan.breakdown
    if b is None:
        return None
    if b.kind == "event":
        cur.execute("CREATE OR REPLACE TEMP TABLE _lvg AS SELECT u, lvl, t0, b AS g FROM _lv")
    elif b.kind == "user":
        cur.execute(
            f"CREATE OR REPLACE TEMP TABLE _lvg AS SELECT l.u, l.lvl, l.t0, ({b.expr})::VARCHAR AS g FROM _lv l "
            "JOIN funnel_users fu ON fu.u = l.u LEFT JOIN users us ON us.user_id = fu.user_id",
            b.params,
        )
    else:
        cur.execute(
            f"CREATE OR REPLACE TEMP TABLE _lvg AS SELECT l.u, l.lvl, l.t0, {b.expr} AS g FROM _lv l "
            f"JOIN funnel_users fu ON fu.u = l.u {b.join}",
            b.params,
        )
    return "_lvg"


def _breakdown_frame(cur: duckdb.DuckDBPyConnection, spec: FunnelSpec) -> pd.DataFrame:
    n = len(spec.steps)
    rows = cur.execute("SELECT g, lvl, count(*) FROM _lvg GROUP BY ALL").fetchall()
    per_group: dict[Any, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for g, lvl, users in rows:
        per_group[g][int(lvl)] += int(users)
    sizes = sorted(per_group, key=lambda g: (-sum(per_group[g].values()), g is None, str(g)))
    shown = sizes[:MAX_GROUPS] if len(sizes) <= MAX_GROUPS else sizes[: MAX_GROUPS - 1]
    merged: dict[str, dict[int, int]] = {}
    for g in sizes:
        label = (NONE_LABEL if g is None else str(g)) if g in shown else OTHER_LABEL
        target = merged.setdefault(label, defaultdict(int))
        for lvl, users in per_group[g].items():
            target[lvl] += users
    records = []
    for label, levels in merged.items():
        reached = _reached_from_levels(levels.items(), n)
        for s in _step_stats(spec, reached):
            records.append({"group": label, "step": s.step, "label": s.label, "users": s.users,
                            "from_previous": s.from_previous, "from_first": s.from_first})
    return pd.DataFrame.from_records(records, columns=["group", "step", "label", "users", "from_previous", "from_first"])


def _trend_frame(cur: duckdb.DuckDBPyConnection, spec: FunnelSpec) -> pd.DataFrame:
    n = len(spec.steps)
    unit = "week" if spec.trend == "week" else "day"  # from a fixed set, never user text
    reached = ", ".join(f"count(*) FILTER (WHERE lvl >= {k}) AS reached_{k}" for k in range(2, n + 1))
    frame = cur.execute(
        f"SELECT date_trunc('{unit}', make_timestamp(t0)) AS period, count(*) AS started"
        f"{', ' + reached if reached else ''} FROM _lv GROUP BY 1 ORDER BY 1"
    ).df()
    last = f"reached_{n}" if n > 1 else "started"
    frame["conversion"] = frame[last] / frame["started"]
    # A period whose users have not all had the whole window before the range ends cannot have converted
    # yet: it is marked, so a falling line at the end is not read as a falling business.
    end = spec.end or cur.execute("SELECT max(ts) FROM events").fetchall()[0][0]
    step = pd.Timedelta(days=7 if unit == "week" else 1)
    frame["complete"] = [end is not None and p + step + spec.window <= pd.Timestamp(end) for p in frame["period"]]
    return frame


# ---------------------------------------------------------------------------------------
# The entry points
# ---------------------------------------------------------------------------------------

def funnel(store: Store, spec: FunnelSpec) -> FunnelResult:
    """Steps, breakdown, trend and time to convert for ``spec``.

    Brings the funnel index up to date first (seconds, once after events change). Not cached here:
    pages read it through their one cache (``pages._resources.cached_read``, keyed on the data's
    version), which a second cache in core could only duplicate.
    """
    began = time.perf_counter()
    ensure_index(store)
    with store.cursor("DuckDB could not run this funnel") as cur:
        plan = _plan(store, spec, cur)
        if plan.empty_steps and not _any_events(cur):
            raise QueryError("There are no events yet. Import an event log or build the demo store first.",
                             title="Nothing to count")
        if plan.empty_steps:
            known = [r[0] for r in cur.execute("SELECT event_name FROM funnel_event_names ORDER BY events DESC LIMIT 12").fetchall()]
            raise QueryError(
                f"No events are named {', '.join(repr(e) for e in plan.empty_steps)}. Known event names include: {', '.join(known)}.",
                title="Unknown funnel step",
            )
        _run(cur, spec, plan)
        n = len(spec.steps)
        reached = _reached_from_levels(cur.execute("SELECT lvl, count(*) FROM _lv GROUP BY lvl").fetchall(), n)
        steps = _step_stats(spec, reached)
        breakdown = _breakdown_frame(cur, spec) if _group_expr(cur, plan) else None
        trend = _trend_frame(cur, spec)
        window_s = spec.window.total_seconds()
        timings = [_timing(cur, f"_c{k + 1}", "t - pt", k, k + 1, window_s) for k in range(1, n)]
        total = _timing(cur, f"_c{n}", "t - st", 1, n, window_s) if n > 2 else None
    return FunnelResult(spec, steps, breakdown, trend, timings, total, round(time.perf_counter() - began, 4))


def _any_events(cur: duckdb.DuckDBPyConnection) -> bool:
    return bool(cur.execute("SELECT count(*) FROM funnel_event_names").fetchall()[0][0])


def funnel_levels(store: Store, spec: FunnelSpec) -> pd.DataFrame:
    """One row per user who reached step 1: user_id, first_step_at, deepest step reached."""
    ensure_index(store)
    with store.cursor("DuckDB could not run this funnel") as cur:
        plan = _plan(store, spec, cur)
        _run(cur, spec, plan)
        return cur.execute(
            "SELECT fu.user_id, make_timestamp(l.t0) AS first_step_at, l.lvl AS deepest_step FROM _lv l "
            "JOIN funnel_users fu ON fu.u = l.u ORDER BY fu.user_id"
        ).df()


def dropped_users(store: Store, spec: FunnelSpec, step: int) -> pd.DataFrame:
    """Users who reached ``step`` (1-based) but not the next one: user_id, first_step_at.

    Ready to export (core.exports.safe_csv_bytes) or to save as a segment.
    """
    if not 1 <= step <= len(spec.steps):
        raise QueryError(f"Step {step} is not in this {len(spec.steps)}-step funnel.", title="Unknown funnel step")
    levels = funnel_levels(store, spec)
    if step == len(spec.steps):  # whoever reached the last step converted: nobody dropped there
        levels = levels.iloc[0:0]
    out = levels[levels["deepest_step"] == step][["user_id", "first_step_at"]]
    return out.reset_index(drop=True)


def last_step_users(store: Store, spec: FunnelSpec) -> pd.DataFrame:
    """The plainer count beside a funnel's trend: users with the last step's event in each day or week of the
    range (``spec.trend``), whatever funnel they were on (period, users). A scan of the raw events, kept out
    of ``funnel`` so a funnel costs no more when nobody asks for it."""
    unit = "week" if spec.trend == "week" else "day"  # from a fixed set, never user text
    where = ["event_name = ?"] + (["ts >= ?"] if spec.start else []) + (["ts < ?"] if spec.end else [])
    params = [spec.steps[-1].event_name, *([spec.start] if spec.start else []), *([spec.end] if spec.end else [])]
    with store.cursor("DuckDB could not count the last step's users") as cur:
        return cur.execute(f"SELECT date_trunc('{unit}', ts) AS period, count(DISTINCT user_id) AS users FROM events "
                           f"WHERE {' AND '.join(where)} GROUP BY 1 ORDER BY 1", params).df()


def list_event_names(store: Store) -> pd.DataFrame:
    """Event names present, most frequent first: event_name, events, users (for the step picker)."""
    with store.cursor("DuckDB could not list the event names") as cur:
        return cur.execute(
            "SELECT event_name, count(*) AS events, count(DISTINCT user_id) AS users FROM events "
            "GROUP BY event_name ORDER BY events DESC, event_name"
        ).df()


def breakdown_options(store: Store) -> list[BreakdownOption]:
    """Everything a funnel can be broken down by, for the page's picker."""
    schema = Schema.load(store)
    options = [BreakdownOption(c, c.replace("_", " "), "event", everyday=c not in _ID_COLUMNS) for c in _EVENT_COLUMNS
               if c in schema.events and c not in ("user_id", "ts", "event_name", "revenue")]
    options += [BreakdownOption(f"product.{c}", f"product {c}", "event") for c in ("category", "brand") if c in schema.products]
    options += [BreakdownOption(f"user.{c}", c.replace("_", " "), "user") for c in schema.users if c not in ("user_id", "attributes", "first_seen")]
    options += [BreakdownOption(f"attributes.{k}", k.replace("_", " "), "attribute", everyday=not k.startswith("demo_"))
                for k in schema.attribute_keys()]
    with store.cursor() as cur:
        runs = cur.execute(
            "SELECT run_id, method, k, created_at, json_extract_string(params, '$.name'), "
            "coalesce(json_extract(params, '$.use_text')::BOOLEAN, false) FROM segment_runs ORDER BY created_at DESC"
        ).fetchall()
    # A run by what people call it ("5 behaviour segments · 4 Dec 14:53"; a saved list by its name), never by its id.
    options += [BreakdownOption(segment_key(r), run_title(m, k, created, name=name, use_text=bool(text)), "segment")
                for r, m, k, created, name, text in runs]
    return options
