"""Segments: features a marketer can check by hand, clusters that find the planted groups,
RFM rules, grounded personas, propensity on a time split, and runs that survive a restart."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT
from core.errors import MarketLabError
from core.sample_data import build_demo
from core.segments import (
    FEATURE_SETS,
    compute_features,
    delete_run,
    export_segment_csv,
    list_runs,
    load_run,
    run_labels,
    run_segmentation,
    segment_user_ids,
)
from core.segments.clustering import cluster, prepare, project_2d
from core.segments.persona import Fact, check_grounding, parse_persona, persona_facts, template_persona, write_personas
from core.segments.profiles import compare, profile_segments
from core.segments.propensity import propensity_by_segment, score_propensity, target_list
from core.segments.rfm import PROSPECTS, RFM_RULES, assign_rfm, grid, rfm_notices, rfm_scores, rfm_segment, rule_table
from core.segments.runs import _save
from core.store import Store

DEMO_SCALE = 0.05  # 1,500 users in five planted groups
ARI_FIXED_K = 0.6  # measured 0.67 at seed 42 (0.69 and 0.73 at seeds 1 and 2)
ARI_AUTO_K = 0.5  # silhouette picks k=5 at seed 42 (ARI 0.67); k=3 or 4 at other seeds (ARI ~0.53)


def _ari(a, b) -> float:
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(a, b))


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Store:
    store = Store(tmp_path_factory.mktemp("segments") / "demo.duckdb")
    build_demo(store, seed=42, scale=DEMO_SCALE)
    yield store
    store.close()


@pytest.fixture(scope="module")
def planted(demo: Store) -> pd.Series:
    with demo.cursor() as cur:
        frame = cur.execute("SELECT user_id, attributes->>'demo_group' AS g FROM users").df()
    return pd.Series(frame["g"].to_numpy(), index=frame["user_id"].to_numpy())


@pytest.fixture(scope="module")
def demo_features(demo: Store):
    return compute_features(demo)


# --- features, checked by hand --------------------------------------------------------------

def _hand_store(path: Path) -> Store:
    """Two users whose every feature can be worked out on paper."""
    store = Store(path)
    with store.transaction() as cur:
        cur.executemany("INSERT INTO products (product_id, title, category, price, updated_at) VALUES (?, ?, ?, ?, '2025-01-01')", [
            ("p1", "Shoe", "Shoes", 100.0), ("p3", "Dear shoe", "Shoes", 400.0), ("p2", "Bag", "Bags", 50.0),
            ("p4", "Free tote", "Bags", 0.0),  # a free sample has no price level, and does not move the median
        ])
        cur.execute("INSERT INTO users (user_id, first_seen) VALUES ('A', '2025-12-01 00:00:00')")
        rows = [
            # A, session s1 (mobile, from a campaign): two items bought in one order (same timestamp)
            ("A", "2026-01-01 10:00:00", "view", "p1", "s1", "x", "mobile", None),
            ("A", "2026-01-01 10:01:00", "view", "p2", "s1", "x", "mobile", None),
            ("A", "2026-01-01 10:02:00", "add_to_cart", "p1", "s1", "x", "mobile", None),
            ("A", "2026-01-01 10:03:00", "checkout", None, "s1", "x", "mobile", None),
            ("A", "2026-01-01 10:05:00", "purchase", "p1", "s1", "x", "mobile", 100.0),
            ("A", "2026-01-01 10:05:00", "purchase", "p2", "s1", "x", "mobile", 50.0),
            # A, session s2 (desktop, organic): a cart left behind
            ("A", "2026-01-05 20:00:00", "view", "p1", "s2", None, "desktop", None),
            ("A", "2026-01-05 20:01:00", "add_to_cart", "p1", "s2", None, "desktop", None),
            # B, no session ids: 09:00 and 09:10 share a 30-minute bucket, 12:00 is another visit
            ("B", "2026-01-10 09:00:00", "view", "p1", None, None, "tablet", None),
            ("B", "2026-01-10 09:10:00", "view", "p3", None, None, "tablet", None),
            ("B", "2026-01-10 11:55:00", "view", "p2", None, None, "tablet", None),
            ("B", "2026-01-10 12:00:00", "view", "p4", None, None, "tablet", None),
        ]
        cur.executemany("INSERT INTO events (user_id, ts, event_name, product_id, session_id, campaign, device, revenue) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return store


def test_features_match_what_a_marketer_counts_by_hand(tmp_path: Path) -> None:
    store = _hand_store(tmp_path / "hand.duckdb")
    uf = compute_features(store)
    f = uf.frame
    assert list(f.index) == ["A", "B"]
    assert uf.end == datetime(2026, 1, 10, 12, 0)
    a, b = f.loc["A"], f.loc["B"]
    assert (a.sessions, a.views, a.cart_adds, a.checkouts) == (2, 3, 2, 1)
    assert a.frequency == 1 and a.monetary == 150 and a.aov == 150  # one order of two items
    assert a.recency_days == pytest.approx((datetime(2026, 1, 10, 12) - datetime(2026, 1, 1, 10, 5)).total_seconds() / 86400)
    assert a.cart_rate == 1.0 and a.cart_abandonment == 0.5 and a.conversion_rate == 0.5
    assert a.campaign_share == 0.5
    assert a["device:mobile"] == 0.5 and a["device:desktop"] == 0.5 and a["device:tablet"] == 0
    assert a["cat:Shoes"] == pytest.approx(5 / 7) and a["cat:Bags"] == pytest.approx(2 / 7)
    assert a.price_index == pytest.approx(0.4 ** (2 / 3))  # p1 is 0.4x the Shoes median, p2 the Bags median
    assert a.tenure_days == pytest.approx(40.5)
    # B never carted or bought: the ratios are empty, not zero
    assert b.sessions == 2 and b.frequency == 0 and b.monetary == 0
    assert np.isnan(b.recency_days) and np.isnan(b.aov) and np.isnan(b.cart_abandonment)
    assert b.days_since_visit == 0 and b["device:tablet"] == 1
    assert b.views == 4 and b["cat:Bags"] == 0.5
    assert b.price_index == pytest.approx((0.4 * 1.6 * 1.0) ** (1 / 3))  # p4 (free) left out
    assert b.tenure_days == pytest.approx(3 / 24)  # no profile row: first seen at the first event
    store.close()


def test_features_as_of_a_cutoff_see_only_the_past(tmp_path: Path) -> None:
    store = _hand_store(tmp_path / "hand.duckdb")
    f = compute_features(store, as_of=datetime(2026, 1, 5)).frame
    assert list(f.index) == ["A"]  # B's first event is after the cutoff
    assert f.loc["A", "sessions"] == 1 and f.loc["A", "cart_abandonment"] == 0
    assert f.loc["A", "recency_days"] == pytest.approx((datetime(2026, 1, 5) - datetime(2026, 1, 1, 10, 5)).total_seconds() / 86400)
    store.close()


def test_an_empty_store_gets_a_clear_error(tmp_store: Store) -> None:
    with pytest.raises(MarketLabError, match="no events"):
        compute_features(tmp_store)


def test_demo_features_cover_every_shopper(demo: Store, demo_features) -> None:
    f = demo_features.frame
    assert len(f) == 1500 and f.index.is_unique
    assert set(demo_features.devices) == {"mobile", "desktop", "tablet"}
    assert len(demo_features.categories) == 7
    for col in ("sessions", "views", "frequency", "monetary", "days_since_visit", "campaign_share", "tenure_days"):
        assert f[col].notna().all(), col
    assert f[[c for c in f if c.startswith("device:")]].sum(axis=1).round(6).eq(1).all()


# --- clusters recover the planted groups ----------------------------------------------------

def test_clusters_recover_the_planted_groups(demo_features, planted: pd.Series, record_property) -> None:
    cols = [c for c in FEATURE_SETS["behaviour"] if c != "device:*1"] + ["device:mobile"]
    X = prepare(demo_features.frame, cols).X
    truth = planted.reindex(demo_features.frame.index).to_numpy()
    fixed = cluster(X, 5)
    auto = cluster(X, "auto")
    ari_fixed, ari_auto = _ari(truth, fixed.labels), _ari(truth, auto.labels)
    record_property("ari_k5", round(ari_fixed, 3))
    record_property("ari_auto", round(ari_auto, 3))
    print(f"ARI vs planted groups: k=5 {ari_fixed:.3f}; auto k={auto.k} {ari_auto:.3f}; silhouette {auto.silhouette:.3f}")
    assert ari_fixed >= ARI_FIXED_K
    assert ari_auto >= ARI_AUTO_K
    # honest quality: a silhouette for every k tried, sizes that add up, largest first
    assert sorted(auto.silhouette_by_k) == list(range(3, 9))
    assert auto.k == max(auto.silhouette_by_k, key=auto.silhouette_by_k.get)
    assert sum(auto.sizes) == 1500 and auto.sizes == sorted(auto.sizes, reverse=True)
    assert -1 <= auto.silhouette <= 1
    # the lapsed group is one cluster, and it is the one that stopped visiting
    lapsed = pd.Series(fixed.labels[truth == "lapsed"]).value_counts()
    assert lapsed.iloc[0] / lapsed.sum() > 0.8
    days = pd.Series(demo_features.frame["days_since_visit"].to_numpy()).groupby(fixed.labels).median()
    assert days.idxmax() == lapsed.index[0]


def test_scaling_tames_heavy_tails_and_fills_gaps(demo_features) -> None:
    p = prepare(demo_features.frame, ["monetary", "aov", "secs_per_event", "campaign_share"])
    assert set(p.log_columns) == {"monetary", "aov", "secs_per_event"}
    assert np.isfinite(p.X).all() and np.abs(p.X).max() <= p.clip
    with pytest.raises(MarketLabError, match="Unknown feature"):
        prepare(demo_features.frame, ["shoe_size"])


def test_k_must_be_sensible() -> None:
    X = np.random.default_rng(0).normal(size=(30, 2)).astype(np.float32)
    for bad in (1, 40, "seven"):
        with pytest.raises(MarketLabError):
            cluster(X, bad)


def test_map_keeps_small_segments_visible() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(10_000, 4))
    labels = np.r_[np.zeros(9_970, int), np.ones(30, int)]
    frame, method = project_2d(X, labels, [f"u{i}" for i in range(10_000)], sample=1_000, min_per_segment=50)
    assert method in ("pca", "umap")
    assert 1_000 <= len(frame) <= 1_100 and frame["user_id"].is_unique
    assert (frame["segment"] == 1).sum() == 30  # all of the small segment, not 3 of it
    assert frame[["x", "y"]].notna().all().all()


# --- RFM ------------------------------------------------------------------------------------

def test_rfm_rules_cover_every_cell_and_read_like_the_textbook() -> None:
    cells = grid()
    assert cells.shape == (5, 5) and cells.notna().all().all()
    assert set(cells.to_numpy().ravel()) == {r.name for r in RFM_RULES}
    assert len(RFM_RULES) == 10
    expected = {(5, 5): "Champions", (5, 4): "Champions", (4, 5): "Loyal", (3, 4): "Loyal", (5, 1): "New",
                (4, 1): "Promising", (5, 3): "Potential loyalists", (4, 2): "Potential loyalists", (3, 2): "Need attention",
                (2, 3): "At risk", (1, 4): "At risk", (1, 5): "Can't lose them", (2, 5): "Can't lose them",
                (2, 1): "Hibernating", (1, 1): "Lost", (1, 2): "Lost", (0, 0): PROSPECTS}
    assert {cell: rfm_segment(*cell) for cell in expected} == expected
    table = rule_table()
    assert table["segment"].tolist()[0] == PROSPECTS and len(table) == 11 + 4  # and the four plain-fact names last
    assert table["segment"].tolist()[-1] == "Lapsed one-time buyers"
    assert {"segment", "R", "FM", "meaning", "action"} <= set(table.columns)


def _hand_customers() -> pd.DataFrame:
    """Ten customers built to land one in each segment, and one visitor who never ordered.

    Values are distinct, so ranks 1..10 fall into the fifths two by two: recency 1-2 days
    scores R5 ... 9-10 days R1; orders and revenue are rank x 1 and rank x 100.
    """
    rows = {  # name: (recency days, orders rank, revenue rank) -> expected (R, F, M, FM)
        "champ": (1, 9, 10),     # 5 5 5 5
        "newbie": (2, 1, 1),     # 5 1 1 1
        "promise": (3, 2, 2),    # 4 1 1 1
        "potent": (4, 6, 6),     # 4 3 3 3
        "loyal": (5, 8, 8),      # 3 4 4 4
        "attn": (6, 5, 5),       # 3 3 3 3
        "cantlose": (7, 10, 9),  # 2 5 5 5
        "hibern": (8, 3, 3),     # 2 2 2 2
        "risk": (9, 7, 7),       # 1 4 4 4
        "lost": (10, 4, 4),      # 1 2 2 2
    }
    frame = pd.DataFrame({name: (float(r), float(f), 100.0 * m) for name, (r, f, m) in rows.items()},
                         index=["recency_days", "frequency", "monetary"]).T
    frame.loc["visitor"] = [np.nan, 0.0, 0.0]
    return frame


EXPECTED_RFM = {
    "champ": ([5, 5, 5, 5], "Champions"), "newbie": ([5, 1, 1, 1], "New"), "promise": ([4, 1, 1, 1], "Promising"),
    "potent": ([4, 3, 3, 3], "Potential loyalists"), "loyal": ([3, 4, 4, 4], "Loyal"), "attn": ([3, 3, 3, 3], "Need attention"),
    "cantlose": ([2, 5, 5, 5], "Can't lose them"), "hibern": ([2, 2, 2, 2], "Hibernating"), "risk": ([1, 4, 4, 4], "At risk"),
    "lost": ([1, 2, 2, 2], "Lost"), "visitor": ([0, 0, 0, 0], PROSPECTS),
}


def test_rfm_on_hand_made_customers_hits_every_segment() -> None:
    scored = assign_rfm(_hand_customers())
    got = {name: (scored.loc[name, ["r", "f", "m", "fm"]].tolist(), scored.loc[name, "segment"]) for name in scored.index}
    assert got == EXPECTED_RFM
    assert set(scored["segment"]) == {r.name for r in RFM_RULES} | {PROSPECTS}


def test_rfm_ties_share_a_score_and_one_order_scores_lowest() -> None:
    f = pd.DataFrame({"recency_days": np.arange(1, 11, dtype=float), "frequency": [1] * 7 + [2, 2, 5],
                      "monetary": np.linspace(10, 100, 10)}, index=[f"u{i}" for i in range(10)])
    s = rfm_scores(f)
    assert s["f"].iloc[:7].nunique() == 1 and s["f"].iloc[0] == 1
    assert s.loc["u7", "f"] == s.loc["u8", "f"] == 4 and s.loc["u9", "f"] == 5


def test_rfm_names_hold_in_plain_numbers_not_only_in_quintiles() -> None:
    # CDNOW's shape: the log ended long after most customers' only order. Quintiles still call the
    # most recent fifth "recent"; a name that promises recency or repeat buying must be true.
    rng = np.random.default_rng(3)
    n = 500
    f = pd.DataFrame({"recency_days": rng.uniform(200, 540, n), "frequency": rng.choice([1, 1, 1, 2, 3, 6], n).astype(float),
                      "monetary": rng.uniform(10, 400, n)}, index=[f"u{i}" for i in range(n)])
    scored = assign_rfm(f, horizon_days=90)
    recent_names = {"Champions", "Loyal", "Potential loyalists", "New", "Promising"}
    assert not scored["segment"].isin(recent_names).any()  # nobody bought within 90 days
    repeat_names = {"Champions", "Loyal", "Potential loyalists", "Can't lose them", "At risk"}
    named_repeat = scored["segment"].isin(repeat_names)
    assert (f.loc[named_repeat, "frequency"] >= 2).all() and named_repeat.any()
    assert set(scored["segment"]) >= {"Lapsed one-time buyers", "Lapsed repeat buyers"}
    # A longer horizon lets the same customers earn the names again.
    assert assign_rfm(f, horizon_days=600)["segment"].isin(recent_names).any()


def test_rfm_without_revenue_scores_recency_and_frequency_and_says_so() -> None:
    f = _hand_customers().assign(monetary=0.0)
    scored = assign_rfm(f)
    assert (scored["m"] == 0).all() and (scored["fm"] == scored["f"]).all()
    assert "monetary is missing" in rfm_notices(f)[0]
    assert rfm_notices(_hand_customers()) == []
    assert "RFM needs purchases" in rfm_notices(f.assign(frequency=0.0))[0]


# --- profiles and personas ------------------------------------------------------------------

@pytest.fixture(scope="module")
def profiles(demo_features):
    labels = pd.Series(np.where(demo_features.frame["days_since_visit"] > 40, "gone", "here"), index=demo_features.frame.index)
    return profile_segments(demo_features.frame, labels)


def test_profiles_add_up(profiles, demo_features) -> None:
    cards, base = profiles
    assert [c.segment_id for c in cards] == ["here", "gone"]  # largest first
    assert sum(c.size for c in cards) == base.size == 1500
    assert sum(c.share for c in cards) == pytest.approx(1)
    assert sum(c.revenue_share for c in cards) == pytest.approx(1)
    assert base.conversion_rate == pytest.approx((demo_features.frame["frequency"] > 0).mean())
    gone = cards[1]
    top = gone.differences[0]
    assert top.feature == "days_since_visit" and top.std_diff > 1 and top.segment > top.base
    assert all(abs(d.std_diff) >= 0.2 for d in gone.differences)
    assert [d for d, _ in base.top_devices][0] == "mobile"
    assert 0 < sum(s for _, s in base.top_categories) <= 1
    side = compare(cards[0], cards[1], base).set_index("metric")
    assert list(side.columns) == ["unit", "here", "gone", "all users"]
    assert side.loc["Users", "here"] + side.loc["Users", "gone"] == side.loc["Users", "all users"]
    assert side.loc["Median days since last visit", "gone"] > side.loc["Median days since last visit", "here"]


def _answer(prompt: list[dict], *, extra: str = "") -> str:
    """A persona quoting the size and share lines of the prompt's own facts."""
    facts = prompt[-1]["content"]
    size_line = next(ln for ln in facts.splitlines() if ln.startswith("- Users:"))
    size, share = size_line.split(": ", 1)[1].split(" (")
    share = share.split(" ")[0]
    return f"Name: Steady Browsers\nPersona: These {size} shoppers are {share} of all users. They browse more than they buy.{extra}"


class FakeGenerator:
    """Stands in for core/llm's generate(); records each call."""

    def __init__(self, script) -> None:
        self.script = script
        self.calls: list[dict] = []

    def __call__(self, prompts, n, max_new_tokens, temperature, seed):
        self.calls.append({"prompts": prompts, "n": n, "max_new_tokens": max_new_tokens, "temperature": temperature, "seed": seed})
        return [[self.script(p, i, seed) for i in range(n)] for p in prompts]


def test_persona_prompt_holds_only_the_profile_numbers(profiles) -> None:
    cards, base = profiles
    gen = FakeGenerator(lambda p, i, seed: _answer(p))
    personas = write_personas(cards, base, gen, candidates=3)
    prompt = gen.calls[0]["prompts"][0]
    assert [m["role"] for m in prompt] == ["system", "user", "assistant", "user"]
    facts_text = prompt[-1]["content"]
    for fact in persona_facts(cards[0], base):
        assert fact.line() in facts_text
    assert gen.calls[0]["n"] == 3 and len(gen.calls) == 1
    assert all(p.source == "model" and p.name == "Steady Browsers" for p in personas[:1])
    assert personas[0].facts == persona_facts(cards[0], base)  # the numbers travel with the words


def test_invented_numbers_are_rejected_and_the_next_candidate_taken(profiles) -> None:
    cards, base = profiles
    script = {0: lambda p: _answer(p, extra=" 73% of them buy every week."),  # invented
              1: lambda p: "Steady Browsers",  # not a name plus sentences
              2: lambda p: _answer(p)}
    gen = FakeGenerator(lambda p, i, seed: script[i](p))
    personas = write_personas(cards, base, gen, candidates=3)
    for persona in personas:
        assert persona.source == "model"
        assert check_grounding(f"{persona.name} {persona.text}", persona.facts) == []
        assert "number not in the profile: 73%" in persona.issues
        assert persona.candidates_checked == 3


def test_phrases_lifted_from_the_worked_example_are_rejected(profiles) -> None:
    cards, base = profiles
    lifted = lambda p: _answer(p, extra=" They shop from a desktop in office hours.")  # noqa: E731
    personas = write_personas(cards, base, FakeGenerator(lambda p, i, seed: lifted(p)), candidates=1, attempts=1)
    assert all(p.source == "template" and any(i.startswith("copied from the example") for i in p.issues) for p in personas)


def test_when_no_candidate_is_grounded_the_template_speaks(profiles) -> None:
    cards, base = profiles
    gen = FakeGenerator(lambda p, i, seed: _answer(p, extra=f" They spend ${seed + 417} a month."))
    personas = write_personas(cards, base, gen, candidates=2, attempts=2)
    assert [c["seed"] for c in gen.calls] == [0, 1]  # a second batch with another seed, then give up
    for persona, card in zip(personas, cards):
        assert persona.source == "template" and persona.segment_id == card.segment_id
        assert any("417" in i or "418" in i for i in persona.issues)
        assert check_grounding(f"{persona.name} {persona.text}", persona.facts, vocabulary=["mobile", "desktop", "tablet"],
                               known=[d for d, _ in card.top_devices]) == []
        assert 2 <= persona.text.count(". ") + 1 <= 3
    assert personas[1].name.startswith("Lapsing")  # the segment of users who stopped visiting


def test_a_core_llm_engine_plugs_in_and_a_failing_one_costs_only_the_personas(profiles) -> None:
    from types import SimpleNamespace

    from core.segments.persona import from_engine

    class Engine:  # core.llm's Engine.generate shape: flat GenerationResult rows, any order
        def generate(self, prompts, *, n, max_new_tokens, temperature, seed, stop=()):
            rows = [SimpleNamespace(prompt_index=i, variant_index=v, text=f"{i}-{v}") for i in range(len(prompts)) for v in range(n)]
            return rows[::-1]

    assert from_engine(Engine())([[], []], n=2, max_new_tokens=8, temperature=0.5, seed=1) == [["0-0", "0-1"], ["1-0", "1-1"]]

    class Broken:
        def generate(self, prompts, **kwargs):
            raise MarketLabError("out of memory on every device", title="The language model could not write copy")

    cards, base = profiles
    personas = write_personas(cards, base, from_engine(Broken()))
    assert all(p.source == "template" and "the model failed: out of memory on every device" in p.issues for p in personas)


def test_grounding_rules() -> None:
    facts = [Fact("Average order value", "$56.10 (all users: $48.00)"), Fact("Ordered in the period", "28% of users"),
             Fact("Devices by sessions", "mobile (91%)")]
    assert check_grounding("They spend $56.10 an order, 28% ordered.", facts) == []
    assert check_grounding("Orders average about $56.", facts) == []  # rounding a fact is fine
    assert check_grounding("28.4% of them ordered.", facts) == ["number not in the profile: 28.4%"]  # precision it lacks
    assert check_grounding("Over 1,000 loyal fans.", facts) == ["number not in the profile: 1,000"]
    assert check_grounding("28 percent ordered.", facts) == []
    assert check_grounding("They spend 28% more, $28 a visit.", facts) == ["number not in the profile: $28"]  # a share is not money
    assert check_grounding("56.10% of them.", facts) == ["number not in the profile: 56.10%"]  # money is not a share
    vocab, known = ["mobile", "desktop", "Skincare"], ["mobile"]
    assert check_grounding("Mobile first.", facts, vocabulary=vocab, known=known) == []
    assert check_grounding("They love Skincare on desktop.", facts, vocabulary=vocab, known=known) == [
        "claim not in the profile: desktop", "claim not in the profile: Skincare"]


def test_parse_persona_shapes() -> None:
    assert parse_persona("Name: Night Owls\nPersona: They shop late. Most use a phone.") == ("Night Owls", "They shop late. Most use a phone.")
    assert parse_persona("**Night Owls**\nThey shop late. Most use a phone. They buy little. Extra sentence.") == (
        "Night Owls", "They shop late. Most use a phone. They buy little.")
    assert parse_persona("Name: Night Owls\nPersona: Just one sentence.") is None
    assert parse_persona("") is None
    assert parse_persona("Name: Night Owls\nPersona: They shop late. Most use a phone. They buy") == (
        "Night Owls", "They shop late. Most use a phone.")  # a tail cut at max_new_tokens is dropped
    assert parse_persona("Name: Loop\nPersona: They shop late. They shop late. They shop late.") is None  # a model stuck in a loop
    assert parse_persona("Name: Long\nPersona: " + "word " * 50 + "end. Short one.") is None


def test_template_persona_is_grounded(profiles) -> None:
    cards, base = profiles
    for card in cards:
        p = template_persona(card, base)
        assert check_grounding(f"{p.name} {p.text}", p.facts) == []


# --- propensity -----------------------------------------------------------------------------

def test_propensity_on_a_time_split(demo: Store) -> None:
    result = score_propensity(demo, horizon_days=21)
    assert result.train_cutoff < result.test_cutoff < result.end
    assert set(result.models) == {"logistic", "gradient_boosting", "recency_baseline"}
    for score in result.models.values():
        assert 0 <= score.roc_auc <= 1 and 0 <= score.pr_auc <= 1
        assert sum(n for _, _, n in score.calibration) == result.n_test
    best = result.models[result.chosen]
    assert result.chosen in ("logistic", "gradient_boosting")
    assert best.roc_auc > result.models["recency_baseline"].roc_auc
    assert best.pr_auc > result.base_rate_test  # better than guessing
    assert result.scores.between(0, 1).all() and len(result.scores) == 1500
    assert json.dumps(result.summary())  # serialisable for a page or the CLI

    targets = target_list(result, top_share=0.1)
    assert len(targets) > 0 and targets["propensity"].is_monotonic_decreasing
    assert not result.converted[targets["user_id"]].any()  # nobody who already ordered
    assert targets["propensity"].min() >= result.scores.quantile(0.9)
    labels = pd.Series(np.where(result.scores.index.str[-1].isin(list("01234")), "a", "b"), index=result.scores.index)
    by_seg = propensity_by_segment(result, labels)
    assert set(by_seg["segment"]) == {"a", "b"} and by_seg["users"].sum() == 1500


def test_propensity_refuses_a_horizon_longer_than_the_log(demo: Store) -> None:
    with pytest.raises(MarketLabError, match="too short"):
        score_propensity(demo, horizon_days=40)


# --- runs -----------------------------------------------------------------------------------

def test_a_run_is_saved_and_survives_a_restart(tmp_path: Path, planted: pd.Series) -> None:
    path = tmp_path / "runs.duckdb"
    store = Store(path)
    build_demo(store, seed=42, scale=DEMO_SCALE)
    steps = []
    gen = FakeGenerator(lambda p, i, seed: _answer(p))
    run = run_segmentation(store, k=5, generate=gen, progress=lambda f, m: steps.append((f, m)))
    assert steps[0][0] == 0 and steps[-1][0] == 1 and all(a[0] <= b[0] for a, b in zip(steps, steps[1:]))
    assert run.k == 5 and run.users == 1500 and len(run.segments) == 5
    assert run.quality["personas_from_model"] == 5
    summary = run.summary()
    assert json.dumps(summary) and [s["segment_id"] for s in summary["segments"]] == ["c1", "c2", "c3", "c4", "c5"]
    assert all(s["persona_source"] == "model" and s["persona"] for s in summary["segments"])
    assert _ari(planted.reindex(run.labels.index), run.labels) >= ARI_FIXED_K
    rfm = run_segmentation(store, method="rfm")
    assert rfm.segment("prospects").size == (run.labels.size - (compute_features(store).frame["frequency"] > 0).sum())
    store.close()

    store = Store(path)  # a restart
    runs = list_runs(store)
    assert [r.run_id for r in runs] == [rfm.run_id, run.run_id]  # newest first
    assert runs[1].k == 5 and runs[1].users == 1500 and runs[1].silhouette == run.quality["silhouette"]
    loaded = load_run(store, run.run_id, with_labels=True)
    assert loaded.method == "kmeans" and loaded.k == 5 and loaded.features == run.features
    assert loaded.params["k_requested"] == 5 and loaded.params["seed"] == 0
    assert loaded.quality["silhouette"] == pytest.approx(run.quality["silhouette"], abs=1e-4)
    assert [(s.segment_id, s.name, s.persona, s.size) for s in loaded.segments] == [
        (s.segment_id, s.name, s.persona, s.size) for s in run.segments]
    assert loaded.segments[0].persona_detail.facts == run.segments[0].persona_detail.facts
    assert loaded.base.size == 1500
    assert loaded.labels.sort_index().equals(run.labels.sort_index())
    assert set(loaded.map.columns) == {"user_id", "x", "y", "segment"} and len(loaded.map) == 1500
    ids = segment_user_ids(store, run.run_id, "c2")
    assert len(ids) == run.segment("c2").size
    csv = export_segment_csv(store, run.run_id, "c2").decode("utf-8-sig").splitlines()
    assert csv[0] == "user_id" and csv[1:] == ids
    with pytest.raises(MarketLabError):
        load_run(store, "run-nope")
    with pytest.raises(MarketLabError):
        segment_user_ids(store, run.run_id, "c99")
    assert load_run(store, rfm.run_id).segment("champions").name == "Champions"
    delete_run(store, rfm.run_id)
    assert [r.run_id for r in list_runs(store)] == [run.run_id]
    with pytest.raises(MarketLabError):
        run_labels(store, rfm.run_id)
    store.close()


def test_a_failed_save_leaves_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "fail.duckdb")
    build_demo(store, seed=42, scale=0.02)
    run = run_segmentation(store, k=3, save=False)
    run.labels = pd.concat([run.labels, run.labels.iloc[:1]])  # a duplicate user breaks the last insert
    with pytest.raises(Exception):
        _save(store, run)
    with store.cursor() as cur:
        counts = [cur.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in ("segment_runs", "segments", "user_segments")]
    assert counts == [0, 0, 0]
    store.close()


def test_unknown_features_and_methods_are_refused(demo: Store) -> None:
    with pytest.raises(MarketLabError, match="Unknown feature"):
        run_segmentation(demo, features=["sessions", "shoe_size"], save=False)
    with pytest.raises(MarketLabError, match="feature set"):
        run_segmentation(demo, features="vibes", save=False)
    with pytest.raises(MarketLabError, match="method"):
        run_segmentation(demo, method="dbscan", save=False)


def test_segments_import_no_streamlit_and_no_heavy_libraries() -> None:
    code = ("import sys, core.segments, core.segments.text, core.segments.propensity\n"
            "bad = [m for m in ('streamlit', 'torch', 'transformers', 'sklearn') if m in sys.modules]\n"
            "assert not bad, bad\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_purchase_only_log_drops_constant_features_and_cites_only_real_differences(tmp_store: Store) -> None:
    # An order export: every event is a purchase, so view, cart and session features say nothing.
    from core.ingest import ingest_file

    rng = np.random.default_rng(5)
    lines = ["customer,date,amount"] + [
        f"C{c:03d},2026-0{rng.integers(1, 7)}-{rng.integers(10, 28)},{rng.gamma(2, 40 + 60 * (c % 3)):.2f}"
        for c in range(120) for _ in range(1 + c % 4)
    ]
    path = Path(tmp_store.path).parent / "orders.csv"
    path.write_text("\n".join(lines) + "\n")
    ingest_file(tmp_store, "events", path, mapping={"customer": "user_id", "date": "ts", "amount": "revenue"},
                constants={"event_name": "purchase"})
    run = run_segmentation(tmp_store, k=3, features="behaviour", save=False)
    dropped = run.params["scaling"]["dropped"]
    assert dropped and not set(dropped) & set(run.features)
    assert any("same for every user" in n for n in run.quality["notices"])
    for seg in run.segments:
        for d in seg.profile.differences:
            assert abs(d.segment - d.base) > 0.05 * max(abs(d.segment), abs(d.base))
    assert len({s.name for s in run.segments}) == len(run.segments)  # two segments never share a name


def test_every_feature_constant_is_refused_with_the_reason(tmp_store: Store) -> None:
    with tmp_store.cursor() as cur:
        cur.execute("INSERT INTO events (user_id, ts, event_name) SELECT 'U' || i, TIMESTAMP '2026-01-01', 'view' FROM range(30) t(i)")
    with pytest.raises(MarketLabError, match="same for all users"):
        run_segmentation(tmp_store, k=3, features=["views", "sessions"], save=False)


def test_a_run_is_called_by_what_it_is_and_when_never_by_its_id() -> None:
    from datetime import datetime

    from core.segment_titles import run_title

    when = datetime(2026, 12, 4, 14, 53)
    assert run_title("kmeans", 5, when) == "5 behaviour segments · 4 Dec 14:53"
    assert run_title("kmeans", 4, when, use_text=True) == "4 behaviour and review-text segments · 4 Dec 14:53"
    assert run_title("rfm", 11, when) == "RFM segments · 4 Dec 14:53"
    assert run_title("funnel_dropoff", 1, when, name="Cart abandoners") == "“Cart abandoners” · 4 Dec 14:53"
