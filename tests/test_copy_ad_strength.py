"""Ad strength for a Google RSA: Google's factors as explicit rules, each unmet one an action item."""

from __future__ import annotations

from core.copy.ad_strength import LEVELS, ad_strength


def rsa(headlines: list[str], descriptions: list[str]) -> dict[str, str]:
    fields = {("headline" if i == 0 else f"headline_{i + 1}"): h for i, h in enumerate(headlines)}
    fields |= {("description" if i == 0 else f"description_{i + 1}"): d for i, d in enumerate(descriptions)}
    return fields


HEADLINES = ["Insulated Water Bottle", "Cold for 24 Hours", "Leak-Proof Lid", "750 ml Steel Bottle", "Dishwasher Safe",
             "Glacier Blue Finish", "Fits Car Cup Holders", "BPA-Free Steel", "Water Bottle for Hikes", "Keeps Tea Hot 12 h",
             "Light at 380 g", "Powder-Coated Grip", "Summit by Hydra", "Made to Last Years", "Refill, Don't Rebuy"]
DESCRIPTIONS = ["Double-wall steel keeps water cold for 24 hours.", "A leak-proof lid you can toss in a bag.",
                "Dishwasher safe and BPA free, in Glacier Blue.", "750 ml that fits most car cup holders."]


def test_three_headlines_and_two_descriptions_are_poor_and_say_what_to_add() -> None:
    strength = ad_strength(rsa(HEADLINES[:3], DESCRIPTIONS[:2]), ["water bottle"])
    assert strength.level == "Poor"
    assert strength.actions[:2] == ["Add 12 more headlines (3 of 15).", "Add 2 more descriptions (2 of 4)."]


def test_a_full_distinct_ad_with_its_keyword_is_excellent() -> None:
    strength = ad_strength(rsa(HEADLINES, DESCRIPTIONS), ["water bottle"])
    assert (strength.level, strength.headlines, strength.descriptions, strength.actions) == ("Excellent", 15, 4, [])


def test_repeats_missing_keywords_and_missing_assets_lower_the_level() -> None:
    repeated = HEADLINES[:9] + ["insulated water bottle!", "Insulated Water Bottle"]
    strength = ad_strength(rsa(repeated, DESCRIPTIONS), ["water bottle"])
    assert strength.level == "Good" and strength.headlines == 9
    assert "3 headlines say the same thing (e.g. 'insulated water bottle!'): make them distinct." in strength.actions
    # Enough headlines and descriptions for Good, but none carries the ad group's keyword.
    assert ad_strength(rsa(HEADLINES[1:9], DESCRIPTIONS[:3]), ["water bottle"]).level == "Good"
    no_keyword = ad_strength(rsa(HEADLINES[1:9], DESCRIPTIONS[:3]), ["merino socks"])
    assert no_keyword.level == "Average" and "No headline has the keyword 'merino socks'." in no_keyword.actions
    assert ad_strength(rsa(HEADLINES[:2], DESCRIPTIONS), []).level == "Incomplete"


def test_a_position_pinned_to_one_asset_lowers_the_level_one_step() -> None:
    fields = rsa(HEADLINES, DESCRIPTIONS)
    free = ad_strength(fields, ["water bottle"])
    pinned = ad_strength(fields, ["water bottle"], {"headline": 1})
    assert LEVELS.index(pinned.level) == LEVELS.index(free.level) - 1
    assert any(a.startswith("Headline position 1 is pinned to one headline") for a in pinned.actions)
    shared = ad_strength(fields, ["water bottle"], {"headline": 1, "headline_2": 1})  # Google still chooses
    assert shared.level == free.level
