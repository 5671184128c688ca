"""Conversion funnels: FunnelSpec -> parameterised SQL on DuckDB -> FunnelResult.

Counting follows ClickHouse's ``windowFunnel(window)`` in its default mode, so results can be
checked against a peer (bench/funnels.py does, on millions of events): a user reaches step k
when they have events of steps 1..k at times t1 <= t2 <= ... <= tk (equal times count as in
order, as ClickHouse orders ties by step) with tk - t1 <= window. One event may serve two
steps that it matches (steps "view, view" are reached by a single view, as in ClickHouse).
Each user counts once, at the deepest step reached.

``mode="strict"``: the matched events must follow each other directly in the user's sequence
of funnel-step events (sorted by time, ties by step; repeats of one step at one instant count
once): no other funnel-step event in between. Events that are no funnel step never break a
chain. (ClickHouse's ``strict_order`` also stops at non-step events, and lets a repeat of an
already reached step pass; this is the stricter, simpler reading.)

``first_touch_only``: only chains that start at the user's first step-1 event count.

Breakdowns, trend and time to convert, and why they are defined so:

- A breakdown by an event column (device, campaign, variant_id, ...) uses the value on the
  user's first step-1 event in the range (ties: the smallest non-empty value), so every user
  sits in exactly one group and the groups add up to the funnel.
- The trend groups users by the day or week of that same first step-1 event.
- Time to convert from step k to k+1: for each user who reached k+1, the earliest step-(k+1)
  event that completes a chain within the window, minus the latest step-k event that can
  precede it in such a chain.

How it is fast: a funnel index (tables ``funnel_users``, ``funnel_event_names``,
``funnel_events``; schema migration 2) holds the event log with users and event names as dense
integers, sorted by event, user and time (so a step's scan skips every other event's row
groups, and joins on user see their keys in order), rebuilt whenever the events table changed. On it, each step
is a hash join of the (few) step-k events against the chains that reached step k-1 of the same
user, keeping the latest possible start: no sort, and only users who reached step k-1 enter it.
"""

from __future__ import annotations

import math
import re
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from core.errors import QueryError
from core.segment_titles import run_title
from core.store import Store, quote_ident

__all__ = [
    "BreakdownOption", "Condition", "FunnelResult", "FunnelSpec", "IndexInfo", "Step", "StepStat", "StepTiming",
    "breakdown_options", "dropped_users", "ensure_index", "funnel", "funnel_levels", "last_step_users", "list_event_names",
    "parse_window",
    "reference_funnel",
]

MIN_WINDOW = timedelta(minutes=1)
MAX_WINDOW = timedelta(days=90)  # longer windows mean "ever", which a funnel without a window says better
MAX_STEPS = 10
MAX_GROUPS = 25  # breakdown groups shown; the rest are merged into "(other)"
NONE_LABEL = "(none)"
OTHER_LABEL = "(other)"

# Time-to-convert histogram edges, in seconds: human units, cut at the window.
_BINS = (0, 60, 300, 1800, 3600, 3 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, 60 * 86400, 90 * 86400)

_OPS = {"=": "=", "!=": "<>", "<>": "<>", ">": ">", ">=": ">=", "<": "<", "<=": "<=",
        "in": "IN", "not in": "NOT IN", "is null": "IS NULL", "is not null": "IS NOT NULL"}

# ---------------------------------------------------------------------------------------
# The contract
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Condition:
    """``column op value``. Columns: an events column, a products column (``category`` or
    ``product.brand``, via the event's product_id) for step and event filters; a users column
    or ``attributes.KEY`` for user filters. Values are always bound, never pasted."""

    column: str
    op: str = "="
    value: Any = None

    def __post_init__(self) -> None:
        op = self.op.strip().lower()
        if op not in _OPS:
            raise QueryError(f"Unknown comparison {self.op!r}; use one of {', '.join(_OPS)}.", title="Invalid funnel filter")
        object.__setattr__(self, "op", op)
        if op in ("in", "not in"):
            values = self.value if isinstance(self.value, (list, tuple, set, frozenset)) else [self.value]
            object.__setattr__(self, "value", tuple(values))


@dataclass(frozen=True)
class Step:
    event_name: str
    filters: tuple[Condition, ...] = ()
    label: str | None = None  # shown instead of the event name, e.g. "purchase > $0"

    def __post_init__(self) -> None:
        object.__setattr__(self, "filters", tuple(self.filters))

    @property
    def title(self) -> str:
        return self.label or self.event_name


def _bound(value: Any, name: str) -> datetime | None:
    """A date range bound as a naive UTC datetime (events are stored so): from a date, a datetime
    (an aware one converted to UTC) or ISO text. Anything else is refused here, not left to fail as
    a TypeError deep in the query."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise QueryError(f"The {name} date must look like 2026-09-01 or 2026-09-01T12:00, got {value!r}.",
                             title="Invalid funnel dates") from None
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo is not None else value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    raise QueryError(f"The {name} date must be a date, a datetime or text like 2026-09-01, got {value!r}.",
                     title="Invalid funnel dates")


@dataclass(frozen=True)
class FunnelSpec:
    steps: tuple[Step, ...]
    window: timedelta = timedelta(days=7)  # last step no later than this after the first
    mode: str = "ordered"  # "ordered" (ClickHouse windowFunnel default) | "strict"
    first_touch_only: bool = False  # only chains starting at the user's first step-1 event
    start: datetime | None = None  # events at or after (UTC; a date, an aware datetime or ISO text is converted)
    end: datetime | None = None  # events before
    event_filters: tuple[Condition, ...] = ()  # narrow every step's events
    user_filters: tuple[Condition, ...] = ()
    breakdown: str | None = None  # see breakdown_options()
    trend: str = "day"  # "day" | "week"
    # A step that repeats the step before it (purchase -> purchase) is met by the same event, as
    # in ClickHouse's windowFunnel; True asks for a later event instead (a second purchase).
    repeat_needs_later: bool = False

    def __post_init__(self) -> None:
        steps = tuple(Step(s) if isinstance(s, str) else s for s in self.steps)
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "window", parse_window(self.window))
        object.__setattr__(self, "event_filters", tuple(self.event_filters))
        object.__setattr__(self, "user_filters", tuple(self.user_filters))
        for name in ("start", "end"):
            object.__setattr__(self, name, _bound(getattr(self, name), name))
        if not steps:
            raise QueryError("Pick at least one step.", title="Invalid funnel")
        if len(steps) > MAX_STEPS:
            raise QueryError(f"A funnel has at most {MAX_STEPS} steps, got {len(steps)}.", title="Invalid funnel")
        if any(not isinstance(s.event_name, str) or not s.event_name for s in steps):
            raise QueryError("Every step needs an event name.", title="Invalid funnel")
        if self.mode not in ("ordered", "strict"):
            raise QueryError(f"mode must be 'ordered' or 'strict', got {self.mode!r}.", title="Invalid funnel")
        if self.repeat_needs_later and self.mode == "strict":
            # In strict mode one event is its own next step by definition (nothing comes between).
            raise QueryError("A later event for a repeated step needs the ordered mode, not strict.", title="Invalid funnel")
        if self.trend not in ("day", "week"):
            raise QueryError(f"trend must be 'day' or 'week', got {self.trend!r}.", title="Invalid funnel")
        if self.start and self.end and self.start >= self.end:
            raise QueryError("The date range is empty: its start is not before its end.", title="Invalid funnel")

    def repeated_steps(self) -> list[int]:
        """1-based steps whose event (and filters) are those of the step before them."""
        return [k for k in range(2, len(self.steps) + 1) if self.steps[k - 1] == self.steps[k - 2]]

    def notes(self) -> list[str]:
        """What a reader of this funnel must know about how it counts."""
        repeated = self.repeated_steps()
        if not repeated:
            return []
        names = ", ".join(f"step {k} ({self.steps[k - 1].event_name})" for k in repeated)
        if self.repeat_needs_later:
            return [f"{names} repeats the step before it and counts only a later event of that name (a second one)."]
        return [f"{names} repeats the step before it: one event counts as both steps (as ClickHouse's windowFunnel "
                "does), so the step cannot drop anyone. Ask for a later, different event to count a second one."]

    @classmethod
    def of(cls, *event_names: str, **options: Any) -> FunnelSpec:
        """``FunnelSpec.of("view", "add_to_cart", "purchase", window="7d")``."""
        return cls(steps=tuple(Step(n) for n in event_names), **options)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (the window as '7d'): what results and saved segments record as their audit trail."""
        spec = asdict(self)
        spec["window"] = _format_window(self.window)
        return spec


@dataclass(frozen=True)
class StepStat:
    step: int  # 1-based
    label: str
    users: int  # reached this step (and so every step before it)
    from_previous: float | None  # users / users of the previous step
    from_first: float | None  # users / users of step 1
    dropped: int  # reached this step but not the next (0 at the last step)


@dataclass(frozen=True)
class StepTiming:
    from_step: int
    to_step: int
    users: int
    median_s: float | None
    p90_s: float | None
    histogram: tuple[tuple[str, float, float, int], ...]  # (label, from seconds, to seconds, users)


@dataclass
class FunnelResult:
    spec: FunnelSpec
    steps: list[StepStat]
    breakdown: pd.DataFrame | None  # group, step, label, users, from_previous, from_first
    trend: pd.DataFrame  # period, started, reached_2.., conversion, complete (window over)
    timings: list[StepTiming]  # k -> k+1
    total_timing: StepTiming | None  # step 1 -> last step
    seconds: float = 0.0

    @property
    def users(self) -> int:
        return self.steps[0].users if self.steps else 0

    @property
    def conversion(self) -> float | None:
        return self.steps[-1].from_first if self.steps else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_dict(),
            "users": self.users,
            "conversion": self.conversion,
            "steps": [asdict(s) for s in self.steps],
            "breakdown": None if self.breakdown is None else self.breakdown.to_dict(orient="records"),
            "trend": self.trend.to_dict(orient="records"),
            "timings": [asdict(t) for t in self.timings],
            "total_timing": asdict(self.total_timing) if self.total_timing else None,
            "seconds": self.seconds,
            "notes": self.spec.notes(),
        }


@dataclass(frozen=True)
class BreakdownOption:
    key: str  # what FunnelSpec.breakdown takes
    label: str
    kind: str  # event | user | attribute | segment
    # What a marketer breaks down by: not an id (thousands of one-user groups) nor the demo's planted truth.
    everyday: bool = True


@dataclass(frozen=True)
class IndexInfo:
    events: int
    rebuilt: bool
    seconds: float
    fingerprint: str = ""


# ---------------------------------------------------------------------------------------
# Windows
# ---------------------------------------------------------------------------------------

_WINDOW_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|min|mins|minutes?|h|hours?|d|days?|w|weeks?)\s*$", re.IGNORECASE)


def parse_window(value: str | timedelta | int | float) -> timedelta:
    """'30m', '12h', '7d', '2w' (or a timedelta, or seconds) -> timedelta within 1 minute .. 90 days."""
    if isinstance(value, timedelta):
        window = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        window = timedelta(seconds=value)
    elif isinstance(value, str):
        m = _WINDOW_RE.match(value)
        if not m:
            raise QueryError(f"Write the window as a number and a unit, like 30m, 12h, 7d or 2w; got {value!r}.", title="Invalid funnel window")
        unit = m.group(2)[0].lower()
        window = timedelta(**{{"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[unit]: float(m.group(1))})
    else:
        raise QueryError(f"Invalid window {value!r}.", title="Invalid funnel window")
    if not MIN_WINDOW <= window <= MAX_WINDOW:
        shown = repr(value) if isinstance(value, str) else _format_window(window)
        raise QueryError(f"The window must be between 1 minute and 90 days, got {shown}.", title="Invalid funnel window")
    return window


def _format_window(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _us(window: timedelta) -> int:
    return window // timedelta(microseconds=1)


def _epoch_us(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1)) // timedelta(microseconds=1)


# ---------------------------------------------------------------------------------------
# The funnel index
# ---------------------------------------------------------------------------------------

_EVENT_COLUMNS = ("user_id", "ts", "event_name", "product_id", "session_id", "campaign", "variant_id", "device", "source", "revenue")
_ID_COLUMNS = ("product_id", "session_id")  # break down by them only on purpose: a group per product or visit
_index_lock = threading.Lock()


def _fingerprint(cur: duckdb.DuckDBPyConnection) -> tuple[str, int]:
    # Cheap (no scan): every writer of events either logs to ingest_log in the same transaction
    # (ingest, including re-uploads that replace rows) or changes the row count and row ids (the
    # demo build, inserts, deletes). Hand-written UPDATEs are not seen: ensure_index(force=True).
    n, max_rowid, logs, last_log = cur.execute(
        "SELECT count(*), max(rowid), (SELECT count(*) FROM ingest_log WHERE table_name = 'events'), "
        "(SELECT max(ingested_at) FROM ingest_log WHERE table_name = 'events') FROM events"
    ).fetchall()[0]
    return f"{n}:{max_rowid}:{logs}:{last_log}", int(n)


def _index_is_fresh(cur: duckdb.DuckDBPyConnection) -> tuple[bool, str, int]:
    fingerprint, n = _fingerprint(cur)
    try:
        row = cur.execute("SELECT fingerprint FROM funnel_index_state").fetchall()
    except duckdb.CatalogException:
        return False, fingerprint, n  # a database from before schema migration 2
    return bool(row) and row[0][0] == fingerprint, fingerprint, n


def ensure_index(store: Store, *, force: bool = False) -> IndexInfo:
    """Bring the funnel index up to date with the events table (a no-op when it already is).

    Rebuilding takes a few seconds per ten million events; it happens on the first funnel after
    the events changed. ``force`` rebuilds anyway (after events were changed by hand-written SQL
    that left their count, row ids and timestamps as they were).
    """
    began = time.perf_counter()
    try:
        with store.cursor() as cur:
            fresh, fingerprint, n = _index_is_fresh(cur)
        if fresh and not force:
            return IndexInfo(n, False, time.perf_counter() - began, fingerprint)
        with _index_lock, store.transaction(derived=True) as cur:
            fresh, fingerprint, n = _index_is_fresh(cur)  # another thread may have just built it
            if fresh and not force:
                return IndexInfo(n, False, time.perf_counter() - began, fingerprint)
            for table in ("funnel_events", "funnel_users", "funnel_event_names", "funnel_index_state"):
                cur.execute(f"DELETE FROM {table}")
            cur.execute(
                "INSERT INTO funnel_users SELECT (row_number() OVER (ORDER BY user_id))::INTEGER, user_id "
                "FROM (SELECT DISTINCT user_id FROM events)"
            )
            cur.execute(
                "INSERT INTO funnel_event_names SELECT (row_number() OVER (ORDER BY events DESC, event_name))::INTEGER, "
                "event_name, events, users FROM (SELECT event_name, count(*) AS events, count(DISTINCT user_id) AS users "
                "FROM events GROUP BY event_name)"
            )
            columns = ", ".join(f"e.{c}" for c in _EVENT_COLUMNS)
            cur.execute(
                f"INSERT INTO funnel_events SELECT fu.u, epoch_us(e.ts), n.ev, {columns} FROM events e "
                "JOIN funnel_users fu ON fu.user_id = e.user_id JOIN funnel_event_names n ON n.event_name = e.event_name "
                "ORDER BY n.ev, fu.u, e.ts"  # each event's rows together: a step reads only its own row groups
            )
            cur.execute("INSERT INTO funnel_index_state VALUES (?, current_timestamp, ?)", [fingerprint, n])
        return IndexInfo(n, True, time.perf_counter() - began, fingerprint)
    except duckdb.Error as e:
        raise QueryError(str(e), title="DuckDB could not build the funnel index") from e


# ---------------------------------------------------------------------------------------
# Checking names against the schema
# ---------------------------------------------------------------------------------------

_columns_cache: weakref.WeakKeyDictionary[Store, tuple[list[str], list[str], list[str]]] = weakref.WeakKeyDictionary()


@dataclass
class _Schema:
    events: list[str]
    products: list[str]
    users: list[str]
    _attribute_keys: list[str] | None = None
    _store: Store | None = None

    @classmethod
    def load(cls, store: Store) -> _Schema:
        # Columns change only by migrations, which run when a Store opens: read them once per store.
        columns = _columns_cache.get(store)
        if columns is None:
            columns = _columns_cache[store] = tuple(store.columns(t) for t in ("events", "products", "users"))
        return cls(*columns, None, store)

    def attribute_keys(self) -> list[str]:
        if self._attribute_keys is None:
            with self._store.cursor() as cur:
                rows = cur.execute(
                    "SELECT DISTINCT k FROM (SELECT unnest(json_keys(attributes)) AS k FROM users "
                    "WHERE attributes IS NOT NULL AND json_type(attributes) = 'OBJECT') ORDER BY k"
                ).fetchall()
            self._attribute_keys = [r[0] for r in rows]
        return self._attribute_keys


def _json_path(key: str) -> str:
    return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _event_column(schema: _Schema, column: str, *, products: bool) -> tuple[str, bool]:
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


def _user_column(schema: _Schema, column: str) -> tuple[str, list[Any]]:
    """SQL for a users column (alias us), or one key of users.attributes; with its bound values."""
    name = column.strip()
    for prefix in ("user.", "users."):
        if name.startswith(prefix):
            name = name[len(prefix):]
    if name.startswith("attributes."):
        key = name[len("attributes."):]
        if key in schema.attribute_keys():
            return "json_extract_string(us.attributes, ?)", [_json_path(key)]
    elif name in schema.users and name != "attributes":
        return f"us.{quote_ident(name)}", []
    elif name in schema.attribute_keys():
        return "json_extract_string(us.attributes, ?)", [_json_path(name)]
    allowed = [c for c in schema.users if c != "attributes"] + [f"attributes.{k}" for k in schema.attribute_keys()]
    raise QueryError(f"{column!r} is not a user column. Use one of: {', '.join(allowed)}.", title="Unknown column in the funnel")


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
    expr: str = ""  # event: over f/p; user: over us
    params: list[Any] = field(default_factory=list)
    needs_products: bool = False
    run_id: str | None = None


@dataclass
class _Plan:
    steps: list[tuple[str, list[Any]]]  # per step: SELECT u, t[, b] ... with its parameters
    window_us: int
    breakdown: _Breakdown | None
    empty_steps: list[str]


def _resolve_breakdown(store: Store, schema: _Schema, key: str | None) -> _Breakdown | None:
    if not key:
        return None
    key = key.strip()
    if key.startswith("segment:"):
        run_id = key[len("segment:"):]
        with store.cursor() as cur:
            found = cur.execute("SELECT count(*) FROM segment_runs WHERE run_id = ?", [run_id]).fetchall()[0][0]
        if not found:
            raise QueryError(f"There is no segmentation run {run_id!r}.", title="Unknown breakdown")
        return _Breakdown("segment", run_id=run_id)
    if key in ("user_id", "ts", "t", "u", "ev"):
        raise QueryError(f"Cannot break a funnel down by {key!r}.", title="Unknown breakdown")
    if key.startswith(("user.", "users.", "attributes.")):
        expr, params = _user_column(schema, key)
        return _Breakdown("user", expr, params)
    try:
        expr, needs_products = _event_column(schema, key, products=True)
        return _Breakdown("event", expr, [], needs_products)
    except QueryError:
        pass
    try:
        expr, params = _user_column(schema, key)
        return _Breakdown("user", expr, params)
    except QueryError:
        options = ", ".join(o.key for o in breakdown_options(store))
        raise QueryError(f"{key!r} is not an event column, user column, user attribute or segment run. Try: {options}.",
                         title="Unknown breakdown") from None


def _plan(store: Store, spec: FunnelSpec, cur: duckdb.DuckDBPyConnection) -> _Plan:
    schema = _Schema.load(store)
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
            expr, eparams = _user_column(schema, cond.column)
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
            "CREATE OR REPLACE TEMP TABLE _lvg AS SELECT l.u, l.lvl, l.t0, coalesce(sg.name, us.segment_id) AS g FROM _lv l "
            "JOIN funnel_users fu ON fu.u = l.u "
            "LEFT JOIN user_segments us ON us.user_id = fu.user_id AND us.run_id = ? "
            "LEFT JOIN segments sg ON sg.run_id = us.run_id AND sg.segment_id = us.segment_id",
            [b.run_id],
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
    try:
        with store.cursor() as cur:
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
    except duckdb.Error as e:
        raise QueryError(str(e), title="DuckDB could not run this funnel") from e
    return FunnelResult(spec, steps, breakdown, trend, timings, total, round(time.perf_counter() - began, 4))


def _any_events(cur: duckdb.DuckDBPyConnection) -> bool:
    return bool(cur.execute("SELECT count(*) FROM funnel_event_names").fetchall()[0][0])


def funnel_levels(store: Store, spec: FunnelSpec) -> pd.DataFrame:
    """One row per user who reached step 1: user_id, first_step_at, deepest step reached."""
    ensure_index(store)
    try:
        with store.cursor() as cur:
            plan = _plan(store, spec, cur)
            _run(cur, spec, plan)
            return cur.execute(
                "SELECT fu.user_id, make_timestamp(l.t0) AS first_step_at, l.lvl AS deepest_step FROM _lv l "
                "JOIN funnel_users fu ON fu.u = l.u ORDER BY fu.user_id"
            ).df()
    except duckdb.Error as e:
        raise QueryError(str(e), title="DuckDB could not run this funnel") from e


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
    try:
        with store.cursor() as cur:
            return cur.execute(f"SELECT date_trunc('{unit}', ts) AS period, count(DISTINCT user_id) AS users FROM events "
                               f"WHERE {' AND '.join(where)} GROUP BY 1 ORDER BY 1", params).df()
    except duckdb.Error as e:
        raise QueryError(str(e), title="DuckDB could not count the last step's users") from e


def list_event_names(store: Store) -> pd.DataFrame:
    """Event names present, most frequent first: event_name, events, users (for the step picker)."""
    try:
        with store.cursor() as cur:
            return cur.execute(
                "SELECT event_name, count(*) AS events, count(DISTINCT user_id) AS users FROM events "
                "GROUP BY event_name ORDER BY events DESC, event_name"
            ).df()
    except duckdb.Error as e:
        raise QueryError(str(e), title="DuckDB could not list the event names") from e


def breakdown_options(store: Store) -> list[BreakdownOption]:
    """Everything a funnel can be broken down by, for the page's picker."""
    schema = _Schema.load(store)
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
    options += [BreakdownOption(f"segment:{r}", run_title(m, k, created, name=name, use_text=bool(text)), "segment")
                for r, m, k, created, name, text in runs]
    return options


# ---------------------------------------------------------------------------------------
# The reference: plain Python, slow, written to be obviously right
# ---------------------------------------------------------------------------------------

def _matches(row: dict[str, Any], cond: Condition) -> bool:
    value = row.get(cond.column.removeprefix("product."))
    if cond.op == "is null":
        return value is None
    if cond.op == "is not null":
        return value is not None
    if value is None:
        return False  # SQL: a comparison with NULL is not true
    if cond.op == "in":
        return value in cond.value
    if cond.op == "not in":
        return value not in cond.value
    other = cond.value
    return {"=": value == other, "!=": value != other, "<>": value != other, ">": value > other,
            ">=": value >= other, "<": value < other, "<=": value <= other}[cond.op]


def _clean(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value


def reference_funnel(events: pd.DataFrame, spec: FunnelSpec, products: pd.DataFrame | None = None) -> dict[str, Any]:
    """The funnel by definition, one user at a time. Returns {user_id: {...}} per user with a
    step-1 event: level, first (step-1 time), group (breakdown value for event columns), gaps
    {k: seconds from step k to k+1}, total (seconds, first to last step, for users who finished)."""
    by_product = {}
    if products is not None:
        by_product = {r["product_id"]: {k: _clean(v) for k, v in r.items()} for r in products.to_dict("records")}
    w = spec.window.total_seconds()
    n = len(spec.steps)
    entries: dict[Any, list[tuple[datetime, int, Any]]] = defaultdict(list)
    for raw in events.to_dict("records"):
        row = {k: _clean(v) for k, v in raw.items()}
        product = by_product.get(row.get("product_id"), {})
        full = {**{k: v for k, v in product.items() if k != "product_id"}, **row}
        ts = pd.Timestamp(row["ts"]).to_pydatetime()
        if spec.start and ts < spec.start or spec.end and ts >= spec.end:
            continue
        if not all(_matches(full, c) for c in spec.event_filters):
            continue
        for k, step in enumerate(spec.steps, start=1):
            if row["event_name"] == step.event_name and all(_matches(full, c) for c in step.filters):
                b = full.get(spec.breakdown.removeprefix("product.")) if spec.breakdown else None
                entries[row["user_id"]].append((ts, k, b))

    out = {}
    for user, es in entries.items():
        step1 = [e for e in es if e[1] == 1]
        if not step1:
            continue  # users with only later steps are not in the funnel
        t_first = min(e[0] for e in step1)
        firsts = [e[2] for e in step1 if e[0] == t_first]
        group = min((str(v) for v in firsts if v is not None), default=None)
        times = {k: sorted({e[0] for e in es if e[1] == k}) for k in range(1, n + 1)}
        starts = [t_first] if spec.first_touch_only else times[1]
        later = set(spec.repeated_steps()) if spec.repeat_needs_later else set()
        chains = _strict_chains(es, n, t_first if spec.first_touch_only else None) if spec.mode == "strict" \
            else _ordered_chains(times, starts, n, later)
        valid = [c for c in chains if (c[-1] - c[0]).total_seconds() <= w]
        level = max([len(c) for c in valid], default=1)
        gaps, total = {}, None
        for k in range(1, level):
            ending = [c for c in valid if len(c) >= k + 1]
            t_end = min(c[k] for c in ending)
            prev = max(c[k - 1] for c in ending if c[k] == t_end)
            gaps[k] = (t_end - prev).total_seconds()
            if k + 1 == n and n > 2:
                total = (t_end - max(c[0] for c in ending if c[k] == t_end)).total_seconds()
        out[user] = {"level": level, "first": t_first, "group": group, "gaps": gaps, "total": total}
    return out


def _ordered_chains(times: dict[int, list[datetime]], starts: list[datetime], n: int,
                    later: set[int] = frozenset()) -> list[tuple[datetime, ...]]:
    """Every chain t1 <= t2 <= ... (of any length >= 1) through distinct event times per step;
    strictly later at the steps in ``later``."""
    chains = []

    def grow(chain: tuple[datetime, ...]) -> None:
        chains.append(chain)
        k = len(chain) + 1
        if k > n:
            return
        for t in times[k]:
            if t > chain[-1] or (t == chain[-1] and k not in later):
                grow(chain + (t,))

    for t in starts:
        grow((t,))
    return chains


def _strict_chains(es: list[tuple[datetime, int, Any]], n: int, must_start: datetime | None) -> list[tuple[datetime, ...]]:
    """Chains of directly consecutive entries in the (time, step) sequence with steps 1, 2, 3, ..."""
    seq = sorted({(t, k) for t, k, _ in es})
    chains = []
    for i, (t, k) in enumerate(seq):
        if k != 1 or (must_start is not None and t != must_start):
            continue
        chain = (t,)
        chains.append(chain)
        j = i + 1
        while j < len(seq) and seq[j][1] == len(chain) + 1 and len(chain) < n:
            chain = chain + (seq[j][0],)
            chains.append(chain)
            j += 1
    return chains
