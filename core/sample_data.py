"""A seeded demo store: catalog, users, 90 days of events, reviews and campaign copy.

Everything is drawn from one ``np.random.default_rng(seed)`` in a fixed order, so the same
seed and scale always give the same rows. The window ends at a fixed moment (END), never at
"now", so results do not drift with the calendar.

What is planted, because later features are checked against it:

- Five behavioural groups, recorded in ``users.attributes.demo_group``. They differ in
  session frequency and length, device, hour of day, category and price preference,
  campaign response, conversion and recency (``lapsed`` users stop early in the window).
- Campaign sessions carry ``campaign`` and ``variant_id`` on every event. Variants are
  assigned per user (an A/B test), so exposure is balanced; some lift add-to-cart (and so
  purchase) conversion, and for ``meta_prospecting`` and ``fall_email`` the best variant
  depends on the group (CAMPAIGNS lists the lifts).
- Titles, descriptions and review texts are built only from each product's own
  attributes: a claim such as "waterproof" appears only where the attribute is true, and
  every number in a description is one of its attribute values. Some products carry
  ``waterproof: false`` or ``organic: false`` on purpose, so a faithfulness check has
  something to catch in generated copy.
- Real-log mess: a few exact duplicate rows, equal timestamps (multi-item orders), and a
  small share of views without a product_id.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd

from core.errors import InvalidRequestError
from core.store import Store

__all__ = [
    "CAMPAIGNS", "CLAIMS", "COPY_LIMITS", "DEMO_TABLES", "END", "GROUPS", "START",
    "DemoSummary", "build_demo", "describe", "variant_id",
]

END = datetime(2026, 10, 31, 23, 59, 59)
START = datetime(2026, 8, 3)  # the 90 calendar days Aug 3 .. Oct 31, ending at END
_WINDOW_S = int((END - START).total_seconds()) + 1
_DAY = 86_400

DEMO_TABLES = ("products", "users", "events", "reviews", "copy_variants")

# Sizes at scale 1.0; users, events and reviews scale linearly, products with sqrt(scale).
_PRODUCTS = 300
_MIN_PRODUCTS = 60  # enough for every category to have several products at test scales
_USERS = 30_000
_REVIEWS = 7_000


@dataclass(frozen=True)
class DemoSummary:
    products: int
    users: int
    events: int
    reviews: int
    variants: int
    seconds: float


# ---------------------------------------------------------------------------------------
# Catalog
# ---------------------------------------------------------------------------------------

CATEGORIES = (
    "Drinkware",
    "Outdoor Gear",
    "Running Shoes",
    "Home & Kitchen",
    "Skincare",
    "Electronics Accessories",
    "Apparel",
)
_CATEGORY_SHARE = (0.13, 0.15, 0.12, 0.16, 0.14, 0.14, 0.16)

_BRANDS = {
    "Drinkware": ("Summit", "Brookline", "Tidepool"),
    "Outdoor Gear": ("Ridgeway", "Cairn & Co", "Alpenglow"),
    "Running Shoes": ("Stride", "Kestrel", "Pacewell"),
    "Home & Kitchen": ("Hearthstone", "Larder Lane", "Copperleaf"),
    "Skincare": ("Dewly", "Verdant Skin", "Luma"),
    "Electronics Accessories": ("Voltic", "Plugwise", "Arcline"),
    "Apparel": ("Northline", "Threadworks", "Harbor & Pine"),
}

# Product-line names: no claim words and no digits, so titles stay honest.
_LINES = (
    "Metro", "Trail", "Coast", "Ridge", "Nova", "Echo", "Harbor", "Alto", "Crest", "Drift",
    "Vista", "Terra", "Pulse", "Haven", "Juniper", "Cedar", "Flint", "Aspen", "Orbit", "Sable",
)
_COLORS = (
    "Black", "White", "Slate Grey", "Navy", "Forest Green", "Sand", "Glacier Blue", "Coral",
    "Olive", "Charcoal", "Burgundy", "Stone",
)

Attrs = dict[str, object]


def _pick(rng: np.random.Generator, options: Sequence, p: Sequence[float] | None = None) -> Any:
    return options[int(rng.choice(len(options), p=p))]


def _chance(rng: np.random.Generator, p: float) -> bool:
    return bool(rng.random() < p)


def _certs(rng: np.random.Generator, options: Sequence[tuple[str, float]]) -> list[str]:
    return [name for name, p in options if rng.random() < p]


def _drinkware(rng: np.random.Generator, brand: str, line: str) -> tuple[str, Attrs, float]:
    kind = _pick(rng, ("Water Bottle", "Tumbler", "Travel Mug", "Coffee Mug"), (0.45, 0.25, 0.18, 0.12))
    if kind == "Water Bottle":
        material = _pick(rng, ("stainless steel", "Tritan plastic", "glass"), (0.6, 0.25, 0.15))
        cap = _pick(rng, (500, 600, 750, 1000, 1200))
    elif kind == "Tumbler":
        material, cap = "stainless steel", _pick(rng, (350, 470, 590, 890))
    elif kind == "Travel Mug":
        material = _pick(rng, ("stainless steel", "ceramic"), (0.75, 0.25))
        cap = _pick(rng, (350, 470))
    else:
        material, cap = _pick(rng, ("ceramic", "glass")), _pick(rng, (300, 350, 400))
    steel = material == "stainless steel"
    insulated = steel and _chance(rng, 0.8)
    leakproof = kind != "Coffee Mug" and _chance(rng, 0.75 if kind in ("Water Bottle", "Travel Mug") else 0.3)
    attrs: Attrs = {
        "type": kind.lower(),
        "material": material,
        "capacity_ml": cap,
        "insulated": insulated,
        "leakproof": leakproof,
        "dishwasher_safe": _chance(rng, 0.35 if steel else 0.9),
    }
    if material == "Tritan plastic":
        attrs["bpa_free"] = True
    grams_per_ml = {"stainless steel": 0.42, "Tritan plastic": 0.16, "glass": 0.5, "ceramic": 0.8}[material]
    attrs["color"] = _pick(rng, _COLORS)
    attrs["weight_g"] = int(round(cap * grams_per_ml + 40, -1))
    attrs["certifications"] = _certs(rng, (("LFGB", 0.3), ("FDA food-contact", 0.4)))
    short = {"stainless steel": "Steel", "Tritan plastic": "Tritan", "glass": "Glass", "ceramic": "Ceramic"}[material]
    title = f"{brand} {line} {cap} ml {'Insulated ' if insulated else ''}{short} {kind}"
    price = 8 + cap * 0.014 + (10 if insulated else 0) + (4 if leakproof else 0)
    return title, attrs, price


def _outdoor(rng: np.random.Generator, brand: str, line: str) -> tuple[str, Attrs, float]:
    kind = _pick(rng, ("Hiking Backpack", "Backpacking Tent", "Sleeping Bag", "Headlamp", "Trekking Poles"), (0.35, 0.15, 0.15, 0.2, 0.15))
    attrs: Attrs = {"type": kind.lower()}
    certs = (("bluesign", 0.3),)
    if kind == "Hiking Backpack":
        cap = _pick(rng, (18, 24, 28, 35, 45, 65))
        waterproof = _chance(rng, 0.3)
        attrs |= {"material": _pick(rng, ("ripstop nylon", "recycled polyester", "Cordura nylon")), "capacity_l": cap, "waterproof": waterproof}
        attrs["weight_g"] = int(round(450 + cap * 24, -1))
        title = f"{brand} {line} {cap} L {'Waterproof ' if waterproof else ''}Hiking Backpack"
        price = 40 + cap * 2.2 + (30 if waterproof else 0)
    elif kind == "Backpacking Tent":
        sleeps = _pick(rng, (1, 2, 3, 4), (0.2, 0.45, 0.2, 0.15))
        waterproof = _chance(rng, 0.7)
        attrs |= {"material": _pick(rng, ("ripstop nylon", "polyester")), "sleeps": sleeps, "waterproof": waterproof}
        if waterproof:
            attrs["waterproof_rating_mm"] = _pick(rng, (1500, 3000))
        attrs["weight_g"] = int(round(900 + sleeps * 550, -1))
        title = f"{brand} {line} {sleeps}-Person {'Waterproof ' if waterproof else ''}Backpacking Tent"
        price = 120 + sleeps * 65 + (40 if waterproof else 0)
    elif kind == "Sleeping Bag":
        temp = _pick(rng, (-9, -4, 0, 4, 7))
        fill = _pick(rng, ("down", "synthetic insulation"), (0.4, 0.6))
        attrs |= {"material": fill, "temp_rating_c": temp}
        attrs["weight_g"] = int(round((700 if fill == "down" else 1100) + (10 - temp) * 40, -1))
        title = f"{brand} {line} {temp} °C {'Down' if fill == 'down' else 'Synthetic'} Sleeping Bag"
        price = (160 if fill == "down" else 80) + (10 - temp) * 8
    elif kind == "Headlamp":
        lumens = _pick(rng, (200, 350, 500, 750))
        attrs |= {"material": "polycarbonate", "lumens": lumens, "rechargeable": _chance(rng, 0.6),
                  "water_resistance": _pick(rng, ("IPX4", "IPX6")), "waterproof": False}
        attrs["weight_g"] = _pick(rng, (68, 82, 95))
        title = f"{brand} {line} {lumens} Lumen {'Rechargeable ' if attrs['rechargeable'] else ''}Headlamp"
        price = 18 + lumens * 0.06 + (12 if attrs["rechargeable"] else 0)
        certs = ()
    else:
        material = _pick(rng, ("aluminium", "carbon fibre"))
        attrs |= {"material": material, "collapsed_length_cm": _pick(rng, (38, 62, 68))}
        attrs["weight_g"] = 380 if material == "carbon fibre" else 520
        title = f"{brand} {line} {'Carbon' if material == 'carbon fibre' else 'Aluminium'} Trekking Poles"
        price = 110 if material == "carbon fibre" else 60
    attrs["color"] = _pick(rng, _COLORS)
    attrs["certifications"] = _certs(rng, certs)
    return title, attrs, price


_SHOE_MODELS = ("Tempo", "Glide", "Vector", "Summit", "Rally", "Surge", "Ember", "Kite")


def _running_shoes(rng: np.random.Generator, brand: str, line: str) -> tuple[str, Attrs, float]:
    kind = _pick(rng, ("Road Running Shoe", "Trail Running Shoe", "Racing Shoe"), (0.55, 0.3, 0.15))
    model = f"{_pick(rng, _SHOE_MODELS)} {int(rng.integers(1, 6))}"
    waterproof = kind == "Trail Running Shoe" and _chance(rng, 0.4)
    attrs: Attrs = {
        "type": kind.lower(),
        "material": _pick(rng, ("engineered mesh", "knit")),
        "cushioning": "responsive" if kind == "Racing Shoe" else _pick(rng, ("neutral", "stability", "maximal")),
        "drop_mm": 8 if kind == "Racing Shoe" else _pick(rng, (4, 6, 8, 10, 12)),
        "weight_g": int(rng.integers(185, 225) if kind == "Racing Shoe" else rng.integers(230, 320)),
        "size_range": _pick(rng, ("US 5-12", "US 6-13", "US 7-14")),
        "waterproof": waterproof,
        "vegan": _chance(rng, 0.4),
    }
    if kind == "Trail Running Shoe":
        attrs["lug_depth_mm"] = _pick(rng, (4, 5, 6))
    if kind == "Racing Shoe":
        attrs["carbon_plate"] = True
    attrs["color"] = _pick(rng, ("Black/Volt", "White/Blue", "Grey/Orange", "Navy/Lime", "Olive/Black"))
    attrs["certifications"] = []
    title = f"{brand} {model} {'Waterproof ' if waterproof else ''}{kind}"
    price = {"Road Running Shoe": 115, "Trail Running Shoe": 130, "Racing Shoe": 200}[kind] + (25 if waterproof else 0) + rng.normal(0, 15)
    return title, attrs, price


def _home_kitchen(rng: np.random.Generator, brand: str, line: str) -> tuple[str, Attrs, float]:
    kind = _pick(rng, ("Chef's Knife", "Cast Iron Skillet", "Nonstick Frying Pan", "French Press", "Cutting Board", "Glass Storage Set"))
    attrs: Attrs = {"type": kind.lower()}
    if kind == "Chef's Knife":
        length = _pick(rng, (18, 20, 21, 23))
        attrs |= {"material": _pick(rng, ("German stainless steel", "Damascus steel", "VG-10 steel")), "blade_length_cm": length, "dishwasher_safe": False}
        title, price = f"{brand} {line} {length} cm Chef's Knife", 35 + length * 2 + (60 if attrs["material"] != "German stainless steel" else 0)
    elif kind == "Cast Iron Skillet":
        d = _pick(rng, (20, 25, 30))
        seasoned = _chance(rng, 0.8)
        attrs |= {"material": "cast iron", "diameter_cm": d, "pre_seasoned": seasoned, "oven_safe_c": 260, "dishwasher_safe": False}
        title, price = f"{brand} {d} cm {'Pre-Seasoned ' if seasoned else ''}Cast Iron Skillet", 20 + d * 1.3
    elif kind == "Nonstick Frying Pan":
        d = _pick(rng, (20, 24, 28))
        pfas_free = _chance(rng, 0.6)
        attrs |= {"material": "hard-anodised aluminium", "diameter_cm": d, "pfas_free": pfas_free,
                  "oven_safe_c": _pick(rng, (180, 220)), "dishwasher_safe": _chance(rng, 0.5)}
        title, price = f"{brand} {line} {d} cm {'PFAS-Free ' if pfas_free else ''}Nonstick Frying Pan", 18 + d * 1.4 + (12 if pfas_free else 0)
    elif kind == "French Press":
        cap = _pick(rng, (350, 600, 1000))
        material = _pick(rng, ("borosilicate glass", "stainless steel"))
        insulated = material == "stainless steel" and _chance(rng, 0.7)
        attrs |= {"material": material, "capacity_ml": cap, "insulated": insulated, "dishwasher_safe": material != "stainless steel" or _chance(rng, 0.5)}
        title = f"{brand} {line} {cap} ml {'Insulated ' if insulated else ''}{'Glass' if 'glass' in material else 'Steel'} French Press"
        price = 18 + cap * 0.025 + (15 if insulated else 0)
    elif kind == "Cutting Board":
        material = _pick(rng, ("bamboo", "walnut", "maple"))
        attrs |= {"material": material, "dimensions_cm": _pick(rng, ("40 x 28", "45 x 30", "50 x 35")), "dishwasher_safe": False}
        title, price = f"{brand} {line} {material.title()} Cutting Board", {"bamboo": 22, "walnut": 75, "maple": 55}[material]
    else:
        pieces = _pick(rng, (5, 10, 12))
        attrs |= {"material": "borosilicate glass", "pieces": pieces, "dishwasher_safe": True, "leakproof": _chance(rng, 0.6), "bpa_free": True}
        title, price = f"{brand} {line} {pieces}-Piece Glass Storage Set", 14 + pieces * 2.5
    attrs["color"] = _pick(rng, _COLORS)
    attrs["certifications"] = _certs(rng, (("NSF", 0.2),))
    return title, attrs, price


_INGREDIENT_WORD = {
    "hyaluronic acid": "Hyaluronic", "ceramides": "Ceramide", "squalane": "Squalane", "niacinamide": "Niacinamide",
    "shea butter": "Shea", "vitamin C": "Vitamin C", "retinol": "Retinol", "zinc oxide": "Zinc",
}


def _skincare(rng: np.random.Generator, brand: str, line: str) -> tuple[str, Attrs, float]:
    kind = _pick(rng, ("Daily Moisturizer", "Facial Cleanser", "Face Serum", "Mineral Sunscreen", "Lip Balm"), (0.28, 0.22, 0.22, 0.16, 0.12))
    if kind == "Face Serum":
        ingredient, volume = _pick(rng, ("vitamin C", "niacinamide", "retinol", "hyaluronic acid")), 30
    elif kind == "Mineral Sunscreen":
        ingredient, volume = "zinc oxide", _pick(rng, (50, 100))
    elif kind == "Lip Balm":
        ingredient, volume = _pick(rng, ("shea butter", "squalane")), 5
    else:
        ingredient = _pick(rng, ("hyaluronic acid", "ceramides", "squalane", "niacinamide", "shea butter"))
        volume = _pick(rng, (50, 75, 100) if kind == "Daily Moisturizer" else (150, 200, 250))
    organic = _chance(rng, 0.25)
    attrs: Attrs = {
        "type": kind.lower(),
        "volume_ml": volume,
        "skin_type": _pick(rng, ("dry", "normal", "combination", "sensitive", "oily")),
        "key_ingredient": ingredient,
        "organic": organic,
        "vegan": _chance(rng, 0.55),
        "fragrance_free": _chance(rng, 0.5),
    }
    if kind == "Mineral Sunscreen":
        attrs["spf"] = _pick(rng, (30, 50))
    certs = ["COSMOS Organic"] if organic else []
    if _chance(rng, 0.5):
        certs.append("Leaping Bunny")
    attrs["certifications"] = certs
    spf = f" SPF {attrs['spf']}" if "spf" in attrs else ""
    title = f"{brand} {'Organic ' if organic else ''}{_INGREDIENT_WORD[ingredient]} {kind}{spf} {volume} ml"
    price = {"Daily Moisturizer": 24, "Facial Cleanser": 14, "Face Serum": 34, "Mineral Sunscreen": 19, "Lip Balm": 7}[kind]
    return title, attrs, price * (1.3 if organic else 1.0) * float(rng.lognormal(0, 0.2))


def _electronics(rng: np.random.Generator, brand: str, line: str) -> tuple[str, Attrs, float]:
    kind = _pick(rng, ("USB-C Wall Charger", "Power Bank", "Wireless Earbuds", "Phone Case", "Charging Cable"), (0.2, 0.2, 0.2, 0.25, 0.15))
    attrs: Attrs = {"type": kind.lower()}
    certs = (("UL", 0.5), ("CE", 0.7), ("FCC", 0.6))
    if kind == "USB-C Wall Charger":
        watts = _pick(rng, (20, 30, 45, 65, 100))
        attrs |= {"material": "polycarbonate", "wattage_w": watts, "ports": _pick(rng, (1, 2, 3)), "gan": _chance(rng, 0.5)}
        title, price = f"{brand} {line} {watts} W {'GaN ' if attrs['gan'] else ''}USB-C Wall Charger", 12 + watts * 0.4
    elif kind == "Power Bank":
        mah = _pick(rng, (5000, 10000, 20000, 26800))
        watts = _pick(rng, (18, 22, 45, 65))
        attrs |= {"material": _pick(rng, ("aluminium", "polycarbonate")), "capacity_mah": mah, "wattage_w": watts,
                  "ports": _pick(rng, (2, 3)), "connector": "USB-C", "waterproof": False}
        attrs["weight_g"] = int(round(60 + mah * 0.017, -1))
        title, price = f"{brand} {line} {mah} mAh USB-C Power Bank", 12 + mah * 0.0012 + watts * 0.25
    elif kind == "Wireless Earbuds":
        anc = _chance(rng, 0.5)
        attrs |= {"material": "matte plastic", "battery_h": _pick(rng, (6, 8, 10)), "noise_cancelling": anc,
                  "water_resistance": _pick(rng, ("IPX4", "IPX5")), "waterproof": False}
        title, price = f"{brand} {line} {'Noise-Cancelling ' if anc else ''}Wireless Earbuds", 35 + (45 if anc else 0) + attrs["battery_h"] * 2
    elif kind == "Phone Case":
        phone = _pick(rng, ("iPhone 17", "iPhone 17 Pro", "Galaxy S26", "Pixel 11"))
        attrs |= {"material": _pick(rng, ("silicone", "TPU", "recycled plastic")), "compatible_with": phone, "drop_rating_m": _pick(rng, (2, 3, 4))}
        title, price = f"{brand} {line} Case for {phone}", 18 + attrs["drop_rating_m"] * 4
        certs = ()
    else:
        length = _pick(rng, (1, 2, 3))
        connector = _pick(rng, ("USB-C to USB-C", "USB-C to Lightning"))
        attrs |= {"material": "braided nylon", "length_m": length, "connector": connector, "wattage_w": _pick(rng, (60, 100, 240))}
        title, price = f"{brand} {line} {length} m Braided {connector} Cable", 10 + length * 3 + attrs["wattage_w"] * 0.03
    attrs["color"] = _pick(rng, ("Black", "White", "Graphite", "Navy", "Sand"))
    attrs["certifications"] = _certs(rng, certs)
    return title, attrs, price


def _apparel(rng: np.random.Generator, brand: str, line: str) -> tuple[str, Attrs, float]:
    kind = _pick(rng, ("T-Shirt", "Hoodie", "Rain Jacket", "Windbreaker", "Running Leggings", "Merino Base Layer", "Running Socks"),
                 (0.22, 0.16, 0.14, 0.1, 0.14, 0.12, 0.12))
    attrs: Attrs = {"type": kind.lower()}
    certs: list[str] = []
    if kind in ("T-Shirt", "Hoodie"):
        material = _pick(rng, ("organic cotton", "cotton", "recycled polyester") if kind == "T-Shirt" else ("organic cotton", "cotton fleece", "recycled polyester fleece"))
        attrs |= {"material": material, "organic": material == "organic cotton", "fit": _pick(rng, ("regular", "slim", "relaxed"))}
        if attrs["organic"]:
            certs.append("GOTS")
        title = f"{brand} {line} {'Organic Cotton ' if attrs['organic'] else ''}{kind}"
        price = (28 if kind == "T-Shirt" else 65) * (1.25 if attrs["organic"] else 1.0)
    elif kind in ("Rain Jacket", "Windbreaker"):
        # A windbreaker is the planted near-miss: a jacket that is explicitly not waterproof.
        waterproof = kind == "Rain Jacket"
        attrs |= {"material": _pick(rng, ("recycled nylon", "polyester")), "waterproof": waterproof, "packable": _chance(rng, 0.6)}
        if waterproof:
            attrs["waterproof_rating_mm"] = _pick(rng, (10000, 15000, 20000))
        title = f"{brand} {line} {'Waterproof ' if waterproof else ''}{kind}"
        price = 150 if waterproof else 85
    elif kind == "Running Leggings":
        attrs |= {"material": _pick(rng, ("recycled polyester", "nylon-elastane")), "pockets": _pick(rng, (2, 3))}
        title, price = f"{brand} {line} Running Leggings", 58
    elif kind == "Merino Base Layer":
        attrs |= {"material": "merino wool", "fabric_weight_gsm": _pick(rng, (150, 200, 250))}
        title, price = f"{brand} {line} Merino Base Layer", 80 + attrs["fabric_weight_gsm"] * 0.1
    else:
        attrs |= {"material": _pick(rng, ("merino wool blend", "recycled nylon")), "pieces": 3}
        title, price = f"{brand} {line} Running Socks 3-Pack", 22
    attrs["size_range"] = "XS-XXL" if kind != "Running Socks" else "S-XL"
    attrs["color"] = _pick(rng, _COLORS)
    if _chance(rng, 0.2):
        certs.append("Fair Trade Certified")
    attrs["certifications"] = certs
    return title, attrs, price * float(rng.lognormal(0, 0.15))


_MAKERS: dict[str, Callable[[np.random.Generator, str, str], tuple[str, Attrs, float]]] = {
    "Drinkware": _drinkware,
    "Outdoor Gear": _outdoor,
    "Running Shoes": _running_shoes,
    "Home & Kitchen": _home_kitchen,
    "Skincare": _skincare,
    "Electronics Accessories": _electronics,
    "Apparel": _apparel,
}

# The products the campaigns promote, fixed so the hand-written copy below stays true to them.
_HEROES: dict[str, tuple[str, str, float, Attrs]] = {
    "Drinkware": ("Summit 750 ml Insulated Steel Water Bottle", "Summit", 32.00, {
        "type": "water bottle", "material": "stainless steel", "capacity_ml": 750, "insulated": True, "leakproof": True,
        "dishwasher_safe": False, "color": "Glacier Blue", "weight_g": 380, "certifications": ["LFGB"]}),
    "Running Shoes": ("Stride Tempo 3 Road Running Shoe", "Stride", 129.95, {
        "type": "road running shoe", "material": "engineered mesh", "cushioning": "neutral", "drop_mm": 8, "weight_g": 255,
        "size_range": "US 6-13", "waterproof": False, "vegan": True, "color": "Black/Volt", "certifications": []}),
    "Apparel": ("Northline Ridge Waterproof Rain Jacket", "Northline", 149.00, {
        "type": "rain jacket", "material": "recycled nylon", "waterproof": True, "packable": True, "waterproof_rating_mm": 20000,
        "size_range": "XS-XXL", "color": "Forest Green", "weight_g": 340, "certifications": ["bluesign"]}),
    "Electronics Accessories": ("Voltic 20000 mAh USB-C Power Bank", "Voltic", 49.99, {
        "type": "power bank", "material": "aluminium", "capacity_mah": 20000, "wattage_w": 65, "ports": 3, "connector": "USB-C",
        "waterproof": False, "color": "Graphite", "weight_g": 410, "certifications": ["UL", "CE", "FCC"]}),
}

# First sentence: size-like facts, most telling first.
_SIZE_FACTS = (
    ("capacity_ml", "holds {} ml"), ("capacity_l", "carries {} litres"), ("volume_ml", "comes in a {} ml size"),
    ("sleeps", "sleeps {}"), ("temp_rating_c", "is rated to {} °C"), ("lumens", "puts out {} lumens"),
    ("blade_length_cm", "has a {} cm blade"), ("diameter_cm", "measures {} cm across"), ("pieces", "comes as a set of {}"),
    ("capacity_mah", "stores {} mAh"), ("wattage_w", "delivers up to {} W"), ("length_m", "is {} m long"),
    ("battery_h", "plays for up to {} hours per charge"), ("spf", "offers SPF {} protection"), ("drop_mm", "has a heel-to-toe drop of {} mm"),
    ("waterproof_rating_mm", "has a {} mm waterproof rating"), ("fabric_weight_gsm", "uses {} gsm fabric"),
    ("dimensions_cm", "measures {} cm"), ("weight_g", "weighs {} g"),
)
# Second sentence: claims made only when the attribute is true.
CLAIMS = (
    ("insulated", "insulated"), ("leakproof", "leakproof"), ("waterproof", "waterproof"), ("dishwasher_safe", "dishwasher safe"),
    ("bpa_free", "BPA-free"), ("pfas_free", "PFAS-free"), ("pre_seasoned", "pre-seasoned"), ("organic", "organic"),
    ("vegan", "vegan"), ("fragrance_free", "fragrance-free"), ("noise_cancelling", "noise-cancelling"), ("packable", "packable"),
    ("rechargeable", "rechargeable"),
)
# Third sentence: the remaining details as verb phrases.
_DETAILS = (
    ("skin_type", "suits {} skin"), ("key_ingredient", "is made with {}"), ("cushioning", "has {} cushioning"),
    ("lug_depth_mm", "grips with {} mm lugs"), ("carbon_plate", "uses a carbon plate"), ("ports", "has {} ports"),
    ("gan", "uses GaN circuitry"), ("connector", "connects {}"), ("water_resistance", "is rated {} for water resistance"),
    ("compatible_with", "fits the {}"), ("drop_rating_m", "is drop-tested from {} m"), ("oven_safe_c", "is oven safe to {} °C"),
    ("fit", "has a {} fit"), ("pockets", "has {} pockets"), ("collapsed_length_cm", "collapses to {} cm"),
    ("size_range", "is offered in sizes {}"), ("color", "comes in {}"),
)


def _join(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def describe(brand: str, attrs: Attrs) -> str:
    """Two or three sentences that say only what ``attrs`` says (plus the brand)."""
    kind = str(attrs["type"])
    clauses = [f"is made of {attrs['material']}"] if "material" in attrs else []
    clauses += [tpl.format(attrs[k]) for k, tpl in _SIZE_FACTS if k in attrs][:2]
    sentences = [f"The {brand} {kind} {_join(clauses)}."]
    material = str(attrs.get("material", ""))
    # "organic cotton" already says it; everything else true is claimed once.
    claims = [word for k, word in CLAIMS if attrs.get(k) is True and word not in material]
    if claims:
        sentences.append(f"It is {_join(claims)}.")
    details = [tpl.format(attrs[k]) for k, tpl in _DETAILS if k in attrs and attrs[k] is not False][-3:]
    certs = attrs.get("certifications") or []
    if certs:
        details.append(f"carries {_join(list(certs))} certification")
    if details:
        sentences.append(f"It {_join(details)}.")
    return " ".join(sentences)


def _price(raw: float) -> float:
    # Shop prices end in .99, .95 or .00, like a real catalog.
    ending = (0.99, 0.95, 0.0)[int(raw * 7) % 3]
    return round(max(4.0, float(np.floor(raw))) + ending, 2)


@dataclass
class _Catalog:
    frame: pd.DataFrame
    category: np.ndarray  # category index per product
    price: np.ndarray
    popularity: np.ndarray
    quality: np.ndarray  # latent, shifts review ratings
    heroes: dict[str, int]  # category -> product index


def _build_catalog(rng: np.random.Generator, n: int) -> _Catalog:
    shares = np.array(_CATEGORY_SHARE) * n
    per_cat = np.floor(shares).astype(int)
    per_cat[np.argsort(per_cat - shares)[: n - per_cat.sum()]] += 1  # largest remainders
    rows, cats, heroes = [], [], {}
    updated_lo = datetime(2026, 1, 5)
    for ci, cat in enumerate(CATEGORIES):
        titles: set[str] = set()
        for k in range(int(per_cat[ci])):
            if k == 0 and cat in _HEROES:
                title, brand, price, attrs = _HEROES[cat]
                heroes[cat] = len(rows)
            else:
                brand = _pick(rng, _BRANDS[cat])
                for _ in range(20):  # a few retries keep titles unique
                    title, attrs, raw = _MAKERS[cat](rng, brand, _pick(rng, _LINES))
                    if title not in titles:
                        break
                price = _price(raw * float(rng.lognormal(0, 0.08)))
            titles.add(title)
            updated = updated_lo + timedelta(seconds=int(rng.integers(0, (START - updated_lo).days * _DAY)))
            rows.append({
                "product_id": f"P{len(rows) + 1:04d}", "title": title, "brand": brand, "category": cat, "price": price,
                "currency": "USD", "attributes": json.dumps(attrs), "description": describe(brand, attrs), "updated_at": updated,
            })
            cats.append(ci)
    frame = pd.DataFrame(rows)
    popularity = rng.lognormal(0, 0.9, len(rows))
    quality = rng.normal(0, 0.5, len(rows))
    for i in heroes.values():
        popularity[i] *= 3  # promoted products are bestsellers
        quality[i] += 0.3
    return _Catalog(frame, np.array(cats), frame["price"].to_numpy(float), popularity, quality, heroes)


# ---------------------------------------------------------------------------------------
# Behavioural groups
# ---------------------------------------------------------------------------------------

DEVICES = ("mobile", "desktop", "tablet")
SOURCES = ("organic", "direct", "social", "email", "paid_search")


def _hours(*peaks: tuple[int, float]) -> tuple[float, ...]:
    w = np.full(24, 0.2)
    w[:6] = 0.04
    for hour, weight in peaks:
        w[hour] += weight
    return tuple(w / w.sum())


@dataclass(frozen=True)
class _Group:
    name: str
    share: float
    sessions: float  # mean sessions over the user's active span
    views: float  # mean product views per session
    gap_s: float  # mean seconds between views
    speed: float  # multiplies cart -> checkout -> purchase delays
    device: tuple[float, float, float]  # DEVICES
    sources: tuple[float, ...]  # SOURCES, for sessions not from a campaign
    hours: tuple[float, ...]  # hour-of-day weights
    categories: tuple[float, ...]  # affinity per CATEGORIES
    price_pref: float  # exponent on relative price when choosing a product: < 0 cheap, > 0 dear
    campaign_share: float  # share of sessions that arrive from a campaign
    campaigns: tuple[float, ...]  # affinity per CAMPAIGNS
    cart: float  # P(add to cart) per session, before lifts
    checkout: float  # P(checkout | cart)
    purchase: float  # P(purchase | checkout)
    campaign_boost: float  # multiplies cart probability in campaign sessions
    second_item: float  # P(a second product in the cart)
    new_share: float  # share first seen inside the window
    review_rate: float  # P(review | purchase); also weights historical reviewers
    rating_bias: float
    ages: tuple[float, ...]  # AGE_BANDS
    signup: tuple[float, ...]  # SIGNUP_CHANNELS


AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55+")
SIGNUP_CHANNELS = ("organic_search", "paid_search", "social", "referral", "email_signup")

GROUPS: tuple[_Group, ...] = (
    _Group("bargain_hunters", 0.22, sessions=10, views=6.0, gap_s=70, speed=1.0, device=(0.5, 0.42, 0.08),
           sources=(0.42, 0.18, 0.16, 0.14, 0.10), hours=_hours((12, 0.4), (20, 0.6), (21, 0.6)),
           categories=(1.2, 0.5, 0.5, 1.6, 1.0, 1.5, 1.3), price_pref=-1.8, campaign_share=0.65, campaigns=(0.1, 0.3, 0.2, 0.4),
           cart=0.010, checkout=0.35, purchase=0.55, campaign_boost=2.2, second_item=0.1, new_share=0.5,
           review_rate=0.35, rating_bias=-0.15, ages=(0.15, 0.35, 0.3, 0.15, 0.05), signup=(0.3, 0.25, 0.15, 0.1, 0.2)),
    _Group("loyal_big_spenders", 0.025, sessions=12, views=3.8, gap_s=55, speed=0.8, device=(0.15, 0.75, 0.10),
           sources=(0.2, 0.55, 0.05, 0.15, 0.05), hours=_hours((9, 0.5), (10, 0.6), (11, 0.6), (14, 0.5), (15, 0.5)),
           categories=(0.8, 1.6, 1.5, 1.0, 0.7, 1.0, 1.0), price_pref=1.0, campaign_share=0.3, campaigns=(0.4, 0.1, 0.05, 0.45),
           cart=0.13, checkout=0.72, purchase=0.88, campaign_boost=1.2, second_item=0.45, new_share=0.05,
           review_rate=0.45, rating_bias=0.25, ages=(0.02, 0.18, 0.35, 0.3, 0.15), signup=(0.35, 0.1, 0.05, 0.3, 0.2)),
    _Group("window_shoppers", 0.335, sessions=9, views=7.0, gap_s=130, speed=1.5, device=(0.55, 0.35, 0.10),
           sources=(0.55, 0.15, 0.22, 0.03, 0.05), hours=_hours((13, 0.3), (21, 0.5), (22, 0.6), (23, 0.4)),
           categories=(0.8, 1.0, 1.2, 0.9, 1.2, 0.8, 1.6), price_pref=0.4, campaign_share=0.18, campaigns=(0.2, 0.3, 0.4, 0.1),
           cart=0.02, checkout=0.12, purchase=0.25, campaign_boost=1.0, second_item=0.3, new_share=0.6,
           review_rate=0.4, rating_bias=-0.05, ages=(0.35, 0.35, 0.15, 0.1, 0.05), signup=(0.4, 0.15, 0.3, 0.1, 0.05)),
    _Group("mobile_impulse", 0.28, sessions=8, views=2.4, gap_s=28, speed=0.4, device=(0.92, 0.05, 0.03),
           sources=(0.3, 0.2, 0.4, 0.05, 0.05), hours=_hours((7, 0.5), (8, 0.5), (12, 0.5), (19, 0.6), (22, 0.7), (23, 0.6)),
           categories=(1.4, 0.4, 0.6, 0.6, 1.6, 1.5, 1.0), price_pref=-1.0, campaign_share=0.45, campaigns=(0.05, 0.15, 0.65, 0.15),
           cart=0.003, checkout=0.5, purchase=0.78, campaign_boost=6.0, second_item=0.08, new_share=0.55,
           review_rate=0.12, rating_bias=0.0, ages=(0.4, 0.38, 0.14, 0.06, 0.02), signup=(0.15, 0.15, 0.55, 0.1, 0.05)),
    _Group("lapsed", 0.14, sessions=5, views=4.0, gap_s=70, speed=1.0, device=(0.45, 0.45, 0.10),
           sources=(0.4, 0.35, 0.1, 0.1, 0.05), hours=_hours((11, 0.4), (19, 0.5), (20, 0.5)),
           categories=(0.7, 1.4, 1.0, 1.2, 0.6, 0.7, 1.3), price_pref=0.0, campaign_share=0.3, campaigns=(0.25, 0.15, 0.1, 0.5),
           cart=0.02, checkout=0.4, purchase=0.65, campaign_boost=1.2, second_item=0.2, new_share=0.0,
           review_rate=0.25, rating_bias=-0.35, ages=(0.05, 0.25, 0.3, 0.25, 0.15), signup=(0.35, 0.2, 0.1, 0.15, 0.2)),
)
_LAPSED = [g.name for g in GROUPS].index("lapsed")

COUNTRIES = ("US", "GB", "CA", "DE", "AU", "FR", "NL", "SE", "IE", "NZ")
_COUNTRY_P = (0.55, 0.11, 0.08, 0.07, 0.05, 0.04, 0.04, 0.02, 0.02, 0.02)


# ---------------------------------------------------------------------------------------
# Campaigns and their copy
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Variant:
    letter: str
    tone: str
    fields: dict[str, str]
    lift: float = 1.0  # multiplies add-to-cart probability
    lift_by_group: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class _Campaign:
    name: str
    channel: str
    source: str
    hero: str  # category of the promoted hero product
    start: datetime
    end: datetime
    variants: tuple[_Variant, ...]


_OTHERS = {"bargain_hunters", "window_shoppers", "mobile_impulse", "lapsed"}

CAMPAIGNS: tuple[_Campaign, ...] = (
    _Campaign("search_brand", "google_rsa", "paid_search", "Running Shoes", START, END, (
        _Variant("A", "straightforward", {
            "headline": "Stride Tempo 3 Running Shoe",
            "description": "Neutral cushioning, an 8 mm drop and an engineered mesh upper. Sizes US 6-13."}),
        # A small, honest difference: not every test has a winner.
        _Variant("B", "performance", {
            "headline": "A 255 g Road Running Shoe",
            "description": "Stride Tempo 3: 255 g, neutral cushioning and an 8 mm drop. Vegan, sizes US 6-13."}, lift=1.1),
    )),
    _Campaign("search_generic", "google_rsa", "paid_search", "Electronics Accessories", START, END, (
        _Variant("A", "technical", {
            "headline": "20000 mAh USB-C Power Bank",
            "description": "65 W output and 3 ports in a 410 g aluminium body. UL, CE and FCC certified."}),
        _Variant("B", "benefit", {
            "headline": "Charge Your Laptop Anywhere",
            # A clear winner, so a demo shows what a decision looks like (search_brand stays undecided).
            "description": "Voltic power bank: 20000 mAh and 65 W over USB-C, with 3 ports to share."}, lift=3.0),
    )),
    _Campaign("meta_prospecting", "meta", "social", "Apparel", datetime(2026, 8, 17), END, (
        _Variant("A", "playful", {
            "headline": "Rain in the forecast? Bring it on.",
            "primary_text": "The Northline Ridge jacket is waterproof to 20000 mm and packable, so a surprise downpour is no big deal.",
            "description": "Waterproof and packable"}, lift_by_group={"mobile_impulse": 2.5}),
        _Variant("B", "practical", {
            "headline": "Waterproof jacket, 340 g, $149",
            "primary_text": "A 20000 mm waterproof rating, a recycled nylon shell and sizes XS-XXL. One jacket for every wet commute.",
            "description": "Sizes XS-XXL"}, lift_by_group={"bargain_hunters": 2.5}),
        _Variant("C", "eco", {
            "headline": "A rain jacket in recycled nylon",
            "primary_text": "bluesign-certified recycled nylon, waterproof and packable. The Northline Ridge, in Forest Green.",
            "description": "bluesign certified"}),
    )),
    _Campaign("fall_email", "email", "email", "Drinkware", datetime(2026, 9, 7), END, (
        _Variant("A", "friendly", {
            "subject": "Meet your new everyday bottle",
            "preheader": "750 ml, insulated and leakproof: the Summit steel bottle.",
            "headline": "Say hello to the Summit bottle",
            "description": "Insulated stainless steel that is leakproof and holds 750 ml, in Glacier Blue."}),
        _Variant("B", "urgent", {
            "subject": "Last call: the Summit bottle for $32",
            "preheader": "Insulated, leakproof and 750 ml. Fall is here.",
            "headline": "Grab yours before fall sets in",
            "description": "The Summit insulated steel bottle, 750 ml and leakproof, for $32."},
            lift_by_group={g: 2.0 for g in _OTHERS} | {"loyal_big_spenders": 1.1}),
        _Variant("C", "premium", {
            "subject": "Built to last: Summit insulated steel",
            "preheader": "LFGB-certified stainless steel, insulated and leakproof.",
            "headline": "The last bottle you will buy",
            "description": "Insulated stainless steel with LFGB certification, 750 ml and leakproof."},
            lift_by_group={"loyal_big_spenders": 2.2} | {g: 0.9 for g in _OTHERS}),
    )),
)

# Channel limits the hand-written copy keeps (Google RSA, Meta link ads, email subjects).
COPY_LIMITS = {
    "google_rsa": {"headline": 30, "description": 90},
    "meta": {"headline": 40, "primary_text": 125, "description": 30},
    "email": {"subject": 50, "preheader": 90},
}


def variant_id(campaign: str, letter: str) -> str:
    return f"V-{campaign}-{letter}"


def _copy_variants_frame(catalog: _Catalog) -> pd.DataFrame:
    rows = []
    for c in CAMPAIGNS:
        for v in c.variants:
            for name, limit in COPY_LIMITS[c.channel].items():
                if len(v.fields.get(name, "")) > limit:  # a programming error, caught by the tests
                    raise ValueError(f"{variant_id(c.name, v.letter)} {name} is longer than {limit}")
            rows.append({
                "variant_id": variant_id(c.name, v.letter),
                "product_id": catalog.frame["product_id"].iat[catalog.heroes[c.hero]],
                "channel": c.channel, "tone": v.tone, "segment_id": None, "fields": json.dumps(v.fields),
                "model": "human", "params": "{}", "scores": None, "status": "approved",
                "created_at": c.start - timedelta(days=3) + timedelta(hours=10),
            })
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------
# Simulation
# ---------------------------------------------------------------------------------------

def _choose(rng: np.random.Generator, probs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """One draw per element of ``rows`` from the categorical distribution ``probs[row]``."""
    cum = np.cumsum(probs, axis=1)
    cum /= cum[:, -1:]
    picked = (rng.random(len(rows))[:, None] > cum[rows]).sum(axis=1)
    return np.minimum(picked, probs.shape[1] - 1)


def _group_table(attr: str) -> np.ndarray:
    return np.array([getattr(g, attr) for g in GROUPS], dtype=float)


@dataclass
class _Users:
    group: np.ndarray
    first_seen: np.ndarray  # seconds from START; negative = before the window
    cat_weights: np.ndarray  # users x categories
    frame: pd.DataFrame | None = None


@dataclass
class _Events:
    sess: np.ndarray
    kind: np.ndarray  # index into EVENT_NAMES
    ts: np.ndarray  # seconds from START
    product: np.ndarray  # -1 = none
    revenue: np.ndarray
    session_user: np.ndarray
    session_campaign: np.ndarray  # -1 = none
    session_variant: np.ndarray  # global variant index, -1 = none
    session_device: np.ndarray
    session_source: np.ndarray
    session_rank: np.ndarray  # session number, in (user, start) order


EVENT_NAMES = ("view", "add_to_cart", "checkout", "purchase")


def _product_sampler(catalog: _Catalog) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """Per (group, category): product indices and cumulative choice probabilities."""
    table = []
    for g in GROUPS:
        per_cat = []
        for ci in range(len(CATEGORIES)):
            idx = np.flatnonzero(catalog.category == ci)
            rel = catalog.price[idx] / np.median(catalog.price[idx])
            w = catalog.popularity[idx] * rel ** g.price_pref
            per_cat.append((idx, np.cumsum(w) / w.sum()))
        table.append(per_cat)
    return table


def _sample_products(rng: np.random.Generator, sampler, group: np.ndarray, cat: np.ndarray) -> np.ndarray:
    out = np.empty(len(group), dtype=np.int64)
    u = rng.random(len(group))
    for gi in range(len(GROUPS)):
        for ci in range(len(CATEGORIES)):
            mask = (group == gi) & (cat == ci)
            if mask.any():
                idx, cum = sampler[gi][ci]
                out[mask] = idx[np.minimum(np.searchsorted(cum, u[mask]), len(idx) - 1)]
    return out


def _simulate_users(rng: np.random.Generator, n: int) -> _Users:
    shares = np.array([g.share for g in GROUPS])
    counts = np.floor(shares * n).astype(int)
    counts[np.argsort(counts - shares * n)[: n - counts.sum()]] += 1
    group = rng.permutation(np.repeat(np.arange(len(GROUPS)), counts))
    affinity = np.array([g.categories for g in GROUPS])[group]
    cat_weights = affinity * rng.gamma(2.0, 0.5, affinity.shape)  # each user has their own favourites
    is_new = rng.random(n) < _group_table("new_share")[group]
    # Existing customers signed up up to two years back; new ones arrive during the window
    # (their exact first_seen becomes their first session's start).
    first_seen = np.where(is_new, rng.random(n) * (_WINDOW_S - 3 * _DAY), -rng.uniform(1, 730, n) * _DAY)
    return _Users(group, first_seen, cat_weights)


def _simulate_events(rng: np.random.Generator, users: _Users, catalog: _Catalog) -> _Events:
    g_user = users.group
    n_users = len(g_user)
    n_groups = len(GROUPS)
    variants = [(ci, vi) for ci, c in enumerate(CAMPAIGNS) for vi in range(len(c.variants))]
    var_offset = np.cumsum([0] + [len(c.variants) for c in CAMPAIGNS])[:-1]
    lift = np.ones((len(variants) + 1, n_groups))  # last row: no campaign
    for k, (ci, vi) in enumerate(variants):
        v = CAMPAIGNS[ci].variants[vi]
        for gi, g in enumerate(GROUPS):
            lift[k, gi] = v.lift_by_group.get(g.name, v.lift)

    # --- sessions -------------------------------------------------------------------
    lo = np.maximum(users.first_seen, 0)
    hi = np.full(n_users, float(_WINDOW_S - 1))
    lapsed = g_user == _LAPSED
    hi[lapsed] = rng.uniform(12, 40, lapsed.sum()) * _DAY  # active early, then gone
    new = users.first_seen >= 0
    span = np.where(new, (hi - lo) / _WINDOW_S, 1.0)  # newcomers only have the rest of the window
    activity = rng.gamma(2.0, 0.5, n_users)  # within a group some visit twice as often as others
    n_sess = 1 + rng.poisson(np.maximum(_group_table("sessions")[g_user] * activity * span - 1, 0))
    s_user = np.repeat(np.arange(n_users), n_sess)
    n_s = len(s_user)
    s_g = g_user[s_user]
    day = np.floor((lo[s_user] + rng.random(n_s) * (hi - lo)[s_user]) / _DAY)
    hour = _choose(rng, np.array([g.hours for g in GROUPS]), s_g)
    start = day * _DAY + hour * 3600 + rng.random(n_s) * 3600
    start = np.clip(start, lo[s_user], hi[s_user])

    # Campaign traffic: only campaigns running at the session's start are eligible.
    camp_aff = np.array([g.campaigns for g in GROUPS])[s_g]
    c_start = np.array([(c.start - START).total_seconds() for c in CAMPAIGNS])
    c_end = np.array([(c.end - START).total_seconds() for c in CAMPAIGNS])
    eligible = camp_aff * ((start[:, None] >= c_start) & (start[:, None] <= c_end))
    from_campaign = (rng.random(n_s) < _group_table("campaign_share")[s_g]) & (eligible.sum(axis=1) > 0)
    eligible[~from_campaign] = 1.0  # keeps _choose well-defined; discarded below
    s_camp = np.where(from_campaign, _choose(rng, eligible, np.arange(n_s)), -1)
    # Variants are assigned per user, so a user sees the same copy all campaign long.
    assignment = rng.integers(0, 6, size=(n_users, len(CAMPAIGNS)))  # 6: divisible by 2 and 3
    n_var = np.array([len(c.variants) for c in CAMPAIGNS])
    camp0 = np.maximum(s_camp, 0)
    s_var = np.where(from_campaign, var_offset[camp0] + assignment[s_user, camp0] % n_var[camp0], -1)

    primary_device = _choose(rng, np.array([g.device for g in GROUPS]), g_user)
    other_device = _choose(rng, np.array([g.device for g in GROUPS]), s_g)
    s_device = np.where(rng.random(n_s) < 0.8, primary_device[s_user], other_device)
    camp_source = np.array([SOURCES.index(c.source) for c in CAMPAIGNS])
    s_source = np.where(from_campaign, camp_source[camp0], _choose(rng, np.array([g.sources for g in GROUPS]), s_g))

    # --- views ----------------------------------------------------------------------
    n_views = np.minimum(rng.geometric(1.0 / _group_table("views")[s_g]), 40)
    first = np.cumsum(n_views) - n_views
    v_sess = np.repeat(np.arange(n_s), n_views)
    n_v = len(v_sess)
    pos = np.arange(n_v) - first[v_sess]
    gaps = 5 + rng.exponential(_group_table("gap_s")[s_g][v_sess])
    gaps[pos == 0] = 0
    cum = np.cumsum(gaps)
    v_off = np.floor(cum - cum[first][v_sess]).astype(np.int64)

    hero_of_campaign = np.array([catalog.heroes[c.hero] for c in CAMPAIGNS])
    hero_cat = catalog.category[hero_of_campaign]
    s_cat = np.where(from_campaign, hero_cat[camp0], _choose(rng, users.cat_weights, s_user))
    # Most views stay in the session's category; some wander to the user's other interests.
    wander = _choose(rng, users.cat_weights, s_user[v_sess])
    v_cat = np.where(rng.random(n_v) < 0.7, s_cat[v_sess], wander)
    v_prod = _sample_products(rng, _product_sampler(catalog), s_g[v_sess], v_cat)
    lands_on_hero = (pos == 0) & from_campaign[v_sess] & (rng.random(n_v) < 0.85)
    v_prod[lands_on_hero] = hero_of_campaign[camp0[v_sess[lands_on_hero]]]

    # --- funnel ---------------------------------------------------------------------
    buy_mult = rng.gamma(1.2, 1 / 1.2, n_users)  # some users simply buy more than others
    j1 = np.floor(rng.random(n_s) * n_views).astype(np.int64)
    hero_first = from_campaign & (v_prod[first] == hero_of_campaign[camp0])
    j1 = np.where(hero_first & (rng.random(n_s) < 0.7), 0, j1)  # campaign visitors mostly buy what the ad showed
    # Price-sensitive groups balk at dear items even after viewing them, big spenders the reverse.
    rel_price = catalog.price / np.array([np.median(catalog.price[catalog.category == c]) for c in catalog.category])
    price_factor = np.clip(rel_price[v_prod[first + j1]] ** (0.7 * _group_table("price_pref")[s_g]), 0.2, 3.0)
    p_cart = np.minimum(
        _group_table("cart")[s_g]
        * buy_mult[s_user]
        * price_factor
        * np.where(from_campaign, _group_table("campaign_boost")[s_g], 1.0),
        0.45,  # headroom, so a variant's lift shows even for the keenest buyers
    ) * lift[s_var, s_g]  # s_var == -1 picks the "no campaign" row
    carts = rng.random(n_s) < p_cart
    j2 = (j1 + 1 + np.floor(rng.random(n_s) * np.maximum(n_views - 1, 1)).astype(np.int64)) % n_views
    two = carts & (n_views >= 2) & (rng.random(n_s) < _group_table("second_item")[s_g])
    two &= v_prod[first + j2] != v_prod[first + j1]  # a second, different product; re-adding one is a quantity
    checkouts = carts & (rng.random(n_s) < _group_table("checkout")[s_g])
    purchases = checkouts & (rng.random(n_s) < _group_table("purchase")[s_g])

    s1, s2 = np.flatnonzero(carts), np.flatnonzero(two)
    it_sess = np.concatenate([s1, s2])
    it_view = np.concatenate([first[s1] + j1[s1], first[s2] + j2[s2]])
    it_prod = v_prod[it_view]
    it_qty = rng.choice([1, 2, 3], size=len(it_sess), p=[0.86, 0.11, 0.03])
    speed = _group_table("speed")[s_g]
    it_cart_off = v_off[it_view] + np.floor((5 + rng.exponential(40, len(it_sess))) * speed[it_sess]).astype(np.int64)
    last_view = v_off[first + n_views - 1]
    cart_max = last_view.copy()
    np.maximum.at(cart_max, it_sess, it_cart_off)
    chk_off = cart_max + np.floor((20 + rng.exponential(90, n_s)) * speed).astype(np.int64)
    pur_off = chk_off + np.floor((15 + rng.exponential(60, n_s)) * speed).astype(np.int64)
    duration = np.where(purchases, pur_off, np.where(checkouts, chk_off, cart_max))
    # Sessions that would run past END start a little earlier instead.
    start = np.floor(np.maximum(np.minimum(start, _WINDOW_S - 1 - duration), 0)).astype(np.int64)

    # A small share of views lost their product_id (tracking glitches); never a carted one.
    lost = rng.random(n_v) < 0.005
    lost[it_view] = False
    v_prod[lost] = -1

    chk_items = checkouts[it_sess]
    pur_items = purchases[it_sess]
    sess = np.concatenate([v_sess, it_sess, it_sess[chk_items], it_sess[pur_items]])
    kind = np.concatenate([
        np.zeros(n_v, np.int8), np.ones(len(it_sess), np.int8),
        np.full(chk_items.sum(), 2, np.int8), np.full(pur_items.sum(), 3, np.int8),
    ])
    off = np.concatenate([v_off, it_cart_off, chk_off[it_sess[chk_items]], pur_off[it_sess[pur_items]]])
    product = np.concatenate([v_prod, it_prod, it_prod[chk_items], it_prod[pur_items]])
    revenue = np.full(len(sess), np.nan)
    revenue[kind == 3] = np.round(catalog.price[it_prod[pur_items]] * it_qty[pur_items], 2)
    ts = start[sess] + off

    # A handful of exact duplicates, as double-firing trackers leave behind.
    dup = rng.choice(len(sess), size=len(sess) // 1000, replace=False)
    sess, kind, ts, product, revenue = (np.concatenate([a, a[dup]]) for a in (sess, kind, ts, product, revenue))
    order = np.lexsort((kind, sess, ts))

    s_order = np.lexsort((start, s_user))
    rank = np.empty(n_s, dtype=np.int64)
    rank[s_order] = np.arange(n_s)
    first_start = np.full(n_users, np.iinfo(np.int64).max)
    np.minimum.at(first_start, s_user, start)
    users.first_seen = np.where(new, first_start, np.floor(users.first_seen)).astype(np.int64)

    return _Events(
        sess[order], kind[order], ts[order], product[order], revenue[order],
        s_user, s_camp, s_var, s_device, s_source, rank,
    )


# ---------------------------------------------------------------------------------------
# Reviews
# ---------------------------------------------------------------------------------------

_REVIEW_FACTS: dict[str, tuple[str, str]] = {
    "capacity_ml": ("the {} ml size is just right", "{} ml is less than I expected"),
    "capacity_l": ("{} litres fits everything for a long day out", "{} litres is tighter than it sounds"),
    "volume_ml": ("the {} ml lasts for ages", "the {} ml runs out fast"),
    "insulated": ("it keeps drinks cold all day", "the insulation does not keep coffee hot for long"),
    "leakproof": ("no leaks in my bag so far", "it leaked in my bag once"),
    "waterproof": ("it kept me dry through a proper downpour", "water got in at the seams in heavy rain"),
    "dishwasher_safe": ("it comes out of the dishwasher like new", "the finish dulled after a few dishwasher runs"),
    "weight_g": ("at {} g it is light enough to take everywhere", "at {} g it is heavier than I would like"),
    "material": ("the {} feels solid and well made", "the {} feels cheaper than I expected"),
    "color": ("the {} colourway looks great in person", "the {} colourway looks duller than in the photos"),
    "cushioning": ("the {} cushioning is comfortable on long runs", "the {} cushioning felt flat after a few weeks"),
    "size_range": ("sizing is true to the chart", "sizing runs small, order one up"),
    "fragrance_free": ("being fragrance-free it does not irritate my skin", "fragrance-free, yet it still stung a little"),
    "key_ingredient": ("you can really feel the {} working", "I did not notice the {} doing much"),
    "skin_type": ("it works well on my {} skin", "it did not agree with my {} skin"),
    "capacity_mah": ("{} mAh charges my phone several times over", "{} mAh drains faster than I hoped"),
    "wattage_w": ("{} W charging is properly quick", "it rarely seems to reach {} W"),
    "battery_h": ("{} hours of battery gets me through the week", "the battery falls well short of {} hours"),
    "lumens": ("{} lumens lights up the whole trail", "{} lumens feels dimmer than it sounds"),
    "sleeps": ("it fits {} people comfortably", "{} people is a squeeze"),
    "blade_length_cm": ("the {} cm blade holds its edge", "the {} cm blade dulled quickly"),
    "diameter_cm": ("the {} cm size is perfect for two", "{} cm is too small for family meals"),
    "temp_rating_c": ("warm enough down to {} °C as promised", "I was cold well above {} °C"),
    "noise_cancelling": ("the noise cancelling makes my commute calm", "the noise cancelling barely dulls the train"),
    "pre_seasoned": ("the pre-seasoning meant I could cook straight away", "the pre-seasoning flaked off quickly"),
}

_VOICE: dict[str, dict[str, tuple[str, ...]]] = {
    "bargain_hunters": {
        "pos": ("Great value for ${price}.", "Cheaper than the big names and does the job.", "At ${price} this was a steal."),
        "mid": ("Fair for ${price}, nothing more.", "Okay value at ${price}, I'd wait for a sale."),
        "neg": ("Not worth ${price}.", "You get what you pay for, even at ${price}.", "Overpriced at ${price}."),
    },
    "loyal_big_spenders": {
        "pos": ("Build quality is excellent, as always with {brand}.", "Another {brand} purchase and the quality is consistent.",
                "Premium feel, worth every cent."),
        "mid": ("Good, though I expected a little more from {brand}.", "Solid quality, not {brand}'s best."),
        "neg": ("Disappointing quality for {brand}.", "Not the standard I expect from {brand}."),
    },
    "window_shoppers": {
        "pos": ("Looked at it for weeks before buying and I'm glad I did.", "Looks even better than the photos."),
        "mid": ("Compared it with a few others for a while; it's fine.", "Looks nice, but I'm still unsure it was the right pick."),
        "neg": ("Looked better in the photos than in person.", "Should have kept browsing."),
    },
    "mobile_impulse": {
        "pos": ("Ordered it on my phone in a minute and it arrived fast.", "Quick buy, no regrets!", "Saw it, bought it, love it."),
        "mid": ("Quick buy. It's okay.", "Bought on a whim; it does what it says."),
        "neg": ("Bought on a whim and regret it.", "Quick checkout, slow regret."),
    },
    "lapsed": {
        "pos": ("Still holding up after months of use.", "Used it all season and it's still like new."),
        "mid": ("Fine for a season or two.", "Held up okay over time."),
        "neg": ("Stopped being any good after a few months.", "Did not last; I haven't ordered since."),
    },
}
_OPENERS = {
    "pos": ("Really happy with this {kind}.", "Love this {kind}.", "Exactly the {kind} I wanted."),
    "mid": ("This {kind} is decent.", "Mixed feelings about this {kind}."),
    "neg": ("Disappointed with this {kind}.", "I wanted to like this {kind}."),
}
_TITLES = {
    5: ("Love it", "Excellent", "Five stars", "Exactly what I needed"),
    4: ("Very good", "Happy with it", "Great, with one small gripe"),
    3: ("It's okay", "Decent", "Mixed feelings"),
    2: ("Disappointing", "Not great"),
    1: ("Would not buy again", "Poor", "Returned it"),
}


def _review_text(rng: np.random.Generator, rating: int, group: str, brand: str, price: float, attrs: Attrs) -> tuple[str, str]:
    facts = [(k, pair) for k, pair in _REVIEW_FACTS.items() if k in attrs and attrs[k] is not False]
    mood = "pos" if rating >= 4 else "mid" if rating == 3 else "neg"
    kind = str(attrs["type"])

    def fact(which: int) -> str:
        key, pair = facts[int(rng.integers(len(facts)))]
        return pair[which].format(attrs[key])

    opener = _pick(rng, _OPENERS[mood]).format(kind=kind)
    if mood == "pos":
        body = fact(0)
    elif mood == "neg":
        body = fact(1)
    else:
        body = f"{fact(0)}, but {fact(1)}"
    voice = _pick(rng, _VOICE[group][mood]).replace("${price}", f"${price:.2f}").format(brand=brand)
    text = f"{opener} {body[0].upper()}{body[1:]}. {voice}"
    return _pick(rng, _TITLES[rating]), text


def _build_reviews(rng: np.random.Generator, n_target: int, users: _Users, catalog: _Catalog, ev: _Events) -> pd.DataFrame:
    g_names = [g.name for g in GROUPS]
    review_rate = _group_table("review_rate")
    # Reviews of purchases made in the window, written days later (unless after END).
    is_pur = ev.kind == 3
    p_user = ev.session_user[ev.sess[is_pur]]
    p_prod, p_ts = ev.product[is_pur], ev.ts[is_pur]
    keep = rng.random(len(p_user)) < review_rate[users.group[p_user]]
    r_ts = p_ts + (2 + rng.exponential(8, len(p_user))) * _DAY
    keep &= r_ts < _WINDOW_S
    r_user, r_prod, r_ts = p_user[keep], p_prod[keep], r_ts[keep]
    # The catalog has years of history: older reviews come from customers who signed up
    # before the window, about purchases made before it.
    n_hist = max(n_target - len(r_user), 0)
    existing = np.flatnonzero(users.first_seen < 0)
    if n_hist and len(existing):
        w = review_rate[users.group[existing]]
        h_user = rng.choice(existing, size=n_hist, p=w / w.sum())
        h_cat = _choose(rng, users.cat_weights, h_user)
        h_prod = _sample_products(rng, _product_sampler(catalog), users.group[h_user], h_cat)
        lo = np.maximum(users.first_seen[h_user], -540 * _DAY)
        h_ts = lo + rng.random(n_hist) * (-_DAY - lo)
        r_user, r_prod, r_ts = np.concatenate([r_user, h_user]), np.concatenate([r_prod, h_prod]), np.concatenate([r_ts, h_ts])
    r_ts = np.floor(r_ts).astype(np.int64)
    # One review per customer and product, oldest kept.
    order = np.lexsort((r_ts, r_prod, r_user))
    pair = r_user[order] * len(catalog.price) + r_prod[order]
    first = np.concatenate([[True], pair[1:] != pair[:-1]])
    chosen = order[first]
    chosen = chosen[np.argsort(r_ts[chosen], kind="stable")]
    r_user, r_prod, r_ts = r_user[chosen], r_prod[chosen], r_ts[chosen]
    r_group = users.group[r_user]

    z = catalog.quality[r_prod] + _group_table("rating_bias")[r_group] + rng.normal(0, 1.0, len(r_user))
    rating = 1 + np.searchsorted([-1.6, -1.27, -0.85, -0.15], z)  # J-shaped, like real review sites

    attrs = [json.loads(a) for a in catalog.frame["attributes"]]
    brands = catalog.frame["brand"].tolist()
    titles, texts = [], []
    for u_g, p, r in zip(r_group.tolist(), r_prod.tolist(), rating.tolist()):
        title, text = _review_text(rng, r, g_names[u_g], brands[p], float(catalog.price[p]), attrs[p])
        titles.append(title)
        texts.append(text)
    width = max(6, len(str(len(r_user))))
    return pd.DataFrame({
        "review_id": [f"R{i + 1:0{width}d}" for i in range(len(r_user))],
        "product_idx": r_prod,
        "user_idx": r_user,
        "rating": rating.astype(np.int32),
        "title": titles,
        "text": texts,
        "ts": (np.datetime64(START, "s") + r_ts.astype("timedelta64[s]")),
    })


# ---------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------

def _existing_rows(cur: duckdb.DuckDBPyConnection) -> dict[str, int]:
    # fetchall, not fetchone: DuckDB 2 refuses register() while a result is unfinished.
    return {t: int(cur.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]) for t in DEMO_TABLES}


def _refuse_if_not_empty(counts: dict[str, int]) -> None:
    filled = {t: n for t, n in counts.items() if n}
    if filled:
        listed = ", ".join(f"{t} ({n:,} rows)" for t, n in filled.items())
        raise InvalidRequestError(
            f"The database already holds {listed}. Build the demo into an empty database, "
            "or replace the existing data (python -m core demo --replace).",
            title="The demo store needs an empty database",
        )


def _ids(prefix: str, n: int, width: int) -> np.ndarray:
    width = max(width, len(str(n)))
    return np.array([f"{prefix}{i + 1:0{width}d}" for i in range(n)], dtype=object)


def build_demo(
    store: Store,
    *,
    seed: int = 42,
    scale: float = 1.0,
    replace: bool = False,
    progress: Callable[[float, str], None] | None = None,
) -> DemoSummary:
    """Build the seeded demo store into ``store`` in one transaction; nothing is written on failure.

    ``scale`` multiplies users, events and reviews; products grow with its square root.
    A store that already holds products, users, events, reviews or copy variants is refused
    unless ``replace`` is true, in which case those rows are deleted in the same transaction.
    """
    store.require_editor("loading the demo store")
    if not scale > 0:
        raise InvalidRequestError(f"scale must be greater than zero, got {scale}.", title="Invalid demo size")
    began = time.perf_counter()
    report = progress or (lambda fraction, message: None)
    if not replace:
        with store.cursor() as cur:
            _refuse_if_not_empty(_existing_rows(cur))  # fail before minutes of work, not after

    rng = np.random.default_rng(seed)
    report(0.0, "Building the catalog")
    catalog = _build_catalog(rng, max(_MIN_PRODUCTS, round(_PRODUCTS * scale**0.5)))
    n_users = max(len(GROUPS) * 4, round(_USERS * scale))
    report(0.1, f"Simulating {n_users:,} shoppers")
    users = _simulate_users(rng, n_users)
    ev = _simulate_events(rng, users, catalog)
    report(0.55, "Writing reviews")
    reviews = _build_reviews(rng, round(_REVIEWS * scale), users, catalog, ev)
    variants = _copy_variants_frame(catalog)

    product_ids = catalog.frame["product_id"].to_numpy(object)
    user_ids = _ids("U", n_users, 6)
    g_names = [g.name for g in GROUPS]
    ages = _choose(rng, np.array([g.ages for g in GROUPS]), users.group)
    signup = _choose(rng, np.array([g.signup for g in GROUPS]), users.group)
    opt_in = rng.random(n_users) < 0.6
    country = rng.choice(len(COUNTRIES), size=n_users, p=_COUNTRY_P)
    users_frame = pd.DataFrame({
        "user_id": user_ids,
        "first_seen": np.datetime64(START, "s") + users.first_seen.astype("timedelta64[s]"),
        "country": np.array(COUNTRIES, dtype=object)[country],
        "attributes": [
            json.dumps({"demo_group": g_names[g], "age_band": AGE_BANDS[a], "signup_channel": SIGNUP_CHANNELS[s], "email_opt_in": bool(o)})
            for g, a, s, o in zip(users.group.tolist(), ages.tolist(), signup.tolist(), opt_in.tolist())
        ],
    })

    variant_names = [variant_id(c.name, v.letter) for c in CAMPAIGNS for v in c.variants]
    s_user = ev.session_user[ev.sess]
    events_frame = pd.DataFrame({
        "user_id": pd.Categorical.from_codes(s_user, categories=user_ids),
        "ts": np.datetime64(START, "s") + ev.ts.astype("timedelta64[s]"),
        "event_name": pd.Categorical.from_codes(ev.kind, categories=list(EVENT_NAMES)),
        "product_id": pd.Categorical.from_codes(ev.product, categories=product_ids),
        "session_id": pd.Categorical.from_codes(ev.session_rank[ev.sess], categories=_ids("S", len(ev.session_user), 7)),
        "campaign": pd.Categorical.from_codes(ev.session_campaign[ev.sess], categories=[c.name for c in CAMPAIGNS]),
        "variant_id": pd.Categorical.from_codes(ev.session_variant[ev.sess], categories=variant_names),
        "device": pd.Categorical.from_codes(ev.session_device[ev.sess], categories=list(DEVICES)),
        "source": pd.Categorical.from_codes(ev.session_source[ev.sess], categories=list(SOURCES)),
        "revenue": pd.arrays.FloatingArray(np.nan_to_num(ev.revenue), np.isnan(ev.revenue)),  # NULL, not NaN
    })
    reviews["product_id"] = product_ids[reviews.pop("product_idx").to_numpy()]
    reviews["user_id"] = user_ids[reviews.pop("user_idx").to_numpy()]

    loads = (
        ("products", catalog.frame, "product_id, title, brand, category, price, currency, attributes, description, updated_at"),
        ("users", users_frame, "user_id, first_seen, country, attributes"),
        ("copy_variants", variants, "variant_id, product_id, channel, tone, segment_id, fields, model, params, scores, status, created_at"),
        ("events", events_frame, "user_id, ts, event_name, product_id, session_id, campaign, variant_id, device, source, revenue"),
        ("reviews", reviews, "review_id, product_id, user_id, rating, title, text, ts"),
    )
    with store.transaction() as cur:
        existing = _existing_rows(cur)
        if replace:
            for table in reversed(DEMO_TABLES):
                if existing[table]:
                    cur.execute(f"DELETE FROM {table}")
            # Saved segmentations name the old users; keeping them would mislabel the new ones.
            for table in ("user_segments", "segments", "segment_runs"):
                cur.execute(f"DELETE FROM {table}")
        else:
            _refuse_if_not_empty(existing)  # someone may have written since the first check
        for i, (table, frame, columns) in enumerate(loads):
            report(0.6 + 0.4 * i / len(loads), f"Loading {table}")
            view = f"demo_{table}"
            cur.register(view, frame)
            try:
                cur.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {view}")
            finally:
                cur.unregister(view)
    summary = DemoSummary(
        products=len(catalog.frame), users=n_users, events=len(events_frame), reviews=len(reviews),
        variants=len(variants), seconds=round(time.perf_counter() - began, 3),
    )
    report(1.0, f"Demo store ready: {summary.events:,} events from {summary.users:,} shoppers")
    return summary
