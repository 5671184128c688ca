"""Approved copy out of MarketLab: a Google Ads Editor CSV for responsive search ads, and JSON.

The CSV uses Google Ads Editor's column headers for responsive search ads ("Campaign",
"Ad group", "Ad type", "Status", "Headline 1" … "Headline 15", "Description 1" … "Description 4",
"Final URL", "Path 1", "Path 2"; Google Ads Editor Help, "CSV file columns", answer 57747:
headers must be English, case and spaces do not matter, a blank cell means "no change").
The pin columns, "Headline 1 position" … "Headline 15 position" and "Description 1 position"
… "Description 4 position" (value 1, 2 or 3 for a headline, 1 or 2 for a description, blank
when unpinned), are not in answer 57747's list of frequent columns, and Google's own Editor
help could not be found to confirm them: the names are those of Editor's own RSA export, as
reproduced in public repositories that build Editor imports (a "Row Type,Action,Ad status,…,
Description 4,Headline 1 position,…,Description 4 position,Path 1,Path 2,Final URL" header).
The positions themselves are Google Ads' (API ServedAssetFieldType HEADLINE_1..3,
DESCRIPTION_1..2; "About responsive search ads", answer 7684791).

One row per approved variant that Editor would accept as is. An ad is left out, with one
sentence saying why, when it has no Final URL, breaks its channel's limits, or carries pins
Google would refuse. The ad group is the product under a short readable name, so Editor
creates or matches one ad group per product. Ads are written Paused by default: Google allows
3 enabled RSAs per ad group, and a marketer usually reviews in Editor before posting. The
keywords a marketer set on an ad follow the ads, a row each in its ad group ("Keyword",
"Criterion Type"), so the group Editor creates has something to match searches with.

Every text cell goes through ``core.exports`` (formula-safe). Generated copy never starts
with = + - @ (``limits.clean_text`` strips them), so the apostrophe that neutralising adds
only appears on a hand-edited field that starts with one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import pandas as pd

from core.copy.channels import ChannelSpec, get_channel
from core.copy.facts import attribute_key
from core.copy.limits import check_fields, trim_to_limit
from core.copy.variant_store import Variant, VariantFilter, list_variants
from core.errors import InvalidRequestError, MarketLabError
from core.exports import safe_csv_bytes
from core.store import Store

RSA_HEADLINES = 15  # Google Ads: up to 15 headlines per responsive search ad
RSA_DESCRIPTIONS = 4  # and up to 4 descriptions
# Where an asset may be pinned: Google shows at most 3 headlines and 2 descriptions, so those are the positions.
PIN_POSITIONS: dict[str, tuple[int, ...]] = {"headline": (1, 2, 3), "description": (1, 2)}
# Positions every served ad fills (2 headlines, 1 description): pins must leave an asset for each.
SERVED_POSITIONS: dict[str, tuple[int, ...]] = {"headline": (1, 2), "description": (1,)}
GOOGLE_ADS_COLUMNS: tuple[str, ...] = (
    "Campaign", "Ad group", "Ad type", "Status",
    *(f"Headline {i}" for i in range(1, RSA_HEADLINES + 1)),
    *(f"Headline {i} position" for i in range(1, RSA_HEADLINES + 1)),
    *(f"Description {i}" for i in range(1, RSA_DESCRIPTIONS + 1)),
    *(f"Description {i} position" for i in range(1, RSA_DESCRIPTIONS + 1)),
    "Final URL", "Path 1", "Path 2",
    "Keyword", "Criterion Type",
)
# A keyword row of the ad group: Editor takes ads and keywords in one file, a row per item. "Criterion
# Type" carries the match type (Broad, Phrase, Exact); the header is that of Editor's own exports as
# reproduced in public repositories that build Editor imports. Broad is Google's default match type.
KEYWORD_MATCH = "Broad"
RSA_AD_TYPE = "Responsive search ad"
AD_GROUP_MAX = 40  # a name a marketer reads at a glance in Editor's tree (Google allows 255)
# Attribute keys (as ``facts.attribute_key`` spells them) that hold a product's own page, best first.
# The importer keeps every unmapped column under its source name, so Amazon's "Product Url" lands
# as "Product Url"; Google Merchant feeds call it "link" ("image_link" is the picture, not the page).
PRODUCT_URL_KEYS: tuple[str, ...] = (
    "product_url", "url", "link", "product_link", "product_page", "product_page_url", "page_url",
    "landing_page", "landing_page_url", "item_url", "web_url", "canonical_url",
)
_SAMPLE_URL = "https://shop.example/p"  # stands in for {product_url} when a template is checked


@dataclass(frozen=True)
class ProductRef:
    """What the export needs of a product: a name for its ad group and its page, if it has one."""

    title: str
    url: str = ""  # "" when the catalog holds no http(s) page for it


@dataclass
class EditorExport:
    """A Google Ads Editor CSV and what it left out."""

    csv: bytes  # UTF-8 with BOM, formula-safe
    ads: int  # rows written
    skipped: list[str] = field(default_factory=list)  # one sentence per approved ad left out, naming product and why


# --- URLs ----------------------------------------------------------------------------------


def web_url(value: object) -> str:
    """``value`` as an absolute http(s) URL, or "" when it is none (no scheme, no host, spaces inside)."""
    if not isinstance(value, str):
        return ""
    text = value.strip()
    if not text or any(c.isspace() or ord(c) < 32 for c in text):
        return ""
    try:
        parts = urlsplit(text)
    except ValueError:
        return ""
    return text if parts.scheme.lower() in ("http", "https") and parts.netloc else ""


def product_url(attributes: object) -> str:
    """The product's own page from its attributes (a JSON object or its text); "" when none holds an http(s) URL."""
    if isinstance(attributes, str):
        try:
            attributes = json.loads(attributes)
        except json.JSONDecodeError:
            return ""
    if not isinstance(attributes, Mapping):
        return ""
    by_key = {attribute_key(k): v for k, v in attributes.items()}
    for key in PRODUCT_URL_KEYS:
        url = web_url(by_key.get(key))
        if url:
            return url
    return ""


def final_url(template: str, variant: Variant, campaign: str, product_url: str = "") -> str:
    """``template`` with {product_url}, {product_id}, {variant_id} and {campaign} filled in (plain replacement).

    Putting {variant_id} in the URL (utm_content={variant_id}) is what lets events carry the
    variant back into MarketLab's funnels. Ids and the campaign are percent-encoded ("Fall sale"
    would otherwise put a space in the URL, which Editor refuses); the product URL goes in as
    it is, and "{product_url}?" continues with "&" when that URL already has a query.
    """
    if product_url and "?" in product_url:
        template = template.replace("{product_url}?", product_url + "&")
    return (template.replace("{product_url}", product_url)
            .replace("{product_id}", quote(variant.product_id, safe=""))
            .replace("{variant_id}", quote(variant.variant_id, safe=""))
            .replace("{campaign}", quote(campaign, safe="")))


def check_url_template(template: str) -> None:
    """Refuse a template that cannot give an http(s) address: every ad would be refused by Editor."""
    if not template:
        return
    probe = Variant("P1", "google_rsa", "friendly", {}, variant_id="CV-1")
    if not web_url(final_url(template, probe, "campaign", _SAMPLE_URL)):
        raise InvalidRequestError(
            f"The Final URL template {template!r} does not give a web address. Start it with https:// or "
            "{product_url}, e.g. https://shop.example/p/{product_id}?utm_content={variant_id}.",
            title="Final URL template is not a web address")


# --- ad groups -----------------------------------------------------------------------------


def short_name(title: str, product_id: str = "") -> str:
    """A title cut at a phrase boundary to at most AD_GROUP_MAX characters ("LEGO Minecraft Creeper BigFig")."""
    text = " ".join(str(title or "").split())
    if not text:
        return product_id
    cut = trim_to_limit(text, AD_GROUP_MAX)
    if cut:
        return cut
    return text[: AD_GROUP_MAX - 1].rstrip() + "…"  # a first word longer than the limit: nowhere nicer to cut


def ad_group_names(titles: Mapping[str, str]) -> dict[str, str]:
    """Short, unique ad-group names per product id; names that collide get " (product_id)".

    Compared case-blind, since Editor matches ad groups by name and two that differ only in
    case would be one product's ads landing in another's group.
    """
    short = {pid: short_name(title, pid) for pid, title in titles.items()}
    counts: dict[str, int] = {}
    for name in short.values():
        counts[name.casefold()] = counts.get(name.casefold(), 0) + 1
    return {pid: (f"{name} ({pid})" if counts[name.casefold()] > 1 and name != pid else name) for pid, name in short.items()}


# --- one ad ----------------------------------------------------------------------------------


def rsa_pins(variant: Variant, spec: ChannelSpec) -> tuple[dict[str, int], str]:
    """The variant's pins ``{field_key: position}`` for fields with text, and why they are refused ("" if fine)."""
    raw = variant.params.get("pins") or {}
    if not isinstance(raw, Mapping):
        return {}, "its pins are not a field-to-position list"
    pins: dict[str, int] = {}
    for key, position in raw.items():
        if position in (None, "", 0):
            continue  # absent or cleared: unpinned
        try:
            fspec = spec.field(str(key))
        except MarketLabError:
            return {}, f"it pins {key!r}, which an ad does not have"
        allowed = PIN_POSITIONS.get(fspec.group_name)
        if allowed is None:
            return {}, f"{fspec.label} cannot be pinned"
        try:
            place = int(position)
        except (TypeError, ValueError):
            place = -1
        if place not in allowed:
            where = ", ".join(map(str, allowed[:-1])) + f" or {allowed[-1]}"
            return {}, f"{fspec.label} is pinned to position {position}; a {fspec.group_name} pins to {where}"
        if variant.fields.get(fspec.key):  # a pin on an emptied field pins nothing
            pins[fspec.key] = place
    for group, needed in SERVED_POSITIONS.items():
        keys = [f.key for f in spec.group(group) if variant.fields.get(f.key)]
        free = sum(1 for k in keys if k not in pins)
        empty = [p for p in needed if p not in {pins[k] for k in keys if k in pins}]
        if len(empty) > free:
            return {}, f"its pins leave no {group} for position {empty[-1]}"
    return pins, ""


def _problems(variant: Variant, spec: ChannelSpec) -> str:
    found = check_fields(variant.fields, spec)
    return "; ".join(f"{spec.field(k).label}: {', '.join(v)}" for k, v in found.items())


def _row(variant: Variant, spec: ChannelSpec, pins: Mapping[str, int], *, campaign: str, ad_group: str,
         status: str, url: str) -> dict[str, str]:
    """One Editor row: assets in field order, empty ones closed up, each pin beside its asset."""
    row = {column: "" for column in GOOGLE_ADS_COLUMNS}
    row.update({"Campaign": campaign, "Ad group": ad_group, "Ad type": RSA_AD_TYPE, "Status": status, "Final URL": url})
    for group, label, most in (("headline", "Headline", RSA_HEADLINES), ("description", "Description", RSA_DESCRIPTIONS)):
        keys = [f.key for f in spec.group(group) if variant.fields.get(f.key)][:most]
        for i, key in enumerate(keys, start=1):
            row[f"{label} {i}"] = variant.fields[key]
            row[f"{label} {i} position"] = str(pins[key]) if key in pins else ""
    # Google takes Path 2 only beside a Path 1, so a lone path_2 is written as Path 1.
    paths = [variant.fields[f.key] for f in spec.group("path") if variant.fields.get(f.key)]
    row.update({f"Path {i}": text for i, text in enumerate(paths[:2], start=1)})
    return row


def _editor_rows(
    variants: Sequence[Variant],
    products: Mapping[str, ProductRef],
    *,
    campaign: str,
    final_url_template: str,
    status: str,
    ad_groups: Mapping[str, str] | None = None,
) -> tuple[list[dict[str, str]], list[str]]:
    """Rows for the RSA variants Editor would accept, and one sentence per variant left out.

    Variants of other channels are passed over without a word: they were never RSA ads.
    ``ad_groups`` names the groups; without it, short unique names are made from the titles
    of the products whose ads are written.
    """
    check_url_template(final_url_template)
    spec = get_channel("google_rsa")
    kept: list[tuple[Variant, dict[str, int], str]] = []
    skipped: list[str] = []
    for variant in variants:
        if variant.channel != spec.name:
            continue
        product = products.get(variant.product_id) or ProductRef(variant.product_id)
        name = short_name(product.title, variant.product_id)
        who = f"{name} ({variant.product_id})" if name != variant.product_id else variant.product_id
        problems = _problems(variant, spec)
        pins, pin_problem = rsa_pins(variant, spec)
        if not final_url_template and not product.url:
            why = "no Final URL — the product has no URL and no URL template is set"
        elif "{product_url}" in final_url_template and not product.url:
            why = "no Final URL — the URL template uses {product_url} and the product has no URL"
        elif problems:
            why = f"breaks the ad's limits ({problems})"
        elif pin_problem:
            why = f"Google would refuse its pins: {pin_problem}"
        else:
            url = final_url(final_url_template, variant, campaign, product.url) if final_url_template else product.url
            if web_url(url):
                kept.append((variant, pins, url))
                continue
            why = f"no Final URL — {url!r} is not a web address"
        skipped.append(f"{who}: {why} (variant {variant.variant_id}).")
    names = dict(ad_groups) if ad_groups is not None else ad_group_names(
        {v.product_id: (products.get(v.product_id) or ProductRef(v.product_id)).title for v, _, _ in kept})
    rows: list[dict[str, str]] = []
    keywords: dict[tuple[str, str], dict[str, str]] = {}  # two ads of one product share its ad group's keywords
    for v, pins, url in kept:
        group = names.get(v.product_id) or v.product_id
        rows.append(_row(v, spec, pins, campaign=campaign, ad_group=group, status=status, url=url))
        for row in _keyword_rows(campaign, group, v):
            keywords.setdefault((group, row["Keyword"].lower()), row)
    return rows + list(keywords.values()), skipped


def _keyword_rows(campaign: str, ad_group: str, variant: Variant) -> list[dict[str, str]]:
    """A row per keyword the marketer set on the ad (``params["keywords"]``), in its ad group."""
    rows = []
    for keyword in variant.params.get("keywords") or []:
        row = {column: "" for column in GOOGLE_ADS_COLUMNS}
        row.update({"Campaign": campaign, "Ad group": ad_group, "Keyword": keyword, "Criterion Type": KEYWORD_MATCH})
        rows.append(row)
    return rows


# --- public --------------------------------------------------------------------------------


def google_ads_frame(
    variants: Sequence[Variant],
    *,
    campaign: str = "MarketLab",
    ad_groups: Mapping[str, str] | None = None,
    final_url_template: str = "",
    status: str = "Paused",
    product_urls: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """One Google Ads Editor row per RSA variant Editor would accept; see ``google_ads_export`` for the reasons.

    Without a store: ``ad_groups`` gives each product's ad-group name (else its id) and
    ``product_urls`` its page, used as Final URL when no template is set.
    """
    urls = product_urls or {}
    products = {v.product_id: ProductRef(v.product_id, web_url(urls.get(v.product_id))) for v in variants}
    names = {pid: (ad_groups or {}).get(pid) or pid for pid in products}
    rows, _ = _editor_rows(variants, products, campaign=campaign, final_url_template=final_url_template,
                           status=status, ad_groups=names)
    return pd.DataFrame(rows, columns=list(GOOGLE_ADS_COLUMNS))


def product_refs(store: Store, product_ids: Sequence[str]) -> dict[str, ProductRef]:
    """Title and page URL of each product, in one bound query; ids not in the catalog are absent."""
    if not product_ids:
        return {}
    with store.cursor() as cur:
        rows = cur.execute("SELECT product_id, title, attributes FROM products WHERE list_contains(?, product_id)",
                           [list(product_ids)]).fetchall()
    return {pid: ProductRef(title or pid, product_url(attributes)) for pid, title, attributes in rows}


def approved(store: Store, channel: str | None = None, product_ids: Sequence[str] = ()) -> list[Variant]:
    return list_variants(store, VariantFilter(product_ids=tuple(product_ids), channel=channel, statuses=("approved",), limit=100_000))


def google_ads_export(
    store: Store,
    *,
    campaign: str = "MarketLab",
    final_url_template: str = "",
    status: str = "Paused",
    product_ids: Sequence[str] = (),
) -> EditorExport:
    """Approved Google RSA variants as a Google Ads Editor CSV, and a sentence for each ad left out.

    Final URL: ``final_url_template`` filled in when set (see ``final_url``), else the product's
    own page from its attributes (``PRODUCT_URL_KEYS``). A template that cannot give a web
    address is refused (MarketLabError) rather than leaving every ad out.
    """
    variants = approved(store, "google_rsa", product_ids)
    products = product_refs(store, sorted({v.product_id for v in variants}))
    rows, skipped = _editor_rows(variants, products, campaign=campaign, final_url_template=final_url_template, status=status)
    frame = pd.DataFrame(rows, columns=list(GOOGLE_ADS_COLUMNS))
    return EditorExport(safe_csv_bytes(frame), sum(1 for r in rows if r["Ad type"]), skipped)


def google_ads_csv(
    store: Store,
    *,
    campaign: str = "MarketLab",
    final_url_template: str = "",
    status: str = "Paused",
    product_ids: Sequence[str] = (),
) -> bytes:
    """The CSV of ``google_ads_export``, for callers that do not show what was left out."""
    return google_ads_export(store, campaign=campaign, final_url_template=final_url_template, status=status,
                             product_ids=product_ids).csv


def variants_json(variants: Sequence[Variant], *, include_prompt: bool = False) -> bytes:
    """Variants as a JSON list (UTF-8): fields, scores and the audit trail, the prompt only when asked."""
    out: list[dict[str, Any]] = []
    for variant in variants:
        item = variant.to_dict()
        if not include_prompt:
            item["params"] = {k: v for k, v in item["params"].items() if k not in ("prompt", "raw")}
        out.append(item)
    return json.dumps(out, ensure_ascii=False, indent=2, default=str).encode("utf-8")


def approved_json(store: Store, *, channel: str | None = None, product_ids: Sequence[str] = (), include_prompt: bool = False) -> bytes:
    return variants_json(approved(store, channel, product_ids), include_prompt=include_prompt)
