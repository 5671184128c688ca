"""Funnels on small hand-made logs with known answers, and on the demo store."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pandas as pd
import pytest

from core.errors import QueryError
from core.funnels import (
    Condition, FunnelResult, FunnelSpec, Step, breakdown_options, dropped_users, ensure_index, funnel, funnel_levels,
    last_step_users, list_event_names, parse_window, reference_funnel,
)
from core.store import Store

T0 = datetime(2026, 9, 1, 10, 0, 0)
COLUMNS = ["user_id", "ts", "event_name", "product_id", "session_id", "campaign", "variant_id", "device", "source", "revenue"]


def add_events(store: Store, rows: list[dict]) -> None:
    frame = pd.DataFrame([{c: r.get(c) for c in COLUMNS} for r in rows], columns=COLUMNS)
    frame["revenue"] = frame["revenue"].astype("float64")
    with store.transaction() as cur:
        cur.register("new_events", frame)
        cur.execute(f"INSERT INTO events ({', '.join(COLUMNS)}) SELECT {', '.join(COLUMNS)} FROM new_events")
        cur.unregister("new_events")


def ev(user: str, minutes: float, name: str, **extra: object) -> dict:
    return {"user_id": user, "ts": T0 + timedelta(minutes=minutes), "event_name": name, **extra}


DAY = 24 * 60


@pytest.fixture
def shop(tmp_store: Store) -> Store:
    """Known answers for view -> add_to_cart -> purchase within 7 days."""
    add_events(tmp_store, [
        # A: the whole funnel in two hours, on mobile
        ev("A", 0, "view", device="mobile"), ev("A", 60, "add_to_cart", device="mobile"), ev("A", 120, "purchase", device="mobile", revenue=30.0),
        # B: view then purchase, never a cart: step 1 only
        ev("B", 0, "view", device="desktop"), ev("B", 30, "purchase", device="desktop", revenue=10.0),
        # C: only later steps: not in the funnel at all
        ev("C", 0, "add_to_cart"), ev("C", 5, "purchase", revenue=5.0),
        # D: cart eight days after the view: outside a 7-day window
        ev("D", 0, "view", device="desktop"), ev("D", 8 * DAY, "add_to_cart", device="desktop"),
        # E: view and cart at the same instant (ties count as in order), listed cart first
        ev("E", 10, "add_to_cart", device="tablet"), ev("E", 10, "view", device="tablet"),
        # F: cart exactly 7 days after the view (the window's edge is inside), purchase one minute late
        ev("F", 0, "view", device="mobile"), ev("F", 7 * DAY, "add_to_cart", device="mobile"),
        ev("F", 7 * DAY + 1, "purchase", device="mobile", revenue=0.0),
    ])
    return tmp_store


FUNNEL = ("view", "add_to_cart", "purchase")


def levels(store: Store, spec: FunnelSpec) -> dict[str, int]:
    return {r.user_id: int(r.deepest_step) for r in funnel_levels(store, spec).itertuples()}


def test_parse_window() -> None:
    assert parse_window("7d") == timedelta(days=7)
    assert parse_window("30m") == timedelta(minutes=30)
    assert parse_window("12h") == timedelta(hours=12)
    assert parse_window("2w") == timedelta(days=14)
    assert parse_window(" 90 days ") == timedelta(days=90)
    for bad in ("0m", "91d", "7", "seven days", "5x", "-1d", ""):
        with pytest.raises(QueryError):
            parse_window(bad)


def test_known_answers(shop: Store) -> None:
    result = funnel(shop, FunnelSpec.of(*FUNNEL, window="7d"))
    assert [s.users for s in result.steps] == [5, 3, 1]  # A B D E F / A E F / A
    assert [s.dropped for s in result.steps] == [2, 2, 0]
    assert result.steps[1].from_previous == pytest.approx(3 / 5)
    assert result.steps[2].from_first == pytest.approx(1 / 5)
    assert levels(shop, FunnelSpec.of(*FUNNEL, window="7d")) == {"A": 3, "B": 1, "D": 1, "E": 2, "F": 2}
    assert levels(shop, FunnelSpec.of(*FUNNEL, window="9d")) == {"A": 3, "B": 1, "D": 2, "E": 2, "F": 3}
    # Time to convert: A took 60 minutes to cart and 60 to buy; E none; F seven days.
    cart = result.timings[0]
    assert cart.users == 3 and cart.median_s == 3600
    assert sum(b[3] for b in cart.histogram) == 3
    assert result.total_timing is not None and result.total_timing.median_s == 7200


def test_dropped_users_are_listed_per_step(shop: Store) -> None:
    spec = FunnelSpec.of(*FUNNEL, window="7d")
    assert sorted(dropped_users(shop, spec, 1)["user_id"]) == ["B", "D"]
    assert sorted(dropped_users(shop, spec, 2)["user_id"]) == ["E", "F"]
    assert list(dropped_users(shop, spec, 3)["user_id"]) == []
    with pytest.raises(QueryError):
        dropped_users(shop, spec, 4)


def test_strict_mode_needs_steps_back_to_back(tmp_store: Store) -> None:
    add_events(tmp_store, [
        ev("P", 0, "view"), ev("P", 1, "purchase"), ev("P", 2, "add_to_cart"), ev("P", 3, "purchase"),  # a purchase in between
        ev("Q", 0, "view"), ev("Q", 1, "search"), ev("Q", 2, "add_to_cart"), ev("Q", 3, "purchase"),  # non-steps do not break
        ev("R", 0, "view"), ev("R", 1, "view"), ev("R", 2, "add_to_cart"), ev("R", 3, "purchase"),  # restarts at the second view
        ev("S", 0, "view"), ev("S", 5, "add_to_cart"), ev("S", 5, "add_to_cart"), ev("S", 6, "purchase"),  # a double-fired cart is one
    ])
    ordered = levels(tmp_store, FunnelSpec.of(*FUNNEL, window="1h"))
    strict = levels(tmp_store, FunnelSpec.of(*FUNNEL, window="1h", mode="strict"))
    assert ordered == {"P": 3, "Q": 3, "R": 3, "S": 3}
    assert strict == {"P": 1, "Q": 3, "R": 3, "S": 3}


def test_first_touch_only(tmp_store: Store) -> None:
    add_events(tmp_store, [ev("U", 0, "view"), ev("U", 10 * DAY, "view"), ev("U", 11 * DAY, "add_to_cart")])
    assert levels(tmp_store, FunnelSpec.of("view", "add_to_cart", window="7d")) == {"U": 2}
    assert levels(tmp_store, FunnelSpec.of("view", "add_to_cart", window="7d", first_touch_only=True)) == {"U": 1}


def test_step_filters_on_event_and_product_columns(tmp_store: Store) -> None:
    with tmp_store.transaction() as cur:
        cur.execute("INSERT INTO products (product_id, title, category, updated_at) VALUES "
                    "('S1', 'Runner', 'Shoes', now()), ('H1', 'Hat', 'Hats', now())")
    add_events(tmp_store, [
        ev("A", 0, "view", product_id="S1"), ev("A", 1, "purchase", revenue=20.0),
        ev("B", 0, "view", product_id="H1"), ev("B", 1, "purchase", revenue=20.0),
        ev("C", 0, "view", product_id="S1"), ev("C", 1, "purchase", revenue=0.0),
    ])
    paid = FunnelSpec(steps=(Step("view"), Step("purchase", (Condition("revenue", ">", 0),))), window="1d")
    assert levels(tmp_store, paid) == {"A": 2, "B": 2, "C": 1}
    shoes = FunnelSpec(steps=(Step("view", (Condition("category", "=", "Shoes"),), label="view shoes"), Step("purchase")), window="1d")
    assert levels(tmp_store, shoes) == {"A": 2, "C": 2}
    assert funnel(tmp_store, shoes).steps[0].label == "view shoes"
    both = FunnelSpec(steps=(Step("view", (Condition("product.category", "in", ["Shoes", "Hats"]),)), Step("purchase")),
                      window="1d", event_filters=(Condition("revenue", "is null"),))
    assert levels(tmp_store, both) == {"A": 1, "B": 1, "C": 1}  # every purchase has revenue: none survives the filter


def test_date_range_and_user_filters(shop: Store) -> None:
    with shop.transaction() as cur:
        cur.execute("INSERT INTO users VALUES ('A', NULL, 'US', '{\"demo_group\": \"loyal\"}'), ('E', NULL, 'DE', '{\"demo_group\": \"new\"}')")
    in_range = FunnelSpec.of(*FUNNEL, window="7d", start=T0 + timedelta(minutes=5), end=T0 + timedelta(days=30))
    assert levels(shop, in_range) == {"E": 2}  # the others' views are before the range
    us = FunnelSpec.of(*FUNNEL, window="7d", user_filters=(Condition("country", "=", "US"),))
    assert levels(shop, us) == {"A": 3}
    grouped = FunnelSpec.of(*FUNNEL, window="7d", user_filters=(Condition("attributes.demo_group", "in", ["new"]),))
    assert levels(shop, grouped) == {"E": 2}


def test_breakdowns_split_users_without_double_counting(shop: Store) -> None:
    result = funnel(shop, FunnelSpec.of(*FUNNEL, window="7d", breakdown="device"))
    table = result.breakdown.pivot(index="group", columns="step", values="users")
    assert table.loc["mobile"].tolist() == [2, 2, 1]  # A, F
    assert table.loc["desktop"].tolist() == [2, 0, 0]  # B, D
    assert table.loc["tablet"].tolist() == [1, 1, 0]  # E
    assert table.sum().tolist() == [s.users for s in result.steps]

    with shop.transaction() as cur:
        cur.execute("INSERT INTO users VALUES ('A', NULL, 'US', '{\"demo_group\": \"loyal\"}'), ('B', NULL, 'US', NULL)")
        cur.execute("INSERT INTO segment_runs (run_id, created_at, method) VALUES ('run1', now(), 'kmeans')")
        cur.execute("INSERT INTO segments VALUES ('run1', 's0', 'Big spenders', NULL, NULL)")
        cur.execute("INSERT INTO user_segments VALUES ('run1', 'A', 's0'), ('run1', 'D', 's1')")
    by_country = funnel(shop, FunnelSpec.of(*FUNNEL, window="7d", breakdown="user.country")).breakdown
    assert by_country[by_country.step == 1].set_index("group")["users"].to_dict() == {"US": 2, "(none)": 3}
    by_group = funnel(shop, FunnelSpec.of(*FUNNEL, window="7d", breakdown="attributes.demo_group")).breakdown
    assert by_group[by_group.step == 3].set_index("group")["users"].to_dict() == {"loyal": 1, "(none)": 0}
    by_segment = funnel(shop, FunnelSpec.of(*FUNNEL, window="7d", breakdown="segment:run1")).breakdown
    assert by_segment[by_segment.step == 1].set_index("group")["users"].to_dict() == {"Big spenders": 1, "s1": 1, "(none)": 3}


def test_trend_groups_users_by_their_first_step(shop: Store) -> None:
    add_events(shop, [ev("G", 2 * DAY, "view"), ev("G", 2 * DAY + 1, "add_to_cart")])
    trend = funnel(shop, FunnelSpec.of("view", "add_to_cart", window="7d")).trend
    assert trend["started"].tolist() == [5, 1]
    assert trend["reached_2"].tolist() == [3, 1]
    assert trend["conversion"].tolist() == [pytest.approx(0.6), 1.0]
    weekly = funnel(shop, FunnelSpec.of("view", "add_to_cart", window="7d", trend="week")).trend
    assert weekly["started"].sum() == 6
    # Days whose users have not had the whole 7-day window before the log ends are marked, not hidden.
    assert trend["complete"].tolist() == [True, False]
    plainer = trend[["period"]].merge(last_step_users(shop, FunnelSpec.of("view", "add_to_cart", window="7d")), how="left")
    assert plainer["users"].tolist() == [3, 1]  # users with an add_to_cart on the trend's days, the plainer count


def test_index_follows_new_events(shop: Store) -> None:
    spec = FunnelSpec.of(*FUNNEL, window="7d")
    first = funnel(shop, spec)
    assert ensure_index(shop).rebuilt is False  # built once, then reused while events stay the same
    add_events(shop, [ev("Z", 0, "view"), ev("Z", 1, "add_to_cart"), ev("Z", 2, "purchase")])
    again = funnel(shop, spec)
    assert again is not first and [s.users for s in again.steps] == [6, 4, 2]
    assert ensure_index(shop).rebuilt is False
    assert ensure_index(shop, force=True).rebuilt is True


def test_unknown_names_and_injection_are_refused_or_treated_as_values(shop: Store) -> None:
    evil = "view'; DROP TABLE events; --"
    with pytest.raises(QueryError) as caught:
        funnel(shop, FunnelSpec.of(evil, "purchase"))
    assert caught.value.title == "Unknown funnel step" and "view" in caught.value.msg
    for column in ("device; DROP TABLE events", 'device" FROM events; --', "ts", "user_id"):
        with pytest.raises(QueryError):
            funnel(shop, FunnelSpec.of(*FUNNEL, breakdown=column))
    with pytest.raises(QueryError):
        funnel(shop, FunnelSpec(steps=(Step("view", (Condition("revenue > 0 OR 1", "=", 1),)),)))
    with pytest.raises(QueryError):
        funnel(shop, FunnelSpec.of("view", user_filters=(Condition("attributes.x') OR 1=1 --", "=", "a"),)))
    with pytest.raises(QueryError):
        funnel(shop, FunnelSpec(steps=(Step("view", (Condition("device", "; DROP", "x"),)),)))
    # A hostile value is only ever a value: it matches nothing.
    sneaky = FunnelSpec(steps=(Step("view", (Condition("device", "=", "x' OR '1'='1"),)),))
    assert funnel(sneaky_store := shop, sneaky).steps[0].users == 0
    assert sneaky_store.count("events") == 14


def test_contract_errors(tmp_store: Store) -> None:
    with pytest.raises(QueryError):
        FunnelSpec(steps=())
    with pytest.raises(QueryError):
        FunnelSpec.of("a", mode="loose")
    with pytest.raises(QueryError):
        FunnelSpec.of("a", start=T0, end=T0)
    with pytest.raises(QueryError) as caught:
        funnel(tmp_store, FunnelSpec.of("view"))
    assert "no events" in caught.value.msg.lower()


def test_to_dict_is_json(shop: Store) -> None:
    payload = funnel(shop, FunnelSpec.of(*FUNNEL, window="7d", breakdown="device")).to_dict()
    text = json.dumps(payload, default=str)
    assert json.loads(text)["steps"][0]["users"] == 5 and payload["spec"]["window"] == "7d"


# ---------------------------------------------------------------------------------------
# The demo store
# ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Store:
    from core.sample_data import build_demo

    store = Store(tmp_path_factory.mktemp("demo") / "demo.duckdb")
    build_demo(store, scale=0.05)
    yield store
    store.close()


DEMO_FUNNEL = ("view", "add_to_cart", "checkout", "purchase")


def test_demo_funnel_matches_the_reference(demo: Store) -> None:
    spec = FunnelSpec.of(*DEMO_FUNNEL, window="7d", breakdown="device")
    result = funnel(demo, spec)
    users = [s.users for s in result.steps]
    assert users == sorted(users, reverse=True) and users[-1] > 0
    with demo.cursor() as cur:
        events = cur.execute("SELECT * FROM events").df()
    ref = reference_funnel(events, spec)
    assert users == [sum(1 for r in ref.values() if r["level"] >= k) for k in range(1, 5)]
    table = result.breakdown.pivot(index="group", columns="step", values="users")
    assert table.sum().tolist() == users
    for group, row in table.iterrows():
        assert row.tolist() == [sum(1 for r in ref.values() if r["group"] == group and r["level"] >= k) for k in range(1, 5)]


def test_demo_breakdowns_by_campaign_variant_and_group(demo: Store) -> None:
    for key in ("campaign", "variant_id", "attributes.demo_group", "product.category", "source"):
        result = funnel(demo, FunnelSpec.of(*DEMO_FUNNEL, window="7d", breakdown=key))
        table = result.breakdown.pivot(index="group", columns="step", values="users")
        assert table.sum().tolist() == [s.users for s in result.steps], key
    groups = funnel(demo, FunnelSpec.of(*DEMO_FUNNEL, window="7d", breakdown="attributes.demo_group")).breakdown
    assert {"bargain_hunters", "loyal_big_spenders", "window_shoppers", "mobile_impulse", "lapsed"} <= set(groups["group"])
    trend = funnel(demo, FunnelSpec.of(*DEMO_FUNNEL, window="7d")).trend
    assert trend["started"].sum() == funnel(demo, FunnelSpec.of(*DEMO_FUNNEL, window="7d")).users
    assert 80 <= len(trend) <= 91  # one row per day of first views in the 90-day log


def test_demo_windows_and_strict(demo: Store) -> None:
    short = funnel(demo, FunnelSpec.of(*DEMO_FUNNEL, window="1m")).steps[-1].users
    day = funnel(demo, FunnelSpec.of(*DEMO_FUNNEL, window="1d")).steps[-1].users
    long = funnel(demo, FunnelSpec.of(*DEMO_FUNNEL, window="30d")).steps[-1].users
    strict = funnel(demo, FunnelSpec.of(*DEMO_FUNNEL, window="30d", mode="strict")).steps[-1].users
    assert short <= day <= long and strict <= long


def test_page_helpers(demo: Store) -> None:
    names = list_event_names(demo)
    assert names["event_name"].tolist()[0] == "view" and set(DEMO_FUNNEL) <= set(names["event_name"])
    keys = {o.key for o in breakdown_options(demo)}
    assert {"device", "campaign", "variant_id", "user.country", "attributes.demo_group", "product.category"} <= keys
    for key in keys:
        funnel(demo, FunnelSpec.of("view", "purchase", window="7d", breakdown=key))  # every offered option works


def test_a_repeated_step_counts_one_event_twice_unless_a_later_one_is_asked_for(tmp_store):
    # U1 bought once; U2 bought twice: "purchase -> purchase" is every buyer, or the repeat buyers.
    rows = [ev("U1", 0, "purchase"), ev("U2", 0, "purchase"), ev("U2", 2 * DAY, "purchase"), ev("U3", DAY, "view")]
    add_events(tmp_store, rows)
    same = funnel(tmp_store, FunnelSpec.of("purchase", "purchase"))
    assert [s.users for s in same.steps] == [2, 2]
    assert "one event counts as both steps" in same.to_dict()["notes"][0]
    later = FunnelSpec.of("purchase", "purchase", repeat_needs_later=True)
    assert [s.users for s in funnel(tmp_store, later).steps] == [2, 1]
    expected = reference_funnel(pd.DataFrame(rows), later)
    assert {u: r["level"] for u, r in expected.items()} == {"U1": 1, "U2": 2}
    assert "later event" in later.notes()[0]
    with pytest.raises(QueryError, match="ordered mode"):
        FunnelSpec.of("purchase", "purchase", mode="strict", repeat_needs_later=True)
    assert FunnelSpec.of("view", "purchase").notes() == []


def test_every_counting_mode_is_one_entry_that_the_spec_the_cli_and_the_page_read() -> None:
    from core.__main__ import build_parser
    from core.funnels import MODES

    assert list(MODES) == ["ordered", "strict"]
    fun = next(a for a in build_parser()._subparsers._group_actions[0].choices["funnel"]._actions if a.dest == "mode")
    assert list(fun.choices) == list(MODES)
    with pytest.raises(QueryError, match="'ordered', 'strict'"):
        FunnelSpec.of("view", mode="loose")
    with pytest.raises(QueryError, match="needs the ordered mode"):
        FunnelSpec.of("purchase", "purchase", mode="strict", repeat_needs_later=True)


def test_by_group_is_each_groups_entrants_finishers_and_conversion_best_first() -> None:
    spec = FunnelSpec.of("view", "purchase", breakdown="device")
    frame = pd.DataFrame([
        {"group": "mobile", "step": 1, "label": "view", "users": 10, "from_previous": None, "from_first": 1.0},
        {"group": "mobile", "step": 2, "label": "purchase", "users": 2, "from_previous": 0.2, "from_first": 0.2},
        {"group": "desktop", "step": 1, "label": "view", "users": 4, "from_previous": None, "from_first": 1.0},
        {"group": "desktop", "step": 2, "label": "purchase", "users": 2, "from_previous": 0.5, "from_first": 0.5},
    ])
    result = FunnelResult(spec, [], frame, pd.DataFrame(), [], None)
    table = result.by_group()
    assert table.to_dict(orient="records") == [
        {"group": "desktop", "entered": 4, "completed": 2, "conversion": 0.5},
        {"group": "mobile", "entered": 10, "completed": 2, "conversion": 0.2},
    ]
    assert FunnelResult(spec, [], None, pd.DataFrame(), [], None).by_group().empty
