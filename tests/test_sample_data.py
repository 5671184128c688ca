"""The seeded demo store: reproducible, believable, and honest about what it planted."""

from __future__ import annotations

import json
import math
import re
from datetime import datetime

import pytest

from core.errors import MarketLabError
from core.sample_data import CAMPAIGNS, CLAIMS, COPY_LIMITS, END, START, DemoSummary, build_demo
from core.store import Store

TINY = 0.02  # ~600 users: for properties that hold at any size
SEED = 42


def _rows(store: Store, sql: str, params: list | None = None) -> list[tuple]:
    with store.cursor() as cur:
        return cur.execute(sql, params or []).fetchall()


def _one(store: Store, sql: str, params: list | None = None):
    return _rows(store, sql, params)[0][0]


def _z(hits_a: int, n_a: int, hits_b: int, n_b: int) -> float:
    """Two-proportion z statistic for a - b."""
    pooled = (hits_a + hits_b) / (n_a + n_b)
    return (hits_a / n_a - hits_b / n_b) / math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))


def _numbers(text: str) -> set[str]:
    return set(re.findall(r"\d+", text))


@pytest.fixture(scope="module")
def demo() -> Store:
    """Half-size demo (~15k users, ~500k events): enough purchases for rates to be stable."""
    store = Store(":memory:")
    build_demo(store, seed=SEED, scale=0.5)
    yield store
    store.close()


@pytest.fixture()
def tiny(tmp_path) -> Store:
    store = Store(tmp_path / "tiny.duckdb")
    build_demo(store, seed=SEED, scale=TINY)
    yield store
    store.close()


def _dump(store: Store) -> dict[str, list[tuple]]:
    return {t: _rows(store, f"SELECT * FROM {t} ORDER BY ALL") for t in ("products", "users", "events", "reviews", "copy_variants")}


# --- reproducibility and size ----------------------------------------------------------

def test_same_seed_and_scale_build_identical_data():
    first, second, other = Store(), Store(), Store()
    build_demo(first, seed=7, scale=TINY)
    build_demo(second, seed=7, scale=TINY)
    build_demo(other, seed=8, scale=TINY)
    assert _dump(first) == _dump(second)
    assert _dump(first)["events"] != _dump(other)["events"]


def test_summary_matches_what_was_written(tiny):
    summary = build_demo(Store(), seed=SEED, scale=TINY)
    assert isinstance(summary, DemoSummary)
    counts = tiny.counts()
    assert (summary.products, summary.users, summary.events, summary.reviews, summary.variants) == (
        counts["products"], counts["users"], counts["events"], counts["reviews"], counts["copy_variants"])
    assert summary.seconds >= 0


def test_users_events_and_reviews_scale_linearly_products_gently():
    small, double = build_demo(Store(), scale=TINY), build_demo(Store(), scale=2 * TINY)
    assert small.users == 600 and double.users == 1200
    assert 1.8 < double.events / small.events < 2.2
    assert 1.6 < double.reviews / small.reviews < 2.4
    assert small.products >= 60 and double.products >= small.products
    assert 7_000 < small.events < 30_000  # ~1M events at scale 1


def test_catalog_spans_several_categories_with_prices_per_category(demo):
    cats = _rows(demo, "SELECT category, count(*), min(price), max(price) FROM products GROUP BY 1")
    assert 6 <= len(cats) <= 8
    assert all(n >= 5 and 0 < lo < hi for _, n, lo, hi in cats)
    assert _one(demo, "SELECT count(*) FROM products WHERE currency <> 'USD' OR price <> round(price, 2)") == 0
    assert _one(demo, "SELECT count(DISTINCT title) = count(*) FROM products")


# --- the funnel --------------------------------------------------------------------------

def test_funnel_narrows_at_every_step_and_about_three_percent_of_viewers_buy(demo):
    users = dict(_rows(demo, "SELECT event_name, count(DISTINCT user_id) FROM events GROUP BY 1"))
    assert users["view"] > users["add_to_cart"] > users["checkout"] > users["purchase"] > 0
    converted = _one(demo, """
        WITH first_view AS (SELECT user_id, min(ts) AS ts FROM events WHERE event_name = 'view' GROUP BY 1)
        SELECT count(DISTINCT e.user_id) / (SELECT count(*) FROM first_view)
        FROM events e JOIN first_view v USING (user_id)
        WHERE e.event_name = 'purchase' AND e.ts > v.ts""")
    assert 0.02 <= converted <= 0.04


def test_each_funnel_step_follows_the_previous_one_in_the_same_session(demo):
    # Every cart follows a view of that product; every checkout and purchase follows its cart.
    for step, before in (("add_to_cart", "view"), ("checkout", "add_to_cart"), ("purchase", "checkout")):
        orphans = _one(demo, """
            SELECT count(*) FROM events s
            WHERE s.event_name = ? AND NOT EXISTS (
                SELECT 1 FROM events p WHERE p.session_id = s.session_id AND p.product_id = s.product_id
                  AND p.event_name = ? AND p.ts < s.ts)""", [step, before])
        assert orphans == 0, f"{orphans} {step} events without an earlier {before}"


def test_sessions_belong_to_one_user_and_span_minutes(demo):
    assert _one(demo, "SELECT count(*) FROM (SELECT session_id FROM events GROUP BY 1 HAVING count(DISTINCT user_id) > 1)") == 0
    per_session = _rows(demo, """
        SELECT avg(n), median(minutes) FROM (
            SELECT count(*) AS n, (epoch(max(ts)) - epoch(min(ts))) / 60 AS minutes FROM events GROUP BY session_id)""")[0]
    assert per_session[0] > 2 and 1 < per_session[1] < 30


def test_only_purchases_carry_revenue_equal_to_price_times_quantity(demo):
    assert _one(demo, "SELECT count(*) FROM events WHERE event_name = 'purchase' AND NOT revenue > 0") == 0
    assert _one(demo, "SELECT count(*) FROM events WHERE event_name <> 'purchase' AND revenue IS NOT NULL") == 0
    off = _one(demo, """
        SELECT count(*) FROM events e JOIN products p USING (product_id)
        WHERE e.event_name = 'purchase' AND abs(e.revenue / p.price - round(e.revenue / p.price)) > 1e-6""")
    assert off == 0


def test_events_stay_inside_the_fixed_window_and_after_first_seen(demo):
    lo, hi = _rows(demo, "SELECT min(ts), max(ts) FROM events")[0]
    assert START <= lo and hi <= END
    early = _one(demo, """
        SELECT count(*) FROM users u JOIN (SELECT user_id, min(ts) AS ts FROM events GROUP BY 1) e USING (user_id)
        WHERE u.first_seen > e.ts""")
    assert early == 0
    assert _one(demo, "SELECT count(*) FROM users WHERE first_seen < ?", [START]) > 0  # returning customers


def test_log_has_the_mess_real_logs_have(demo):
    total = _one(demo, "SELECT count(*) FROM events")
    duplicates = total - _one(demo, "SELECT count(*) FROM (SELECT DISTINCT * FROM events)")
    assert 0 < duplicates < total * 0.005
    no_product = _one(demo, "SELECT count(*) FROM events WHERE product_id IS NULL")
    assert 0 < no_product < total * 0.02
    assert _one(demo, "SELECT count(*) FROM (SELECT user_id, ts FROM (SELECT DISTINCT * FROM events) GROUP BY ALL HAVING count(*) > 1)") > 0
    assert {d for (d,) in _rows(demo, "SELECT DISTINCT device FROM events")} == {"mobile", "desktop", "tablet"}
    assert {s for (s,) in _rows(demo, "SELECT DISTINCT source FROM events")} == {"organic", "paid_search", "social", "email", "direct"}


# --- campaigns and copy variants --------------------------------------------------------

def test_event_variants_exist_in_copy_variants_and_match_their_campaign(demo):
    unknown = _one(demo, "SELECT count(*) FROM events WHERE variant_id IS NOT NULL AND variant_id NOT IN (SELECT variant_id FROM copy_variants)")
    assert unknown == 0
    mismatched = _one(demo, "SELECT count(*) FROM events WHERE (campaign IS NULL) <> (variant_id IS NULL) OR variant_id NOT LIKE 'V-' || campaign || '-%'")
    assert mismatched == 0
    # A campaign session carries its campaign and variant on every event.
    mixed = _one(demo, """
        SELECT count(*) FROM (SELECT session_id FROM events GROUP BY 1
                              HAVING count(DISTINCT variant_id) > 1 OR (count(variant_id) > 0 AND count(variant_id) < count(*)))""")
    assert mixed == 0
    share = _one(demo, "SELECT avg((campaign IS NOT NULL)::INT) FROM (SELECT DISTINCT session_id, campaign FROM events)")
    assert 0.25 < share < 0.7


def test_copy_variants_are_approved_human_copy_within_channel_limits(demo):
    rows = _rows(demo, "SELECT variant_id, channel, fields, model, params, scores, status, segment_id FROM copy_variants")
    assert 3 <= len({v.split("-")[1] for v, *_ in rows}) <= 4
    for variant, channel, fields, model, params, scores, status, segment in rows:
        assert re.fullmatch(r"V-[a-z_]+-[A-C]", variant)
        assert (model, json.loads(params), scores, status, segment) == ("human", {}, None, "approved", None)
        fields = json.loads(fields)
        assert fields.get("headline")
        for name, limit in COPY_LIMITS[channel].items():
            assert len(fields[name]) <= limit, f"{variant} {name}"


def test_copy_claims_only_what_the_promoted_product_has(demo):
    rows = _rows(demo, "SELECT v.fields, p.attributes, p.title, p.price FROM copy_variants v JOIN products p USING (product_id)")
    for fields, attrs, title, price in rows:
        text, attrs = " ".join(json.loads(fields).values()).lower(), json.loads(attrs)
        for key, word in CLAIMS:
            if word.lower() in text:
                assert attrs.get(key) is True, f"copy claims {word!r}: {text}"
        assert _numbers(text) <= _numbers(json.dumps(attrs)) | _numbers(title) | _numbers(f"{price:.2f}"), text


def test_variant_exposure_is_balanced_within_each_campaign(demo):
    for campaign in CAMPAIGNS:
        sessions = [n for (n,) in _rows(demo, "SELECT count(DISTINCT session_id) FROM events WHERE campaign = ? GROUP BY variant_id", [campaign.name])]
        assert len(sessions) == len(campaign.variants)
        assert min(sessions) / max(sessions) > 0.85, campaign.name


def _variant_rates(store: Store, campaign: str, group: str | None = None) -> dict[str, tuple[int, int, int]]:
    """variant -> (sessions, sessions with a cart, sessions with a purchase)."""
    rows = _rows(store, """
        SELECT variant_id, count(*), sum(carted), sum(bought) FROM (
            SELECT e.session_id, any_value(e.variant_id) AS variant_id,
                   max((e.event_name = 'add_to_cart')::INT) AS carted, max((e.event_name = 'purchase')::INT) AS bought
            FROM events e JOIN users u USING (user_id)
            WHERE e.campaign = ? AND (? IS NULL OR json_extract_string(u.attributes, '$.demo_group') = ?)
            GROUP BY e.session_id)
        GROUP BY 1""", [campaign, group, group])
    return {v.rsplit("-", 1)[1]: (n, c, b) for v, n, c, b in rows}


def test_one_variant_clearly_outconverts_the_other(demo):
    rates = _variant_rates(demo, "search_generic")
    (n_a, cart_a, buy_a), (n_b, cart_b, buy_b) = rates["A"], rates["B"]
    assert (cart_b / n_b) / (cart_a / n_a) > 1.5
    assert _z(cart_b, n_b, cart_a, n_a) > 3
    assert buy_b / n_b > buy_a / n_a  # purchases are rarer, so only their direction is stable at this size


def test_best_variant_depends_on_the_group(demo):
    bargain = _variant_rates(demo, "meta_prospecting", "bargain_hunters")
    mobile = _variant_rates(demo, "meta_prospecting", "mobile_impulse")
    # The practical, price-led copy wins with bargain hunters; the playful one on mobile.
    for rates, best, other in ((bargain, "B", "A"), (mobile, "A", "B")):
        (n_best, cart_best, _), (n_other, cart_other, _) = rates[best], rates[other]
        assert (cart_best / n_best) / (cart_other / n_other) > 1.5
        assert _z(cart_best, n_best, cart_other, n_other) > 2


# --- planted behavioural groups ----------------------------------------------------------

@pytest.fixture(scope="module")
def groups(demo) -> dict[str, dict[str, float]]:
    rows = _rows(demo, """
        WITH g AS (SELECT user_id, json_extract_string(attributes, '$.demo_group') AS grp FROM users)
        SELECT grp, count(DISTINCT user_id) AS users,
               count(DISTINCT session_id) / count(DISTINCT user_id) AS sessions,
               count(*) FILTER (WHERE event_name = 'view') / count(DISTINCT session_id) AS views_per_session,
               count(DISTINCT session_id) FILTER (WHERE event_name = 'purchase') / count(DISTINCT user_id) AS orders,
               sum(revenue) / count(DISTINCT session_id) FILTER (WHERE event_name = 'purchase') AS aov,
               avg((device = 'mobile')::INT) AS mobile,
               avg((device = 'desktop')::INT) AS desktop,
               avg((campaign IS NOT NULL)::INT) AS campaign,
               max(ts) AS last_seen, quantile_cont(epoch(ts), 0.9) AS late
        FROM events JOIN g USING (user_id) GROUP BY grp""")
    names = ("users", "sessions", "views_per_session", "orders", "aov", "mobile", "desktop", "campaign", "last_seen", "late")
    return {r[0]: dict(zip(names, r[1:])) for r in rows}


def test_five_groups_are_planted_in_user_attributes(demo, groups):
    assert set(groups) == {"bargain_hunters", "loyal_big_spenders", "window_shoppers", "mobile_impulse", "lapsed"}
    keys = json.loads(_one(demo, "SELECT attributes FROM users LIMIT 1")).keys()
    assert {"demo_group", "age_band", "signup_channel"} <= set(keys)


def test_loyal_big_spenders_buy_often_and_dear_window_shoppers_hardly_buy(groups):
    loyal, window, bargain = groups["loyal_big_spenders"], groups["window_shoppers"], groups["bargain_hunters"]
    assert loyal["orders"] > 20 * window["orders"]
    assert loyal["orders"] > 0.8
    assert loyal["aov"] > 2 * bargain["aov"]
    assert window["views_per_session"] > 1.5 * groups["mobile_impulse"]["views_per_session"]


def test_groups_differ_in_device_campaign_response_and_recency(groups):
    assert groups["mobile_impulse"]["mobile"] > 0.85
    assert groups["loyal_big_spenders"]["desktop"] > 0.6
    assert groups["bargain_hunters"]["campaign"] > 2 * groups["window_shoppers"]["campaign"]
    assert groups["lapsed"]["last_seen"] < datetime(2026, 9, 15)
    others = [g["late"] for name, g in groups.items() if name != "lapsed"]
    assert groups["lapsed"]["late"] < min(others)


# --- honest catalog text ------------------------------------------------------------------

def test_descriptions_claim_only_what_the_attributes_say(demo):
    products = _rows(demo, "SELECT title, attributes, description FROM products")
    for title, attrs, description in products:
        attrs = json.loads(attrs)
        sentences = [s for s in re.split(r"(?<=\.)\s+", description) if s]
        assert 2 <= len(sentences) <= 3, description
        for key, word in CLAIMS:
            for text in (title, description):
                if word.lower() in text.lower():
                    assert attrs.get(key) is True, f"{word!r} in {text!r} but attributes say {attrs.get(key)!r}"
        assert _numbers(description) <= _numbers(json.dumps(attrs)), description


def test_not_every_product_is_waterproof_or_organic(demo):
    flags = _rows(demo, """
        SELECT json_extract(attributes, '$.waterproof')::VARCHAR AS w, json_extract(attributes, '$.organic')::VARCHAR AS o, count(*)
        FROM products GROUP BY ALL""")
    waterproof = {w for w, _, _ in flags if w}
    organic = {o for _, o, _ in flags if o}
    assert waterproof == {"true", "false"} and organic == {"true", "false"}


# --- reviews ------------------------------------------------------------------------------

def test_reviews_come_from_buyers_after_their_purchase_or_from_earlier_customers(demo):
    assert _one(demo, "SELECT count(*) FROM reviews WHERE product_id NOT IN (SELECT product_id FROM products)") == 0
    late = _one(demo, """
        SELECT count(*) FROM reviews r
        WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.event_name = 'purchase' AND e.user_id = r.user_id
                                                   AND e.product_id = r.product_id AND e.ts < r.ts)
          AND NOT (r.ts < ? AND r.ts > (SELECT first_seen FROM users u WHERE u.user_id = r.user_id))""", [START])
    assert late == 0
    assert _one(demo, "SELECT count(*) FROM reviews r JOIN events e ON e.event_name = 'purchase' AND e.user_id = r.user_id AND e.product_id = r.product_id") > 0


def test_ratings_skew_positive_and_text_matches_the_rating(demo):
    ratings = dict(_rows(demo, "SELECT rating, count(*) FROM reviews GROUP BY 1"))
    total = sum(ratings.values())
    assert set(ratings) == {1, 2, 3, 4, 5}
    assert (ratings[4] + ratings[5]) / total > 0.65 and ratings[5] > ratings[4] > ratings[3]
    texts = _rows(demo, "SELECT rating, text FROM reviews")
    happy = re.compile(r"^(Really happy with|Love this|Exactly the)")
    unhappy = re.compile(r"^(Disappointed with|I wanted to like)")
    assert all(happy.match(t) for r, t in texts if r >= 4)
    assert all(unhappy.match(t) for r, t in texts if r <= 2)


def test_review_text_mentions_the_product_and_differs_by_group(demo):
    rows = _rows(demo, """
        SELECT json_extract_string(u.attributes, '$.demo_group'), r.text, p.attributes
        FROM reviews r JOIN users u USING (user_id) JOIN products p USING (product_id)""")
    for _, text, attrs in rows:
        assert json.loads(attrs)["type"] in text
    share_with_price = {}
    for group in ("bargain_hunters", "loyal_big_spenders"):
        texts = [t for g, t, _ in rows if g == group]
        share_with_price[group] = sum("$" in t for t in texts) / len(texts)
    assert share_with_price["bargain_hunters"] > 0.5 > share_with_price["loyal_big_spenders"]


# --- writing into a store -------------------------------------------------------------------

def test_refuses_a_store_that_already_holds_data(tiny):
    before = tiny.counts()
    with pytest.raises(MarketLabError, match="already holds"):
        build_demo(tiny, seed=1, scale=TINY)
    assert tiny.counts() == before


def test_replace_swaps_the_old_demo_for_the_new_one(tiny):
    summary = build_demo(tiny, seed=5, scale=2 * TINY, replace=True)
    assert tiny.counts()["users"] == summary.users == 1200
    fresh = Store()
    build_demo(fresh, seed=5, scale=2 * TINY)
    assert _dump(tiny) == _dump(fresh)


def test_a_build_that_fails_midway_writes_nothing():
    store = Store()

    def fail_at_reviews(fraction: float, message: str) -> None:
        if "reviews" in message and "Loading" in message:  # products, users and events are in by now
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        build_demo(store, scale=TINY, progress=fail_at_reviews)
    assert store.is_empty()


def test_a_failed_replace_keeps_the_previous_demo(tiny):
    before = _dump(tiny)

    def fail_late(fraction: float, message: str) -> None:
        if message == "Loading reviews":
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        build_demo(tiny, seed=9, scale=TINY, replace=True, progress=fail_late)
    assert _dump(tiny) == before


def test_progress_is_reported_from_zero_to_one():
    seen: list[tuple[float, str]] = []
    build_demo(Store(), scale=TINY, progress=lambda fraction, message: seen.append((fraction, message)))
    fractions = [f for f, _ in seen]
    assert 3 <= len(seen) <= 12
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert all(message for _, message in seen)


def test_rejects_a_scale_that_is_not_positive():
    with pytest.raises(MarketLabError):
        build_demo(Store(), scale=0)
