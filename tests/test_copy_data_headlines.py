"""Headlines the product's data alone backs: the title's phrases, the price with what it buys, a call to action (issue 13)."""

from __future__ import annotations

from core.copy.ad_strength import ad_strength
from core.copy.assemble import asset_pool, assemble_ads
from core.copy.channels import get_channel
from core.copy.data_headlines import (ad_keyword, call_to_action, kind_is_named, maker_name, offer_sentence, price_headline,
                                      price_text, second_call_to_action, title_phrases)
from core.copy.facts import ProductFacts
from core.copy.gates import asset_gates
from core.copy.limits import calm_capitals
from core.copy.scoring import Evidence, claims_in

RSA = get_channel("google_rsa")
TUMBLER = ProductFacts("P1", "Summit Nova 890 ml Steel Tumbler", "Summit", "Drinkware", 20.99, "USD",
                       "An 890 ml steel tumbler.", {"type": "tumbler", "capacity_ml": 890, "material": "stainless steel",
                                                    "dishwasher_safe": True, "color": "Sand"})
# Real listings from the Amazon sample in ../shared/data/real: no brand column, a category leaf for a kind.
BALLOONS = ProductFacts("A1", "AMERICAN GREETINGS Rainbow Latex Balloons| Pack of 20 | Party Decor", None, "Home & Kitchen",
                        10.17, "USD", "", {"category_path": "Home & Kitchen | Party Supplies | Birthday Candles"})
PUZZLE = ProductFacts("A2", "Ravensburger Mama Knows Best 1000 Piece Jigsaw Puzzle", None, None, 24.78, "USD", "", {})
ORNAMENT = ProductFacts("A3", "CHROMA 000914 914 Hello Kitty Plush Auto Ornament", None, None, 11.99, "USD", "", {})
NET = ProductFacts("A4", "Melissa & Doug Bella Butterfly Net", None, "Patio, Lawn & Garden", 6.99, "USD", "",
                   {"category_path": "Patio, Lawn & Garden | Butterflies"})
CASE = ProductFacts("P2", "Voltic Trail Case for iPhone 17 Pro", "Voltic", "Accessories", 39.0, "USD", "",
                    {"type": "phone case"})


def test_a_marketplace_title_gives_its_phrases_without_the_shouted_brand_or_part_numbers() -> None:
    assert title_phrases(BALLOONS, 30) == ["Rainbow Latex Balloons", "Pack of 20", "Party Decor"]
    assert title_phrases(ORNAMENT, 40) == ["Hello Kitty Plush Auto Ornament"]


def test_a_phrase_too_long_is_never_cut_at_its_end_only_taken_from_its_count_or_its_head_noun_on() -> None:
    assert title_phrases(PUZZLE, 30) == ["1000 Piece Jigsaw Puzzle"]
    # "Hello Kitty Plush Auto" would drop the noun; the phrase's last words keep it.
    assert title_phrases(ORNAMENT, 30) == ["Plush Auto Ornament"]


def test_a_long_title_gives_its_head_noun_phrase_never_half_a_name_a_set_number_or_a_joining_word() -> None:
    def phrases(title: str) -> list[str]:
        return title_phrases(ProductFacts("A", title, None, None, 9.0, "USD", "", {}), 30)

    assert phrases("Harry Potter 9 & 3/4 Platform Soft Touch Magnet") == ["Soft Touch Magnet"]
    assert phrases("Melissa & Doug Star Diner Restaurant (Play Set & Kitchen)")[0] == "Star Diner Restaurant"
    assert phrases("LEGO The Powerpuff Girls Mojo Jojo Strikes 41288 Building Kit (228 Pieces)") == ["Building Kit"]
    # What the product is for is left off before the tail is taken.
    assert phrases("Inflatable MegaMorph Fat Suit Costume For Adults And Children")[0] == "Fat Suit Costume"
    # A tail after a joining word is half a name: "Robots and | Rockets Navy", "Lord of the | Rings LCG".
    assert phrases("Oopsy Daisy Growth Charts Robots and Rockets Navy by Finny and Zook") == []
    lcg = ProductFacts("A", "Lord of the Rings LCG: The Road Darkens", None, None, 23.96, "USD", "", {})
    assert "Rings LCG" not in (price_headline(lcg, 30) or "") and title_phrases(lcg, 30)[0] == "Lord of the Rings LCG"
    # A break inside a name ("Created by Me!") is not where the noun phrase ends.
    assert phrases("Melissa & Doug Created by Me! Pink Wooden Flower Jewelry Box Craft Kit")[0] == "Box Craft Kit"


def test_a_shelf_of_several_kinds_is_not_the_products_name_and_a_plural_category_names_one() -> None:
    bear = ProductFacts("A5", "Aurora World Plush Graduation Bear, White Cap", None, "Stuffed Animals & Teddy Bears",
                        12.99, "USD", "", {})
    kit = ProductFacts("A6", "Elenco Line Tracking Robot Kit", None, "Craft Kits", 29.95, "USD", "", {})
    assert not kind_is_named(bear) and "Teddy" not in (call_to_action(bear, 30) or "")
    assert call_to_action(kit, 30) == "Shop the Craft Kit" and ad_keyword(kit) == "craft kit"


def test_the_price_is_said_with_what_it_buys_and_a_call_to_action_names_the_product() -> None:
    assert price_text(TUMBLER) == "$20.99"
    assert price_text(CASE) == "$39"
    assert price_headline(TUMBLER, 30) == "Summit Tumbler for $20.99"
    assert call_to_action(TUMBLER, 30) == "Shop the Summit Tumbler"
    assert call_to_action(CASE, 30) == "Shop the Voltic Phone Case"


def test_a_category_leaf_the_title_does_not_bear_out_names_no_headline() -> None:
    assert kind_is_named(TUMBLER) and kind_is_named(CASE)  # "Trail Case | for iPhone 17 Pro": case is the noun
    assert not kind_is_named(BALLOONS) and not kind_is_named(NET)  # a shelf: candles, butterflies
    pools = asset_pool([], RSA, BALLOONS, Evidence(BALLOONS, []))
    (ad,) = assemble_ads(pools, RSA, BALLOONS, 1)
    assert not any("candle" in text.lower() for key, text in ad.items() if not key.startswith("path"))
    assert ad_keyword(BALLOONS) == "latex balloons" and ad_keyword(TUMBLER) == "tumbler"


def test_data_headlines_fill_a_thin_products_rsa_to_good_and_every_one_is_grounded() -> None:
    pools = asset_pool([], RSA, TUMBLER, Evidence(TUMBLER, []))
    (ad,) = assemble_ads(pools, RSA, TUMBLER, 1)
    headlines = [v for k, v in ad.items() if k.startswith("headline")]
    assert {"Summit Tumbler for $20.99", "Shop the Summit Tumbler"} <= set(headlines)
    assert ad_strength(ad, ["tumbler"]).level in ("Good", "Excellent")
    assert asset_gates(ad, RSA, TUMBLER) == []
    assert all(not claims_in(text, Evidence(TUMBLER, []), key) for key, text in ad.items())


def test_a_description_of_one_short_fact_is_closed_with_a_call_to_action_or_the_price() -> None:
    pools = asset_pool([], RSA, TUMBLER, Evidence(TUMBLER, []))
    (ad,) = assemble_ads(pools, RSA, TUMBLER, 1)
    descriptions = [v for k, v in ad.items() if k.startswith("description")]
    assert "Comes in Sand." not in descriptions
    assert any(d.endswith(("Shop the Summit Tumbler today.", "Yours for $20.99.")) for d in descriptions)
    assert len({d.split(". ")[-1] for d in descriptions}) == len(descriptions)  # no two end alike


def test_a_product_with_few_facts_still_gets_a_second_description_the_offer_said_whole() -> None:
    ring = ProductFacts("A7", "Disney Rapunzel Acrylic Key Ring, Multicolor", None, "Key Rings", 3.33, "USD",
                        "Officially licensed", {})
    assert offer_sentence(ring, 90) == "Get the Key Ring for $3.33."
    pools = asset_pool([], RSA, ring, Evidence(ring, []))
    (ad,) = assemble_ads(pools, RSA, ring, 1)
    descriptions = [v for k, v in ad.items() if k.startswith("description")]
    assert "Get the Key Ring for $3.33." in descriptions and len(descriptions) >= 2
    assert not any(asset_gates({k: v}, RSA.writes, ring) for k, v in ad.items() if not k.startswith("path"))


def test_a_product_with_no_facts_but_its_name_and_price_still_has_two_grounded_descriptions() -> None:
    """The key ring of the Amazon run filled its second description with '20191018018128' the model wrote."""
    ring = ProductFacts("A8", "Disney Rapunzel Acrylic Key Ring, Multicolor", None, "Toys & Games", 3.33, "USD", "", {})
    pools = asset_pool([({"description": "20191018018128"}, {})], RSA, ring, Evidence(ring, []))
    (ad,) = assemble_ads(pools, RSA, ring, 1)
    descriptions = [v for k, v in ad.items() if k.startswith("description")]
    assert len(descriptions) == 2 and "20191018018128" not in descriptions
    assert all(d.startswith(("Get the", "Shop the")) for d in descriptions)


def test_a_title_phrase_broken_by_a_number_still_names_the_product_by_its_noun_phrase() -> None:
    magnet = ProductFacts("A9", "Harry Potter 9 & 3/4 Platform Soft Touch Magnet", None, "Novelty & Gag Toys", 5.98, "USD",
                          "", {})
    assert title_phrases(magnet, 90) == ["Soft Touch Magnet"]
    assert offer_sentence(magnet, 90) == "Get the Soft Touch Magnet for $5.98."


def _listing(title: str, kind: str | None = None) -> ProductFacts:
    return ProductFacts("A10", title, None, kind, 12.99, "USD", "", {})


def test_the_name_a_title_opens_with_goes_with_the_thing_it_ends_on() -> None:
    """How shoppers search for a licensed or branded product: "Harry Potter Magnet", not "Soft Touch Magnet" alone."""
    assert maker_name(_listing("Harry Potter 9 & 3/4 Platform Soft Touch Magnet"), 30) == "Harry Potter Soft Touch Magnet"
    # Too long with every modifier: they go from the left, the head noun stays.
    assert maker_name(_listing('Aurora World Plush Graduation Bear, White Cap, 8.5"'), 30) == "Aurora World Graduation Bear"
    assert maker_name(_listing("LEGO The Powerpuff Girls Mojo Jojo Strikes 41288 Building Kit (228 Pieces)"), 30) == "LEGO Building Kit"
    assert maker_name(_listing("Summit Nova 890 ml Steel Tumbler"), 30) == "Summit Nova Steel Tumbler"  # never "ml Steel Tumbler"


def test_no_maker_name_where_the_title_is_one_already_or_its_opening_name_goes_on() -> None:
    assert maker_name(_listing("Crazy Bonez Gothic Lantern"), 30) is None  # the title itself
    assert maker_name(_listing("Lord of the Rings LCG: The Road Darkens"), 30) is None  # not "Lord LCG"
    assert maker_name(_listing("amscan Antler Glitter Plastic Fun Shades | Christmas Favor"), 30) is None
    assert maker_name(_listing("Dewly Ceramide Daily Moisturizer 75 ml"), 30) is None  # never "Dewly Ceramide 75 ml"


def test_a_second_call_to_action_is_worded_apart_and_names_the_product_as_the_first_does() -> None:
    magnet = _listing("Harry Potter 9 & 3/4 Platform Soft Touch Magnet")
    assert call_to_action(magnet, 30) == "Shop the Soft Touch Magnet"
    assert second_call_to_action(magnet, 30) == "Get Your Soft Touch Magnet"  # never a shorter cut ("Touch Magnet")
    assert second_call_to_action(TUMBLER, 30) == "Get Your Summit Tumbler Today"


def test_small_print_in_a_title_is_no_headline_and_a_name_loses_its_exclamation_mark() -> None:
    """Google allows no "!" in a headline, and "Color/Packaging May Vary" sells nothing."""
    assert title_phrases(_listing("Spot It! (Color/Packaging May Vary)"), 30) == ["Spot It"]


def test_a_plural_kind_said_in_so_many_words_in_the_title_names_the_product() -> None:
    assert kind_is_named(_listing("Oopsy Daisy Growth Charts Robots and Rockets Navy by Finny and Zook", "Growth Charts"))
    # "Air Hockey" in "AIR Hockey Table" is the game the table is for.
    assert not kind_is_named(_listing("Hathaway Ranger 5' AIR Hockey Table, Black", "Air Hockey"))


def test_a_thin_marketplace_listing_fills_a_good_ad_from_its_bullets_and_names() -> None:
    """The Hot Wheels rig of the Amazon sample: 4 headlines before its bullets' clauses and names were used."""
    rig = ProductFacts("A11", "Hot Wheels Blastin' Rig Vehicle", None, "Die-Cast Vehicles", 22.95, "USD",
                       "Haul 'em and Race 'em | Kids can haul their cars around and send them flying on a high-speed race "
                       "with this cool transporter | Includes three Hot Wheels vehicles so the fun starts straight out of "
                       "the box | A great gift for any Hot Wheels collector", {})
    pools = asset_pool([], RSA, rig, Evidence(rig, []))
    (ad,) = assemble_ads(pools, RSA, rig, 1)
    headlines = [v for k, v in ad.items() if k.startswith("headline")]
    assert {"Three Hot Wheels Vehicles", "Hot Wheels Rig Vehicle", "Get Your Die-Cast Vehicle"} <= set(headlines)
    assert not any(asset_gates({k: v}, RSA.writes, rig) for k, v in ad.items() if not k.startswith("path"))
    assert ad_strength(ad, [ad_keyword(rig)]).headlines >= 6


def test_shouted_words_are_calmed_and_short_names_kept() -> None:
    assert calm_capitals("AMERICAN GREETINGS Balloons") == "American Greetings Balloons"
    assert calm_capitals("NO SOLDERING required") == "No Soldering required"
    assert calm_capitals("LEGO USB-C Cable") == "LEGO USB-C Cable"


def test_a_title_the_repair_cut_at_the_limit_is_refused_as_the_models_own_paste_would_be() -> None:
    """The third Amazon run showed "LEGO The Powerpuff Girls Mojo": the answer's repair had filled a headline
    from the title cut at 30 characters, and that came in as the product's data."""
    lego = ProductFacts("A13", "LEGO The Powerpuff Girls Mojo Jojo Strikes 41288 Building Kit (228 Pieces)", None,
                        "Building Sets", 29.5, "USD", "Build downtown Townsville with jewelry store and ice cream stand", {})
    answer = ({"headline": "LEGO The Powerpuff Girls Mojo", "headline_2": "LEGO Building Kit"},
              {"headline": "fallback", "headline_2": "fallback"})
    pools = asset_pool([answer], RSA, lego, Evidence(lego, []))
    usable = {a.text for a in pools["headline"] if a.usable}
    assert "LEGO The Powerpuff Girls Mojo" not in usable and "LEGO Building Kit" in usable
