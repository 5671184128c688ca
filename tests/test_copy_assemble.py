"""Assembling a Google RSA and a Meta ad from model answers and the product's selling points (issue 13)."""

from __future__ import annotations

from core.copy.assemble import asset_pool, assemble_ads, display_paths
from core.copy.channels import get_channel
from core.copy.facts import ProductFacts
from core.copy.gates import asset_gates
from core.copy.limits import check_fields
from core.copy.scoring import Evidence, claims_in
from core.copy.selling_points import carries, selling_points

RSA, META = get_channel("google_rsa"), get_channel("meta")
JACKET = ProductFacts(
    "P-J", "Drift Rain Jacket", "Harbor & Pine", "Outerwear", 169.95, "USD",
    "A packable rain jacket in recycled nylon with a 10,000 mm waterproof rating. Taped seams keep you dry in a downpour. "
    "The hood adjusts with one hand.",
    {"type": "rain jacket", "material": "recycled nylon", "waterproof_rating_mm": 10000, "waterproof": True, "color": "blue"},
)
# What SmolLM2 wrote for it, the bad with the good (issue 13).
ANSWERS = [
    ({"headline": "Stay Dry in Any Downpour", "headline_2": "169.95 USD", "headline_3": "10000 mm Waterproof Rain",
      "description": "A 10000 mm waterproof Rain Jacket with 10000 mm Waterproof Jacket. It is waterproof.",
      "description_2": "Category: Outerwear."}, {}),
    ({"headline": "Packable Rain Jacket", "headline_2": "BigFig Pedimento", "headline_3": "Your order is ready",
      "description": "Made of recycled nylon that is 10000 mm in size.", "description_2": "Taped seams keep you dry."}, {}),
]


def _ad(spec=RSA, answers=ANSWERS, facts=JACKET, n=1):
    pools = asset_pool(answers, spec, facts, Evidence(facts, []))
    return assemble_ads(pools, spec, facts, n)


def test_an_rsa_is_a_full_ad_of_usable_assets_within_limits() -> None:
    (ad,) = _ad()
    assert check_fields(ad, RSA) == {}
    assert asset_gates(ad, RSA, JACKET) == []
    evidence = Evidence(JACKET, [])
    assert all(not claims_in(text, evidence, key) for key, text in ad.items())
    headlines = [v for k, v in ad.items() if k.startswith("headline")]
    assert len(headlines) >= 8 and len([k for k in ad if k.startswith("description")]) >= 2


def test_the_bad_assets_a_marketer_refused_never_reach_the_ad() -> None:
    (ad,) = _ad()
    text = " | ".join(ad.values())
    for refused in ("169.95 USD", "10000 mm Waterproof Rain", "Category:", "It is waterproof", "BigFig", "Your order",
                    "10000 mm in size"):
        assert refused not in text
    assert "Stay Dry in Any Downpour" in text and "Packable Rain Jacket" in text  # the model's good lines stay


def test_the_ad_leads_with_the_top_selling_point_and_descriptions_do_not_repeat_one() -> None:
    top = selling_points(JACKET)[0]
    (ad,) = _ad()
    assert carries(ad["headline"], top) and carries(ad["description"], top)
    descriptions = [v for k, v in ad.items() if k.startswith("description")]
    points = selling_points(JACKET)
    carried = [p.text for d in descriptions for p in points if carries(d, p)]
    assert len(carried) == len(set(carried))  # no selling point said in two descriptions


def test_several_ads_differ_and_each_carries_the_top_selling_point() -> None:
    ads = _ad(n=2)
    top = selling_points(JACKET)[0]
    assert ads[0] != ads[1]
    assert all(check_fields(ad, RSA) == {} and carries(ad["headline"], top) for ad in ads)


def test_display_paths_are_what_the_product_is_without_spaces() -> None:
    assert display_paths(JACKET) == ["Outerwear", "Rain-Jacket"]
    shoe = ProductFacts("P-S", "Glide 3", "Pacewell", "Running Shoes", 120.0, "USD", None, {"type": "running shoe"})
    assert display_paths(shoe) == ["Running-Shoes"]  # "Running-Shoe" says it again
    lego = ProductFacts("P-L", "Creeper BigFig", "LEGO", "Toys & Games", 19.99, "USD", None,
                        {"category_path": "Toys & Games | Building Toys | Building Sets"})
    assert all(len(p) <= 15 and " " not in p for p in display_paths(lego))


def test_a_meta_ad_holds_up_to_five_primary_texts_and_headlines() -> None:
    answers = [({"primary_text": "Taped seams keep you dry in a downpour, and it packs small.", "headline": "Stay Dry in Any Downpour",
                 "description": "Packs small"}, {})]
    (ad,) = _ad(META, answers)
    assert check_fields(ad, META) == {} and asset_gates(ad, META, JACKET) == []
    assert 2 <= len([k for k in ad if k.startswith("primary_text")]) <= 5
    assert 2 <= len([k for k in ad if k.startswith("headline")]) <= 5


def test_a_product_with_one_fact_still_gets_a_complete_ad_with_its_problems_named() -> None:
    mug = ProductFacts("P-M", "Tide Mug", "Tidepool", "Drinkware", 12.0, "USD", None, {"material": "ceramic"})
    (ad,) = _ad(answers=[({"headline": "Tide Mug", "description": "Made of ceramic.", "description_2": "Category: Drinkware."}, {})],
                facts=mug)
    assert check_fields(ad, RSA) == {}  # the minimum is met, so the marketer sees an ad and what to fix in it
