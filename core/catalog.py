"""Product queries: facets for the filters, filtered search, one product's detail."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pandas as pd

from core.exports import safe_csv_bytes
from core.store import Store

SEARCH_LIMIT = 500  # rows a search returns; the total is reported separately


@dataclass(frozen=True)
class CatalogFilter:
    text: str = ""  # matched, case-insensitively, in title, brand, description and product_id
    categories: tuple[str, ...] = ()
    brands: tuple[str, ...] = ()
    price_min: float | None = None
    price_max: float | None = None


@dataclass(frozen=True)
class Facets:
    categories: list[str]
    brands: list[str]
    price_min: float
    price_max: float


@dataclass
class SearchResult:
    total: int
    rows: pd.DataFrame


@dataclass
class ProductDetail:
    product: dict[str, object]
    attributes: dict[str, object]
    reviews: pd.DataFrame
    review_count: int
    mean_rating: float | None
    activity: dict[str, int] = field(default_factory=dict)  # event name -> events on this product


def count(store: Store) -> int:
    return store.count("products")


def main_currency(store: Store) -> str | None:
    """The currency most of the catalog is priced in (revenue in the event log is in it too); None if no prices say."""
    with store.cursor() as cur:
        row = cur.execute("SELECT currency FROM products WHERE currency IS NOT NULL AND currency <> '' "
                          "GROUP BY currency ORDER BY count(*) DESC, currency LIMIT 1").fetchall()
    return row[0][0] if row else None


def facets(store: Store) -> Facets:
    with store.cursor() as cur:
        categories = [r[0] for r in cur.execute("SELECT DISTINCT category FROM products WHERE category IS NOT NULL ORDER BY 1").fetchall()]
        brands = [r[0] for r in cur.execute("SELECT DISTINCT brand FROM products WHERE brand IS NOT NULL ORDER BY 1").fetchall()]
        low, high = cur.execute("SELECT coalesce(min(price), 0), coalesce(max(price), 0) FROM products").fetchone()
    return Facets(categories, brands, float(low), float(high))


def _where(flt: CatalogFilter) -> tuple[str, list[object]]:
    clauses, params = [], []
    if flt.text.strip():
        # ILIKE with the user's text as a bound value; % and _ in it are escaped to match literally.
        pattern = "%" + flt.text.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        clauses.append(
            "(title ILIKE ? ESCAPE '\\' OR brand ILIKE ? ESCAPE '\\' OR description ILIKE ? ESCAPE '\\' OR product_id ILIKE ? ESCAPE '\\')"
        )
        params += [pattern] * 4
    if flt.categories:
        clauses.append("list_contains(?, category)")
        params.append(list(flt.categories))
    if flt.brands:
        clauses.append("list_contains(?, brand)")
        params.append(list(flt.brands))
    if flt.price_min is not None:
        clauses.append("price >= ?")
        params.append(flt.price_min)
    if flt.price_max is not None:
        clauses.append("price <= ?")
        params.append(flt.price_max)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def search(store: Store, flt: CatalogFilter, *, limit: int = SEARCH_LIMIT) -> SearchResult:
    where, params = _where(flt)
    # A filter value DuckDB cannot compare (a price bound that is not a number) fails here, titled.
    with store.cursor("The catalog could not be searched") as cur:
        total = cur.execute(f"SELECT count(*) FROM products{where}", params).fetchone()[0]
        rows = cur.execute(
            f"SELECT product_id, title, brand, category, price, currency, updated_at FROM products{where} "
            "ORDER BY category, title LIMIT ?",
            [*params, limit],
        ).df()
    return SearchResult(int(total), rows)


def get_product(store: Store, product_id: str, *, reviews: int = 5) -> ProductDetail | None:
    with store.cursor() as cur:
        found = cur.execute("SELECT * FROM products WHERE product_id = ?", [product_id]).df()
        if found.empty:
            return None
        product = found.iloc[0].to_dict()
        stats = cur.execute("SELECT count(*), avg(rating) FROM reviews WHERE product_id = ?", [product_id]).fetchone()
        recent = cur.execute(
            "SELECT ts, rating, title, text FROM reviews WHERE product_id = ? ORDER BY ts DESC NULLS LAST LIMIT ?",
            [product_id, reviews],
        ).df()
        activity = dict(
            cur.execute(
                "SELECT event_name, count(*) FROM events WHERE product_id = ? GROUP BY 1 ORDER BY 2 DESC", [product_id]
            ).fetchall()
        )
    raw_attributes = product.pop("attributes", None)
    attributes = json.loads(raw_attributes) if isinstance(raw_attributes, str) and raw_attributes else {}
    return ProductDetail(
        product=product,
        attributes=attributes,
        reviews=recent,
        review_count=int(stats[0]),
        mean_rating=float(stats[1]) if stats[1] is not None else None,
        activity={str(k): int(v) for k, v in activity.items()},
    )


def export_frame(store: Store, flt: CatalogFilter) -> pd.DataFrame:
    """Every product matching the filter, all columns, for download (made formula-safe by core.exports)."""
    where, params = _where(flt)
    with store.cursor("The catalog could not be exported") as cur:
        return cur.execute(f"SELECT * FROM products{where} ORDER BY product_id", params).df()


def export_csv(store: Store, flt: CatalogFilter) -> bytes:
    """export_frame as the CSV the Catalog page offers, formulas neutralised."""
    return safe_csv_bytes(export_frame(store, flt))
