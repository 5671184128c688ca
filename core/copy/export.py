"""Approved copy out of MarketLab: a Google Ads Editor CSV for responsive search ads, and JSON.

The CSV uses Google Ads Editor's column headers for responsive search ads ("Campaign",
"Ad group", "Ad type", "Headline 1" … "Headline 15", "Description 1" … "Description 4",
"Final URL", "Path 1", "Path 2", "Status"; Google Ads Editor Help, "CSV file columns",
answer 57747: headers must be English, case and spaces do not matter). One row per approved
variant; the ad group is the product, so Editor creates or matches one ad group per product.
Ads are written Paused by default: Google allows 3 enabled RSAs per ad group, and a
marketer usually reviews in Editor before posting.

Every text cell goes through ``core.exports`` (formula-safe). Generated copy never starts
with = + - @ (``limits.clean_text`` strips them), so the apostrophe that neutralising adds
only appears on a hand-edited field that starts with one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import pandas as pd

from core.copy.channels import get_channel
from core.copy.limits import check_fields
from core.copy.variants import Variant, VariantFilter, list_variants
from core.exports import safe_csv_bytes
from core.store import Store

RSA_HEADLINES = 15  # Google Ads: up to 15 headlines per responsive search ad
RSA_DESCRIPTIONS = 4  # and up to 4 descriptions
GOOGLE_ADS_COLUMNS: tuple[str, ...] = (
    "Campaign", "Ad group", "Ad type", "Status",
    *(f"Headline {i}" for i in range(1, RSA_HEADLINES + 1)),
    *(f"Description {i}" for i in range(1, RSA_DESCRIPTIONS + 1)),
    "Final URL", "Path 1", "Path 2",
)
RSA_AD_TYPE = "Responsive search ad"


def final_url(template: str, variant: Variant, campaign: str) -> str:
    """``template`` with {product_id}, {variant_id} and {campaign} filled in (plain replacement, no format codes).

    Putting {variant_id} in the URL (utm_content={variant_id}) is what lets events carry the
    variant back into MarketLab's funnels.
    """
    return (template.replace("{product_id}", variant.product_id).replace("{variant_id}", variant.variant_id)
            .replace("{campaign}", campaign))


def google_ads_frame(
    variants: Sequence[Variant],
    *,
    campaign: str = "MarketLab",
    ad_groups: Mapping[str, str] | None = None,
    final_url_template: str = "",
    status: str = "Paused",
) -> pd.DataFrame:
    """One Google Ads Editor row per responsive-search-ad variant within limits; other channels are skipped."""
    spec = get_channel("google_rsa")
    rows = []
    for variant in variants:
        if variant.channel != spec.name or check_fields(variant.fields, spec):
            continue
        headlines = [variant.fields[f.key] for f in spec.group("headline") if variant.fields.get(f.key)][:RSA_HEADLINES]
        descriptions = [variant.fields[f.key] for f in spec.group("description") if variant.fields.get(f.key)][:RSA_DESCRIPTIONS]
        row = {column: "" for column in GOOGLE_ADS_COLUMNS}
        row.update({
            "Campaign": campaign,
            "Ad group": (ad_groups or {}).get(variant.product_id) or variant.product_id,
            "Ad type": RSA_AD_TYPE,
            "Status": status,
            "Final URL": final_url(final_url_template, variant, campaign) if final_url_template else "",
        })
        row.update({f"Headline {i}": text for i, text in enumerate(headlines, start=1)})
        row.update({f"Description {i}": text for i, text in enumerate(descriptions, start=1)})
        rows.append(row)
    return pd.DataFrame(rows, columns=list(GOOGLE_ADS_COLUMNS))


def _ad_group_names(store: Store, product_ids: Sequence[str]) -> dict[str, str]:
    """'Title (product_id)': readable in Editor and unique per product."""
    if not product_ids:
        return {}
    with store.cursor() as cur:
        rows = cur.execute("SELECT product_id, title FROM products WHERE list_contains(?, product_id)", [list(product_ids)]).fetchall()
    return {pid: f"{title} ({pid})" for pid, title in rows}


def approved(store: Store, channel: str | None = None, product_ids: Sequence[str] = ()) -> list[Variant]:
    return list_variants(store, VariantFilter(product_ids=tuple(product_ids), channel=channel, statuses=("approved",), limit=100_000))


def google_ads_csv(
    store: Store,
    *,
    campaign: str = "MarketLab",
    final_url_template: str = "",
    status: str = "Paused",
    product_ids: Sequence[str] = (),
) -> bytes:
    """Approved Google RSA variants as a formula-safe CSV that Google Ads Editor imports."""
    variants = approved(store, "google_rsa", product_ids)
    names = _ad_group_names(store, sorted({v.product_id for v in variants}))
    frame = google_ads_frame(variants, campaign=campaign, ad_groups=names, final_url_template=final_url_template, status=status)
    return safe_csv_bytes(frame)


def variants_json(variants: Sequence[Variant], *, include_prompt: bool = False) -> bytes:
    """Variants as a JSON list (UTF-8): fields, scores and the audit trail, the prompt only when asked."""
    out = []
    for variant in variants:
        item = variant.to_dict()
        if not include_prompt:
            item["params"] = {k: v for k, v in item["params"].items() if k not in ("prompt", "raw")}
        out.append(item)
    return json.dumps(out, ensure_ascii=False, indent=2, default=str).encode("utf-8")


def approved_json(store: Store, *, channel: str | None = None, product_ids: Sequence[str] = (), include_prompt: bool = False) -> bytes:
    return variants_json(approved(store, channel, product_ids), include_prompt=include_prompt)
