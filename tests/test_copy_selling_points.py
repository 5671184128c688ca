"""Selling points: what the planner puts first into ads, from the product's own data only.

The behaviour protected: concrete numbers and benefits lead, colour trails, price and catalog
plumbing never appear; Amazon bullets are compressed into one clean sentence; every point can go
into an RSA as is (no unbacked claim, no failed gate); and ``carries`` tells whether an asset
says a point, however it writes the number.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.copy.channels import GOOGLE_RSA_ANSWER
from core.copy.facts import ProductFacts, load_facts
from core.copy.gates import asset_gates
from core.copy.scoring import Evidence, claims_in
from core.copy.selling_points import SellingPoint, _clean_cut, _names_something, carries, points_carried, selling_points
from core.sample_data import build_demo
from core.store import Store

BOTTLE = ProductFacts(
    "P1", "Summit 750 ml Insulated Steel Water Bottle", brand="Summit", category="Drinkware", price=32.0, currency="USD",
    description="The Summit water bottle is made of stainless steel, holds 750 ml and weighs 380 g. It is insulated.",
    attributes={"type": "water bottle", "material": "stainless steel", "color": "Glacier Blue", "capacity_ml": 750,
                "insulated": True, "dishwasher_safe": False, "weight_g": 380, "certifications": ["LFGB"],
                "list_price": 39.0, "product_url": "https://shop.example/p1", "image": "p1.jpg", "sku": "SUM-750-GB"},
)
JACKET = ProductFacts(
    "P2", "Northline Ridge Waterproof Rain Jacket", brand="Northline", category="Apparel", price=149.0,
    attributes={"type": "rain jacket", "material": "recycled nylon", "waterproof": True, "packable": True,
                "waterproof_rating_mm": 10000, "size_range": "XS-XXL", "color": "Forest Green", "weight_g": 340},
)
EARBUDS = ProductFacts(
    "P3", "Arcline Crest Noise-Cancelling Wireless Earbuds", brand="Arcline", price=80.0,
    attributes={"type": "wireless earbuds", "material": "matte plastic", "battery_h": 12, "noise_cancelling": True,
                "water_resistance": "IPX5", "waterproof": False, "color": "Black"},
)
SLEEPING_BAG = ProductFacts(
    "P4", "Cairn & Co Coast 0 °C Down Sleeping Bag", brand="Cairn & Co", price=267.99,
    attributes={"type": "sleeping bag", "material": "down", "temp_rating_c": 0, "weight_g": 1100, "color": "Charcoal"},
)
# An Amazon export row: no attributes worth saying, the description a run of "|"-separated bullets.
SNOWBOARD = ProductFacts(
    "A1", "Lib Tech Crossbow Snowboard", category="Sports & Outdoors", price=499.95,
    description=(
        "Make sure this fits by entering your model number. | "
        "RESPONSIVE FLEX: The Crossbow features a bamboo core encased in triaxial fiberglass for a lively, responsive "
        "flex that pops out of turns and carves deep | "
        "WIDE STANCE OPTIONS – Inserts allow a stance width of up to 24 inches for riders of every size. | "
        "Our friendly customer service team is here to help with any questions."
    ),
    attributes={"Product Url": "https://www.amazon.com/dp/B000000", "Image": "https://images.example/1.jpg",
                "Model Number": "XB-158", "Shipping Weight": "9 pounds", "Is Amazon Seller": "Y",
                "Product Specification": "ProductDimensions:62x12x3inches|ItemWeight:7pounds"},
)
REMOTE = ProductFacts(
    "A2", "VTech Click and Count Remote, Black", category="Toys & Games", price=9.96,
    description=(
        "Make sure this fits by entering your model number. | Baby remote control plays more than 45 sing-along songs, "
        "melodies, sound effects and phrases | Up and down volume button teaches the concept of opposites; volume "
        "control allows parents to control volume of the sounds | Tv remote toy is for children 6 months to 3 years old"
    ),
    attributes={"Technical Details": "Go to your orders and start the return Select the ship method Ship it!",
                "category_path": "Toys & Games | Kids' Electronics | Electronic Learning Toys"},
)
PRODUCTS = [BOTTLE, JACKET, EARBUDS, SLEEPING_BAG, SNOWBOARD, REMOTE]


def _assert_publishable(point: SellingPoint, facts: ProductFacts) -> None:
    evidence = Evidence(facts)
    assert len(point.text) <= 90 and point.text.endswith("."), point
    assert claims_in(point.text, evidence, "headline") == [], point
    assert asset_gates({"description": point.text}, GOOGLE_RSA_ANSWER, facts) == [], point
    assert carries(point.text, point), point
    if point.headline is not None:
        assert len(point.headline) <= 30 and "!" not in point.headline, point
        assert claims_in(point.headline, evidence, "headline") == [], point
        assert asset_gates({"headline": point.headline}, GOOGLE_RSA_ANSWER, facts) == [], point
        assert carries(point.headline, point), point
    for headline in point.headlines:  # the other phrasings go into ads too
        assert len(headline) <= 30 and claims_in(headline, evidence, "headline") == [], point
        assert asset_gates({"headline": headline}, GOOGLE_RSA_ANSWER, facts) == [], point


# --- ranking -----------------------------------------------------------------------------


def test_a_number_that_says_what_the_product_does_outranks_material_and_colour() -> None:
    points = selling_points(BOTTLE)
    sources = [p.source for p in points]
    assert points[0].text == "Holds 750 ml." and points[0].kind == "number"
    assert sources.index("capacity_ml") < sources.index("material") < sources.index("color")
    assert sources.index("insulated") < sources.index("material")
    assert points[-1].kind == "color"


def test_numbers_are_phrased_as_copy_not_as_data_labels() -> None:
    texts = {p.source: p for p in selling_points(JACKET) + selling_points(EARBUDS)}
    assert texts["waterproof_rating_mm"].text == "10,000 mm waterproof rating."
    assert texts["waterproof_rating_mm"].headline == "10,000 mm Waterproof Rating"
    assert texts["battery_h"].text == "Up to 12 hours per charge."
    assert not any(":" in p.text for p in texts.values())


def test_price_is_never_a_selling_point() -> None:
    for facts in PRODUCTS:
        for point in selling_points(facts, limit=20):
            assert "price" not in point.source
            assert f"{facts.price:g}" not in point.text and "39" not in point.text


def test_catalog_plumbing_is_never_a_selling_point() -> None:
    for facts in (BOTTLE, SNOWBOARD):
        for point in selling_points(facts, limit=20):
            assert point.source not in ("product_url", "image", "sku", "Product Url", "Image", "Model Number",
                                        "Shipping Weight", "Product Specification", "Is Amazon Seller")
            assert "http" not in point.text and "SUM-750" not in point.text and "XB-158" not in point.text


def test_the_title_itself_is_never_a_selling_point() -> None:
    for facts in PRODUCTS:
        assert all(facts.title.lower() not in p.text.lower() for p in selling_points(facts, limit=20))


def test_no_two_points_say_the_same_thing() -> None:
    points = selling_points(JACKET)
    # "Waterproof rain jacket." adds nothing once the 10,000 mm rating has said waterproof.
    assert [p.source for p in points].count("waterproof") == 0
    assert "waterproof_rating_mm" in [p.source for p in points]
    # The demo description restates the attributes; the attributes' cleaner phrasing wins.
    assert all(p.source != "description" for p in selling_points(BOTTLE, limit=20))


def test_a_rating_of_zero_is_a_value() -> None:
    assert selling_points(SLEEPING_BAG)[0].text == "Rated to 0 °C."


def test_false_flags_are_not_claimed() -> None:
    texts = " ".join(p.text.lower() for p in selling_points(BOTTLE, limit=20) + selling_points(EARBUDS, limit=20))
    assert "dishwasher" not in texts and "waterproof" not in texts


def test_limit_caps_the_list() -> None:
    assert len(selling_points(BOTTLE, limit=2)) == 2


# --- marketplace bullets ---------------------------------------------------------------


def test_a_caps_label_bullet_becomes_one_short_sentence_without_its_label() -> None:
    points = selling_points(SNOWBOARD)
    texts = [p.text for p in points]
    flex = next(t for t in texts if "bamboo core" in t)
    assert flex.startswith("The Crossbow features a bamboo core encased in triaxial fiberglass")
    assert len(flex) <= 90 and flex.endswith(".") and not flex.endswith(("for.", "a.", "and."))
    assert not any("RESPONSIVE FLEX" in t or "WIDE STANCE" in t for t in texts)


def test_boilerplate_and_seller_small_print_are_skipped() -> None:
    texts = " ".join(p.text for p in selling_points(SNOWBOARD, limit=20) + selling_points(REMOTE, limit=20))
    assert "Make sure this fits" not in texts
    assert "customer service" not in texts and "Ship it" not in texts


def test_a_bullet_with_a_number_and_a_benefit_leads_cut_where_it_pauses() -> None:
    top = selling_points(REMOTE)[0]
    assert top.text.startswith("Baby remote control plays more than 45 sing-along songs")
    assert top.text.endswith(("songs.", "effects.")) and len(top.text) <= 90
    assert top.headline == "More Than 45 Sing-Along Songs"
    assert "45" in top.terms
    # Who it is for is information, not the reason to buy: it ranks last.
    assert "months" in selling_points(REMOTE)[-1].text


# --- every point is publishable --------------------------------------------------------


@pytest.mark.parametrize("facts", PRODUCTS, ids=[p.product_id for p in PRODUCTS])
def test_every_point_passes_the_claim_check_and_the_gates(facts: ProductFacts) -> None:
    points = selling_points(facts, limit=20)
    assert points
    for point in points:
        _assert_publishable(point, facts)


@pytest.fixture(scope="module")
def demo_facts(tmp_path_factory: pytest.TempPathFactory) -> list[ProductFacts]:
    store = Store(Path(tmp_path_factory.mktemp("demo")) / "demo.duckdb")
    build_demo(store, seed=42, scale=0.05)
    with store.cursor() as cur:
        ids = [r[0] for r in cur.execute("SELECT product_id FROM products ORDER BY product_id").fetchall()]
    facts = list(load_facts(store, ids).values())
    store.close()
    return facts


def test_every_demo_product_leads_with_a_publishable_point_that_is_not_its_colour(demo_facts: list[ProductFacts]) -> None:
    assert len(demo_facts) > 20
    for facts in demo_facts:
        points = selling_points(facts, limit=20)
        assert points and points[0].kind != "color" and points[0].headline, facts.title
        for point in points:
            _assert_publishable(point, facts)


# --- carrying a point ------------------------------------------------------------------


def _point(*terms: str) -> SellingPoint:
    return SellingPoint("x.", None, "test", "number", 1.0, terms)


def test_numbers_are_compared_normalised() -> None:
    rating = _point("10000", "waterproof", "rating")
    assert carries("Rated 10,000 mm, fully taped", rating)
    assert carries("10000mm Waterproof Jacket", rating)
    assert not carries("1000 mm rating", rating)
    assert carries("Holds 0.75 L", _point("0.75")) and carries("Only 11.50 in", _point("11.5"))


def test_words_are_compared_case_aside_with_plurals_and_most_of_several() -> None:
    assert carries("Two zip Pockets", _point("pocket"))
    assert carries("Fits all batteries", _point("battery"))
    assert carries("Dishwasher-Safe Mug", _point("dishwasher", "safe"))
    assert not carries("Safe for kids", _point("dishwasher", "safe"))
    assert carries("Bamboo core for pop", _point("bamboo", "core", "fiberglass"))
    assert not carries("Triaxial layup", _point("bamboo", "core", "fiberglass"))


def test_a_point_without_its_number_is_not_carried() -> None:
    point = selling_points(BOTTLE)[0]
    assert not carries("Holds plenty of water", point)
    assert not carries("", point)


def test_points_carried_lists_what_any_field_says_in_rank_order() -> None:
    points = selling_points(BOTTLE)
    fields = {"headline": "Glacier Blue Bottle", "headline_2": "Holds 750 ml", "description": "Insulated steel."}
    carried = points_carried(fields, points)
    assert [p.source for p in carried] == [p.source for p in points if p.source in ("capacity_ml", "insulated", "color")]
    assert carried[0].source == "capacity_ml"


# --- headlines of a bullet's parts ---------------------------------------------------------

ROBOT_KIT = ProductFacts(
    "A12", "Elenco Line Tracking Robot Kit", None, "Science Kits & Toys", 29.95, "USD",
    "Introduction to robotics with this line tracking build | NO SOLDERING required - Ages 14 and up - 2xAA batteries "
    "required but not included | Includes 55 cards and illustrated rules in a durable travel size tin; Brands may vary | "
    "228 pieces – Powerpuff Girls toy for boys and girls aged between 6 and 12", {})


def test_each_clause_of_a_bullet_is_a_headline_calmed_and_a_count_is_read_up_to_its_dash() -> None:
    headlines = {h for p in selling_points(ROBOT_KIT) for h in p.headlines}
    assert {"No Soldering Required", "Ages 14 and up", "228 Pieces", "55 Cards and Illustrated Rules"} <= headlines
    for point in selling_points(ROBOT_KIT):
        _assert_publishable(point, ROBOT_KIT)


def test_a_list_of_counted_things_is_a_headline_each_and_a_thing_is_named_before_what_it_is_of() -> None:
    game = ProductFacts("A-G", "Lord of the Rings LCG: The Road Darkens", None, None, 23.96, "USD",
                        "Features eight new boons and seven new burdens that give weight to your decisions | "
                        "Award winning game of visual perception for the whole family | "
                        "The second Lord of the Rings Saga Expansion for The Lord of the Rings: The Card Game", {})
    headlines = {h for p in selling_points(game) for h in p.headlines}
    assert {"Eight New Boons", "Seven New Burdens", "Award Winning Game"} <= headlines
    # Before "of" a capital is part of a name and a counting word holds what follows: no "The Second Lord", no "Set".
    assert "The Second Lord" not in headlines
    assert _clean_cut("Comes with a set of 4 cups that stack neatly inside each other for travel.") != "Comes with a Set"


def test_the_small_print_of_a_bullet_goes_and_its_point_stays() -> None:
    texts = [p.text for p in selling_points(ROBOT_KIT)]
    assert "Includes 55 cards and illustrated rules in a durable travel size tin." in texts
    assert not any("vary" in t.lower() for t in texts)


@pytest.mark.parametrize("cut", ["To Round Out the Hands", "Comes Complete", "A Fantastic Way", "Designed to Fit up",
                                 "Brands May Vary", "Disney - Mickey Mouse"])
def test_part_of_a_sentence_that_does_not_stand_alone_is_no_headline(cut: str) -> None:
    assert not _names_something(cut)


@pytest.mark.parametrize("cut", ["Three Hot Wheels Vehicles", "No Soldering Required", "Ages 14 and Up", "Master Set"])
def test_part_of_a_sentence_that_names_something_is_a_headline(cut: str) -> None:
    assert _names_something(cut)
