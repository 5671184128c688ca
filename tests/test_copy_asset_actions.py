"""Lock one asset of a saved ad, regenerate another: the rest of the ad stays as it was (issue 13)."""

from __future__ import annotations

import pytest

from core.copy.ad_strength import LEVELS
from core.copy.asset_actions import clean_keywords, regenerate_assets, set_keywords, set_locked, set_pin
from core.copy.limits import check_fields
from core.copy.channels import get_channel
from core.copy.variants import CopyError, GenerationRequest, generate_variants, get_variant, save_variants
from core.errors import MarketLabError
from core.sample_data import build_demo
from core.store import Store

FRESH = ["Cold Water on Every Trail", "Built for Long Hikes", "Your Desk Companion", "Keeps Drinks Cold",
         "Sip Cold All Afternoon", "A Bottle for Every Day"]


def model(prompts, n, max_new_tokens, temperature, seed):
    """A new headline per answer and per call (the seed moves), as a sampling model gives."""
    return [[f"Headline: {FRESH[(seed + i) % len(FRESH)]}\nHeadline 2: {FRESH[(seed + i + 1) % len(FRESH)]}\n"
             f"Description: Insulated steel that holds 750 ml." for i in range(n)] for _ in prompts]


def stubborn(prompts, n, max_new_tokens, temperature, seed):
    return [["Headline: 169.95 USD\nDescription: Category: Drinkware."] * n for _ in prompts]


@pytest.fixture
def ad(tmp_path):
    store = Store(tmp_path / "assets.duckdb")
    build_demo(store, scale=0.02)
    (variant,) = generate_variants(store, model, GenerationRequest(("P0001",), "google_rsa", n=1))
    save_variants(store, [variant], "approved")
    yield store, variant
    store.close()


def test_regenerating_one_headline_replaces_only_it_with_a_new_usable_one(ad) -> None:
    store, variant = ad
    before = dict(variant.fields)
    after = regenerate_assets(store, model, variant.variant_id, ["headline_2"])
    assert after.fields["headline_2"] != before["headline_2"]
    assert {k: v for k, v in after.fields.items() if k != "headline_2"} == {k: v for k, v in before.items() if k != "headline_2"}
    assert after.fields["headline_2"].lower() not in {v.lower() for v in before.values()}
    assert check_fields(after.fields, get_channel("google_rsa")) == {} and after.scores["usable"]
    assert after.params["assets"]["headline_2"] == "model"
    assert after.params["regenerated"][-1]["before"] == {"headline_2": before["headline_2"]}
    saved = get_variant(store, variant.variant_id)
    assert saved.fields == after.fields and saved.status == "draft"  # the approval covered the old text


def test_a_locked_asset_is_never_regenerated(ad) -> None:
    store, variant = ad
    set_locked(store, variant.variant_id, ["headline"])
    assert get_variant(store, variant.variant_id).params["locked"] == ["headline"]
    with pytest.raises(MarketLabError, match="locked"):
        regenerate_assets(store, model, variant.variant_id, ["headline", "headline_3"])
    assert get_variant(store, variant.variant_id).fields == variant.fields
    set_locked(store, variant.variant_id, [])
    assert regenerate_assets(store, model, variant.variant_id, ["headline"]).fields["headline"] != variant.fields["headline"]


def test_when_the_model_writes_nothing_usable_the_ad_is_unchanged(ad) -> None:
    store, variant = ad
    with pytest.raises(CopyError, match="unchanged"):
        regenerate_assets(store, stubborn, variant.variant_id, ["headline_2", "description"])
    saved = get_variant(store, variant.variant_id)
    assert saved.fields == variant.fields and saved.status == "approved"


def test_unknown_assets_and_one_piece_formats_are_refused(ad) -> None:
    store, variant = ad
    with pytest.raises(MarketLabError, match="no asset 'subject'"):
        set_locked(store, variant.variant_id, ["subject"])
    def email_model(prompts, n, max_new_tokens, temperature, seed):
        return [["Subject: Cold water\nPreheader: Holds 750 ml."] * n for _ in prompts]

    (email,) = generate_variants(store, email_model, GenerationRequest(("P0001",), "email", n=1), save=True)
    with pytest.raises(MarketLabError, match="not assets"):
        regenerate_assets(store, model, email.variant_id, ["subject"])


def test_pinning_a_headline_alone_to_a_position_lowers_ad_strength_and_says_why(ad) -> None:
    store, variant = ad
    before = variant.scores["ad_strength"]["level"]
    pinned = set_pin(store, variant.variant_id, "headline", 1)
    assert get_variant(store, variant.variant_id).params["pins"] == {"headline": 1}
    strength = pinned.scores["ad_strength"]
    assert LEVELS.index(strength["level"]) == LEVELS.index(before) - 1
    assert any("Headline position 1 is pinned to one headline" in a for a in strength["actions"])
    # A second headline pinned to the same position gives Google a choice again.
    again = set_pin(store, variant.variant_id, "headline_2", 1)
    assert again.scores["ad_strength"]["level"] == before
    unpinned = set_pin(store, set_pin(store, variant.variant_id, "headline", None).variant_id, "headline_2", None)
    assert unpinned.params["pins"] == {} and unpinned.scores["ad_strength"]["level"] == before


def test_pins_google_would_refuse_change_nothing(ad) -> None:
    store, variant = ad
    with pytest.raises(MarketLabError, match="position 1, 2 or 3, not 4"):
        set_pin(store, variant.variant_id, "headline_2", 4)
    heads = [k for k in variant.fields if k.startswith("headline")]
    for key in heads[:-2]:  # two headlines left free: positions 1 and 2 still have one each
        set_pin(store, variant.variant_id, key, 3)
    with pytest.raises(MarketLabError, match="leave no headline for position 2"):
        set_pin(store, variant.variant_id, heads[-2], 3)
    assert heads[-2] not in get_variant(store, variant.variant_id).params["pins"]


def test_keywords_the_marketer_sets_are_what_ad_strength_looks_for_in_headlines(ad) -> None:
    store, variant = ad
    kept = set_keywords(store, variant.variant_id, ["  merino   socks ", "Merino Socks", "", "water bottle"])
    assert get_variant(store, variant.variant_id).params["keywords"] == ["merino socks", "water bottle"]
    assert "No headline has the keyword 'merino socks'." in kept.scores["ad_strength"]["actions"]
    with pytest.raises(MarketLabError, match="Google does not allow"):
        set_keywords(store, variant.variant_id, ["socks!"])
    assert get_variant(store, variant.variant_id).params["keywords"] == ["merino socks", "water bottle"]  # unchanged
    with pytest.raises(MarketLabError, match="80 characters or 10 words"):
        clean_keywords(["one two three four five six seven eight nine ten eleven"])
