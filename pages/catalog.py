"""Catalog: browse, search and filter products, open one; upload a catalog."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import catalog
from core.catalog import CatalogFilter
from pages._resources import ALL_BUT_COPY, cached_read, get_store
from pages._shell import ensure_shell
from pages._widgets import count, import_flow, plain

ensure_shell()
store = get_store()
st.title("Catalog")
browse_tab, upload_tab = st.tabs(["Browse", "Upload a catalog"])

with upload_tab:
    st.caption("Map your export's columns onto MarketLab's product fields; any other column is kept as an attribute.")
    import_flow(store, "products", key="catalog")

with browse_tab:
    if not catalog.count(store):
        st.info("No products yet. Upload a catalog in the **Upload a catalog** tab, or seed the demo store.")
        st.stop()
    facets = cached_read(catalog.facets, reads=ALL_BUT_COPY)
    text = st.text_input("Search", placeholder="title, brand, description or id", key="catalog_search")
    c1, c2, c3 = st.columns([2, 2, 3])
    categories = c1.multiselect("Category", facets.categories, key="catalog_categories")
    brands = c2.multiselect("Brand", facets.brands, key="catalog_brands")
    price_range = None
    if facets.price_max > facets.price_min:
        price_range = c3.slider("Price", facets.price_min, facets.price_max, (facets.price_min, facets.price_max), key="catalog_price")
    flt = CatalogFilter(
        text=text, categories=tuple(categories), brands=tuple(brands),
        price_min=price_range[0] if price_range and price_range[0] > facets.price_min else None,
        price_max=price_range[1] if price_range and price_range[1] < facets.price_max else None,
    )
    result = cached_read(catalog.search, flt, reads=ALL_BUT_COPY)
    st.caption(f"{count(result.total, 'product matches', 'products match')}" + (f"; the first {len(result.rows):,} are listed" if result.total > len(result.rows) else ""))
    if result.rows.empty:
        st.stop()
    table = st.dataframe(
        result.rows, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row", key="catalog_table",
        column_config={"price": st.column_config.NumberColumn("price", format="%.2f"), "updated_at": st.column_config.DatetimeColumn("updated")},
    )
    clicked = table.selection.rows if table is not None and hasattr(table, "selection") else []
    st.download_button("Download these products (CSV)", cached_read(catalog.export_csv, flt, reads=ALL_BUT_COPY),
                       file_name="products.csv", mime="text/csv", key="catalog_export")

    labels = dict(zip(result.rows["product_id"], result.rows["title"] + " · " + result.rows["product_id"]))
    chosen = st.selectbox("Open a product", list(labels), format_func=labels.get, index=None,
                          placeholder="Click a row above, or choose a product here", key="catalog_open")
    if clicked and not chosen:
        chosen = result.rows["product_id"].iloc[clicked[0]]
    if chosen:
        detail = cached_read(catalog.get_product, chosen, reads=ALL_BUT_COPY)
        if detail is None:
            st.warning("That product is no longer in the catalog.")
            st.stop()
        p = detail.product
        st.subheader(plain(p["title"]))
        # Category and brand get the room: a metric's value is one line, cut with "…" where it overflows.
        m1, m2, m3, m4 = st.columns([1, 2, 2, 1])
        m1.metric("Price", "—" if pd.isna(p["price"]) else f"{p['price']:,.2f} {p['currency'] or ''}")
        # A marketplace path ("Sports & Outdoors | … | Longboards") is stored as its top level: the whole path on hover.
        path = detail.attributes.get("category_path")
        m2.metric("Category", plain(p["category"] or "—"), help=plain(str(path)) if path else None)  # a metric's value is markdown
        m3.metric("Brand", plain(p["brand"] or "—"))
        m4.metric("Reviews", f"{detail.review_count:,}" + (f" · {detail.mean_rating:.1f}★" if detail.mean_rating else ""))
        if p["description"]:
            st.text(p["description"])
        left, right = st.columns(2)
        with left:
            st.markdown("**Attributes**")
            if detail.attributes:
                st.dataframe(pd.DataFrame({"attribute": list(detail.attributes), "value": [str(v) for v in detail.attributes.values()]}),
                             hide_index=True, width="stretch")
            else:
                st.caption("No attributes.")
        with right:
            st.markdown("**Activity on this product**")
            if detail.activity:
                st.dataframe(pd.DataFrame({"event": list(detail.activity), "events": list(detail.activity.values())}), hide_index=True, width="stretch")
            else:
                st.caption("No events mention this product.")
        if not detail.reviews.empty:
            st.markdown("**Latest reviews**")
            st.dataframe(detail.reviews, hide_index=True, width="stretch")
        st.caption(plain(f"id {p['product_id']} · updated {p['updated_at']}"))
