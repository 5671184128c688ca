"""Scores shown beside every variant: limits, faithfulness, coverage, readability, banned words,
diversity across the set, and one overall rank whose arithmetic is spelled out.

Faithfulness is a claim check, not a language model: copy is scanned for things a shopper
would take as a fact (numbers with units, materials, sizes, certifications, claim words
like 'waterproof' or 'BPA-free', brand names) and each is looked up in the product's own
fields and attributes. An attribute that is explicitly false ('waterproof': false) beats any
mention elsewhere. Negated mentions ("not waterproof") are not claims. Everything found and
not backed is listed by name: "claims 'waterproof': attribute waterproof is false".

Diversity (why hand-written): distinct-2 and self-BLEU are a few lines each, and the one
library that has BLEU (nltk) is not a dependency here; its smoothing choices would need
pinning anyway. Formulas are in the docstrings and checked against hand-computed values.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

from core.copy.channels import ChannelSpec
from core.copy.facts import WEB_ADDRESS, ProductFacts, attribute_key, is_plumbing, iter_values, without_instructions
from core.copy.gates import asset_gates, set_gates
from core.copy.limits import flag_phrase, field_problems, sentences

# Marketplace-prohibited or unverifiable claims (Amazon's restricted terms, FTC guidance on
# "green" claims and superlatives). A page or caller may pass its own list.
DEFAULT_BANNED = (
    "eco-friendly", "#1", "number one", "best", "guaranteed", "guarantee", "cure", "cures", "miracle",
    "risk-free", "100%", "clinically proven",
)

# Weights of the overall score, out of 100. Each component is in [0, 1]:
#   faithfulness     0.5 ** (distinct unsupported claims): one claim halves it, two quarter it
#   coverage         attributes mentioned / the channel's coverage_target, capped at 1
#   readability      Flesch reading ease / 60, clamped to [0, 1] (60 = plain English)
#   uniqueness       1 - self-BLEU against the other variants of the set (1 when alone)
#   no_banned_words  1 without a banned-word hit, else 0
# Variants that break a limit rank below every compliant one, whatever their score.
WEIGHTS: dict[str, int] = {"faithfulness": 40, "coverage": 20, "readability": 15, "uniqueness": 15, "no_banned_words": 10}
PLAIN_ENGLISH_FLESCH = 60.0
NEAR_DUPLICATE = 0.8  # pairwise BLEU at or above this: the two variants say nearly the same thing

# --- text normalisation ----------------------------------------------------------------

_SPELLINGS = (("aluminum", "aluminium"), ("fiber", "fibre"), ("canceling", "cancelling"), ("colour", "color"))


def norm(text: str) -> str:
    """Lower case, hyphens/underscores/slashes as spaces, one spelling: 'BPA-Free' -> 'bpa free'."""
    text = str(text).lower()
    for us, uk in _SPELLINGS:
        text = text.replace(us, uk)
    text = re.sub(r"[\-_/‐–]+", " ", text)
    return re.sub(r"\s+", " ", text).strip()


_NEGATIONS = frozenset({"not", "no", "non", "never", "without", "isn't", "isnt", "aren't", "arent", "nor", "neither"})


@lru_cache(maxsize=4096)
def _phrase_pattern(phrase: str) -> re.Pattern[str]:
    return re.compile(r"(?<![\w#])" + re.escape(phrase) + r"(?![\w])")


def _negated(text: str, start: int) -> bool:
    """Whether one of the three words before ``start`` negates what follows ("not waterproof")."""
    clause = re.split(r"[.!?;,|:]", text[max(0, start - 40) : start])[-1]  # "…not included. Polyester one size" is not negated
    before = re.findall(r"[\w']+", clause)[-3:]
    return any(w in _NEGATIONS for w in before)


def _mentions(pattern: re.Pattern[str], text: str) -> list[re.Match[str]]:
    """Non-negated matches of a phrase in normalised text."""
    return [m for m in pattern.finditer(text) if not _negated(text, m.start())]


# --- what counts as a claim ------------------------------------------------------------


@dataclass(frozen=True)
class ClaimTerm:
    name: str  # as shown to the marketer
    phrases: tuple[str, ...]  # normalised surface forms
    keys: tuple[str, ...] = ()  # attributes that back it when truthy (and refute it when false)


CLAIM_TERMS: tuple[ClaimTerm, ...] = (
    ClaimTerm("waterproof", ("waterproof", "water proof"), ("waterproof",)),
    ClaimTerm("water-resistant", ("water resistant", "water resistance", "splash proof", "splashproof", "splash resistant",
                                  "weatherproof", "weather resistant"), ("water_resistance", "water_resistant", "waterproof")),
    ClaimTerm("insulated", ("insulated", "vacuum insulated", "double walled", "double wall"), ("insulated",)),
    ClaimTerm("leakproof", ("leakproof", "leak proof", "spill proof", "spillproof"), ("leakproof", "leak_proof")),
    ClaimTerm("dishwasher safe", ("dishwasher safe",), ("dishwasher_safe",)),
    ClaimTerm("microwave safe", ("microwave safe",), ("microwave_safe",)),
    ClaimTerm("oven safe", ("oven safe", "ovenproof", "oven proof"), ("oven_safe", "oven_safe_c")),
    ClaimTerm("BPA-free", ("bpa free",), ("bpa_free",)),
    ClaimTerm("PFAS-free", ("pfas free",), ("pfas_free",)),
    ClaimTerm("PFOA-free", ("pfoa free", "ptfe free"), ("pfoa_free", "pfas_free")),
    ClaimTerm("pre-seasoned", ("pre seasoned", "preseasoned"), ("pre_seasoned",)),
    ClaimTerm("organic", ("organic",), ("organic",)),
    ClaimTerm("vegan", ("vegan",), ("vegan",)),
    ClaimTerm("fragrance-free", ("fragrance free", "unscented"), ("fragrance_free",)),
    ClaimTerm("noise-cancelling", ("noise cancelling", "noise cancellation", "anc"), ("noise_cancelling",)),
    ClaimTerm("packable", ("packable",), ("packable",)),
    ClaimTerm("rechargeable", ("rechargeable",), ("rechargeable",)),
    ClaimTerm("carbon plate", ("carbon plate", "carbon plated"), ("carbon_plate",)),
    ClaimTerm("GaN", ("gan",), ("gan",)),
    ClaimTerm("eco-friendly", ("eco friendly", "ecofriendly", "environmentally friendly", "planet friendly")),
    ClaimTerm("sustainable", ("sustainable", "sustainably")),
    ClaimTerm("biodegradable", ("biodegradable", "compostable")),
    ClaimTerm("recycled", ("recycled",)),
    ClaimTerm("recyclable", ("recyclable",)),
    ClaimTerm("non-toxic", ("toxin free", "chemical free")),
    ClaimTerm("hypoallergenic", ("hypoallergenic",)),
    ClaimTerm("cruelty-free", ("cruelty free",)),
    ClaimTerm("gluten-free", ("gluten free",)),
    ClaimTerm("paraben-free", ("paraben free",)),
    ClaimTerm("all-natural", ("all natural", "100% natural")),
    ClaimTerm("handmade", ("handmade", "hand made", "handcrafted", "hand crafted")),
    ClaimTerm("dermatologist tested", ("dermatologist tested", "dermatologist approved", "dermatologist recommended")),
    ClaimTerm("clinically proven", ("clinically proven", "clinically tested")),
    ClaimTerm("FDA approved", ("fda approved",)),
    ClaimTerm("warranty", ("warranty", "lifetime guarantee")),
    ClaimTerm("free shipping", ("free shipping", "free delivery", "free returns")),
    ClaimTerm("unbreakable", ("unbreakable", "shatterproof", "shatter proof", "indestructible")),
    ClaimTerm("antibacterial", ("antibacterial", "antimicrobial")),
    ClaimTerm("breathable", ("breathable",), ("breathable",)),
    ClaimTerm("stain-resistant", ("stain resistant", "stain proof"), ("stain_resistant",)),
    ClaimTerm("machine washable", ("machine washable",), ("machine_washable",)),
    ClaimTerm("award-winning", ("award winning", "best selling", "bestseller", "best seller")),
    ClaimTerm("patented", ("patented", "patent pending")),
    ClaimTerm("sale", ("on sale", "sale ends", "limited time", "today only", "ends tonight", "while supplies last",
                       "limited stock", "selling fast", "almost gone", "free gift")),
)

MATERIALS: tuple[str, ...] = (
    "stainless steel", "steel", "aluminium", "titanium", "cast iron", "iron", "copper", "brass", "glass", "borosilicate",
    "ceramic", "porcelain", "stoneware", "bamboo", "walnut", "maple", "oak", "teak", "acacia", "wood", "wooden", "leather",
    "suede", "cotton", "wool", "merino", "cashmere", "alpaca", "silk", "linen", "hemp", "nylon", "polyester", "spandex",
    "elastane", "fleece", "denim", "canvas", "plastic", "tritan", "silicone", "rubber", "polycarbonate", "abs", "tpu",
    "carbon fibre", "kevlar", "gore tex", "cordura", "marble", "granite", "cork", "acrylic", "vinyl", "latex", "mesh",
    "knit", "gold", "silver", "platinum", "enamel", "enamelled",
)

# Case-sensitive acronyms (as written) and case-insensitive names (normalised).
CERT_ACRONYMS: tuple[str, ...] = ("UL", "CE", "FCC", "FDA", "NSF", "FSC", "ETL", "GOTS", "LFGB", "RoHS", "BSCI", "USDA", "ISO")
CERT_NAMES: tuple[str, ...] = (
    "oeko tex", "bluesign", "fair trade", "cosmos", "leaping bunny", "energy star", "b corp", "ecocert",
    "cradle to cradle", "rainforest alliance", "global recycled standard", "climate neutral", "carbon neutral",
)
_IP_RATING = re.compile(r"\bIP[X\d]\d\b", re.IGNORECASE)
# Any acronym in front of "certified" is a certification claim, known or not ("LFWG Certified").
_NAMED_CERT = re.compile(r"(?<![\w-])([A-Z][A-Z0-9]{1,9}(?:-[A-Z0-9]{1,9})?)[\s-]+(?i:certified|certification|approved|compliant)\b")
_SIZE_TOKEN = re.compile(r"(?<![\w-])(?:XXS|XS|XL|XXL|XXXL|[2-6]XL)(?![\w])")
SIZE_NAMES = ("one size", "king size", "queen size", "twin size", "plus size", "full size")
_MADE_IN = re.compile(r"\bmade in (?:the )?([a-z]+(?: [a-z]+)?)")

# Brands a copy might borrow from the web's ad copy; the catalog's own brands are added per call.
FAMOUS_BRANDS: tuple[str, ...] = (
    "Nike", "Adidas", "Puma", "Asics", "Brooks", "Hoka", "New Balance", "Apple", "iPhone", "iPad", "AirPods", "Samsung",
    "Galaxy", "Google", "Pixel", "Sony", "Bose", "Anker", "Belkin", "Yeti", "Hydro Flask", "Stanley", "Contigo",
    "Nalgene", "CamelBak", "Patagonia", "The North Face", "Arc'teryx", "Gore-Tex", "Le Creuset", "Tefal", "OXO",
    "Amazon", "Walmart", "IKEA", "Dyson", "Lululemon", "Under Armour", "Cetaphil", "CeraVe",
)

# Read in the 7 characters before a number: room for "price " and "only ".
_PRICE_SIGN = re.compile(r"[$€£¥₹]\s?$|\b(?:USD|EUR|GBP|price|for|at|only|just)\s?$", re.IGNORECASE)
_PRICE_AFTER = re.compile(r"\s?(?:USD|EUR|GBP|dollars?|euros?|pounds?)\b", re.IGNORECASE)
_INCH_MARK = re.compile(r"(?<=\d)\s?(?:\"|″|”|'')")
_NUMBER = re.compile(
    r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?"
    # Units in any case: headlines are Title Case ("380 Litres") and Amazon bullets shout ("750 ML").
    # Not "in": "#958 in Longboards" and "3 in 1" are prepositions far more often than inches.
    # A hyphen joins a unit as a space does: "2-Inch Deluxe" says 2 inches, not 2 of something.
    r"(?:[\s-]?(?i:(%|°\s?[CF]\b|mAh\b|ml\b|litres?\b|liters?\b|L\b|kg\b|g\b|oz\b|lbs?\b|mm\b|cm\b|m\b|inch(?:es)?\b"
    r"|W\b|Wh\b|V\b|h\b|hrs?\b|hours?\b|lumens?\b|gsm\b|-?(?:person|piece|pack|pcs?)\b)))?",
)
# Units as written -> one name per unit, so "20 litres" and capacity_l: 20 agree.
_UNIT_FAMILY = {
    "%": "%", "ml": "ml", "l": "l", "litre": "l", "litres": "l", "liter": "l", "liters": "l", "g": "g", "kg": "kg",
    "oz": "oz", "lb": "lb", "lbs": "lb", "mm": "mm", "cm": "cm", "m": "m", "in": "in", "inch": "in", "inches": "in",
    "w": "w", "wh": "wh", "v": "v", "mah": "mah", "h": "h", "hr": "h", "hrs": "h", "hour": "h", "hours": "h",
    "lumen": "lumen", "lumens": "lumen", "gsm": "gsm", "°c": "°c", "°f": "°f", "pack": "piece", "piece": "piece",
    "pc": "piece", "pcs": "piece", "person": "person",
}
# Attribute keys that say their unit: capacity_ml, weight_g, battery_h… (longest suffix first).
_KEY_UNITS = (("_mah", "mah"), ("_gsm", "gsm"), ("_wh", "wh"), ("_ml", "ml"), ("_mm", "mm"), ("_cm", "cm"), ("_kg", "kg"),
              ("_oz", "oz"), ("_in", "in"), ("_pct", "%"), ("_percent", "%"), ("_g", "g"), ("_l", "l"), ("_m", "m"),
              ("_w", "w"), ("_v", "v"), ("_h", "h"), ("_c", "°c"), ("_f", "°f"))
_KEY_NAME_UNITS = {"lumens": "lumen", "pieces": "piece", "sleeps": "person", "pack_size": "piece"}


def unit_family(unit: str | None) -> str | None:
    return _UNIT_FAMILY.get(unit.lower().replace(" ", "").lstrip("-")) if unit else None


def key_unit(key: str) -> str | None:
    """The unit an attribute's name declares: 'capacity_ml' or 'Capacity (ml)' -> 'ml', 'lumens' -> 'lumen'."""
    key = attribute_key(key)
    if key in _KEY_NAME_UNITS:
        return _KEY_NAME_UNITS[key]
    return next((unit for suffix, unit in _KEY_UNITS if key.endswith(suffix)), None)


def norm_number(whole: str, frac: str | None = None) -> str:
    """'20,000' -> '20000', '32.00' -> '32', '4.20' -> '4.2'."""
    whole = whole.replace(",", "").lstrip("0") or "0"
    frac = (frac or "").rstrip("0")
    return f"{whole}.{frac}" if frac else whole


def numbers_in(text: str) -> set[str]:
    return {norm_number(m.group(1), m.group(2)) for m in _NUMBER.finditer(str(text))}


# --- the product's evidence ------------------------------------------------------------

# What a number measures, from the words beside it ("10,000 mm waterproof rating", "750 ml capacity",
# "10000 mm in size") and from attribute names (waterproof_rating_mm). A number the data holds as
# one measure and the copy gives as another is an unsupported claim: "recycled nylon that is
# 10000 mm in size" when 10,000 mm is the waterproof rating.
_MEASURES = {word: measure for measure, words in {
    "size": "size sized long length wide width tall height deep depth diameter thick thickness",
    "weight": "weighs weight weighing heavy grams",
    "capacity": "holds capacity volume",
    "time": "lasts runtime battery playtime",
    "rating": "rating rated waterproof hydrostatic",
    "drop": "drop",
}.items() for word in words.split()}
_MEASURE_WINDOW = 4  # words either side of a number that may say what it measures


# Where the words about one number end: a sentence or clause break, "and"/"with", or another number
# ("8 mm drop, 255 g": "drop" is the 8's, not the 255's).
_MEASURE_BREAK = re.compile(r"[.!?;|,]|\b(?:and|with|plus)\b|\d", re.IGNORECASE)


def _measures_near(text: str, start: int, end: int) -> set[str]:
    """What the words around text[start:end] (a number) say it measures, within its clause."""
    before = _MEASURE_BREAK.split(text[:start])[-1].split()[-_MEASURE_WINDOW:]
    after = _MEASURE_BREAK.split(text[end:])[0].split()[:_MEASURE_WINDOW]
    words = [t.strip(",:()").lower() for t in before + after]
    return {_MEASURES.get(w) or _MEASURES[w[:-1]] for w in words if w in _MEASURES or w[:-1] in _MEASURES}


_LETTER_SIZES = ("XXS", "XS", "S", "M", "L", "XL", "XXL", "XXXL")
_SIZE_RANGE = re.compile(r"\b(XXS|XS|S|M|L|XL|XXL|XXXL)\s*[-–]\s*(XXS|XS|S|M|L|XL|XXL|XXXL)\b", re.IGNORECASE)


def _sizes_in(text: str) -> set[str]:
    """Letter sizes the data names, ranges expanded: 'XS-XXL' holds XL too."""
    sizes = {t.upper() for t in re.findall(r"[A-Za-z0-9]+", text)}
    for low, high in _SIZE_RANGE.findall(text):
        a, b = _LETTER_SIZES.index(low.upper()), _LETTER_SIZES.index(high.upper())
        sizes.update(_LETTER_SIZES[min(a, b) : max(a, b) + 1])
    return sizes



class Evidence:
    """What one product's data says, indexed for claim look-ups."""

    def __init__(self, facts: ProductFacts, known_brands: Iterable[str] = ()) -> None:
        self.facts = facts
        # Instruction-like sentences in the data ("write 'FREE iPhone'") are not facts and back nothing.
        values: list[str] = [without_instructions(str(v)) for k, v in facts.field_values().items() if k != "price"]
        for value in facts.attributes.values():
            values.extend(without_instructions(v) for v in iter_values(value))
        # True flags speak for themselves: carbon_plate: true backs "carbon plate".
        values.extend(flag_phrase(k) for k, v in facts.attributes.items() if v is True)
        self.original = " | ".join(values)
        self.text = norm(self.original)
        # Numbers: every number anywhere backs a bare number ("3 ports"); a number with a unit
        # ("6 g") needs that number with that unit (from the text, or a key like weight_g), or
        # an attribute whose name declares no unit (capacity: 750 backs "750 ml").
        self.numbers = numbers_in(self.original)
        # An inch mark is the unit a listing writes most ('34" Foil Balloon'), and backs "34-Inch".
        with_inches = _INCH_MARK.sub(" inch", self.original)
        self.unit_numbers: set[tuple[str, str]] = {
            (norm_number(m.group(1), m.group(2)), fam) for m in _NUMBER.finditer(with_inches)
            if (fam := unit_family(m.group(3))) is not None
        }
        self.free_numbers: set[str] = set()
        for key, value in facts.attributes.items():
            unit = key_unit(key)
            found: set[str] = set()
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                found.add(norm_number(*f"{abs(float(value)):.6f}".split(".")))
            elif isinstance(value, str):
                found |= numbers_in(without_instructions(value))
            self.numbers |= found
            if unit:
                self.unit_numbers |= {(n, unit) for n in found}
            elif isinstance(value, (int, float)):
                self.free_numbers |= found
        # The price, when no other fact holds its number: "30 Threadworks T-Shirts" of a $30 shirt is not a count.
        self.price_only: str | None = None
        if facts.price is not None:
            price = norm_number(*f"{facts.price:.2f}".split("."))
            self.price_only = price if price not in self.numbers else None
            self.numbers.add(price)
        self.false_keys = {attribute_key(k) for k, v in facts.attributes.items() if v is False}
        self.true_keys = {attribute_key(k) for k, v in facts.attributes.items() if v not in (False, None, "", [], {})}
        self.sizes = _sizes_in(self.original)
        # number -> what the data says it measures (none known: any use of it passes)
        self.measures: dict[str, set[str]] = {}
        for key, value in facts.attributes.items():
            named = {_MEASURES[w] for w in attribute_key(key).split("_") if w in _MEASURES}
            if named and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.measures.setdefault(norm_number(*f"{abs(float(value)):.6f}".split(".")), set()).update(named)
            elif named and isinstance(value, str):  # size_range "US 6-13"
                for number in numbers_in(value):
                    self.measures.setdefault(number, set()).update(named)
        for m in _NUMBER.finditer(self.original):
            near = _measures_near(self.original, m.start(), m.end())
            if near:
                self.measures.setdefault(norm_number(m.group(1), m.group(2)), set()).update(near)
        own = (facts.brand or "").strip().lower()
        self.brands = tuple(sorted({b.strip() for b in known_brands if b and len(b.strip()) >= 2 and b.strip().lower() != own}))

    @property
    def points(self) -> list[Any]:
        """The product's ranked selling points (core.copy.selling_points), worked out once per product."""
        if not hasattr(self, "_points"):
            from core.copy.selling_points import selling_points  # it reads the evidence too: imported here, not at the top

            self._points = selling_points(self.facts)
        return self._points

    def says(self, phrase: str) -> bool:
        """Whether the data mentions ``phrase`` (normalised), not negated."""
        return bool(_mentions(_phrase_pattern(norm(phrase)), self.text))


@dataclass(frozen=True)
class Claim:
    field: str
    text: str  # as it appears in the copy
    kind: str  # number | claim | material | certification | size | origin | brand | link
    reason: str

    @property
    def message(self) -> str:
        return f"claims '{self.text}': {self.reason}"


@lru_cache(maxsize=64)
def _brand_pattern(brands: tuple[str, ...]) -> re.Pattern[str] | None:
    if not brands:
        return None
    ordered = sorted(brands, key=len, reverse=True)
    return re.compile(r"(?<![\w])(" + "|".join(re.escape(b) for b in ordered) + r")(?![\w])")


def _alternation(phrases: Iterable[str]) -> re.Pattern[str]:
    """One regex for many phrases, longest first, with the word boundaries of ``_phrase_pattern``."""
    ordered = sorted(set(phrases), key=len, reverse=True)
    return re.compile(r"(?<![\w#])(?:" + "|".join(re.escape(p) for p in ordered) + r")(?![\w])")


# One pass per kind over the copy instead of one regex per phrase: scoring runs on every candidate.
_TERM_BY_PHRASE = {p: t for t in CLAIM_TERMS for p in t.phrases}
_TERMS_RE = _alternation(_TERM_BY_PHRASE)
_MATERIALS_RE = _alternation(MATERIALS)
_CERT_NAMES_RE = _alternation(CERT_NAMES)
_SIZE_NAMES_RE = _alternation(SIZE_NAMES)
_CERT_ACRONYMS_RE = re.compile(r"(?<![\w])(?:" + "|".join(re.escape(c) for c in CERT_ACRONYMS) + r")(?![\w])")


def claims_in(text: str, evidence: Evidence, field_name: str = "") -> list[Claim]:
    """Every claim in ``text`` that the product's data does not back, listed by name."""
    found: list[Claim] = []
    low = norm(text)
    covered: list[tuple[int, int]] = []  # spans of claim phrases, so "carbon plate" is not also the material "carbon"

    hits_by_term: dict[str, list[re.Match[str]]] = {}
    for m in _mentions(_TERMS_RE, low):
        hits_by_term.setdefault(_TERM_BY_PHRASE[m.group(0)].name, []).append(m)
    for term in CLAIM_TERMS:
        hits = hits_by_term.get(term.name)
        if not hits:
            continue
        covered += [m.span() for m in hits]
        keys = [k.lower() for k in term.keys]
        if any(k in evidence.true_keys for k in keys):
            continue
        false = [k for k in keys if k in evidence.false_keys]
        if false:
            found.append(Claim(field_name, term.name, "claim", f"attribute {false[0]} is false"))
        elif not any(evidence.says(p) for p in term.phrases):
            found.append(Claim(field_name, term.name, "claim", "not in attributes"))

    reported: set[str] = set()
    for m in _mentions(_MATERIALS_RE, low):
        if m.group(0) in reported or any(a <= m.start() < b for a, b in covered):
            continue
        reported.add(m.group(0))
        if not evidence.says(m.group(0)):
            found.append(Claim(field_name, m.group(0), "material", "material not in attributes"))

    for cert in dict.fromkeys(m.group(0) for m in _CERT_ACRONYMS_RE.finditer(text)):
        if not re.search(r"(?<![\w])" + re.escape(cert) + r"(?![\w])", evidence.original):
            found.append(Claim(field_name, cert, "certification", "certification not in attributes"))
    for cert in dict.fromkeys(m.group(0) for m in _mentions(_CERT_NAMES_RE, low)):
        if not evidence.says(cert):
            found.append(Claim(field_name, cert, "certification", "certification not in attributes"))
    for name in dict.fromkeys(m.group(1) for m in _NAMED_CERT.finditer(text)):
        if name not in CERT_ACRONYMS and not re.search(r"(?<![\w])" + re.escape(name) + r"(?![\w])", evidence.original):
            found.append(Claim(field_name, name, "certification", "certification not in attributes"))
    for m in _IP_RATING.finditer(text):
        if m.group(0).lower() not in evidence.text:
            found.append(Claim(field_name, m.group(0), "certification", "rating not in attributes"))

    for m in _SIZE_TOKEN.finditer(text):
        if m.group(0).upper() not in evidence.sizes:
            found.append(Claim(field_name, m.group(0), "size", "size not in attributes"))
    for size in dict.fromkeys(m.group(0) for m in _mentions(_SIZE_NAMES_RE, low)):
        if not evidence.says(size):
            found.append(Claim(field_name, size, "size", "size not in attributes"))
    for m in _MADE_IN.finditer(low):
        if not evidence.says(m.group(1)):
            found.append(Claim(field_name, m.group(0), "origin", "origin not in product data"))

    seen_numbers: set[tuple[str, str | None]] = set()
    for m in _NUMBER.finditer(text):
        value, unit = norm_number(m.group(1), m.group(2)), unit_family(m.group(3))
        if (value, unit) in seen_numbers:
            continue
        seen_numbers.add((value, unit))
        said = _measures_near(text, m.start(), m.end())
        known = evidence.measures.get(value)
        if said and known and not said & known and value in evidence.numbers:
            found.append(Claim(field_name, m.group(0).strip(), "number",
                               f"the data's {m.group(0).strip()} is the {' / '.join(sorted(known))}, not the {' / '.join(sorted(said))}"))
            continue
        if unit is None:
            if value == evidence.price_only and not _PRICE_SIGN.search(text[max(0, m.start() - 7):m.start()]) \
                    and not _PRICE_AFTER.match(text[m.end():]):
                found.append(Claim(field_name, m.group(0).strip(), "number",
                                   f"the data's {m.group(0).strip()} is the price; said without its currency it reads as a count"))
                continue
            if value in evidence.numbers:
                continue
            reason = "number not in product data"
        else:
            if (value, unit) in evidence.unit_numbers or value in evidence.free_numbers:
                continue
            reason = "number with this unit not in product data" if value in evidence.numbers else "number not in product data"
        found.append(Claim(field_name, m.group(0).strip(), "number", reason))

    pattern = _brand_pattern(evidence.brands)
    if pattern is not None:
        for m in pattern.finditer(text):
            if not evidence.says(m.group(0)):
                found.append(Claim(field_name, m.group(0), "brand", "brand not in product data"))
    # Never backed, even when the data holds it: a link is catalog plumbing, and one in a description
    # is as likely an injected "visit evil.example" as a fact. Links belong in the ad's URL fields.
    for address in dict.fromkeys(m.group(0).rstrip(".,;:!?)'\"") for m in WEB_ADDRESS.finditer(text)):
        found.append(Claim(field_name, address, "link", "a web address is not product data"))
    return found


# --- coverage --------------------------------------------------------------------------


# Longer than this, an attribute is prose or a spec dump (real marketplace exports put whole
# "Product Specification" blocks in one column): data for the model, not one thing copy mentions.
MAX_KEY_ATTRIBUTE_CHARS = 80
_SPEC_DUMP = re.compile(r"[A-Za-z]{3,}:\S")  # "ItemWeight:0.64ounces|ASIN:B07…", even when short


def key_attributes(facts: ProductFacts) -> dict[str, Any]:
    """Attributes worth mentioning: set, true or non-empty (false flags and empty lists are not),
    not catalog plumbing (links, ids, shipping, seller flags) and short enough to be one fact."""
    return {
        k: v for k, v in facts.attributes.items()
        if v not in (False, None, "", [], {}) and not is_plumbing(k, v)
        and sum(len(str(item)) for item in iter_values(v)) <= MAX_KEY_ATTRIBUTE_CHARS
        and not any(_SPEC_DUMP.search(str(item)) for item in iter_values(v))
    }


def _surface_forms(key: str, value: Any) -> list[str]:
    if value is True:
        forms = [flag_phrase(key)]
        for term in CLAIM_TERMS:
            if attribute_key(key) in term.keys:
                forms += term.phrases
        return [norm(f) for f in forms]
    if isinstance(value, (int, float)):
        return []  # numbers are matched as numbers
    forms = []
    for item in iter_values(value):
        text = norm(item)
        if text:
            forms.append(text)
            last = text.split(" ")[-1]
            if len(last) >= 4 and last != text:
                forms.append(last)  # "stainless steel" is mentioned by "steel"
    return forms


def coverage(fields: Mapping[str, str], facts: ProductFacts) -> tuple[list[str], list[str]]:
    """Key attributes the copy mentions, and those it does not."""
    text = " | ".join(str(v) for v in fields.values())
    low = norm(text)
    copy_numbers = numbers_in(text)
    mentioned, missing = [], []
    for key, value in key_attributes(facts).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            hit = norm_number(*f"{abs(float(value)):.6f}".split(".")) in copy_numbers
        else:
            hit = any(_mentions(_phrase_pattern(f), low) for f in _surface_forms(key, value))
        (mentioned if hit else missing).append(key)
    return mentioned, missing


# Words too common to show that copy is about a product ("with", "your"...).
_COMMON_WORDS = frozenset("with from your that this these those have will into over more only also each other "
                          "than very just what when make made best great good new".split())


def names_product(fields: Mapping[str, str], facts: ProductFacts) -> bool:
    """Whether the copy uses a word of the product's title or brand (4+ letters, not a common word).

    What tells copy for a product with no key attribute (real exports often have none usable)
    from a well-formed answer about nothing: SmolLM2 sometimes writes "Mmm-Mmm-MMM" or "Love you."
    """
    words = {w for w in tokens(norm(f"{facts.title} {facts.brand or ''}")) if len(w) >= 4 and w not in _COMMON_WORDS}
    return not words or bool(words & set(tokens(norm(" ".join(fields.values())))))


# --- readability and banned words ------------------------------------------------------


def readability(fields: Mapping[str, str]) -> float | None:
    """Flesch reading ease of the copy (textstat), each field read as a sentence; None for no text."""
    parts = [str(v).strip() for v in fields.values() if str(v).strip()]
    if not parts:
        return None
    text = " ".join(p if p.endswith((".", "!", "?")) else p + "." for p in parts)
    import textstat  # imported here: it loads a pronunciation dictionary, which only scoring needs

    return round(float(textstat.flesch_reading_ease(text)), 1)


@lru_cache(maxsize=32)
def _banned_patterns(banned: tuple[str, ...]) -> list[tuple[str, re.Pattern[str]]]:
    out = []
    for word in banned:
        body = re.escape(word.lower()).replace(r"\-", r"[\s\-]?").replace(r"\ ", r"\s+")
        out.append((word, re.compile(r"(?<![\w#])" + body + r"(?![\w%])", re.IGNORECASE)))
    return out


def banned_hits(fields: Mapping[str, str], banned: Sequence[str] = DEFAULT_BANNED) -> list[dict[str, str]]:
    hits = []
    for key, value in fields.items():
        for word, pattern in _banned_patterns(tuple(banned)):
            if pattern.search(str(value)):
                hits.append({"field": key, "word": word})
    return hits


# --- diversity across a set ------------------------------------------------------------


def tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:['.][a-z0-9]+)*", str(text).lower())


def _variant_tokens(fields: Mapping[str, str]) -> list[list[str]]:
    return [tokens(v) for v in fields.values()]


def distinct_n(token_lists: Sequence[Sequence[str]], n: int = 2) -> float:
    """distinct-n (Li et al., 2016): unique n-grams / all n-grams, over every text of the set.

    Each field is its own text, so no n-gram spans two fields. 1.0 means no n-gram repeats
    anywhere in the set; identical variants push it towards 1/len(set). 0 for no n-grams.
    """
    grams = [tuple(t[i : i + n]) for t in token_lists for i in range(len(t) - n + 1)]
    return round(len(set(grams)) / len(grams), 4) if grams else 0.0


def bleu(hypothesis: Sequence[str], references: Sequence[Sequence[str]], max_n: int = 4) -> float:
    """Sentence BLEU (Papineni et al., 2002) with add-one smoothing for n >= 2 (Lin & Och, 2004).

    BLEU = BP * exp(mean_n log p_n), n = 1..N with N = min(4, len(hypothesis)); p_n is the
    clipped n-gram precision against all references (counts clipped at the most any single
    reference has); p_1 is unsmoothed, so no shared word gives 0; BP = exp(1 - r/c) when the
    hypothesis (c tokens) is shorter than the closest reference length r, else 1.
    """
    refs = [list(r) for r in references if r]
    c = len(hypothesis)
    if not c or not refs:
        return 0.0
    top = min(max_n, c)
    log_sum = 0.0
    for n in range(1, top + 1):
        hyp = Counter(tuple(hypothesis[i : i + n]) for i in range(c - n + 1))
        most: Counter[tuple[str, ...]] = Counter()
        for ref in refs:
            for gram, count in Counter(tuple(ref[i : i + n]) for i in range(len(ref) - n + 1)).items():
                most[gram] = max(most[gram], count)
        matched = sum(min(count, most[gram]) for gram, count in hyp.items())
        total = sum(hyp.values())
        if n == 1:
            if matched == 0:
                return 0.0
            p = matched / total
        else:
            p = (matched + 1) / (total + 1)
        log_sum += math.log(p)
    r = min((len(ref) for ref in refs), key=lambda length: (abs(length - c), length))
    bp = 1.0 if c >= r else math.exp(1 - r / c)
    return bp * math.exp(log_sum / top)


def self_bleu(texts: Sequence[Sequence[str]]) -> list[float]:
    """Self-BLEU (Zhu et al., 2018, Texygen): each text's BLEU against all the others as references.

    High means the text repeats the others; 1.0 for a duplicate. A set of one scores 0.
    """
    if len(texts) < 2:
        return [0.0] * len(texts)
    return [round(bleu(t, [o for j, o in enumerate(texts) if j != i]), 4) for i, t in enumerate(texts)]


def similarity(a: Mapping[str, str], b: Mapping[str, str]) -> float:
    """Symmetric BLEU between two variants' whole texts: the near-duplicate test."""
    ta, tb = tokens(" ".join(a.values())), tokens(" ".join(b.values()))
    return max(bleu(ta, [tb]), bleu(tb, [ta]))


# --- per variant -----------------------------------------------------------------------


@dataclass
class VariantScore:
    compliant: bool
    fields: dict[str, dict[str, Any]]  # per field: chars, max_chars, within_limit, problems
    unsupported_claims: list[dict[str, Any]]  # text, kind, reason, message, field (first), fields (all)
    coverage: dict[str, Any]  # mentioned, missing, share
    readability: float | None
    banned: list[dict[str, str]]
    self_bleu: float = 0.0
    overall: float = 0.0
    rank: int = 0
    explanation: str = ""
    components: dict[str, float] = field(default_factory=dict)
    gates: list[dict[str, Any]] = field(default_factory=list)  # gates.GateFailure.to_dict(): gate, field, message
    # The product's selling points, best first ({"text", "headline", "kind"}), and which fields carry which (indices).
    selling_points: dict[str, Any] = field(default_factory=dict)

    @property
    def points_carried(self) -> list[int]:
        """Indices of the selling points some field carries, best first."""
        return sorted({i for found in self.selling_points.get("carried", {}).values() for i in found})

    @property
    def faithful(self) -> bool:
        return not self.unsupported_claims

    @property
    def usable(self) -> bool:
        """What a marketer would publish as is: within limits and through every gate."""
        return self.compliant and not self.gates

    @property
    def gate_kinds(self) -> set[str]:
        """The distinct gates failed: what the score is halved for, once each."""
        return {g["gate"] for g in self.gates}

    @property
    def distinct_claims(self) -> list[str]:
        """Each unsupported claim once, however many fields repeat it."""
        return list(dict.fromkeys(c["text"].lower() for c in self.unsupported_claims))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["faithful"] = self.faithful
        out["usable"] = self.usable
        out["weights"] = dict(WEIGHTS)
        return out


def score_variant(
    fields: Mapping[str, str],
    spec: ChannelSpec,
    facts: ProductFacts,
    *,
    known_brands: Iterable[str] = (),
    banned: Sequence[str] = DEFAULT_BANNED,
    evidence: Evidence | None = None,
) -> VariantScore:
    """Everything that can be said of one variant on its own (the set's scores come from ``score_set``)."""
    evidence = evidence or Evidence(facts, known_brands)
    per_field: dict[str, dict[str, Any]] = {}
    for fspec in spec.fields:
        value = fields.get(fspec.key)
        problems = field_problems(value, fspec)
        if value is None and not problems:
            continue
        info: dict[str, Any] = {"chars": len(value or ""), "max_chars": fspec.max_chars,
                                "within_limit": fspec.max_chars is None or len(value or "") <= fspec.max_chars,
                                "problems": problems}
        if fspec.min_sentences or fspec.max_sentences:
            info["sentences"] = len(sentences(value or ""))
        per_field[fspec.key] = info
    claims: dict[tuple[str, str, str], dict[str, Any]] = {}  # one entry per claim, with every field that makes it
    for key, value in fields.items():
        for c in claims_in(str(value), evidence, key):
            entry = claims.setdefault((c.text.lower(), c.kind, c.reason), {**asdict(c), "message": c.message, "fields": []})
            entry["fields"].append(key)
    mentioned, missing = coverage(fields, facts)
    total = len(mentioned) + len(missing)
    return VariantScore(
        compliant=not any(info["problems"] for info in per_field.values()),
        fields=per_field,
        unsupported_claims=list(claims.values()),
        coverage={"mentioned": mentioned, "missing": missing, "share": round(len(mentioned) / total, 3) if total else 0.0,
                  "target": spec.coverage_target},
        readability=readability(fields),
        banned=banned_hits(fields, banned),
        gates=[g.to_dict() for g in asset_gates(fields, spec, facts)],
        selling_points=_points_report(fields, evidence),
    )


def _points_report(fields: Mapping[str, str], evidence: Evidence) -> dict[str, Any]:
    from core.copy.selling_points import carries

    points = evidence.points
    carried = {key: [i for i, p in enumerate(points) if carries(str(value), p)] for key, value in fields.items()}
    return {"points": [{"text": p.text, "headline": p.headline, "kind": p.kind} for p in points],
            "carried": {k: v for k, v in carried.items() if v}}


def components(score: VariantScore) -> dict[str, float]:
    target = max(1, min(score.coverage.get("target", 1), len(score.coverage["mentioned"]) + len(score.coverage["missing"])))
    return {
        "faithfulness": 0.5 ** len(score.distinct_claims),
        "coverage": min(1.0, len(score.coverage["mentioned"]) / target),
        "readability": 0.5 if score.readability is None else min(1.0, max(0.0, score.readability) / PLAIN_ENGLISH_FLESCH),
        "uniqueness": max(0.0, 1.0 - score.self_bleu),
        "no_banned_words": 0.0 if score.banned else 1.0,
    }


def _explain(score: VariantScore, parts: dict[str, float], size: int) -> str:
    claims = score.distinct_claims
    notes = {
        "faithfulness": "no unsupported claims" if not claims else
        f"{len(claims)} unsupported claim{'s' if len(claims) > 1 else ''}: " + ", ".join(f"'{c}'" for c in claims[:4]),
        "coverage": f"mentions {', '.join(score.coverage['mentioned'][:5]) or 'no key attribute'}",
        "readability": "n/a" if score.readability is None else f"Flesch {score.readability:.0f}",
        "uniqueness": f"self-BLEU {score.self_bleu:.2f}" if size > 1 else "only variant",
        "no_banned_words": "none" if not score.banned else ", ".join(f"'{b['word']}'" for b in score.banned[:3]),
    }
    names = {"no_banned_words": "banned words"}
    text = f"{score.overall:.0f}/100 = " + " + ".join(
        f"{names.get(k, k)} {WEIGHTS[k] * parts[k]:.0f}/{WEIGHTS[k]} ({notes[k]})" for k in WEIGHTS
    )
    points = score.selling_points.get("points", [])
    if points:
        carried = score.points_carried
        top = (f"carries the top selling point ('{points[0]['text'].rstrip('.')}')" if 0 in carried
               else f"misses the top selling point ('{points[0]['text'].rstrip('.')}')")
        text += f"; {top}, {len(carried)} of its {len(points)} in all"
    if score.gates:
        kinds = sorted(k.replace("_", " ") for k in score.gate_kinds)
        text = (f"not usable as is ({', '.join(kinds)}): halved per failed gate, ranked after usable variants; " + text)
    if not score.compliant:
        broken = [k for k, info in score.fields.items() if info["problems"]]
        text = f"breaks limits ({', '.join(broken)}), ranked after compliant variants; " + text
    return text


@dataclass
class SetScore:
    distinct_2: float
    self_bleu: float  # mean over the set
    near_duplicates: list[tuple[int, int]]  # index pairs with similarity >= NEAR_DUPLICATE


def score_set(variant_fields: Sequence[Mapping[str, str]], scores: Sequence[VariantScore],
              spec: ChannelSpec | None = None) -> SetScore:
    """Diversity across the set, then each variant's overall score, rank (1 = best) and explanation.

    With ``spec``, the set's own gates too (the same asset in two variants). A variant that fails
    a gate scores half per distinct failed gate and ranks after every usable one: a 92/100 on copy
    nobody would publish was the metric's fault, not the copy's.
    """
    if spec is not None:
        for score, failures in zip(scores, set_gates(variant_fields, spec)):
            known = {(g["gate"], g["field"]) for g in score.gates}
            score.gates += [f.to_dict() for f in failures if (f.gate, f.field) not in known]
    texts = [tokens(" ".join(str(v) for v in f.values())) for f in variant_fields]
    per_field = [t for f in variant_fields for t in _variant_tokens(f)]
    bleus = self_bleu(texts)
    for score, value in zip(scores, bleus):
        score.self_bleu = value
    for score in scores:
        parts = components(score)
        score.components = {k: round(v, 3) for k, v in parts.items()}
        penalty = 0.5 ** len(score.gate_kinds)
        score.overall = round(sum(WEIGHTS[k] * parts[k] for k in WEIGHTS) * penalty, 1)
    order = sorted(range(len(scores)), key=lambda i: (not scores[i].compliant, bool(scores[i].gates), -scores[i].overall, i))
    for rank, i in enumerate(order, start=1):
        scores[i].rank = rank
        scores[i].explanation = _explain(scores[i], components(scores[i]), len(scores)) + f"; rank {rank} of {len(scores)}"
    pairs = [(i, j) for i in range(len(variant_fields)) for j in range(i + 1, len(variant_fields))
             if similarity(variant_fields[i], variant_fields[j]) >= NEAR_DUPLICATE]
    return SetScore(distinct_n(per_field, 2), round(sum(bleus) / len(bleus), 4) if bleus else 0.0, pairs)
