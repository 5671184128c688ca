"""A profile card per segment: the numbers a persona may quote, and nothing else.

Every number here is computed from the features frame; ``base`` is the same card for the
whole user base, so each segment can be read against it. "What sets it apart" is the
standardised difference of means, (segment mean − base mean) / base standard deviation,
on the scale clustering uses (log1p for heavy-tailed columns), largest first.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from core.segments.features import feature_help

__all__ = ["Difference", "SegmentProfile", "profile_segments", "label_of", "compare"]

_LABELS = {
    "recency_days": "days since last order",
    "frequency": "orders",
    "monetary": "revenue per user",
    "aov": "average order value",
    "days_since_visit": "days since last visit",
    "sessions": "sessions",
    "active_days": "active days",
    "views": "product views",
    "views_per_session": "views per session",
    "secs_per_event": "seconds between clicks",
    "cart_adds": "add-to-carts",
    "checkouts": "checkout starts",
    "cart_rate": "sessions with a cart add",
    "cart_abandonment": "carts abandoned",
    "conversion_rate": "sessions that convert",
    "campaign_share": "sessions from campaigns",
    "price_index": "price level viewed, relative to category median",
    "top_category_share": "activity in favourite category",
    "office_hours_share": "sessions in office hours",
    "evening_share": "evening sessions",
    "tenure_days": "days since first seen",
    "reviews": "reviews written",
    "avg_rating": "average rating given",
}


def label_of(feature: str) -> str:
    """A marketer's words for a feature column."""
    if feature.startswith("cat:"):
        return f"activity in {feature[4:]}"
    if feature.startswith("device:"):
        return f"sessions on {feature[7:]}"
    return _LABELS.get(feature, feature.replace("_", " "))


def _clean(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else x


@dataclass
class Difference:
    feature: str
    label: str
    unit: str  # share | days | count | money | ratio | seconds
    segment: float  # segment mean, on the feature's own scale
    base: float  # whole-base mean
    std_diff: float  # standardised difference (log1p scale for heavy-tailed features)


@dataclass
class SegmentProfile:
    segment_id: str
    size: int
    share: float  # of all users
    buyers: int  # users with at least one order
    conversion_rate: float  # share of users who ordered in the period
    session_conversion: float  # share of sessions with a purchase
    revenue: float
    revenue_share: float  # of all revenue
    aov: float | None  # revenue per order
    recency_mean: float | None  # days since last order, among buyers
    recency_median: float | None
    frequency_mean: float  # orders per user
    frequency_median: float
    monetary_mean: float  # revenue per user
    monetary_median: float
    days_since_visit_median: float | None
    sessions_median: float | None
    views_per_session_median: float | None
    campaign_share: float | None  # of sessions
    top_categories: list[tuple[str, float]] = field(default_factory=list)  # (category, share of activity)
    top_devices: list[tuple[str, float]] = field(default_factory=list)  # (device, share of sessions)
    differences: list[Difference] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["top_categories"] = [[c, s] for c, s in self.top_categories]
        d["top_devices"] = [[c, s] for c, s in self.top_devices]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> SegmentProfile:
        d = dict(d)
        d["top_categories"] = [tuple(x) for x in d.get("top_categories") or []]
        d["top_devices"] = [tuple(x) for x in d.get("top_devices") or []]
        d["differences"] = [Difference(**x) for x in d.get("differences") or []]
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


def _pooled(shares: pd.Series, weights: pd.Series) -> float:
    """A share over all the users' views or sessions together (not the mean of each user's share)."""
    return float(_pooled_columns(shares.to_frame(), weights)[0])


def _pooled_columns(shares: pd.DataFrame, weights: pd.Series) -> np.ndarray:
    """``_pooled`` for each column of ``shares`` at once (zeros when there is no weight)."""
    w = weights.fillna(0).to_numpy(dtype=float)
    values = shares.fillna(0).to_numpy(dtype=float)
    return values.T @ w / w.sum() if w.sum() > 0 else np.zeros(values.shape[1])


def _card(seg_id: str, f: pd.DataFrame, n_all: int, revenue_all: float, cat_cols: list[str], dev_cols: list[str], top: int) -> SegmentProfile:
    n = len(f)
    freq = f["frequency"].fillna(0)
    money = f["monetary"].fillna(0)
    buyers = int((freq > 0).sum())
    orders = float(freq.sum())
    revenue = float(money.sum())
    sessions = f["sessions"].fillna(0)
    purchase_sessions = float((f["conversion_rate"].fillna(0) * sessions).sum())
    rec = f["recency_days"].dropna()
    views = f["views"].fillna(0)

    def median(col: str) -> float | None:
        return _clean(f[col].median()) if col in f and n else None

    cats = []
    if cat_cols and views.sum() > 0:
        w = _pooled_columns(f[cat_cols], views)
        cats = sorted(((c[4:], float(s)) for c, s in zip(cat_cols, w)), key=lambda x: -x[1])[:top]
    devs = []
    if dev_cols and sessions.sum() > 0:
        w = _pooled_columns(f[dev_cols], sessions)
        devs = sorted(((c[7:], float(s)) for c, s in zip(dev_cols, w)), key=lambda x: -x[1])[:top]
    campaign = _pooled(f["campaign_share"], sessions) if sessions.sum() > 0 else None
    return SegmentProfile(
        segment_id=seg_id, size=n, share=n / n_all if n_all else 0.0, buyers=buyers,
        conversion_rate=buyers / n if n else 0.0,
        session_conversion=purchase_sessions / float(sessions.sum()) if sessions.sum() > 0 else 0.0,
        revenue=revenue, revenue_share=revenue / revenue_all if revenue_all > 0 else 0.0,
        aov=revenue / orders if orders > 0 else None,
        recency_mean=_clean(rec.mean()) if len(rec) else None, recency_median=_clean(rec.median()) if len(rec) else None,
        frequency_mean=float(freq.mean()) if n else 0.0, frequency_median=float(freq.median()) if n else 0.0,
        monetary_mean=float(money.mean()) if n else 0.0, monetary_median=float(money.median()) if n else 0.0,
        days_since_visit_median=median("days_since_visit"), sessions_median=median("sessions"),
        views_per_session_median=median("views_per_session"), campaign_share=_clean(campaign),
        top_categories=cats, top_devices=devs,
    )


def profile_segments(
    features: pd.DataFrame,
    labels: pd.Series,
    *,
    top: int = 3,
    n_differences: int = 5,
    min_std_diff: float = 0.2,
) -> tuple[list[SegmentProfile], SegmentProfile]:
    """(one profile per segment, in order of size; the whole base's profile).

    ``labels`` maps user_id to a segment id (a string) for every row of ``features``.
    Differences smaller than ``min_std_diff`` are left out: they do not set a segment apart.
    """
    labels = labels.reindex(features.index)
    codes, uniques = pd.factorize(labels.astype(object).to_numpy(), sort=False)  # integer codes: cheap masks and groupbys
    uniques = [str(u) for u in uniques]
    cat_cols = [c for c in features.columns if c.startswith("cat:")]
    dev_cols = [c for c in features.columns if c.startswith("device:")]
    n_all = len(features)
    revenue_all = float(features["monetary"].fillna(0).sum())
    base = _card("all", features, n_all, revenue_all, cat_cols, dev_cols, top)

    numeric = [c for c in features.columns if pd.api.types.is_numeric_dtype(features[c])]
    raw = features[numeric].to_numpy(dtype=np.float64)
    scaled = raw.copy()
    for j, c in enumerate(numeric):
        try:
            heavy = feature_help(c).heavy_tail
        except KeyError:
            heavy = False
        if heavy:
            scaled[:, j] = np.log1p(np.clip(scaled[:, j], 0, None))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-empty column has no mean
        base_mean_scaled = np.nanmean(scaled, axis=0)
        base_std = np.nanstd(scaled, axis=0)
        base_mean_raw = np.nanmean(raw, axis=0)
    base_std = np.where(base_std > 0, base_std, np.nan)

    sizes = np.bincount(codes[codes >= 0], minlength=len(uniques))
    profiles = []
    for j in np.argsort(-sizes, kind="stable"):
        mask = codes == j
        card = _card(uniques[j], features[mask], n_all, revenue_all, cat_cols, dev_cols, top)
        seg_scaled, seg_raw = scaled[mask], raw[mask]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            d = (np.nanmean(seg_scaled, axis=0) - base_mean_scaled) / base_std
            seg_mean_raw = np.nanmean(seg_raw, axis=0)
        enough = (~np.isnan(seg_raw)).sum(axis=0) >= 5
        keep = np.flatnonzero(enough & ~np.isnan(d) & (np.abs(d) >= min_std_diff))
        # A difference in spread alone (1.04 against 0.98 sessions) reads "1 vs 1" on a card: only
        # means at least 5 % apart are cited.
        apart = np.abs(seg_mean_raw - base_mean_raw) > 0.05 * np.maximum(np.abs(base_mean_raw), np.abs(seg_mean_raw))
        keep = keep[apart[keep]]
        for i in keep[np.argsort(-np.abs(d[keep]), kind="stable")][:n_differences]:
            c = numeric[i]
            try:
                unit = feature_help(c).unit
            except KeyError:
                unit = ""
            segment_value, base_value = float(seg_mean_raw[i]), float(base_mean_raw[i])
            if c.startswith(("cat:", "device:")):
                # Said as the card's top categories and devices are (share of all the segment's views or
                # sessions), so "activity in Outdoor Gear 52 %" never sits beside "most of it in Apparel (31 %)".
                weight = "views" if c.startswith("cat:") else "sessions"
                segment_value = _pooled(features.loc[mask, c], features.loc[mask, weight])
                base_value = _pooled(features[c], features[weight])
            card.differences.append(Difference(
                feature=c, label=label_of(c), unit=unit, segment=segment_value, base=base_value, std_diff=float(d[i]),
            ))
        profiles.append(card)
    return profiles, base


_COMPARED = (
    ("Users", "size", "count"), ("Share of users", "share", "share"), ("Ordered in the period", "conversion_rate", "share"),
    ("Sessions that convert", "session_conversion", "share"), ("Share of revenue", "revenue_share", "share"),
    ("Revenue per user", "monetary_mean", "money"), ("Average order value", "aov", "money"),
    ("Median days since last order", "recency_median", "days"), ("Orders per user", "frequency_mean", "count"),
    ("Median days since last visit", "days_since_visit_median", "days"), ("Median sessions", "sessions_median", "count"),
    ("Median views per session", "views_per_session_median", "count"), ("Sessions from campaigns", "campaign_share", "share"),
)


def order_facts(p: SegmentProfile) -> str:
    """What a segment's buyers did, in plain numbers: the facts an RFM name must agree with."""
    if not p.buyers:
        return "no orders in the log"
    parts = []
    if p.recency_mean is not None:
        parts.append(f"last order {p.recency_mean:,.0f} days before the log's end on average")
    orders = p.frequency_mean * p.size / p.buyers  # per buyer, not per user: prospects have none
    parts.append(f"{orders:,.1f} orders per buyer")
    if p.aov is not None and p.revenue:
        parts.append(f"{p.revenue / p.buyers:,.2f} spent per buyer")
    return ", ".join(parts)


def compare(a: SegmentProfile, b: SegmentProfile, base: SegmentProfile | None = None) -> pd.DataFrame:
    """Two segments side by side (and the whole base): one row per metric, with its unit."""
    rows = []
    for label, attr, unit in _COMPARED:
        row = {"metric": label, "unit": unit, a.segment_id: getattr(a, attr), b.segment_id: getattr(b, attr)}
        if base is not None:
            row["all users"] = getattr(base, attr)
        rows.append(row)
    for name, pick in (("Top category", lambda p: p.top_categories), ("Top device", lambda p: p.top_devices)):
        row = {"metric": name, "unit": "text"}
        for p, key in ((a, a.segment_id), (b, b.segment_id), *(((base, "all users"),) if base is not None else ())):
            top = pick(p)
            row[key] = f"{top[0][0]} ({top[0][1]:.0%})" if top else None
        rows.append(row)
    return pd.DataFrame(rows)
