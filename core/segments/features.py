"""Per-user features, computed in DuckDB with bound values.

One pass groups the event log by (user, session), a second by user; Python only derives
ratios from the sums. Every column is described in ``FEATURES`` (plus one ``cat:<name>``
column per top category and one ``device:<name>`` column per top device), so pages can
show what a number means and clustering knows which columns have heavy tails.

Conventions, because they decide what a number means:

- ``end`` is the log's last timestamp, or ``as_of`` when given; only events with
  ``ts < as_of`` count then (the propensity model's cutoff), else every event does.
- An order is a distinct purchase timestamp (multi-item orders share one timestamp);
  ``frequency`` counts orders, ``monetary`` sums purchase revenue.
- Events without a ``session_id`` are sessionised the usual way: a new session starts after
  30 minutes without an event (``session_gap_minutes``).
- Ratios with nothing to divide by are NaN, not zero (a user who never carted has no
  abandonment rate); clustering imputes them, profiles skip them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import duckdb
import numpy as np
import pandas as pd

from core.errors import QueryError
from core.store import Store

__all__ = ["EventNames", "Feature", "FEATURES", "UserFeatures", "compute_features", "feature_help"]


@dataclass(frozen=True)
class EventNames:
    """Which free-text event names play which part; the demo store's names by default."""

    view: str = "view"
    cart: str = "add_to_cart"
    checkout: str = "checkout"
    purchase: str = "purchase"


@dataclass(frozen=True)
class Feature:
    name: str
    group: str  # rfm | engagement | funnel | campaign | category | device | time | tenure | reviews
    help: str
    heavy_tail: bool = False  # log1p before scaling: counts and money are heavy-tailed
    unit: str = ""  # days | count | money | share | ratio | seconds


FEATURES: tuple[Feature, ...] = (
    Feature("recency_days", "rfm", "Days from the last order to the end of the log (empty without an order).", unit="days"),
    Feature("frequency", "rfm", "Orders placed (distinct purchase times per session).", heavy_tail=True, unit="count"),
    Feature("monetary", "rfm", "Revenue from purchases.", heavy_tail=True, unit="money"),
    Feature("aov", "rfm", "Average order value: revenue per order (empty without an order).", heavy_tail=True, unit="money"),
    Feature("days_since_visit", "engagement", "Days from the last event of any kind to the end of the log.", unit="days"),
    Feature("sessions", "engagement", "Sessions (visits).", heavy_tail=True, unit="count"),
    Feature("active_days", "engagement", "Distinct days with any activity.", heavy_tail=True, unit="count"),
    Feature("views", "engagement", "Product views.", heavy_tail=True, unit="count"),
    Feature("views_per_session", "engagement", "Product views per session.", heavy_tail=True, unit="ratio"),
    Feature("secs_per_event", "engagement", "Seconds between consecutive events in a session (browsing pace).", heavy_tail=True, unit="seconds"),
    Feature("cart_adds", "funnel", "Add-to-cart events.", heavy_tail=True, unit="count"),
    Feature("checkouts", "funnel", "Sessions with a checkout start.", heavy_tail=True, unit="count"),
    Feature("cart_rate", "funnel", "Share of sessions with an add-to-cart.", unit="share"),
    Feature("cart_abandonment", "funnel", "Share of sessions with a cart that ended without a purchase (empty without a cart).", unit="share"),
    Feature("conversion_rate", "funnel", "Share of sessions with a purchase.", unit="share"),
    Feature("campaign_share", "campaign", "Share of sessions that came from a campaign (campaign responsiveness).", unit="share"),
    Feature("price_index", "category", "Typical price of viewed products against their category's median (1 = median; geometric mean).", unit="ratio"),
    Feature("top_category_share", "category", "Share of the user's categorised activity in their own favourite category.", unit="share"),
    Feature("office_hours_share", "time", "Share of sessions starting 09:00–16:59.", unit="share"),
    Feature("evening_share", "time", "Share of sessions starting 19:00–23:59.", unit="share"),
    Feature("tenure_days", "tenure", "Days from first seen (profile, else first event) to the end of the log.", unit="days"),
    Feature("reviews", "reviews", "Reviews written (up to the end of the log).", heavy_tail=True, unit="count"),
    Feature("avg_rating", "reviews", "Mean rating of the user's reviews (empty without a review).", unit="ratio"),
)
_BY_NAME = {f.name: f for f in FEATURES}


def feature_help(name: str) -> Feature:
    """The description of a column, including the dynamic ``cat:`` and ``device:`` ones."""
    if name in _BY_NAME:
        return _BY_NAME[name]
    if name.startswith("cat:"):
        return Feature(name, "category", f"Share of the user's categorised activity in {name[4:]}.", unit="share")
    if name.startswith("device:"):
        return Feature(name, "device", f"Share of sessions on {name[7:]}.", unit="share")
    raise KeyError(name)


@dataclass
class UserFeatures:
    frame: pd.DataFrame  # one row per user with any event up to `end`; index user_id
    end: datetime  # the moment recency and tenure are measured to
    categories: list[str]  # the top categories that have a cat:<name> column
    devices: list[str]  # the top devices that have a device:<name> column
    events: EventNames = field(default_factory=EventNames)

    @property
    def columns(self) -> list[str]:
        return list(self.frame.columns)

    def describe(self, name: str) -> Feature:
        return feature_help(name)


def _top_values(cur: duckdb.DuckDBPyConnection, sql: str, cutoff: datetime, n: int) -> list[str]:
    rows = cur.execute(sql, {"cutoff": cutoff, "n": n}).fetchall()
    return [r[0] for r in rows if r[0] is not None]


def compute_features(
    store: Store,
    *,
    as_of: datetime | None = None,
    events: EventNames = EventNames(),
    top_categories: int = 8,
    top_devices: int = 3,
    session_gap_minutes: int = 30,
) -> UserFeatures:
    """Features for every user with at least one event (before ``as_of`` when given)."""
    with store.cursor("DuckDB could not compute user features") as cur:
        return _compute(cur, as_of, events, top_categories, top_devices, session_gap_minutes)


def _compute(cur, as_of, events: EventNames, top_categories: int, top_devices: int, gap_minutes: int) -> UserFeatures:
    if as_of is None:
        end = cur.execute("SELECT max(ts) FROM events").fetchall()[0][0]
        if end is None:
            raise QueryError("The store has no events yet. Import an event log or build the demo store first.",
                             title="Nothing to segment")
        cutoff_sql, cutoff = "e.ts <= $cutoff", end
    else:
        end, cutoff_sql, cutoff = as_of, "e.ts < $cutoff", as_of

    categories = _top_values(cur, f"""
        SELECT p.category FROM events e JOIN products p ON p.product_id = e.product_id
        WHERE {cutoff_sql} AND p.category IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT $n""", cutoff, top_categories)
    devices = _top_values(cur, f"""
        SELECT e.device FROM events e WHERE {cutoff_sql} AND e.device IS NOT NULL
        GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT $n""", cutoff, top_devices)

    # Top categories and devices become small integers once per row (list_position over the
    # bound lists), so the per-column counts compare integers; the aliases (c1, d1 …) are
    # generated, the values bound.
    cat_sums = ", ".join(f"sum(n) FILTER (WHERE ci = {i + 1}) AS c{i}" for i in range(len(categories)))
    dev_cols = ", ".join(f"avg(CASE WHEN di = {i + 1} THEN 1.0 ELSE 0.0 END) AS d{i}" for i in range(len(devices)))
    sql = f"""
    WITH cat_median AS (
        SELECT category, median(price) AS med FROM products WHERE price > 0 GROUP BY category
    ), prod AS (
        SELECT p.product_id, p.category, CASE WHEN p.price > 0 AND m.med > 0 THEN ln(p.price / m.med) END AS lrp,
               CASE WHEN p.category IS NOT NULL THEN coalesce(list_position($cats, p.category), 0) END AS ci
        FROM products p LEFT JOIN cat_median m ON m.category = p.category
    ), ev_raw AS NOT MATERIALIZED (
        SELECT e.user_id, e.ts, e.event_name, e.campaign, e.revenue, e.session_id, pr.ci, pr.lrp,
               CASE WHEN e.device IS NOT NULL THEN list_position($devs, e.device) END AS di
        FROM events e LEFT JOIN prod pr ON pr.product_id = e.product_id
        WHERE {cutoff_sql}
    ), gap AS (  -- events without a session id: a new session after $gap seconds of quiet
        SELECT *, CASE WHEN epoch(ts) - epoch(lag(ts) OVER (PARTITION BY user_id ORDER BY ts)) <= $gap THEN 0 ELSE 1 END AS starts
        FROM ev_raw WHERE session_id IS NULL
    ), ev AS NOT MATERIALIZED (
        SELECT user_id, ts, event_name, campaign, revenue, di, session_id AS sess FROM ev_raw WHERE session_id IS NOT NULL
        UNION ALL
        SELECT user_id, ts, event_name, campaign, revenue, di,
               '~gap~' || CAST(sum(starts) OVER (PARTITION BY user_id ORDER BY ts ROWS UNBOUNDED PRECEDING) AS VARCHAR) AS sess
        FROM gap
    ), o AS (  -- orders: distinct purchase times (multi-item orders share one); purchases are few
        SELECT user_id, count(DISTINCT ts) AS frequency FROM ev_raw WHERE event_name = $purchase GROUP BY user_id
    ), uc AS (  -- activity per user and category (ci 0: outside the top), and viewed price levels
        SELECT user_id, ci, count(*) AS n,
            sum(lrp) FILTER (WHERE event_name = $view) AS lrp_sum,
            count(lrp) FILTER (WHERE event_name = $view) AS lrp_n
        FROM ev_raw GROUP BY user_id, ci
    ), c AS (
        SELECT user_id, sum(n) FILTER (WHERE ci IS NOT NULL) AS categorised, sum(lrp_sum) AS lrp_sum, sum(lrp_n) AS lrp_n
            {', ' + cat_sums if categories else ''}
        FROM uc GROUP BY user_id
    ), s AS (
        SELECT user_id, sess,
            min(ts) AS t0, max(ts) AS t1, count(*) AS n,
            count(*) FILTER (WHERE event_name = $view) AS views,
            count(*) FILTER (WHERE event_name = $cart) AS carts,
            count(*) FILTER (WHERE event_name = $checkout) AS checkouts,
            count(*) FILTER (WHERE event_name = $purchase) AS purchases,
            sum(revenue) FILTER (WHERE event_name = $purchase) AS revenue,
            max(ts) FILTER (WHERE event_name = $purchase) AS last_order,
            bool_or(campaign IS NOT NULL) AS from_campaign,
            min(di) AS di
        FROM ev GROUP BY user_id, sess
    ), u AS (
        SELECT user_id,
            count(*) AS sessions,
            count(DISTINCT CAST(t0 AS DATE)) AS active_days,
            sum(views) AS views,
            sum(carts) AS cart_adds,
            count(*) FILTER (WHERE carts > 0) AS cart_sessions,
            count(*) FILTER (WHERE checkouts > 0) AS checkouts,
            count(*) FILTER (WHERE carts > 0 AND purchases = 0) AS abandoned,
            count(*) FILTER (WHERE purchases > 0) AS purchase_sessions,
            coalesce(sum(revenue), 0) AS monetary,
            max(last_order) AS last_order,
            max(t1) AS last_seen,
            min(t0) AS first_event,
            avg(CASE WHEN from_campaign THEN 1.0 ELSE 0.0 END) AS campaign_share,
            sum(epoch(t1) - epoch(t0)) AS busy_s,
            sum(n - 1) AS gaps,
            avg(CASE WHEN hour(t0) BETWEEN 9 AND 16 THEN 1.0 ELSE 0.0 END) AS office_hours_share,
            avg(CASE WHEN hour(t0) >= 19 THEN 1.0 ELSE 0.0 END) AS evening_share
            {', ' + dev_cols if devices else ''}
        FROM s GROUP BY user_id
    ), r AS (
        SELECT e.user_id, count(*) AS reviews, avg(e.rating) AS avg_rating
        FROM reviews e WHERE e.user_id IS NOT NULL AND (e.ts IS NULL OR {cutoff_sql}) GROUP BY 1
    )
    SELECT u.*, c.* EXCLUDE (user_id), coalesce(o.frequency, 0) AS frequency,
           coalesce(us.first_seen, u.first_event) AS first_seen, coalesce(r.reviews, 0) AS reviews, r.avg_rating
    FROM u JOIN c ON c.user_id = u.user_id LEFT JOIN o ON o.user_id = u.user_id LEFT JOIN users us ON us.user_id = u.user_id
    LEFT JOIN r ON r.user_id = u.user_id
    ORDER BY u.user_id
    """
    params: dict[str, object] = {
        "gap": gap_minutes * 60, "cutoff": cutoff,
        "view": events.view, "cart": events.cart, "checkout": events.checkout, "purchase": events.purchase,
        "cats": categories, "devs": devices,
    }
    raw = cur.execute(sql, params).df()
    return UserFeatures(_derive(raw, end, categories, devices), end, categories, devices, events)


def _days_before(end: datetime, ts: pd.Series) -> np.ndarray:
    delta = (pd.Timestamp(end) - pd.to_datetime(ts)).dt.total_seconds().to_numpy(dtype=float, na_value=np.nan)
    return np.maximum(delta / 86_400, 0.0)


def _ratio(num: pd.Series, den: pd.Series) -> np.ndarray:
    num = num.to_numpy(dtype=float, na_value=np.nan)
    den = den.to_numpy(dtype=float, na_value=np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _derive(raw: pd.DataFrame, end: datetime, categories: list[str], devices: list[str]) -> pd.DataFrame:
    f = pd.DataFrame(index=pd.Index(raw["user_id"].astype(str).to_numpy(), name="user_id"))

    def col(name: str) -> np.ndarray:
        return raw[name].to_numpy(dtype=float, na_value=np.nan)

    f["recency_days"] = _days_before(end, raw["last_order"])
    f["frequency"] = col("frequency")
    f["monetary"] = col("monetary")
    f["aov"] = _ratio(raw["monetary"], raw["frequency"])
    f["days_since_visit"] = _days_before(end, raw["last_seen"])
    f["sessions"] = col("sessions")
    f["active_days"] = col("active_days")
    f["views"] = col("views")
    f["views_per_session"] = _ratio(raw["views"], raw["sessions"])
    f["secs_per_event"] = _ratio(raw["busy_s"], raw["gaps"])
    f["cart_adds"] = col("cart_adds")
    f["checkouts"] = col("checkouts")
    f["cart_rate"] = _ratio(raw["cart_sessions"], raw["sessions"])
    f["cart_abandonment"] = _ratio(raw["abandoned"], raw["cart_sessions"])
    f["conversion_rate"] = _ratio(raw["purchase_sessions"], raw["sessions"])
    f["campaign_share"] = col("campaign_share")
    f["price_index"] = np.exp(_ratio(raw["lrp_sum"], raw["lrp_n"]))
    shares = np.column_stack([_ratio(raw[f"c{i}"], raw["categorised"]) for i in range(len(categories))]) if categories else None
    f["top_category_share"] = np.fmax.reduce(shares, axis=1) if shares is not None and len(f) else np.nan
    f["office_hours_share"] = col("office_hours_share")
    f["evening_share"] = col("evening_share")
    f["tenure_days"] = _days_before(end, raw["first_seen"])
    f["reviews"] = col("reviews")
    f["avg_rating"] = col("avg_rating")
    for i, name in enumerate(categories):
        f[f"cat:{name}"] = shares[:, i]
    for i, name in enumerate(devices):
        f[f"device:{name}"] = col(f"d{i}")
    return f
