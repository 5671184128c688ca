"""One product's own data, as plain Python values: what copy may say, and what it is checked against."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.errors import InvalidRequestError, NotFoundError
from core.store import Store

# Product columns that are facts about the product (updated_at and the id are not).
FACT_COLUMNS = ("title", "brand", "category", "price", "currency", "description")


def _plain(value: Any) -> Any:
    """numpy / pandas scalars and NaN as plain Python (None for missing)."""
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        try:
            value = value.item()
        except (ValueError, TypeError):
            pass
    if isinstance(value, float) and math.isnan(value):
        return None
    try:
        import pandas as pd

        if value is pd.NA or value is pd.NaT:
            return None
    except ImportError:  # pragma: no cover - pandas is a core dependency
        pass
    return value


_BOOL_TEXT = {"true": True, "yes": True, "false": False, "no": False}
_NUMBER_TEXT = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?")


def attribute_value(value: Any) -> Any:
    """An uploaded attribute as what it means: "No" -> False, "750" -> 750 (uploads keep every cell as text)."""
    value = _plain(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in _BOOL_TEXT:
            return _BOOL_TEXT[text.lower()]
        if _NUMBER_TEXT.fullmatch(text):
            return float(text) if "." in text else int(text)
    return value


def attribute_key(key: str) -> str:
    """An attribute's name as code compares it: 'Capacity (ml)' -> 'capacity_ml', 'BPA Free' -> 'bpa_free'."""
    return re.sub(r"[^0-9a-z]+", "_", str(key).lower()).strip("_")


@dataclass(frozen=True)
class ProductFacts:
    product_id: str
    title: str
    brand: str | None = None
    category: str | None = None
    price: float | None = None
    currency: str | None = None
    description: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, product: Mapping[str, Any], attributes: Mapping[str, Any] | str | None = None) -> ProductFacts:
        """From a products row (``catalog.get_product(...).product``) and its attributes (dict or JSON text)."""
        if attributes is None:
            attributes = product.get("attributes")
        if isinstance(attributes, str):
            try:
                attributes = json.loads(attributes) if attributes.strip() else {}
            except json.JSONDecodeError:
                attributes = {}
        attrs = {str(k): attribute_value(v) for k, v in dict(attributes or {}).items()}
        values = {c: _plain(product.get(c)) for c in FACT_COLUMNS}
        price = values["price"]
        return cls(
            product_id=str(product.get("product_id")),
            title=str(values["title"] or ""),
            brand=str(values["brand"]) if values["brand"] else None,
            category=str(values["category"]) if values["category"] else None,
            price=float(price) if isinstance(price, (int, float)) else None,
            currency=str(values["currency"]) if values["currency"] else None,
            description=str(values["description"]) if values["description"] else None,
            attributes={k: v for k, v in attrs.items() if v is not None},
        )

    @classmethod
    def from_detail(cls, detail: Any) -> ProductFacts:
        """From ``core.catalog.get_product``'s ProductDetail."""
        return cls.from_row(detail.product, detail.attributes)

    def field_values(self) -> dict[str, Any]:
        """The product's own columns that carry facts, without empties."""
        values = {"title": self.title, "brand": self.brand, "category": self.category, "price": self.price,
                  "currency": self.currency, "description": self.description}
        return {k: v for k, v in values.items() if v not in (None, "")}

    @property
    def kind(self) -> str:
        """What the product is ("water bottle"): the ``type`` attribute, else the category."""
        value = self.attributes.get("type")
        if isinstance(value, str) and value.strip():
            return value.strip()
        # A marketplace path ("Toys & Games | Arts & Crafts | Crayons") names the product by its last
        # step; the importer keeps the top level as the category and the whole path as an attribute.
        path = self.attributes.get("category_path")
        path = path if isinstance(path, str) and path.strip() else self.category or ""
        return re.split(r"\s*[|>/]\s*", path)[-1].strip()


# Text addressed to a language model rather than a shopper: "ignore previous instructions",
# "you are now…", "system:", chat-template tokens. Such sentences stay visible, quoted, in the
# prompt, but they are not facts: they never back a claim, so copy that obeys them is flagged.
_INSTRUCTION_LIKE = re.compile(
    r"\b(ignore|disregard|forget|override)\b[^.!?]{0,60}\b(instruction|rule|prompt|guideline|above|previous)s?\b"
    r"|\byou (are|must|will|should|shall) (now |always )?(obey|write|say|act|follow|ignore|be)\b"
    r"|\b(system|assistant|developer)\s*(prompt|message)?\s*:"
    r"|<\|[^|<>]{0,40}\|>|\[/?INST\]|\bprompt injection\b|\bjailbreak",
    re.IGNORECASE,
)
# Sellers' small print: about the seller, the listing or the order, never a reason to buy the product.
SMALL_PRINT = re.compile(
    r"\b(?:customer|satisfaction|money back|we stand behind|our (?:staff|team|company|mission)|we(?:'|’| a)re |we want|"
    r"please (?:review|note|check|allow|refer)|read before|size chart|before (?:buying|ordering|purchasing)|"
    r"if you have any|let us know|contact us|family[- ]owned|established in|since \d{4}|decades|release date|"
    r"minimum age|go to your orders|return policy|free returns|refund|look for (?:coordinating|other|more)|sold separately|"
    r"(?:packaging|colou?rs?|styles?|designs?|brands?) may vary|hand wash|imported|closure|show up to \d+ reviews|company|"
    r"welcome to|match with our|collect them all|great value|great gift|great for a gift|offers a wide range|we|"
    r"for (?:more than|over) \d+ years|to determine|proper size|measure with|phone number|retail unit|sales unit)\b",
    re.IGNORECASE,
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def instruction_like(text: str) -> bool:
    return bool(_INSTRUCTION_LIKE.search(str(text)))


def without_instructions(text: str) -> str:
    """``text`` without its instruction-like sentences (see _INSTRUCTION_LIKE)."""
    return " ".join(s for s in _SENTENCE.split(str(text)) if s.strip() and not instruction_like(s))


# Attributes that are catalog plumbing, not product facts: links, images, identifiers, stock.
_PLUMBING_KEY = re.compile(
    r"(^|_)(url|urls|link|links|image|images|img|photo|thumbnail|sku|asin|upc|ean|gtin|isbn|mpn|id|ids|uniq|"
    r"stock|inventory|seller|variants?|shipping|handle)(_|$)|^(model|part|item|style|catalog)_(number|no|num)$"
    # The importer's copies of what it cleaned (price_as_listed, description_as_listed) and the
    # category path: the cleaned values are the facts, these are the record.
    r"|_as_listed$|^category_path$"
)
_URL = re.compile(r"https?://|www\.", re.IGNORECASE)
# A web address in running text: a link, or a bare domain ("Visit evil.example", the usual payload
# of a prompt injection). Like URL attributes, it is no product fact: copy naming one is flagged
# (scoring), and copy built from the data leaves sentences holding one out (limits.fact_sentences).
WEB_ADDRESS = re.compile(
    r"\bhttps?://\S+|\bwww\.\S+|\b[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)*"
    r"\.(?:com|net|org|info|biz|io|co|app|shop|store|online|site|xyz|ly|eu|uk|de|example|test)\b(?:/\S*)?",
    re.IGNORECASE,
)


def is_plumbing(key: str, value: Any) -> bool:
    """Whether an attribute is catalog plumbing (a URL, an image, an id) rather than something copy could say."""
    if _PLUMBING_KEY.search(attribute_key(key)):
        return True
    return any(_URL.search(v) for v in iter_values(value))


def load_facts(store: Store, product_ids: Sequence[str]) -> dict[str, ProductFacts]:
    """Facts for each product id, in the order asked; a missing id is an error naming it."""
    wanted = list(dict.fromkeys(str(p) for p in product_ids))
    if not wanted:
        raise InvalidRequestError("Pick at least one product.", title="No product chosen")
    with store.cursor() as cur:
        rows = cur.execute(
            "SELECT product_id, title, brand, category, price, currency, description, attributes "
            "FROM products WHERE list_contains(?, product_id)",
            [wanted],
        ).fetchall()
        names = [d[0] for d in cur.description]
    found = {r[0]: ProductFacts.from_row(dict(zip(names, r))) for r in rows}
    missing = [p for p in wanted if p not in found]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise NotFoundError(f"No product with id {shown} in the catalog.", title="Unknown product")
    return {p: found[p] for p in wanted}


def catalog_brands(store: Store) -> list[str]:
    """Every brand in the catalog: copy naming one that is not the product's own is flagged."""
    with store.cursor() as cur:
        return [r[0] for r in cur.execute("SELECT DISTINCT brand FROM products WHERE brand IS NOT NULL AND brand <> ''").fetchall()]


def iter_values(value: Any) -> Iterable[str]:
    """Every scalar inside an attribute value, as text (lists and dicts are walked)."""
    if isinstance(value, Mapping):
        for v in value.values():
            yield from iter_values(v)
    elif isinstance(value, (list, tuple, set)):
        for v in value:
            yield from iter_values(v)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, float) and value.is_integer():
        yield str(int(value))
    else:
        yield str(value)
