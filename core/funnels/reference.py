"""The funnel by definition, in plain Python: slow, and written to be obviously right.

Only the tests use it, to check the SQL engine against the counting rules on random logs; it
lives beside the engine so the two definitions are read (and changed) together.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime
from typing import Any

import pandas as pd

from core.funnels.contract import Condition, FunnelSpec

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
