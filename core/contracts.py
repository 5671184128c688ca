"""What each importable table expects, and how an export's own column names map onto it.

A mapping is ``{source column: target}`` where target is a contract field, ``ATTRIBUTE``
(kept in the row's ``attributes`` JSON, for tables that have one) or ``IGNORE``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from core.errors import MappingError

ATTRIBUTE = "(attribute)"
IGNORE = "(ignore)"


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # id | text | money | number | timestamp | rating
    required: bool = False
    help: str = ""
    # Normalised source names that suggest this field, best first.
    synonyms: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableContract:
    table: str
    fields: tuple[Field, ...]
    key: tuple[str, ...]
    has_attributes: bool  # unmapped columns are kept as attributes rather than dropped

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def targets(self) -> list[str]:
        """Choices offered for each source column, in display order."""
        return [*self.field_names, *([ATTRIBUTE] if self.has_attributes else []), IGNORE]


_USER_ID = ("user_id", "userid", "visitorid", "visitor_id", "customer_id", "customerid", "client_id", "uid", "user")
_PRODUCT_ID = ("product_id", "productid", "itemid", "item_id", "sku", "stockcode", "asin", "clothing_id", "uniq_id", "product_code", "id")

CONTRACTS: dict[str, TableContract] = {
    "products": TableContract(
        "products",
        (
            Field("product_id", "id", True, "Unique product identifier (SKU, ASIN…)", _PRODUCT_ID),
            Field("title", "text", True, "Product name as shoppers see it", ("title", "product_name", "name", "product_title", "item_name", "description_short")),
            Field("brand", "text", False, "Brand or manufacturer", ("brand", "brand_name", "manufacturer", "vendor")),
            Field("category", "text", False, "Category, any depth", ("category", "category_name", "product_category", "category_code", "product_category_name", "product_type", "type")),
            Field("price", "money", False, "Selling price, ≥ 0; symbols like $ are read", ("price", "selling_price", "sale_price", "unit_price", "unitprice", "current_price", "list_price")),
            Field("currency", "text", False, "ISO currency code; taken from a price symbol when absent", ("currency", "currency_code")),
            Field("description", "text", False, "Long description", ("description", "product_description", "long_description", "about_product", "body_html", "body", "details")),
        ),
        key=("product_id",),
        has_attributes=True,
    ),
    "events": TableContract(
        "events",
        (
            Field("user_id", "id", True, "Who did it", _USER_ID),
            Field("ts", "timestamp", True, "When (ISO text, dates, or epoch seconds/milliseconds)", ("ts", "timestamp", "event_time", "eventtime", "event_timestamp", "datetime", "time", "date", "occurred_at", "created_at", "invoicedate")),
            Field("event_name", "text", True, "What happened (view, add_to_cart, purchase…)", ("event_name", "event", "event_type", "eventtype", "action", "type")),
            Field("product_id", "id", False, "Product involved", _PRODUCT_ID[:-1]),
            Field("session_id", "id", False, "Visit or session", ("session_id", "sessionid", "user_session", "session")),
            Field("campaign", "text", False, "Campaign that brought the visit", ("campaign", "utm_campaign", "campaign_name")),
            Field("variant_id", "id", False, "Copy variant shown (joins copy_variants)", ("variant_id", "variant", "ad_variant", "creative_id")),
            Field("device", "text", False, "mobile, desktop, tablet…", ("device", "device_type", "platform")),
            Field("source", "text", False, "Traffic source", ("source", "utm_source", "traffic_source", "medium", "channel")),
            Field("order_id", "id", False, "Order or invoice the row belongs to", ("order_id", "orderid", "invoiceno", "invoice_no", "invoice", "order_number", "transaction_id")),
            Field("quantity", "number", False, "Units on the row; negative for a return", ("quantity", "qty", "units", "quantity_ordered")),
            Field("unit_price", "number", False, "Price per unit: revenue is quantity × unit price when the file has no revenue column",
                  ("unit_price", "unitprice", "item_price", "price_each")),
            Field("revenue", "number", False, "Order value on purchase events", ("revenue", "value", "transaction_revenue", "order_value", "amount", "sales")),
        ),
        # Each row of a file is one event: two purchases can share user, time, name and product.
        # The key is the row's own identity (its whole content and which repeat of it it is),
        # so re-uploading a file replaces its rows and never merges two real ones.
        key=("row_key",),
        has_attributes=False,
    ),
    "users": TableContract(
        "users",
        (
            Field("user_id", "id", True, "Unique user identifier", _USER_ID),
            Field("first_seen", "timestamp", False, "Sign-up or first visit", ("first_seen", "signup_date", "registered_at", "created_at", "first_visit", "signup")),
            Field("country", "text", False, "Country name or code", ("country", "country_code")),
        ),
        key=("user_id",),
        has_attributes=True,
    ),
    "reviews": TableContract(
        "reviews",
        (
            Field("review_id", "id", False, "Unique review id; made from the row's content when absent", ("review_id", "reviewid")),
            Field("product_id", "id", False, "Product reviewed", _PRODUCT_ID[:-1]),
            Field("user_id", "id", False, "Reviewer", _USER_ID),
            Field("rating", "rating", True, "Stars, 1–5", ("rating", "stars", "star_rating", "score", "review_score", "overall")),
            Field("title", "text", False, "Review headline", ("title", "review_title", "summary", "headline")),
            Field("text", "text", False, "Review body", ("text", "review_text", "review", "verified_reviews", "review_body", "body", "content", "comment")),
            Field("ts", "timestamp", False, "When it was written", ("ts", "date", "review_date", "timestamp", "created_at", "time")),
        ),
        key=("review_id",),
        has_attributes=False,
    ),
}


def contract(table: str) -> TableContract:
    try:
        return CONTRACTS[table]
    except KeyError:
        raise MappingError(f"Unknown table {table!r}; choose one of {', '.join(CONTRACTS)}.") from None


def normalise_name(column: str) -> str:
    """'Product Name' -> 'product_name', 'visitorId' -> 'visitorid'."""
    return re.sub(r"[^0-9a-z]+", "_", column.strip().lower()).strip("_")


def suggest_mapping(frame: pd.DataFrame, table: str) -> dict[str, str]:
    """A first guess at the mapping, from column names; empty columns lose to filled ones."""
    spec = contract(table)
    columns = [str(c) for c in frame.columns]
    normalised = {c: normalise_name(c) for c in columns}
    # A real export often has both "Product Description" (empty) and "About Product" (filled).
    filled = {c: bool(frame[c].notna().any()) for c in columns}
    mapping = {c: (ATTRIBUTE if spec.has_attributes else IGNORE) for c in columns}
    for fld in spec.fields:
        # Filled columns first, then synonyms in order of preference.
        for want_filled in (True, False):
            match = next(
                (c for syn in fld.synonyms for c in columns
                 if normalised[c] == syn and filled[c] == want_filled and mapping[c] in (ATTRIBUTE, IGNORE)),
                None,
            )
            if match is not None:
                mapping[match] = fld.name
                break
    for c in columns:
        if normalised[c].startswith("column_") and mapping[c] == ATTRIBUTE:
            mapping[c] = IGNORE  # a headerless index column is noise, not an attribute
    return mapping


def resolve_mapping(
    frame: pd.DataFrame, table: str, overrides: dict[str, str] | None = None, constants: dict[str, str] | None = None
) -> dict[str, str]:
    """Suggestion with the user's choices on top; checked so that every required field is covered once."""
    spec = contract(table)
    mapping = suggest_mapping(frame, table)
    overrides = dict(overrides or {})
    unknown = [c for c in overrides if c not in mapping]
    if unknown:
        raise MappingError(f"The mapping names column(s) not in the file: {', '.join(map(repr, unknown))}. The file has: {', '.join(mapping)}.")
    for source, target in overrides.items():
        if target not in spec.targets:
            raise MappingError(f"{source!r} cannot map to {target!r}; choose one of: {', '.join(spec.targets)}.")
        if target in spec.field_names:
            # The user's choice wins over a suggestion for the same field.
            for other, other_target in mapping.items():
                if other_target == target and other not in overrides:
                    mapping[other] = ATTRIBUTE if spec.has_attributes else IGNORE
        mapping[source] = target
    check_mapping(mapping, table, constants)
    return mapping


def check_mapping(mapping: dict[str, str], table: str, constants: dict[str, str] | None = None) -> None:
    """Each field takes one column; required fields need a column or a fixed value (constants)."""
    spec = contract(table)
    constants = constants or {}
    for name in constants:
        if name not in spec.field_names:
            raise MappingError(f"{name!r} is not a field of {table}; fixed values can be set for: {', '.join(spec.field_names)}.")
    used: dict[str, list[str]] = {}
    for source, target in mapping.items():
        if target not in spec.targets:
            raise MappingError(f"{source!r} cannot map to {target!r}; choose one of: {', '.join(spec.targets)}.")
        if target in spec.field_names:
            used.setdefault(target, []).append(source)
    doubled = {t: s for t, s in used.items() if len(s) > 1}
    if doubled:
        target, sources = next(iter(doubled.items()))
        raise MappingError(f"Both {' and '.join(map(repr, sources))} map to {target!r}; a field takes one column.")
    both = [t for t in used if constants.get(t)]
    if both:
        raise MappingError(f"{both[0]!r} has both a column ({used[both[0]][0]!r}) and a fixed value; keep one.")
    missing = [f.name for f in spec.fields if f.required and f.name not in used and not constants.get(f.name)]
    if missing:
        # The hint is about the field that is missing: only an event log lacks a column it can be given.
        hint = (", or give a fixed value (a file of orders has no event column: every row is a purchase)"
                if "event_name" in missing else "")
        raise MappingError(
            f"No column is mapped to required field(s) {', '.join(map(repr, missing))} of {table}. "
            f"Map a column of the file to {'it' if len(missing) == 1 else 'them'}{hint}.",
            title="Missing required column",
        )
