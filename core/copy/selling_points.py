"""A product's selling points, from its own data only, ranked the way a marketer leads.

Concrete numbers that say what the product does, holds or lasts ("Holds 750 ml", "Up to 8 hours
per charge") and true benefit flags (waterproof, leakproof, dishwasher safe) come first; then
what the description says, numbers and benefits before plain features; then materials and
certifications; colour last. Price is never a selling point, nor is catalog plumbing (links, ids,
images) or the product's title.

Every point is checked with the same claim check and gates as generated copy: a point the
planner puts into an ad must never be what makes the ad unfaithful or unusable. A point that
fails is dropped (its headline alone failing leaves ``headline`` None).

``carries`` is the benchmark's side: whether an asset says a point, numbers compared normalised
("10000" == "10,000") and words by a simple stem ("pocket" == "pockets").
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from core.copy.channels import ChannelSpec
from core.copy.facts import SMALL_PRINT, WEB_ADDRESS, ProductFacts, attribute_key, instruction_like, is_plumbing, iter_values
from core.copy.gates import asset_gates, asset_key
from core.copy.limits import (
    _BOILERPLATE,
    DANGLING,
    calm_capitals,
    MAX_FACT_CHARS,
    clean_text,
    field_problems,
    flag_phrase,
    sentences,
    split_unit,
    tidy_end,
    title_case,
    trim_to_limit,
)
from core.copy.scoring import _SPEC_DUMP, MATERIALS, MAX_KEY_ATTRIBUTE_CHARS, Evidence, banned_hits, claims_in, norm_number

__all__ = ["SellingPoint", "carries", "points_carried", "selling_points"]

TEXT_MAX = 90  # a Google RSA description: the longest asset every channel can take as is
HEADLINE_MAX = 30  # a Google RSA headline


@dataclass(frozen=True)
class SellingPoint:
    text: str  # a short sentence, grounded in the data, <= 90 chars, ends with '.'
    headline: str | None  # the same point as a title-cased phrase <= 30 chars; None when it cannot fit
    source: str  # attribute key it came from, or "description"
    kind: str  # number | benefit | feature | material | certification | color | other
    weight: float  # rank score, higher is better
    terms: tuple[str, ...]  # what an asset must contain to carry it: numbers as in the data, content words; lower case
    # Every usable way to say the point in a headline, ``headline`` first, then the bullet's own label
    # ("Adjustable Straps" for "Comes with no-slip grips…"): an RSA tests phrasings against each other.
    headlines: tuple[str, ...] = ()


# --- carrying a point ----------------------------------------------------------------------

_NUM = re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?")
_WORD = re.compile(r"[^\W_]+")  # letters and digits, accents included ("pokémon")


def _is_number(term: str) -> bool:
    return bool(re.fullmatch(r"\d[\d,]*(?:\.\d+)?", term))


def _norm_term_number(term: str) -> str:
    whole, _, frac = term.partition(".")
    return norm_number(whole, frac or None)


def _stem(word: str) -> str:
    """A crude stem, enough for ad copy: 'pockets' = 'pocket', 'batteries' = 'battery', 'charging' = 'charge'."""
    w = word.lower()
    if len(w) > 4 and w.endswith("ies"):
        w = w[:-3] + "y"
    elif len(w) > 5 and w.endswith("ing"):
        w = w[:-3]
    elif len(w) > 4 and w.endswith("ed"):
        w = w[:-2]
    elif len(w) > 4 and w.endswith("es") and w[-3] in "sxz":
        w = w[:-2]
    elif len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
        w = w[:-1]
    return w[:-1] if len(w) > 4 and w.endswith("e") else w


def _needed(count: int) -> int:
    """'Most' of ``count`` terms: 1 of 1, 2 of 2, 2 of 3, 3 of 4, 3 of 5."""
    return max(1, math.ceil(count * 0.6))


def carries(text: str, point: SellingPoint) -> bool:
    """Whether ``text`` says ``point``: half its numbers (at least one) when it has any, else most of its words.

    A number decides alone because it is the point ("750 ml", "20,000 mm"): an asset with it says the
    point however it words the rest. Words are compared by stem, case aside ("Pockets" carries "pocket").
    """
    numbers = [_norm_term_number(t) for t in point.terms if _is_number(t)]
    if numbers:
        found = {norm_number(m.group(1), m.group(2)) for m in _NUM.finditer(str(text))}
        return sum(n in found for n in dict.fromkeys(numbers)) >= math.ceil(len(set(numbers)) / 2)
    words = [t for t in point.terms if not _is_number(t)]
    if not words:
        return False
    have = {_stem(w) for w in _WORD.findall(str(text).lower())}
    return sum(_stem(w) in have for w in words) >= _needed(len(words))


def points_carried(fields: Mapping[str, str], points: Sequence[SellingPoint]) -> list[SellingPoint]:
    """The points any field carries, in rank order."""
    values = [str(v) for v in fields.values() if v]
    return [p for p in points if any(carries(v, p) for v in values)]


# --- phrasing attributes -------------------------------------------------------------------

# Numbers with units, by the attribute's name without its unit (split_unit): (text, headline, weight).
# {n} is the number with its unit ("750 ml"), {v} the number alone. The weight says how much the
# number tells a shopper what the product does for them; sizes and weights tell less than capacity.
_NUMBER_PHRASES: dict[str, tuple[str, str, float]] = {
    "capacity": ("Holds {n}.", "Holds {n}", 3.5),
    "waterproof rating": ("{n} waterproof rating.", "{n} Waterproof Rating", 3.7),
    "spf": ("SPF {v} protection.", "SPF {v} Protection", 3.7),
    "lumens": ("{v} lumens of light.", "{v} Lumens of Light", 3.6),
    "temp rating": ("Rated to {n}.", "Rated to {n}", 3.5),
    "temperature rating": ("Rated to {n}.", "Rated to {n}", 3.5),
    "comfort rating": ("Rated to {n}.", "Rated to {n}", 3.5),
    "oven safe": ("Oven safe to {n}.", "Oven Safe to {n}", 3.2),
    "wattage": ("Delivers up to {n}.", "Up to {n} Output", 3.3),
    "output": ("Delivers up to {n}.", "Up to {n} Output", 3.3),
    "power": ("Delivers up to {n}.", "Up to {n} Output", 3.2),
    "drop rating": ("Drop-tested from {n}.", "Drop-Tested from {n}", 3.3),
    "sleeps": ("Sleeps {v} {people}.", "Sleeps {v} {People}", 3.2),
    "blade length": ("{n} blade.", "{n} Blade", 2.9),
    "length": ("{n} long.", "{n} Long", 2.9),
    "collapsed length": ("Collapses to {n}.", "Collapses to {n}", 2.9),
    "diameter": ("Measures {n} across.", "{n} Diameter", 2.7),
    "pieces": ("Set of {v}.", "{v}-Piece Set", 2.8),
    "pack size": ("Pack of {v}.", "Pack of {v}", 2.8),
    "count": ("Pack of {v}.", "Pack of {v}", 2.8),
    "lug depth": ("{n} lugs.", "{n} Lugs", 2.8),
    "drop": ("{n} heel-to-toe drop.", "{n} Heel-to-Toe Drop", 2.5),
    "fabric weight": ("{n} fabric.", "{n} Fabric", 2.4),
    "volume": ("{n} size.", "{n} Size", 2.0),  # how much is in the jar: a fact, rarely the reason to buy
    "weight": ("Weighs {n}.", "Weighs {n}", 2.4),
    "pages": ("{v} pages.", "{v} Pages", 2.7),
}
# Sizes that name the product well in a headline: "30 cm Cast Iron Skillet", "21 cm Chef's Knife".
_SIZED_KINDS = frozenset({"blade length", "diameter", "length", "capacity"})
_BATTERY_WORDS = ("battery", "runtime", "run time", "playtime", "play time", "play", "talk time")
_LIGHT = {"g": 300, "kg": 0.3, "oz": 10}  # lighter than this, weight is a reason to buy (shoes, headlamps)

# Strings, by attribute name: (text, headline, kind, weight). {v} as written, {V} title-cased.
_STRING_PHRASES: dict[str, tuple[str, str, str, float]] = {
    "water resistance": ("Rated {v} for water resistance.", "{v} Water Resistant", "benefit", 3.1),
    "compatible with": ("Fits the {v}.", "Fits the {v}", "feature", 2.9),
    "key ingredient": ("Made with {v}.", "Made with {V}", "feature", 2.8),
    "skin type": ("Suits {v} skin.", "For {V} Skin", "feature", 2.1),
    "cushioning": ("{v} cushioning.", "{V} Cushioning", "feature", 2.2),
    "connector": ("{v} connector.", "{v} Connector", "feature", 2.0),
    "fit": ("{v} fit.", "{V} Fit", "feature", 1.6),
    "material": ("Made of {v}.", "Made of {V}", "material", 1.5),
    "materials": ("Made of {v}.", "Made of {V}", "material", 1.5),
    "fabric": ("Made of {v}.", "Made of {V}", "material", 1.5),
    "size range": ("Sizes {v}.", "Sizes {v}", "other", 0.8),
    "sizes": ("Sizes {v}.", "Sizes {v}", "other", 0.8),
    "dimensions": ("Measures {v}{unit}.", "Measures {v}{unit}", "other", 1.0),
    "product dimensions": ("Measures {v}.", "Measures {v}", "other", 1.0),
    "color": ("Comes in {v}.", "Comes in {V}", "color", 0.3),
    "colour": ("Comes in {v}.", "Comes in {V}", "color", 0.3),
}
# True flags by how much they do for the shopper; others get _FLAG_DEFAULT.
_FLAG_WEIGHTS = {
    "waterproof": 3.4, "insulated": 3.3, "leakproof": 3.2, "leak_proof": 3.2, "noise_cancelling": 3.3,
    "rechargeable": 3.1, "carbon_plate": 3.0, "dishwasher_safe": 2.8, "pfas_free": 2.8, "bpa_free": 2.7,
    "pre_seasoned": 2.8, "packable": 2.7, "oven_safe": 2.7, "microwave_safe": 2.6, "machine_washable": 2.5,
    "breathable": 2.6, "gan": 2.4, "organic": 2.4, "vegan": 2.3, "fragrance_free": 2.3,
}
_FLAG_DEFAULT = 2.5
_FLAG_SPELLING = {"gan": "GaN"}  # flag_phrase gives lower case; these are names
# Attributes that are never a selling point: the product's name and kind, and what the catalog
# keeps about it rather than what it is (price lives in its own column, but some exports repeat it).
_SKIP_KEYS = frozenset({"type", "title", "name", "description", "category", "brand", "price", "list_price", "sale_price",
                        "currency", "rating", "reviews", "review_count", "shipping_weight", "is_amazon_seller",
                        # Marketplace columns that hold prose or specs, not one fact (read as a description instead).
                        "technical_details", "product_specification", "product_details", "specifications", "details",
                        "features", "about", "bullet_points", "highlights"})
_CERT_KEYS = ("certifications", "certification", "certs")


def _fmt(value: float | int) -> str:
    """750 -> '750', 20000 -> '20,000' (ads group big numbers), 11.5 -> '11.5', -4.0 -> '-4'."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10000 else str(value)
    return f"{value:g}"


def _raw(value: float | int) -> str:
    """The number as the data writes it, for ``terms``: 20000.0 -> '20000'."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(abs(value)) if isinstance(value, int) else f"{abs(value):g}"


def _with_unit(value: float | int, unit: str) -> str:
    text = _fmt(value)
    one = abs(value) == 1
    if unit == "L":
        return f"{text} {'litre' if one else 'litres'}"
    if unit == "hours":
        return f"{text} {'hour' if one else 'hours'}"
    if unit == "in":
        return f"{text} {'inch' if one else 'inches'}"  # the claim check reads a bare 'in' as a preposition
    return f"{text} {unit}" if unit else text


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


_MINOR_WORDS = frozenset("a an and or of for with in on to the by at from per as via into".split())


def _title(text: str) -> str:
    """title_case, also for words it leaves alone: "chef's knife" -> "Chef's Knife", "sing-along" -> "Sing-along"."""
    words = title_case(text).split(" ")
    return " ".join(w[:1].upper() + w[1:] if len(w) > 2 and w.islower() and w not in _MINOR_WORDS | {"gsm"} else w
                    for w in words)  # "mAh", "iPhone", "gsm" keep their case


def _words_of(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(_WORD.findall(str(text).lower())))


# What each attribute phrasing gives: (text, headline candidates best first, kind, weight, terms).
Made = tuple[str, tuple[str, ...], str, float, tuple[str, ...]]


def _number_point(key: str, value: float | int, kind_name: str) -> Made | None:
    name, unit = split_unit(key)
    if value == 0 and "°" not in unit:
        return None  # "0 lumens", "0 pockets": nothing to sell (0 °C is a rating)
    n = _with_unit(value, unit)
    terms = (_raw(value), *(w for w in _words_of(name) if len(w) > 2))
    if name.startswith("warranty"):
        period = "month" if "month" in name else "year"
        return f"{_fmt(value)}-{period} warranty.", (f"{_fmt(value)}-{period.title()} Warranty",), "number", 3.4, terms
    if unit == "hours" and any(w in name for w in _BATTERY_WORDS):
        hours = _with_unit(value, "hours")
        return (f"Up to {hours} per charge.", (f"Up to {_title(hours)} per Charge", f"{_fmt(value)}-Hour Battery"),
                "number", 3.7, terms)
    phrase = _NUMBER_PHRASES.get(name)
    if name == "capacity" and unit == "mAh":
        phrase = ("{n} capacity.", "{n} Capacity", 3.5)  # a battery stores charge; "holds 20,000 mAh" reads oddly
    if phrase is None and name.endswith(" rating") and unit:
        phrase = ("Rated to {n}.", "Rated to {n}", 3.3)
    if phrase is None:
        # "160 pages", "100 gsm paper", "40 hours burn time": the number first reads as copy.
        if not name or len(name.split()) > 3:
            return None
        text = f"{n} {name}"
        return f"{_cap(text)}.", (_title(text),), "number", 2.6, terms
    text_tpl, head_tpl, weight = phrase
    if name == "weight" and unit in _LIGHT and abs(value) < _LIGHT[unit]:
        weight = 2.9
    people = "person" if value == 1 else "people"
    fill = {"n": n, "v": _fmt(value), "people": people, "People": people.title()}
    heads = [_title(head_tpl.format(**fill))]
    if name in _SIZED_KINDS and kind_name:
        heads.insert(0, _title(f"{n} {kind_name}"))  # "30 cm Cast Iron Skillet": the size names the product
    return _cap(text_tpl.format(**fill)), tuple(heads), "number", weight, terms


def _string_point(key: str, value: str, kind_name: str) -> Made | None:
    name, unit = split_unit(key)
    value = clean_text(value.split(";")[0]).rstrip(". ")  # "6 x 2 x 2 inches ; 2.88 ounces": two facts, the first kept
    if not value or len(value) > 60:
        return None
    phrase = _STRING_PHRASES.get(name)
    terms = _text_numbers(value)[:2] + tuple(w for w in _words_of(value)
                                             if len(w) > 1 and not w.isdigit() and w not in _MINOR_WORDS)
    if phrase is None:
        # "Matte finish", "Lavender scent": a short value before its name reads as copy; a value
        # that is a sentence or a name of four words does not, and stays for the model to use.
        if len(value.split()) > 3 or not name or len(name.split()) > 2:
            return None
        text = f"{value} {name}"
        return f"{_cap(text)}.", (_title(text),), "other", 1.0, terms
    text_tpl, head_tpl, kind, weight = phrase
    fill = {"v": value, "V": _title(value), "unit": f" {unit}" if unit else ""}
    heads = [_cap(head_tpl.format(**fill))]
    if kind == "material" and kind_name and value.lower() not in kind_name:
        # "Stainless Steel Water Bottle" says more than "Made of Stainless Steel" in the same room.
        heads.insert(0, _title(f"{value} {kind_name}"))
    return _cap(text_tpl.format(**fill)), tuple(heads), kind, weight, terms


def _cert_point(value: Any) -> Made | None:
    items = [clean_text(str(v)) for v in (value if isinstance(value, (list, tuple)) else [value])]
    # "Fair Trade Certified" already says it; "LFGB" needs the word.
    named = [re.sub(r"\s+certifi(?:ed|cation)$", "", i, flags=re.IGNORECASE) for i in items if i]
    if not named:
        return None
    joined = _join(named)
    # A certificate is named by its first word ("FDA food-contact", "Leaping Bunny" -> "leaping"):
    # an asset that names each of them carries the point.
    terms = tuple(dict.fromkeys(_words_of(n)[0] for n in named if _words_of(n)))
    heads = [f"{joined} Certified"]
    short = [n.split()[0] for n in named]
    if all(w.isupper() for w in short) and short != named:
        heads.append(f"{_join(short)} Certified")  # "LFGB and FDA Certified" when the full names do not fit
    return f"{joined} certified.", tuple(heads), "certification", 1.4, terms


def _join(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _flag_point(key: str, kind_name: str) -> Made:
    k = attribute_key(key)
    phrase = _FLAG_SPELLING.get(k, flag_phrase(k))
    text = f"{phrase} {kind_name}" if kind_name else phrase
    heads = (_cap(_title(text)), _cap(_title(phrase)))
    return f"{_cap(text)}.", heads, "benefit", _FLAG_WEIGHTS.get(k, _FLAG_DEFAULT), _words_of(phrase)


def _attributes(facts: ProductFacts) -> dict[str, Any]:
    """Attributes that could be a selling point: set, not false, not plumbing, one fact long.

    Like scoring.key_attributes, except that 0 is a value here (a sleeping bag rated to 0 °C).
    """
    out = {}
    for key, value in facts.attributes.items():
        if value is None or value is False or (isinstance(value, (str, list, tuple, dict)) and not value):
            continue
        if is_plumbing(key, value):
            continue
        items = list(iter_values(value))
        if sum(len(i) for i in items) > MAX_KEY_ATTRIBUTE_CHARS or any(_SPEC_DUMP.search(i) for i in items):
            continue
        out[key] = value
    return out


def _attribute_points(facts: ProductFacts) -> list[tuple[str, tuple[str, ...], str, str, float, tuple[str, ...]]]:
    """(text, headline candidates, source, kind, weight, terms) for each attribute worth saying."""
    kind_name = (facts.kind or "").strip().lower()
    if len(kind_name) > 24 or "&" in kind_name:
        kind_name = ""  # "stuffed animals & teddy bears" names a shelf, not the product
    out = []
    for key, value in _attributes(facts).items():
        k = attribute_key(key)
        if k in _SKIP_KEYS or k.endswith("price"):
            continue
        made: Made | None
        if k.endswith(_CERT_KEYS):
            made = _cert_point(value)
        elif value is True:
            made = _flag_point(key, kind_name)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            made = _number_point(key, value, kind_name)
        elif isinstance(value, str):
            made = _string_point(key, value, kind_name)
        elif isinstance(value, (list, tuple)) and split_unit(key)[0] in ("color", "colour", "colors", "colours"):
            made = _string_point("color", _join([str(v) for v in value]), kind_name)
        else:
            made = None  # other lists and nested values: no one sentence says them well
        if made:
            text, heads, kind, weight, terms = made
            out.append((text, heads, key, kind, weight, terms))
    return out


# --- the description -----------------------------------------------------------------------

# "RESPONSIVE FLEX: The Crossbow…", "HIGH OUTPUT BLOWER – This table…": Amazon's bullet label.
_CAPS_LABEL = re.compile(r"^([A-Z0-9][A-Z0-9 &'’/,.+()#“”\"-]{1,60}?)\s*(?::|\s[-–—]\s|[-–—]\s)\s*(?=\S)")
# "The Right Fit: …", "Accessories included: …": a short label in sentence case, with a colon only.
_SHORT_LABEL = re.compile(r"^([A-Z][\w'’&-]*(?: [\w'’&-]+){0,3}):\s+(?=\S)")
_AGE = re.compile(r"\b(?:ages?\b|years? old|months? and up|years? and (?:up|above|older)|\d+\s*\+|recommended for|"
                  r"intended for)", re.IGNORECASE)
_BENEFIT = re.compile(
    r"\b(?:keeps?|holds?|lasts?|protects?|prevents?|reduces?|helps?|lets?|allows?|ensures?|improves?|encourages?|"
    r"develops?|stays?|saves?|charges?|fits?|supports?|resists?|repels?|absorbs?|soothes?|cleans?|removes?|"
    r"blocks?|boosts?|delivers?|stores?|organi[sz]es?|grips?|stimulates?|teaches?|introduces?|plays?|doubles as|"
    r"durable|sturdy|lightweight|portable|easy|comfortable|soft|safe|strong|long-lasting|waterproof)\b",
    re.IGNORECASE,
)
# A number with what it counts or measures; units as the claim check reads them, plus counts.
# Letters alone are case-sensitive ("4M" is a brand, "3D" a shape); words are not (Amazon shouts "750 ML").
_UNIT = (r"(?:%|°\s?[CF]?|″|[mghLWV]|(?i:mAh|ml|litres?|liters?|kg|oz|lbs?|pounds?|mm|cm|inch(?:es)?|ft|feet|hrs?|"
         r"hours?|minutes?|days?|lumens?|gsm|pcs|pieces?|pack|count|ct))")
_MEASURE = re.compile(r"(?<![A-Za-z])\d\s?-?" + _UNIT + r"(?![A-Za-z])|(?<![A-Za-z])\d\s(?:[\w-]+\s){0,2}"
                      r"(?i:songs?|colou?rs?|channels?|cards?|sounds?|modes?|settings?|speeds?|levels?|ports?|pockets?|"
                      r"compartments?|players?|designs?)\b")
_MATERIAL_RE = re.compile(r"\b(?:" + "|".join(re.escape(m) for m in MATERIALS) + r")\b", re.IGNORECASE)
# Words that only frame a measurement: without other words, a sentence of them is a size, not a reason.
_MEASURE_WORDS = re.compile(r"\b(?:item|product|it|measures?|measuring|approximately|approx|about|size|sized|dimensions?|"
                            r"high|wide|long|tall|deep|thick|height|width|length|depth|inch(?:es)?|cm|mm|ft|feet|x)\b",
                            re.IGNORECASE)
# A sentence that opens with these is the first half of one ("Whether you prefer 300 … pieces").
_SUBORDINATE = re.compile(r"^(?:whether|if|when|although|though|while|because|as|since|once|unless)\b", re.IGNORECASE)
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b\ufeff]")
# Inches written as a quote mark (10"): the quote would read as an open quotation and be cut off.
_INCH_MARK = re.compile(r"(?<=\d)\s?(?:\"|''|”)")
# Words that say nothing about the product on their own: a point's terms are its other words.
_GENERIC = frozenset("""
a an and are as at be by for from has have in is it its of on or our so that the this to with your you we will can
all more new now get one two just also than very these those them they their each every any into over out up down
about after before such other while which when where what who how make makes made making use used using great good
perfect ideal fun quality product products item items feature features featuring include includes including
design designed style enjoy sure well like look looks set sets comes come way ready provide provides
""".split())


def _strip_labels(bullet: str) -> tuple[str, str]:
    """(label, the rest) of one bullet: up to two labels ("DIMENSIONS - Table Dimensions: …")."""
    label = ""
    for _ in range(2):
        m = _CAPS_LABEL.match(bullet)
        if m and sum(c.isalpha() for c in m.group(1)) >= 3 and not any(c.islower() for c in m.group(1)):
            label = label or m.group(1).strip(" -–—:“”\"")
            bullet = bullet[m.end():].strip()
            continue
        m = _SHORT_LABEL.match(bullet)
        if m:
            label = label or m.group(1).strip()
            bullet = bullet[m.end():].strip()
            continue
        break
    return label, bullet


# Words that open a new phrase: a sentence cut before one still reads whole ("… blade, | providing …").
# Not: articles and possessives (a phrase's start, not a new one), 'of' and 'to' ("current | of air",
# "easy | to grip"), 'yet' ("powerful, | yet quiet airflow"), verbs; 'and' is judged on its own.
_OPENERS = (DANGLING - frozenset("""yet of to and or nor a an the this these those its their your our his her my very more
    most less no not such each every both either neither is are was were be been being has have had""".split())) | {
    "which", "who", "through", "across", "during", "after", "before", "within", "throughout", "thanks", "until"}


# Words that lean on what follows them: "… gameplay, even | during use" is not finished at "even".
_LEANING = frozenset("even just only also always still all almost nearly up much far well".split())


def _cut_reads_whole(kept: str, rest: str) -> bool:
    """Whether cutting a sentence into ``kept`` | ``rest`` leaves ``kept`` a finished thought.

    Before 'with', 'for', 'which', 'providing' the sentence starts a new phrase; before '1-star
    rated balls' or 'yet quiet airflow' it was still naming its thing ("8 regulation size, …").
    """
    rest = rest.strip()
    if not rest or kept.rstrip()[-1:] in ".!?;":
        return True
    word = rest.split(" ", 1)[0].strip(",;:").lower()
    last = kept.rstrip(" ,;:").rsplit(" ", 1)[-1].lower()
    if last in _LEANING or last in _VERBS:
        return False
    if word in _OPENERS:
        return True
    if last.endswith("ed") and kept.rstrip(" ,").rsplit(" ", 2)[-2:-1] in (["is"], ["are"], ["was"], ["were"], ["be"]):
        return False  # "… puzzles are crafted | from …": the passive still needs its phrase
    if word in ("and", "or", "&"):
        # "4 rackets | and 8 balls" joins two things; "white | and orange balls" is still naming one, and
        # "the lips, tongue, | and cheek" is a list before its last item.
        if kept.rstrip().endswith(","):
            return len(kept.rstrip(" ,").rsplit(",", 1)[-1].split()) > 2 if "," in kept.rstrip(" ,") else True
        return last.endswith("s") and not last.endswith(("ss", "us", "ous"))
    if len(word) > 4 and word.endswith("ing") and kept.rstrip().endswith(","):
        # "uniquely-shaped, interlocking, …" is a list of adjectives, not a new phrase.
        return not (last.endswith(("ed", "ly")) or "-" in last)
    return False


def _shorten(sentence: str) -> str | None:
    """One sentence within a description, cut where it pauses; None when no cut leaves a whole thought.

    trim_to_limit's cut is kept when it falls before a new phrase; otherwise the longest cut that
    does. A cut inside a list ("… 45 sing-along songs, melodies, sound effects") keeps the list's
    first item ("… 45 sing-along songs"). A word cut inside a phrase ("8 regulation size") is never kept.
    """
    room = TEXT_MAX - 1  # the period
    if len(sentence) <= room:
        return tidy_end(sentence) or None
    cut = trim_to_limit(sentence, room)
    if cut and sentence.startswith(cut) and len(cut) >= 20 and _cut_reads_whole(cut, sentence[len(cut):]):
        return cut
    for i in sorted((i for i in range(20, room + 1) if sentence[i] == " "), reverse=True):
        kept, rest = sentence[:i], sentence[i:]
        if _cut_reads_whole(kept, rest):
            return tidy_end(kept) or None
        # A list: "songs, melodies, sound effects and phrases" -> "songs".
        if kept.endswith(",") and len(rest.split(",", 1)[0].split()) <= 3 and "," in rest:
            head = kept.rstrip(",")
            last = head.rsplit(" ", 1)[-1].lower()
            if len(head) >= 20 and last.endswith("s") and not last.endswith(("ss", "ed")) and "-" not in last:
                return tidy_end(head) or None
    return None


def _compress(bullet: str) -> tuple[str, str] | None:
    """(label, one sentence <= 90 chars ending in '.') from a description bullet; None when nothing usable is left."""
    text = _INCH_MARK.sub("″", _CONTROL_CHARS.sub("", clean_text(bullet)))
    label, rest = _strip_labels(text)
    parts = sentences(rest)
    if not parts:
        return None
    first = _shorten(parts[0].rstrip().rstrip("!?.…").rstrip())
    first = tidy_end(first.rstrip("!?…")) if first else ""
    if not first:
        return None
    return label, _cap(first) + ("" if first.endswith(".") else ".")


def _description_bullets(facts: ProductFacts) -> list[str]:
    """The description's bullets ('|'-separated in marketplace exports), else long prose attributes."""
    text = facts.description or ""
    if not text.strip():
        # Exports without a description often keep the same bullets in a prose column ("Technical Details").
        text = " | ".join(str(v) for k, v in facts.attributes.items()
                          if isinstance(v, str) and len(v) > MAX_FACT_CHARS and not _SPEC_DUMP.search(v)
                          and not is_plumbing(k, v))
    bullets = []
    for part in re.split(r"\s*\|\s*|\n+", text):
        part = part.strip()
        if re.search(r"\d\. \d", part):
            continue  # "plates 10. 5 inch": a decimal broken by the export; no sentence of it is sure
        if part:
            # Prose (the demo's descriptions) is a bullet per sentence; a labelled bullet keeps its first.
            bullets.extend(sentences(part) if not _CAPS_LABEL.match(part) else [part])
    return bullets


def _text_numbers(text: str) -> tuple[str, ...]:
    """Numbers in a sentence as written, without those that are part of a name ("4M", "3D", "X-15")."""
    out = []
    for m in _NUM.finditer(text):
        unit = _NUMBER_UNIT.match(text[m.start():])
        if text[m.start() - 1:m.start()].isalpha() or (unit and text[m.start() + unit.end():][:1].isalpha()):
            continue
        out.append(m.group(0))
    return tuple(dict.fromkeys(out))


def _content_terms(text: str, skip: frozenset[str], most: int = 3) -> tuple[str, ...]:
    words = [w for w in _words_of(text) if len(w) > 2 and not w.isdigit() and w not in _GENERIC and w not in skip]
    return tuple(words[:most])


def _description_points(facts: ProductFacts) -> list[tuple[str, str, str, float, tuple[str, ...], str]]:
    """(text, source, kind, weight, terms, label) for each description bullet worth saying."""
    title_key = asset_key(facts.title or "")
    # The product's own name says nothing about what it does: its words are not a point's terms.
    skip = frozenset(_words_of(f"{facts.title} {facts.brand or ''} {facts.kind or ''}"))
    out = []
    for index, bullet in enumerate(_description_bullets(facts)):
        # "… in a durable travel size tin; Brands may vary": the small print goes, the rest is a point.
        clauses = re.split(r"\s*;\s*", bullet)
        bullet = "; ".join(c for c in clauses if not SMALL_PRINT.search(c)) or bullet
        if (_BOILERPLATE.search(bullet) or SMALL_PRINT.search(bullet) or instruction_like(bullet)
                or WEB_ADDRESS.search(bullet) or bullet.rstrip().endswith(":")):  # "The tin contains:" leads into others
            continue
        made = _compress(bullet)
        if made is None:
            continue
        label, text = made
        key = asset_key(text)
        numbers = _text_numbers(text)
        has_number = bool(numbers)
        if (len(text) < (8 if has_number else 16) or not key or key == title_key
                or (len(title_key) > 12 and title_key in key) or _SUBORDINATE.match(text)):
            continue  # too short, the title again, or half a sentence ("Whether you prefer 300 … pieces")
        # Its first two numbers: "stands 24.5 cm/9.65 inches tall in 1/8 scale" is carried by "24.5 cm".
        terms = numbers[:2] + _content_terms(text, skip)
        if not terms:
            continue
        measured, benefit, age = bool(_MEASURE.search(text)), bool(_BENEFIT.search(text)), bool(_AGE.search(text))
        weight = 1.4 + (0.3 if has_number else 0) + (0.7 if measured else 0) + (0.4 if benefit else 0)
        weight -= min(index, 10) * 0.04  # sellers put their best bullets first
        if age:
            weight -= 0.8  # who it is for, not what it does
        if len(text) < 25:
            weight -= 0.6  # "6 bracelets." is a count, not yet a reason
        spec_only = measured and not _content_terms(_MEASURE_WORDS.sub(" ", text), skip)
        if spec_only:
            weight = min(weight, 1.5)  # "5.1″ high.", "Measures 8' x 6.5″.": a size, told without what it is for
            kind = "other"
        elif measured and not age:
            kind = "number"
        elif benefit:
            kind = "benefit"
        elif _MATERIAL_RE.search(text):
            kind = "material"
        elif has_number and not age:
            kind = "number"
        else:
            kind = "feature"
        out.append((text, "description", kind, round(weight, 3), terms, label))
    return out


# --- headlines for description points ---------------------------------------------------

_CHUNK_STOP = re.compile(r"[,;:.!?()|/]\s|[,;:!?()|]|\s[-–—]\s")
_LEADS_TWO = ("more than", "up to", "as many as")
_LEADS_ONE = ("holds", "stands", "measures", "plays", "includes", "lasts", "offers", "over", "delivers", "features")
_SIZE_WORDS = ("tall", "long", "wide", "high", "deep", "thick")
_HEDGES = ("approximately", "about", "nearly", "almost", "over")
_NUMBER_UNIT = re.compile(r"^(\d[\d,]*(?:\.\d+)?)(?:\s?(" + _UNIT + r")(?![A-Za-z])|-([A-Za-z]+))?")


def _lead(before: str) -> tuple[list[str], str]:
    """What goes before a number in its headline: words ("More Than", "Stands Approximately", "2 to") and a
    range start written onto it ("2-" of "2-6 players")."""
    span = re.search(r"\d[\d.,]*\s?(?:to|-|–)\s?$", before)
    if span:
        return ([span.group(0).rstrip()], "") if span.group(0).endswith(" ") else ([], span.group(0).replace(" ", ""))
    words = before.split()
    hedge = words[-1:] if words and words[-1].lower() in _HEDGES else []
    words = words[: len(words) - len(hedge)]
    if len(words) >= 2 and " ".join(words[-2:]).lower() in _LEADS_TWO:
        return words[-2:] + hedge, ""
    if words and words[-1].lower() in _LEADS_ONE:
        return words[-1:] + hedge, ""
    return [], ""


def _number_chunk(text: str) -> str | None:
    """The number and what it counts, as a headline.

    "… plays more than 45 sing-along songs, melodies" -> "More Than 45 Sing-along Songs".
    """
    for m in _NUM.finditer(text):
        clause_start = max((s.end() for s in _CHUNK_STOP.finditer(text, 0, m.start())), default=0)
        clause_end = next((s.start() for s in _CHUNK_STOP.finditer(text, m.end())), len(text))
        before = text[clause_start:m.start()].split()
        rest = text[m.start():clause_end].rstrip(". ")
        if _AGE.search(text[clause_start:clause_end]):
            continue  # "for 6 years and above": who, not what
        unit = _NUMBER_UNIT.match(rest)
        if not unit or rest[unit.end():unit.end() + 1].isalpha():
            continue  # "4M", "3D": a name, not a count
        if re.match(r"\s?(?:-|–|to )\s?\d", rest[unit.end():]):
            continue  # the start of a range: said with its end ("2-6 players")
        after = rest[unit.end():].split()
        lead, joined = _lead(text[clause_start:m.start()])
        if unit.group(2) or unit.group(3):  # "24.5 cm", "10″", "2-Pack": with a verb, a size word or what it sizes
            named = []
            for w in after[:3]:
                if w.lower() in DANGLING or w.lower() in _VERBS or not re.fullmatch(r"[A-Za-z][A-Za-z'’-]+", w):
                    break
                named.append(w)
                if w.lower() in _SIZE_WORDS:
                    break
            # Only what ends where the phrase ends: "24″ diameter dart board", not "1-star rated table | tennis".
            while named and len(after) > len(named) and not (
                    after[len(named)].lower() in DANGLING or after[len(named)].lower() in _VERBS
                    or named[-1].lower() in _SIZE_WORDS):
                named.pop()
            if not lead and not named:
                continue
            words = [unit.group(0)] + named
        else:
            # What it counts: up to four words, ending on a plural ("45 sing-along songs", "4 passenger figurines").
            ends = [i for i, w in enumerate(after[:4]) if len(w) > 3 and w.lower().endswith("s")
                    and not w.lower().endswith(("ss", "us", "is")) and w.lower() not in DANGLING]
            stops = [i for i, w in enumerate(after[:4]) if w.lower() in DANGLING and w.lower() not in ("and", "&")]
            ends = [i for i in ends if not any(s < i for s in stops)]
            if not ends:
                continue
            words = [unit.group(0)] + after[: ends[-1] + 1]
        words[0] = joined + words[0]
        phrase = " ".join(lead + words)
        if len(phrase) > HEADLINE_MAX and lead and not joined and not lead[0][:1].isdigit():
            phrase = " ".join(words)  # "45 Sing-along Songs" when "More Than" does not fit
        if len(phrase) <= HEADLINE_MAX:
            return _cap(_title(phrase))
    return None


_VERBS = frozenset("""is are was has have features includes offers provides come comes makes lets allows helps gives stands
    measures holds fits weighs creates allows enables keeps ensures brings adds uses make let allow help give keep ensure
    provide offer include feature bring add use""".split())
# Where a headline may stop inside a longer sentence: before a word that opens a new phrase.
_HEADLINE_BREAKS = frozenset("with for to that which in on from while so but as when where using".split())
# Verbs a bullet's subject comes before ("Three new scenarios | allow you to relive…"), beyond _VERBS.
_SUBJECT_VERBS = _VERBS | frozenset("""contains contain encourage encourages sits wears plays lets gets grows turns
    keeps stores protects supports lights glows spins rolls moves attaches connects transforms converts""".split())
# Words that say what a product comes with: the phrase after them is a headline ("… contains | two exterior side pockets").
_HAS = re.compile(r"\b(?:features?|includes?|contains?|comes (?:complete )?with|boasts?|has|have)\s+(?:a |an |the )?", re.I)
_DETERMINERS = frozenset("a an the this these that those our its your their his her my each every".split())
_NUMBER_WORDS = "two three four five six seven eight nine ten eleven twelve fifteen twenty fifty hundred".split()
_COUNTED = re.compile(r"(?:\d[\d,]*|" + "|".join(_NUMBER_WORDS) + r")\s+[A-Za-z]", re.I)  # "eight new boons", "55 cards"
# Words before "of" that count, hold or frame what follows ("Set of 4", "Pair of Socks", "Blend of Style"): the
# phrase is not whole without it. Any other noun before "of" is a thing ("Award Winning Game | of visual perception").
_BEFORE_OF = frozenset("""pair pairs set sets pack packs box boxes bag bags piece pieces cup cups bottle bottles lot lots
    dozen couple variety range assortment selection kind kinds type types sort sorts number amount plenty blend mix
    combination choice collection series line part parts made full out instead because top front side back end
    one all some most each hours days years inches feet sense world power use""".split())


def _clean_cut(text: str) -> str | None:
    """The text's opening words within a headline, only where the text itself pauses or a new phrase starts."""
    body = text.rstrip(".")
    if len(body) <= HEADLINE_MAX:
        return body
    words = body.split(" ")
    best = None
    for i in range(2, len(words)):
        head = " ".join(words[:i])
        if len(head) > HEADLINE_MAX:
            break
        nxt = words[i].lower()
        before = words[i - 1].strip(",;:")
        # Not inside a name either: "The second Lord | of the Rings" (a capital before "of" is a name's).
        names_a_thing = nxt == "of" and before.islower() and before not in _BEFORE_OF
        if head[-1] in ",;:" or nxt in _HEADLINE_BREAKS or nxt in ("—", "–", "-") or names_a_thing:
            cut = tidy_end(head)
            last = cut.rsplit(" ", 1)[-1].lower() if cut else ""
            if (cut and len(cut.split()) >= 2 and len(cut) >= 12 and "," not in cut  # half a list is no headline
                    and not (len(last) > 4 and last.endswith("ed")) and last not in _VERBS):
                best = cut
    return best


def _noun_phrase(words: list[str]) -> str | None:
    """``words`` as a headline naming a thing: leading determiners dropped, stopped before a new phrase,
    2 to 5 words within a headline, not ending on a word that leans on what follows."""
    while words and words[0].lower() in _DETERMINERS:
        words = words[1:]
    for i, word in enumerate(words):
        if word.lower() in _HEADLINE_BREAKS or word.lower() in _SUBJECT_VERBS or word[-1:] in ",;:":
            words = words[: i + 1] if word[-1:] in ",;:" and word.lower() not in _HEADLINE_BREAKS else words[:i]
            break
    phrase = tidy_end(" ".join(words))
    kept = phrase.split()
    if (not 2 <= len(kept) <= 5 or len(phrase) > HEADLINE_MAX or kept[-1].lower() in _SUBJECT_VERBS | DANGLING
            or kept[-1].lower() in ("there", "here")):
        return None
    return _cap(_title(phrase))


def _phrase_heads(text: str) -> list[str]:
    """Headlines naming what a sentence is about: its subject ("Three new scenarios allow you…" ->
    "Three New Scenarios") and what it says the product has ("The backpack contains two exterior side
    pockets" -> "Two Exterior Side Pockets")."""
    words = text.rstrip(".").split()
    heads = []
    verb = next((i for i, w in enumerate(words) if w.lower() in _SUBJECT_VERBS), None)
    if verb and verb >= 2 and words[0].lower() not in DANGLING - _DETERMINERS:  # not "Between any two cards there"
        heads.append(_noun_phrase(words[:verb]))
    has = _HAS.search(text.rstrip("."))
    if has:
        had = text.rstrip(".")[has.end():].split()
        heads.append(_noun_phrase(had))
        # A list of counted things is one headline each: "Features eight new boons and seven new burdens
        # that…" -> "Eight New Boons", "Seven New Burdens" (whole, it is too long for one).
        halves = re.split(r"\s+and\s+", " ".join(had), maxsplit=1)
        if len(halves) == 2 and all(_COUNTED.match(h) for h in halves):
            heads += [_noun_phrase(h.split()) for h in halves]
    return list(dict.fromkeys(h for h in heads if h))


_CLAUSE_BREAK = re.compile(r"\s[-–—]\s|;\s")


_FRAMING = frozenset("way ways thing things kind kinds type types part parts lot lots".split())


def _names_something(headline: str) -> bool:
    """Whether a headline cut from part of a sentence stands on its own: not opening on a word that joins it to
    what came before ("To Round Out the Hands"), not ending on one that leans on what follows ("Designed to
    Fit up", "Comes Complete"), not a phrase that only frames ("A Fantastic Way"), not small print
    ("Brands May Vary"), not two halves of a dash ("Disney - Mickey Mouse")."""
    words = headline.lower().split()
    first, last = words[0], words[-1]
    leans = last in _LEANING and words[-2:] != ["and", "up"]  # "Ages 14 and Up" is whole
    return (first not in DANGLING - _DETERMINERS - {"no"} and first not in _VERBS and not leans
            and last not in _FRAMING and not re.search(r"\s[-–—]\s", headline) and not SMALL_PRINT.search(headline))


def _headline_candidates(text: str, label: str) -> tuple[list[str], str | None]:
    """(headline candidates for a description point, best first; the bullet's own label as a headline, if it is one).

    The label is the seller's summary of the bullet ("ADJUSTABLE STRAPS: Comes with no-slip grips…"),
    so it stands for the point without repeating its words.
    """
    heads = []
    label_head = None
    if label and len(label.split()) >= 2 and len(label) <= HEADLINE_MAX and label.split()[-1].lower() not in DANGLING | _SUBJECT_VERBS:
        label_head = _title(label.lower()) if label.isupper() else label
        heads.append(label_head)
    chunk = _number_chunk(text)
    if chunk:
        heads.append(chunk)
    cut = _clean_cut(text)
    if cut:
        heads.append(_cap(_title(cut)))
    heads += _phrase_heads(text)
    # A bullet of several clauses says several things ("NO SOLDERING required - Ages 14 and up"): each
    # clause that is a whole phrase within a headline is one more.
    clauses = [c.strip(" .") for c in _CLAUSE_BREAK.split(text)]
    if len(clauses) > 1:
        heads += [_cap(_title(c)) for c in clauses if 2 <= len(c.split()) and len(c) <= HEADLINE_MAX
                  and c.split()[-1].lower() not in DANGLING | _SUBJECT_VERBS]
    return list(dict.fromkeys(calm_capitals(h) for h in heads)), label_head


# --- checks ------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _answer_spec() -> ChannelSpec:
    """What the points must pass as: one Google RSA answer (the strictest headline and description limits)."""
    try:
        from core.copy.channels import GOOGLE_RSA_ANSWER

        return GOOGLE_RSA_ANSWER
    except ImportError:  # pragma: no cover - an older channels module
        from core.copy.channels import get_channel

        return get_channel("google_rsa").writes


def _usable(value: str, field: str, facts: ProductFacts, evidence: Evidence) -> bool:
    """Whether ``value`` could go into an ad as is: within limits, through every gate, no unbacked claim or banned word."""
    spec = _answer_spec()
    fields = {field: value}
    if field_problems(value, spec.field(field)) or asset_gates(fields, spec, facts) or banned_hits(fields):
        return False
    return not claims_in(value, evidence, field)


# --- ranking -----------------------------------------------------------------------------


def selling_points(facts: ProductFacts, limit: int = 8) -> list[SellingPoint]:
    """The product's selling points, best first, no two saying the same thing.

    A description sentence that restates an attribute ("It holds 750 ml and weighs 380 g.") is
    left out: the attribute's own point says it more cleanly.
    """
    evidence = Evidence(facts)
    candidates: list[tuple[float, int, SellingPoint, Sequence[str], str | None]] = []
    attribute_points = []
    for order, (text, heads, source, kind, weight, terms) in enumerate(_attribute_points(facts)):
        point = SellingPoint(text, None, source, kind, weight, terms)
        attribute_points.append(point)
        candidates.append((weight, -order, point, heads, None))
    for order, (text, source, kind, weight, terms, label) in enumerate(_description_points(facts)):
        point = SellingPoint(text, None, source, kind, weight, terms)
        if any(carries(text, a) for a in attribute_points if a.kind != "other"):
            continue  # a demo description restating its attributes; a bare "Measures 4 x 4 in" steals nothing
        candidates.append((weight, -1000 - order, point, *_headline_candidates(text, label)))
    candidates.sort(key=lambda c: (c[0], c[1]), reverse=True)

    chosen: list[SellingPoint] = []
    seen: set[str] = set()
    for _, _, point, heads, label_head in candidates:
        if len(chosen) >= limit:
            break
        key = asset_key(point.text)
        if key in seen or not _usable(point.text, "description", facts, evidence):
            continue
        if any(carries(c.text, point) or (point.source == "description" and carries(point.text, c)) for c in chosen):
            continue  # already said ("Waterproof rain jacket." after "20,000 mm waterproof rating.")
        if point.source == "description" and point.kind == "other":
            heads = []  # a bare size ("0.7″ High", "14″ Wide"): a fact for a description, no headline on its own
        usable = [h for h in dict.fromkeys(heads) if h and _usable(h, "headline", facts, evidence)]
        saying = [h for h in usable if carries(h, point)]
        # The label says the point in the seller's words, and a headline of part of the sentence says part of
        # it ("Three Hot Wheels Vehicles" of "Includes three Hot Wheels vehicles so the fun starts…"):
        # phrasings after those that carry the point, never the point's headline.
        headlines = (*saying, *(h for h in usable if h not in saying and _names_something(h)))
        seen.add(key)
        chosen.append(SellingPoint(point.text, saying[0] if saying else None, point.source, point.kind,
                                   point.weight, point.terms, headlines))
    return chosen
