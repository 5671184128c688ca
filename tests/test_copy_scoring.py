"""Scores: unsupported claims listed by name, coverage, readability, banned words, diversity, rank."""

from __future__ import annotations

import math

import pytest

from core.copy.channels import get_channel
from core.copy.facts import ProductFacts, catalog_brands, iter_values, load_facts
from core.copy.scoring import (
    WEIGHTS, Evidence, bleu, banned_hits, claims_in, coverage, distinct_n, readability, score_set, score_variant,
    self_bleu, tokens,
)
from core.sample_data import CAMPAIGNS, CLAIMS, build_demo
from core.store import Store

SHOE = ProductFacts(
    "P2", "Stride Tempo 3 Road Running Shoe", "Stride", "Running Shoes", 129.95, "USD", None,
    {"type": "road running shoe", "material": "engineered mesh", "cushioning": "neutral", "drop_mm": 8, "weight_g": 255,
     "size_range": "US 6-13", "waterproof": False, "vegan": True, "color": "Black/Volt", "certifications": []},
)
JACKET = ProductFacts(
    "P3", "Northline Ridge Waterproof Rain Jacket", "Northline", "Apparel", 149.0, "USD", None,
    {"type": "rain jacket", "material": "recycled nylon", "waterproof": True, "packable": True,
     "waterproof_rating_mm": 20000, "size_range": "XS-XXL", "color": "Forest Green", "certifications": ["bluesign"]},
)
BOTTLE = ProductFacts(
    "P1", "Summit 750 ml Insulated Steel Water Bottle", "Summit", "Drinkware", 32.0, "USD",
    "The Summit water bottle is made of stainless steel. It is not dishwasher safe.",
    {"type": "water bottle", "material": "stainless steel", "capacity_ml": 750, "insulated": True, "leakproof": True,
     "dishwasher_safe": False, "color": "Glacier Blue", "weight_g": 380, "certifications": ["LFGB"]},
)
BRANDS = ("Summit", "Stride", "Northline", "Kestrel", "Hydro Flask")


def messages(text: str, facts: ProductFacts) -> list[str]:
    return [c.message for c in claims_in(text, Evidence(facts, BRANDS))]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("demo") / "demo.duckdb")
    build_demo(store, scale=0.02)
    yield store
    store.close()


# --- faithfulness ----------------------------------------------------------------------


def test_a_false_attribute_beats_any_mention_and_is_named() -> None:
    assert messages("Waterproof Road Running Shoe", SHOE) == ["claims 'waterproof': attribute waterproof is false"]
    assert messages("Dishwasher-safe steel bottle", BOTTLE) == ["claims 'dishwasher safe': attribute dishwasher_safe is false"]
    assert messages("Waterproof to 20000 mm, packable, recycled nylon", JACKET) == []
    assert messages("A shoe that is not waterproof", SHOE) == []  # a negated mention is not a claim
    assert messages("Not heavy. Waterproof all day", SHOE) == ["claims 'waterproof': attribute waterproof is false"]


def test_claims_missing_from_the_data_are_listed_by_kind() -> None:
    found = messages("Organic bamboo bottle, BPA-free, FDA approved, holds 1000 ml", BOTTLE)
    assert "claims 'organic': not in attributes" in found
    assert "claims 'bamboo': material not in attributes" in found
    assert "claims 'BPA-free': not in attributes" in found
    assert "claims 'FDA approved': not in attributes" in found
    assert "claims 'FDA': certification not in attributes" in found
    assert "claims '1000 ml': number not in product data" in found
    assert messages("Summit 750 ml steel bottle, LFGB certified, $32, 380 g, insulated and leak-proof", BOTTLE) == []
    # A number needs its unit: the shoe's 8 is a drop in mm, not a weight.
    assert messages("An 8 mm drop, 255 g, sizes US 6-13", SHOE) == []
    assert messages("Only 8 g light", SHOE) == ["claims '8 g': number with this unit not in product data"]
    assert messages("Holds 750 ml", ProductFacts("P9", "Jug", attributes={"capacity": 750})) == []  # no unit in the key
    # Seen from SmolLM2: a weight turned into a volume, in Title Case, and a misspelt certification.
    assert messages("380 Litres of Water", BOTTLE) == ["claims '380 Litres': number with this unit not in product data"]
    assert messages("LFWG Certified", BOTTLE) == ["claims 'LFWG': certification not in attributes"]
    assert messages("LFGB Certified, 750 ML", BOTTLE) == []
    assert messages("Sizes XS to XXL, also in XL", JACKET) == []  # XL is inside the XS-XXL range
    assert messages("Now in XXXL", JACKET) == ["claims 'XXXL': size not in attributes"]
    assert messages("Rated IPX7 and GOTS certified, made in Italy", BOTTLE) == [
        "claims 'GOTS': certification not in attributes",
        "claims 'IPX7': rating not in attributes",
        "claims 'made in italy': origin not in product data",
    ]


def test_uploaded_attributes_with_text_values_and_spaced_names_are_understood() -> None:
    uploaded = ProductFacts.from_row(
        {"product_id": "U1", "title": "Trail Bottle", "brand": "Acme", "price": float("nan")},
        {"Waterproof": "No", "BPA Free": "yes", "Capacity (ml)": "750", "Material": "Tritan plastic"},
    )
    assert uploaded.attributes["Waterproof"] is False and uploaded.attributes["Capacity (ml)"] == 750
    assert uploaded.price is None
    assert messages("Waterproof, BPA-free, 750 ml Tritan bottle", uploaded) == [
        "claims 'waterproof': attribute waterproof is false"]
    assert messages("Holds 750 g", uploaded) == ["claims '750 g': number with this unit not in product data"]
    mentioned, _ = coverage({"d": "BPA-free, holds 750 ml"}, uploaded)
    assert set(mentioned) == {"BPA Free", "Capacity (ml)"}


def test_brands_other_than_the_products_own_are_flagged() -> None:
    assert messages("Summit bottle, better than Hydro Flask", BOTTLE) == ["claims 'Hydro Flask': brand not in product data"]
    assert messages("Kestrel comfort", SHOE) == ["claims 'Kestrel': brand not in product data"]
    assert messages("Stride Tempo 3", SHOE) == []


def test_the_demo_catalogs_own_copy_claims_nothing_unsupported(demo) -> None:
    """sample_data writes descriptions and campaign copy from attributes only: the checker must agree."""
    with demo.cursor() as cur:
        ids = [r[0] for r in cur.execute("SELECT product_id FROM products").fetchall()]
        heroes = dict(cur.execute("SELECT variant_id, product_id FROM copy_variants").fetchall())
    facts = load_facts(demo, ids)
    brands = catalog_brands(demo)
    for f in facts.values():
        assert claims_in(f.description or "", Evidence(f, brands)) == [], f.title
    for campaign in CAMPAIGNS:
        for v in campaign.variants:
            product = facts[heroes[f"V-{campaign.name}-{v.letter}"]]
            for text in v.fields.values():
                assert claims_in(text, Evidence(product, brands)) == [], (campaign.name, v.letter, text)


def test_every_planted_false_flag_is_caught(demo) -> None:
    with demo.cursor() as cur:
        ids = [r[0] for r in cur.execute("SELECT product_id FROM products").fetchall()]
    caught = 0
    for f in load_facts(demo, ids).values():
        for key, word in CLAIMS:
            if f.attributes.get(key) is False:
                found = messages(f"{f.title}: {word}!", f)
                assert f"claims '{word}': attribute {key} is false" in found, (f.title, word, found)
                caught += 1
    assert caught >= 20


# --- coverage, readability, banned words -----------------------------------------------


def test_coverage_names_the_attributes_mentioned_and_missed() -> None:
    mentioned, missing = coverage({"headline": "Insulated Steel Bottle", "description": "Holds 750 ml, in Glacier Blue."}, BOTTLE)
    assert set(mentioned) == {"type", "material", "insulated", "capacity_ml", "color"}
    assert set(missing) == {"leakproof", "weight_g", "certifications"}
    assert "dishwasher_safe" not in mentioned + missing  # a false flag is nothing to mention


def test_readability_and_banned_words() -> None:
    plain = readability({"d": "A cold drink. A good bottle. Take it to work."})
    dense = readability({"d": "Multifunctional thermodynamically optimised vacuum-insulated hydration instrumentation."})
    assert plain is not None and dense is not None and plain > dense
    assert readability({}) is None
    hits = banned_hits({"headline": "The #1 Bottle", "description": "Best eco friendly pick, guaranteed. Bestow it."})
    assert {(h["field"], h["word"]) for h in hits} == {("headline", "#1"), ("description", "best"),
                                                       ("description", "eco-friendly"), ("description", "guaranteed")}
    assert banned_hits({"d": "Best seller"}, banned=("seller",)) == [{"field": "d", "word": "seller"}]


# --- diversity -------------------------------------------------------------------------


def test_distinct_2_and_bleu_match_hand_computed_values() -> None:
    # bigrams: (a b) (b c) | (a b) (b d) -> 3 unique of 4
    assert distinct_n([["a", "b", "c"], ["a", "b", "d"]], 2) == 0.75
    assert distinct_n([[], ["a"]], 2) == 0.0
    same = tokens("Keep drinks cold all day long")
    assert bleu(same, [same]) == pytest.approx(1.0)
    assert bleu(tokens("red shoes"), [tokens("blue bottle")]) == 0.0
    # hyp "a b c d", ref "a b c e": p1 = 3/4, p2 = (2+1)/(3+1), p3 = (1+1)/(2+1), p4 = (0+1)/(1+1); BP = 1
    expected = math.exp((math.log(3 / 4) + math.log(3 / 4) + math.log(2 / 3) + math.log(1 / 2)) / 4)
    assert bleu(["a", "b", "c", "d"], [["a", "b", "c", "e"]]) == pytest.approx(expected)
    # brevity: hyp of 2 against a reference of 4 -> BP = exp(1 - 4/2)
    assert bleu(["a", "b"], [["a", "b", "c", "d"]]) == pytest.approx(math.exp(-1) * math.sqrt(1 * (2 / 2)))
    assert self_bleu([same, same, tokens("Something else entirely here")])[:2] == [1.0, 1.0]
    assert self_bleu([same]) == [0.0]


# --- per variant and rank --------------------------------------------------------------


def test_scores_report_limits_per_field_with_character_counts() -> None:
    rsa = get_channel("google_rsa").writes  # one answer: 3 headlines, 2 descriptions
    score = score_variant({"headline": "Summit 750 ml Insulated Steel Water Bottle", "description": "Cold all day."}, rsa, BOTTLE)
    assert not score.compliant
    assert score.fields["headline"]["chars"] == 42 and score.fields["headline"]["max_chars"] == 30
    assert score.fields["headline"]["within_limit"] is False and "over the 30-character limit" in score.fields["headline"]["problems"][0]
    assert score.fields["description"] == {"chars": 13, "max_chars": 90, "within_limit": True, "problems": []}
    assert "headline_2" not in score.fields  # optional and absent: nothing to report


def test_rank_puts_faithful_compliant_copy_first_and_explains_the_arithmetic() -> None:
    rsa = get_channel("google_rsa").writes
    variants = [
        {"headline": "Waterproof Running Shoe", "description": "A vegan road running shoe with an 8 mm drop."},
        {"headline": "Stride Tempo 3", "description": "A vegan road running shoe with neutral cushioning and an 8 mm drop."},
        {"headline": "Stride Tempo 3 Road Running Shoe Now", "description": "Vegan, 255 g."},
        {"headline": "Stride Tempo 3", "description": "A vegan road running shoe with neutral cushioning and an 8 mm drop."},
    ]
    scores = [score_variant(v, rsa, SHOE) for v in variants]
    result = score_set(variants, scores)
    ranks = [s.rank for s in scores]
    assert sorted(ranks) == [1, 2, 3, 4]
    assert scores[2].rank == 4  # over the limit: last, whatever its score
    assert scores[0].rank == 3  # the unsupported 'waterproof' costs it against the honest ones
    assert "breaks limits (headline)" in scores[2].explanation
    assert "1 unsupported claim: 'waterproof'" in scores[0].explanation
    for s in scores:
        assert s.explanation.startswith(("breaks", f"{s.overall:.0f}/100")) and f"rank {s.rank} of 4" in s.explanation
        assert s.overall == pytest.approx(sum(WEIGHTS[k] * v for k, v in s.components.items()), abs=0.2)
    assert scores[1].self_bleu == scores[3].self_bleu == 1.0  # duplicates are visible
    twice = score_variant({"headline": "Waterproof Shoe", "description": "Waterproof and vegan."}, rsa, SHOE)
    assert [(c["message"], c["fields"]) for c in twice.unsupported_claims] == [
        ("claims 'waterproof': attribute waterproof is false", ["headline", "description"])]
    assert (1, 3) in result.near_duplicates and 0 < result.distinct_2 < 1
    assert sum(WEIGHTS.values()) == 100
    data = scores[1].to_dict()
    assert data["faithful"] is True and data["weights"] == WEIGHTS and data["coverage"]["target"] == rsa.coverage_target


@pytest.fixture
def amazon_store(tmp_store: Store) -> Store:
    """A real Amazon export (links, ids, spec dumps in attributes), imported as an upload would be."""
    from conftest import real_file
    from core.ingest import ingest_file

    ingest_file(tmp_store, "products", real_file("amazon_products_promptcloud_2020", "amazon_products_sample_1000.csv"),
                skip_invalid=True)
    return tmp_store


def test_real_marketplace_catalog_fallback_copy_is_compliant_and_backed(amazon_store: Store) -> None:
    """A real Amazon export (links, ids, spec dumps in attributes): the fallback copy stays clean and honest."""
    from core.copy.channels import CHANNELS
    from core.copy.limits import fact_sentences, repair

    with amazon_store.cursor() as cur:
        ids = [r[0] for r in cur.execute("SELECT product_id FROM products ORDER BY product_id LIMIT 150").fetchall()]
    facts = load_facts(amazon_store, ids)
    brands = catalog_brands(amazon_store)
    compliant = 0
    for f in facts.values():
        for spec in CHANNELS.values():
            result = repair("", spec, f)
            if not result.compliant:
                # Only a product whose data holds nothing but its title lacks a second sentence.
                assert spec.name == "product_description" and len(fact_sentences(f)) < 2, (f.title, result.problems)
                continue
            compliant += 1
            text = " ".join(result.fields.values())
            assert "http" not in text and "www." not in text, (spec.name, text)
            assert score_variant(result.fields, spec, f, known_brands=brands).unsupported_claims == [], (spec.name, f.title)
    assert compliant >= 0.9 * len(facts) * len(CHANNELS)


def test_real_marketplace_attributes_that_copy_cannot_mention_are_not_key(amazon_store: Store) -> None:
    """Links, ids, shipping, seller flags and spec dumps: counting them made every candidate "off topic"
    (no key attribute mentioned), so each product cost three model rounds and its cards said "no key attribute"."""
    from core.copy.scoring import MAX_KEY_ATTRIBUTE_CHARS, key_attributes

    with amazon_store.cursor() as cur:
        ids = [r[0] for r in cur.execute("SELECT product_id FROM products").fetchall()]
    facts = load_facts(amazon_store, ids).values()
    keys = {k for f in facts for k in key_attributes(f)}
    assert not keys & {"Image", "Product Url", "Model Number", "Shipping Weight", "Is Amazon Seller", "Product Specification"}
    assert "Product Dimensions" in keys  # "6 x 2 x 2 inches": a fact copy can use
    harry = next(f for f in facts if f.title.startswith("Harry Potter 9 & 3/4"))
    assert "Technical Details" in harry.attributes and "Technical Details" not in key_attributes(harry)  # 200 characters of prose
    assert all(sum(len(str(i)) for i in iter_values(v)) <= MAX_KEY_ATTRIBUTE_CHARS for f in facts for v in key_attributes(f).values())


def test_demo_attributes_all_stay_key(tmp_store) -> None:
    from core.copy.scoring import key_attributes

    build_demo(tmp_store, scale=0.02)
    with tmp_store.cursor() as cur:
        ids = [r[0] for r in cur.execute("SELECT product_id FROM products").fetchall()]
    for f in load_facts(tmp_store, ids).values():
        set_ones = {k for k, v in f.attributes.items() if v not in (False, None, "", [], {})}
        assert set(key_attributes(f)) == set_ones, f.title


def test_names_product_looks_for_title_or_brand_words_not_common_ones() -> None:
    from core.copy.scoring import names_product

    facts = ProductFacts.from_row({"product_id": "X", "title": "Harry Potter Platform Soft Touch Magnet", "brand": "Wizarding"})
    assert names_product({"headline": "A magnet for every fridge"}, facts)
    assert names_product({"headline": "From Wizarding, with love"}, facts)
    assert not names_product({"headline": "Mmm-Mmm-Mmm-MMM", "description": "This is a post!"}, facts)
    assert not names_product({"headline": "Made with care for you"}, ProductFacts.from_row({"product_id": "Y", "title": "Bottle with lid"}))



def test_a_number_stays_with_what_it_measures() -> None:
    """Issue 13: "recycled nylon that is 10000 mm in size", when 10,000 mm is the waterproof rating."""
    rain = ProductFacts("P-R", "Drift Rain Jacket", "Harbor & Pine", "Outerwear", 169.95, "USD", "Weighs 380 g.",
                        {"material": "recycled nylon", "waterproof": True, "waterproof_rating_mm": 10000, "capacity_ml": 750})
    evidence = Evidence(rain)
    moved = claims_in("Made of recycled nylon that is 10000 mm in size.", evidence, "description")
    assert [c.message for c in moved] == ["claims '10000 mm': the data's 10000 mm is the rating, not the size"]
    assert [c.text for c in claims_in("Weighs 750 ml.", evidence)] == ["750 ml"]
    for honest in ("A 10,000 mm waterproof rating.", "Holds 750 ml and weighs 380 g.", "10000 mm of rain protection."):
        assert claims_in(honest, evidence) == [], honest


def test_the_price_said_without_its_currency_is_not_a_count() -> None:
    """Read in the 50-product run: "30 Threadworks T-Shirts" for a $30 shirt."""
    from core.copy.facts import ProductFacts
    from core.copy.scoring import Evidence, claims_in

    shirt = Evidence(ProductFacts("P", "Threadworks Orbit T-Shirt", "Threadworks", "Apparel", 30.0, "USD", "A relaxed cotton tee."))
    assert [c.reason for c in claims_in("30 Threadworks T-Shirts", shirt)] == [
        "the data's 30 is the price; said without its currency it reads as a count"]
    assert claims_in("Yours for $30", shirt) == [] and claims_in("T-Shirt, 30 USD", shirt) == []
    # Words that say "price" before it, however long, count as its currency.
    assert claims_in("Now only 30", shirt) == [] and claims_in("Sale price 30", shirt) == []


def test_a_hyphen_joins_a_unit_and_an_inch_mark_backs_inches() -> None:
    """'2-Inch Deluxe' passed as '2 of something' beside the data's '2 iconic modes' and '4.5-inch' figures."""
    figure = ProductFacts("A-F", "Studio Series Deluxe Arcee", None, None, 19.99, "USD",
                          "Deluxe class figures are 4.5-inch collectible action figures | 2 iconic modes", {})
    evidence = Evidence(figure, [])
    assert [c.kind for c in claims_in("2-Inch Deluxe", evidence, "headline")] == ["number"]
    assert not claims_in("4.5-Inch Figure", evidence, "headline")
    balloon = ProductFacts("A-B", '34" Foil Gold Number 1 Balloon', None, None, 3.98, "USD", "", {})
    assert not claims_in("34-Inch Gold Number 1 Balloon", Evidence(balloon, []), "headline")
