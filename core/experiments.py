"""Copy experiments: which variant of a campaign converted best, and can we say so yet.

For events carrying ``campaign`` and ``variant_id``, per variant: users exposed (a user's first
event of the campaign carrying that variant), users converted (a conversion event, ``purchase``
by default, at or after the exposure and within the window), the conversion rate with a 95 %
Wilson interval, the relative uplift against the control, and a two-sided two-proportion
z-test (pooled variance) against the control. With several challengers the p-values are
Bonferroni-adjusted. A winner is declared only when every variant has the minimum sample and
the difference is significant. Exposure is checked for sample-ratio mismatch with a chi-square
goodness-of-fit test against an equal split.

Users, not sessions, are counted: variants are assigned per user. A user who saw two variants
of the same campaign cannot be attributed to either and is left out (and counted, so a broken
assignment shows).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from statistics import NormalDist
from typing import Any

import duckdb
import pandas as pd

from core.breakdowns import Schema, segment_join, user_column
from core.errors import QueryError
from core.funnels import parse_window
from core.store import Store

__all__ = [
    "ExperimentResult", "ExperimentSpec", "SampleNeed", "VariantStats", "chi_square_sf", "experiment", "list_campaigns",
    "two_proportion_z_test", "users_needed", "wilson_interval",
]

TEST_NAME = "two-sided two-proportion z-test (pooled), Bonferroni-adjusted across challengers"
POWER = 0.8  # the usual chance of detecting a real difference of the size seen, when planning how many more users
SRM_ALPHA = 0.001  # the usual alarm level for sample-ratio mismatch: rare by chance, common when assignment breaks
Z95 = 1.959963984540054


@dataclass(frozen=True)
class ExperimentSpec:
    campaign: str
    conversion_event: str = "purchase"
    window: timedelta = timedelta(days=7)  # conversion counts within this time after first exposure
    control: str | None = None  # a variant_id; default: the variant ending in "A", else the first
    alpha: float = 0.05
    min_users: int = 100  # exposed users every variant needs before any verdict
    breakdown: str | None = None  # "segment:RUN_ID", a users column or attributes.KEY (e.g. attributes.demo_group)
    start: datetime | None = None
    end: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "window", parse_window(self.window))
        if not 0 < self.alpha < 0.5:
            raise QueryError(f"alpha must be between 0 and 0.5, got {self.alpha}.", title="Invalid experiment")
        if self.min_users < 1:
            raise QueryError("min_users must be at least 1.", title="Invalid experiment")


@dataclass(frozen=True)
class VariantStats:
    variant_id: str
    is_control: bool
    exposed: int
    converted: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None
    uplift: float | None  # relative to the control's rate: 0.25 = +25 %
    z: float | None
    p_value: float | None  # against the control, adjusted
    significant: bool
    copy: dict[str, Any] = field(default_factory=dict)  # copy_variants.fields (headline, description, ...)
    channel: str | None = None
    tone: str | None = None

    @property
    def headline(self) -> str:
        for key in ("headline", "subject", "primary_text", "description"):
            if self.copy.get(key):
                return str(self.copy[key])
        return self.variant_id


@dataclass(frozen=True)
class SampleNeed:
    """For a test without a winner: how many users would tell, if the difference seen is real."""
    challenger: str
    uplift: float  # seen, relative to control
    users_per_variant: int  # needed in each of control and challenger, for POWER at the test's level
    more_per_variant: int  # beyond what the smaller of the two has now
    days_more: float | None  # at the rate users were exposed so far; None when that rate is unknown

    def sentence(self) -> str:
        when = ""
        if self.days_more is not None:
            # 54,206 days reads as a bug; past a year the useful news is that traffic alone will not settle it.
            when = (f" (about {math.ceil(self.days_more):,} more days at the current traffic)" if self.days_more <= 365
                    else " (more than a year at the current traffic)")
        return (f"If the {self.uplift:+.0%} of {self.challenger} is real, about {self.more_per_variant:,} more users per "
                f"variant{when} would very likely show it ({POWER:.0%} power); if it is still this close then, the "
                f"copies are about equal and either will do.")


@dataclass
class ExperimentResult:
    spec: ExperimentSpec
    variants: list[VariantStats]
    control: str
    winner: str | None
    verdict: str  # one line for the page and the CLI
    srm_p: float | None
    srm_mismatch: bool
    mixed_users: int  # saw more than one variant; left out
    test: str = TEST_NAME
    details: str = ""  # the statistics behind the verdict, for those who want them
    need: SampleNeed | None = None  # no winner, a challenger ahead: the sample that would decide
    breakdown: pd.DataFrame | None = None  # group, variant_id, exposed, converted, rate, ci_low, ci_high, uplift, p_value, significant
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        spec = asdict(self.spec)
        spec["window"] = str(self.spec.window)
        return {
            "spec": spec, "control": self.control, "winner": self.winner, "verdict": self.verdict, "test": self.test,
            "srm_p": self.srm_p, "srm_mismatch": self.srm_mismatch, "mixed_users": self.mixed_users,
            "details": self.details, "need": None if self.need is None else asdict(self.need),
            "variants": [asdict(v) | {"headline": v.headline} for v in self.variants],
            "breakdown": None if self.breakdown is None else self.breakdown.to_dict(orient="records"),
            "seconds": self.seconds,
        }


# ---------------------------------------------------------------------------------------
# Statistics (no scipy: the few formulas needed, each checked against known values in tests)
# ---------------------------------------------------------------------------------------

def wilson_interval(converted: int, n: int, z: float = Z95) -> tuple[float | None, float | None]:
    """95 % Wilson score interval for a proportion; honest near 0 and 1, unlike p ± z·se."""
    if n <= 0:
        return None, None
    p = converted / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def two_proportion_z_test(x1: int, n1: int, x2: int, n2: int) -> tuple[float | None, float | None]:
    """(z, two-sided p) for H0: p1 == p2, pooled standard error. z > 0 when group 2 converts more."""
    if n1 <= 0 or n2 <= 0:
        return None, None
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0
    z = (x2 / n2 - x1 / n1) / se
    return z, math.erfc(abs(z) / math.sqrt(2))


def users_needed(p_control: float, p_challenger: float, alpha: float, power: float = POWER) -> int | None:
    """Users per variant for a two-sided two-proportion test at ``alpha`` to detect p_control vs p_challenger
    with ``power`` (the normal-approximation formula of Fleiss, without continuity correction).
    None when there is no difference to detect."""
    if not (0 < p_control < 1 and 0 < p_challenger < 1) or p_control == p_challenger:
        return None
    normal = NormalDist()
    z_alpha, z_power = normal.inv_cdf(1 - alpha / 2), normal.inv_cdf(power)
    mean = (p_control + p_challenger) / 2
    spread = (z_alpha * math.sqrt(2 * mean * (1 - mean))
              + z_power * math.sqrt(p_control * (1 - p_control) + p_challenger * (1 - p_challenger)))
    return math.ceil(spread ** 2 / (p_challenger - p_control) ** 2)


def _gammaincc(a: float, x: float) -> float:
    """Regularised upper incomplete gamma Q(a, x) (series below a+1, continued fraction above)."""
    if x <= 0:
        return 1.0
    log_prefix = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        ap = a
        for _ in range(1000):
            ap += 1
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefix))
    # Lentz's continued fraction
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return min(1.0, math.exp(log_prefix) * h)


def chi_square_sf(x: float, df: int) -> float:
    """P(X >= x) for a chi-square distribution with df degrees of freedom."""
    if df < 1:
        raise ValueError("df must be at least 1")
    return _gammaincc(df / 2, x / 2)


def _srm(exposed: list[int]) -> float | None:
    total = sum(exposed)
    if len(exposed) < 2 or total == 0:
        return None
    expected = total / len(exposed)
    stat = sum((o - expected) ** 2 / expected for o in exposed)
    return chi_square_sf(stat, len(exposed) - 1)


# ---------------------------------------------------------------------------------------
# Queries
# ---------------------------------------------------------------------------------------

def list_campaigns(store: Store) -> pd.DataFrame:
    """Campaigns with variants: campaign, variants (list), users, events — for the page's picker."""
    with store.cursor("DuckDB could not list the campaigns") as cur:
        return cur.execute(
            "SELECT campaign, list(DISTINCT variant_id ORDER BY variant_id) AS variants, count(DISTINCT user_id) AS users, "
            "count(*) AS events FROM events WHERE campaign IS NOT NULL AND variant_id IS NOT NULL "
            "GROUP BY campaign ORDER BY users DESC, campaign"
        ).df()


def _exposure_sql(spec: ExperimentSpec) -> tuple[str, list[Any]]:
    where, params = ["campaign = ?", "variant_id IS NOT NULL"], [spec.campaign]
    if spec.start:
        where.append("ts >= ?")
        params.append(spec.start)
    if spec.end:
        where.append("ts < ?")
        params.append(spec.end)
    # One row per user: first exposure, its variant, and how many variants they saw.
    sql = (f"SELECT user_id, min(ts) AS t0, arg_min(variant_id, (ts, variant_id)) AS variant_id, "
           f"count(DISTINCT variant_id) AS variants FROM events WHERE {' AND '.join(where)} GROUP BY user_id")
    return sql, params


def _check_names(cur: duckdb.DuckDBPyConnection, spec: ExperimentSpec) -> None:
    campaigns = [r[0] for r in cur.execute(
        "SELECT DISTINCT campaign FROM events WHERE campaign IS NOT NULL AND variant_id IS NOT NULL ORDER BY 1"
    ).fetchall()]
    if spec.campaign not in campaigns:
        listed = ", ".join(campaigns) if campaigns else "none: no events carry a campaign and a variant_id"
        raise QueryError(f"No events carry campaign {spec.campaign!r} with a variant. Campaigns: {listed}.", title="Unknown campaign")
    found = cur.execute("SELECT count(*) FROM (SELECT 1 FROM events WHERE event_name = ? LIMIT 1)", [spec.conversion_event]).fetchall()[0][0]
    if not found:
        raise QueryError(f"No events are named {spec.conversion_event!r}; pick the conversion event from the event names present.",
                         title="Unknown conversion event")


def _group_sql(store: Store, key: str) -> tuple[str, str, list[Any]]:
    """(join, expression, params) adding a text group g per exposed user x."""
    # The same segment join as a funnel's, so a segment holds the same users on both pages.
    segment = segment_join(store, key, user_id="x.user_id")
    if segment is not None:
        return segment.join, segment.expr, segment.params
    expr, params = user_column(Schema.load(store), key)
    return "LEFT JOIN users us ON us.user_id = x.user_id", f"({expr})::VARCHAR", params


def _counts(cur: duckdb.DuckDBPyConnection, spec: ExperimentSpec, group: tuple[str, str, list[Any]] | None) -> pd.DataFrame:
    exposure, params = _exposure_sql(spec)
    window_us = spec.window // timedelta(microseconds=1)
    join, expr, gparams = group if group else ("", "NULL", [])
    sql = f"""
        WITH x AS ({exposure}),
        conv AS (
            SELECT x.user_id FROM x JOIN events c ON c.user_id = x.user_id AND c.event_name = ?
                AND c.ts >= x.t0 AND c.ts <= x.t0 + to_microseconds(?::BIGINT)
            WHERE x.variants = 1 GROUP BY x.user_id
        )
        SELECT {expr} AS g, x.variant_id, x.variants > 1 AS mixed, count(*) AS exposed, count(conv.user_id) AS converted,
            min(x.t0) AS first_exposure, max(x.t0) AS last_exposure
        FROM x LEFT JOIN conv ON conv.user_id = x.user_id {join}
        GROUP BY ALL
    """
    return cur.execute(sql, params + [spec.conversion_event, window_us] + gparams).df()


def _exposure_days(frame: pd.DataFrame) -> float | None:
    """Days from the first user's exposure to the last (from ``_counts``): the pace at which the test gathers users."""
    first, last = frame["first_exposure"].min(), frame["last_exposure"].max()
    days = (last - first) / timedelta(days=1) if not (pd.isna(first) or pd.isna(last)) else 0.0
    return days if days >= 1 else None


def _copy(cur: duckdb.DuckDBPyConnection, variant_ids: list[str]) -> dict[str, tuple[dict[str, Any], str | None, str | None]]:
    rows = cur.execute(
        "SELECT variant_id, fields, channel, tone FROM copy_variants WHERE list_contains(?, variant_id)", [variant_ids]
    ).fetchall()
    out = {}
    for vid, fields, channel, tone in rows:
        try:
            parsed = json.loads(fields) if isinstance(fields, str) else (fields or {})
        except json.JSONDecodeError:
            parsed = {}
        out[vid] = (parsed if isinstance(parsed, dict) else {}, channel, tone)
    return out


def _pick_control(variants: list[str], wanted: str | None) -> str:
    if wanted:
        if wanted not in variants:
            raise QueryError(f"{wanted!r} is not a variant of this campaign; variants: {', '.join(variants)}.", title="Unknown control variant")
        return wanted
    for v in variants:
        if v.upper().endswith(("-A", "_A")) or v.upper() == "A":
            return v
    return variants[0]


def _stats(counts: dict[str, tuple[int, int]], control: str, alpha: float, copy: dict[str, tuple]) -> list[VariantStats]:
    cx, cn = counts.get(control, (0, 0))
    control_rate = cx / cn if cn else None
    challengers = max(len(counts) - 1, 1)
    out = []
    for vid in sorted(counts, key=lambda v: (v != control, v)):
        x, n = counts[vid]
        rate = x / n if n else None
        lo, hi = wilson_interval(x, n)
        z = p = uplift = None
        if vid != control:
            z, p = two_proportion_z_test(cx, cn, x, n)
            p = None if p is None else min(1.0, p * challengers)
            uplift = (rate / control_rate - 1) if rate is not None and control_rate else None
        fields, channel, tone = copy.get(vid, ({}, None, None))
        out.append(VariantStats(vid, vid == control, n, x, rate, lo, hi, uplift, z, p,
                                bool(p is not None and p < alpha), fields, channel, tone))
    return out


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def _p(p: float | None) -> str:
    return "n/a" if p is None else ("p < 0.001" if p < 0.001 else f"p = {p:.3f}")


def _contenders(variants: list[VariantStats]) -> tuple[VariantStats, list[VariantStats], VariantStats | None]:
    """(control, the challengers, the best-converting challenger or None): what the verdict and the sample need both weigh."""
    ctrl = next(v for v in variants if v.is_control)
    others = [v for v in variants if not v.is_control]
    return ctrl, others, max(others, key=lambda v: v.rate or 0) if others else None


def _verdict(spec: ExperimentSpec, variants: list[VariantStats], control: str, srm_p: float | None) -> tuple[str | None, str]:
    """(winner, one line a marketer acts on): the numbers that matter in words; p-values live in ``_details``."""
    srm = srm_p is not None and srm_p < SRM_ALPHA
    warn = (" Warning: the variants were not shown to even shares of users (a sample-ratio mismatch), so the "
            "assignment may be broken: check it before trusting this." if srm else "")
    if len(variants) < 2:
        return None, f"Only one variant of {spec.campaign} was seen; there is nothing to compare.{warn}"
    small = [v for v in variants if v.exposed < spec.min_users]
    if small:
        names = ", ".join(f"{v.variant_id} ({v.exposed:,})" for v in small)
        return None, f"No winner yet: every variant needs {spec.min_users:,} users who saw it; {names} not there yet.{warn}"
    ctrl, others, best = _contenders(variants)
    assert best is not None  # two variants or more
    if best.significant and (best.rate or 0) > (ctrl.rate or 0):
        if srm:
            return None, (f"{best.variant_id} converts {_pct(best.rate)} against {_pct(ctrl.rate)} for control {control}, "
                          f"but no winner is declared.{warn}")
        return best.variant_id, (f"{best.variant_id} wins: {_pct(best.rate)} of its users converted against "
                                 f"{_pct(ctrl.rate)} for control {control} ({best.uplift:+.0%}). Give it the traffic.")
    if all(v.significant and (v.rate or 0) < (ctrl.rate or 0) for v in others):
        if srm:
            return None, f"Control {control} converts best ({_pct(ctrl.rate)}), but no winner is declared.{warn}"
        return control, f"Control {control} wins: {_pct(ctrl.rate)}, and every challenger converts less. Keep the control."
    if (best.rate or 0) <= (ctrl.rate or 0):
        return None, (f"No winner yet: no challenger converts better than control {control} ({_pct(ctrl.rate)}); "
                      f"the closest is {best.variant_id} at {_pct(best.rate)}.{warn}")
    return None, (f"No winner yet: {best.variant_id} converts {_pct(best.rate)} against {_pct(ctrl.rate)} for control "
                  f"{control}, too close to call at this size.{warn}")


def _details(spec: ExperimentSpec, variants: list[VariantStats]) -> str:
    tested = "; ".join(f"{v.variant_id} {_p(v.p_value)}" for v in variants if not v.is_control)
    return (f"Test: {TEST_NAME}, at significance level {spec.alpha:g}; {tested}. Rates with 95 % Wilson intervals. "
            f"A winner needs a significant difference and {spec.min_users:,} users per variant.")


def _need(spec: ExperimentSpec, variants: list[VariantStats], span_days: float | None) -> SampleNeed | None:
    """The sample that would decide, for the best challenger ahead of control (none when it is behind)."""
    ctrl, others, best = _contenders(variants)
    if best is None or best.uplift is None or best.uplift <= 0 or ctrl.rate is None or best.rate is None:
        return None
    needed = users_needed(ctrl.rate, best.rate, spec.alpha / max(len(others), 1))
    if needed is None:
        return None
    have = min(ctrl.exposed, best.exposed)
    more = max(0, needed - have)
    per_day = have / span_days if span_days else None
    return SampleNeed(best.variant_id, best.uplift, needed, more, more / per_day if per_day else None)


def experiment(store: Store, spec: ExperimentSpec) -> ExperimentResult:
    """Variants of one campaign side by side, with the copy text, rates, intervals, test and verdict."""
    began = time.perf_counter()
    group = _group_sql(store, spec.breakdown) if spec.breakdown else None
    with store.cursor("DuckDB could not compute this experiment") as cur:
        _check_names(cur, spec)
        frame = _counts(cur, spec, group)
        variants_seen = sorted(frame.loc[~frame["mixed"], "variant_id"].unique().tolist())
        copy = _copy(cur, variants_seen)
    mixed = int(frame.loc[frame["mixed"], "exposed"].sum())
    clean = frame[~frame["mixed"]]
    totals = clean.groupby("variant_id")[["converted", "exposed"]].sum()
    counts = {vid: (int(r.converted), int(r.exposed)) for vid, r in totals.iterrows()}
    if not counts:
        raise QueryError(f"No user saw exactly one variant of {spec.campaign}.", title="Nothing to compare")
    control = _pick_control(sorted(counts), spec.control)
    variants = _stats(counts, control, spec.alpha, copy)
    srm_p = _srm([v.exposed for v in variants])
    winner, verdict = _verdict(spec, variants, control, srm_p)
    need = None if winner else _need(spec, variants, _exposure_days(frame))

    breakdown = None
    if group is not None:
        records = []
        for g, part in clean.groupby(clean["g"].fillna("(none)"), sort=True):
            sub = {str(r.variant_id): (int(r.converted), int(r.exposed)) for r in part.itertuples()}
            if control not in sub:
                sub[control] = (0, 0)
            enough_control = sub[control][1] >= spec.min_users
            for v in _stats(sub, control, spec.alpha, {}):
                records.append({"group": g, "variant_id": v.variant_id, "exposed": v.exposed, "converted": v.converted,
                                "rate": v.rate, "ci_low": v.ci_low, "ci_high": v.ci_high, "uplift": v.uplift,
                                # the same rule as overall: no significance claimed below the minimum sample
                                "significant": v.significant and v.exposed >= spec.min_users and enough_control,
                                "p_value": v.p_value})
        breakdown = pd.DataFrame.from_records(records)
    return ExperimentResult(spec, variants, control, winner, verdict, srm_p, bool(srm_p is not None and srm_p < SRM_ALPHA),
                            mixed, details=_details(spec, variants), need=need, breakdown=breakdown,
                            seconds=round(time.perf_counter() - began, 4))
