"""What a marketer does to one asset of a saved ad (an RSA headline, a Meta primary text): lock it, or
have the model write a new one in its place, leaving the rest of the ad as it is.

A locked asset is never replaced. A regenerated asset is the best new usable one (every gate, the
faithfulness check, limits, banned words: ``core.copy.assemble.usable_asset``) that says something
the ad does not already say; when the model gives none, nothing changes and the marketer is told.
Either way the ad is re-scored, and an approved ad whose text changed goes back to draft: an
approval covers the text that was approved.
"""

from __future__ import annotations

import json
from dataclasses import replace
from collections.abc import Iterable, Sequence
from typing import Any

from core.copy.assemble import DATA, asset_pool
from core.copy.channels import get_channel, get_tone
from core.copy.export import PIN_POSITIONS, rsa_pins
from core.copy.facts import load_facts
from core.copy.gates import asset_key
from core.copy.limits import repair
from core.copy.prompts import build_messages
from core.copy.scoring import DEFAULT_BANNED, NEAR_DUPLICATE, Evidence, similarity
from core.copy.variant_store import CopyError, Variant, brands, now_text, require_variant, rescore
from core.copy.variants import GenerateFn, call_model
from core.errors import InvalidRequestError, NotFoundError
from core.store import Store

__all__ = ["clean_keywords", "regenerate_assets", "set_keywords", "set_locked", "set_pin"]

# Google Ads keyword limits: 80 characters and 10 words a keyword; these characters are refused in one.
KEYWORD_MAX_CHARS, KEYWORD_MAX_WORDS, KEYWORDS_MAX = 80, 10, 20
_KEYWORD_REFUSED = set("!@%^()={};~`<>?\\|,")

# Answers asked for per regeneration: one call, enough that a usable new asset is likely among them.
ANSWERS_PER_REGENERATION = 6


def _asset_keys(variant: Variant, keys: Iterable[str]) -> list[str]:
    """``keys``, checked against the ad's channel: a pooled format's asset fields, not its paths."""
    spec = get_channel(variant.channel)
    if not spec.pooled:
        raise InvalidRequestError(f"{spec.label} copy is one piece of text, not assets: generate a new variant instead.",
                             title="No assets to lock or regenerate")
    keys = list(dict.fromkeys(keys))
    writable = {f.key for f in spec.fields if f.group_name in {g.group_name for g in spec.writes.fields}}
    unknown = [k for k in keys if k not in writable]
    if unknown:
        raise NotFoundError(f"{spec.label} has no asset {', '.join(map(repr, unknown))}.", title="Unknown asset")
    return keys


def _write(store: Store, variant: Variant) -> None:
    with store.transaction(touches=("copy_variants",)) as cur:
        cur.execute("UPDATE copy_variants SET fields = ?, params = ?, scores = ?, status = ? WHERE variant_id = ?",
                    [json.dumps(variant.fields, ensure_ascii=False), json.dumps(variant.params, ensure_ascii=False, default=str),
                     json.dumps(variant.scores, ensure_ascii=False, default=str), variant.status, variant.variant_id])


def set_locked(store: Store, variant_id: str, keys: Iterable[str]) -> Variant:
    """Lock exactly ``keys`` of a saved ad (an empty list unlocks all): regeneration leaves them as they are."""
    store.require_editor("locking copy")
    variant = require_variant(store, variant_id)
    locked = _asset_keys(variant, keys)
    variant.params = {**variant.params, "locked": sorted(locked)}
    _write(store, variant)
    return variant


def set_pin(store: Store, variant_id: str, key: str, position: int | None) -> Variant:
    """Pin one asset of a saved Google RSA to a position (headline 1–3, description 1–2), or unpin it (None).

    Refused, with Google's reason, when the pins would leave a position every served ad fills
    without an asset. The ad strength is recomputed: a position pinned to one asset lowers it.
    """
    store.require_editor("pinning copy")
    variant = require_variant(store, variant_id)
    spec = get_channel(variant.channel)
    if spec.name != "google_rsa":
        raise InvalidRequestError(f"{spec.label} does not pin assets to positions; only a Google responsive search ad does.",
                             title="Nothing to pin")
    (key,) = _asset_keys(variant, [key])
    group = spec.field(key).group_name
    if position is not None and position not in PIN_POSITIONS.get(group, ()):
        places = PIN_POSITIONS.get(group, ())
        raise InvalidRequestError(f"A {group} pins to position {', '.join(map(str, places[:-1]))} or {places[-1]}, not {position}."
                             if places else f"A {group} cannot be pinned.", title="Pin refused")
    pins = {k: p for k, p in (variant.params.get("pins") or {}).items() if k != key}
    if position is not None:
        pins[key] = position
    pinned = replace(variant, params={**variant.params, "pins": pins})
    _, why = rsa_pins(pinned, spec)
    if why:
        raise InvalidRequestError(f"Not pinned: {why}.", title="Pin refused")
    pinned.scores = rescore(store, pinned)
    _write(store, pinned)
    return pinned


def clean_keywords(keywords: Iterable[str]) -> list[str]:
    """Keywords as Google takes them: trimmed, spaces single, each once (case aside), in the order given.

    Raises InvalidRequestError naming the first keyword Google would refuse (too long, too many words,
    a character it does not allow) or when there are more than ``KEYWORDS_MAX``.
    """
    out: dict[str, str] = {}
    for raw in keywords:
        keyword = " ".join(str(raw).split())
        if not keyword:
            continue
        refused = sorted(set(keyword) & _KEYWORD_REFUSED)
        if refused:
            raise InvalidRequestError(f"Keyword {keyword!r} has {' '.join(refused)}, which Google does not allow in a keyword.",
                                 title="Keyword refused")
        if len(keyword) > KEYWORD_MAX_CHARS or len(keyword.split()) > KEYWORD_MAX_WORDS:
            raise InvalidRequestError(f"Keyword {keyword[:40]!r}… is longer than Google's {KEYWORD_MAX_CHARS} characters or "
                                 f"{KEYWORD_MAX_WORDS} words.", title="Keyword refused")
        out.setdefault(keyword.lower(), keyword)
    if len(out) > KEYWORDS_MAX:
        raise InvalidRequestError(f"{len(out)} keywords: keep an ad group to its {KEYWORDS_MAX} closest searches.",
                             title="Too many keywords")
    return list(out.values())


def set_keywords(store: Store, variant_id: str, keywords: Iterable[str]) -> Variant:
    """The ad group's keywords for a saved Google RSA (none: what the product is stands in for ad strength).

    Ad strength is recomputed against them ("no headline has the keyword 'merino socks'"), and the
    Google Ads Editor export writes them as the ad group's keywords.
    """
    store.require_editor("setting keywords")
    variant = require_variant(store, variant_id)
    if variant.channel != "google_rsa":
        raise InvalidRequestError("Keywords belong to a Google search ad group; this ad is not a Google RSA.", title="No keywords here")
    updated = replace(variant, params={**variant.params, "keywords": clean_keywords(keywords)})
    updated.scores = rescore(store, updated)
    _write(store, updated)
    return updated


def regenerate_assets(store: Store, generate_fn: GenerateFn, variant_id: str, keys: Sequence[str], *, seed: int | None = None,
                      temperature: float | None = None, banned: Sequence[str] = DEFAULT_BANNED) -> Variant:
    """New text for ``keys`` of a saved ad, from one model call; locked assets and the rest stay.

    All or nothing: if any asset asked for has no new usable replacement, CopyError says which and
    the saved ad is unchanged. Raises InvalidRequestError (NotFoundError) for a locked (an unknown) asset.
    """
    store.require_editor("regenerating copy")
    variant = require_variant(store, variant_id)
    keys = _asset_keys(variant, keys)
    locked = [k for k in keys if k in variant.params.get("locked", [])]
    if locked:
        raise InvalidRequestError(f"{', '.join(locked)} {'is' if len(locked) == 1 else 'are'} locked: unlock before regenerating.",
                             title="Locked asset")
    if not keys:
        raise InvalidRequestError("Pick at least one asset to regenerate.", title="Nothing to regenerate")
    spec = get_channel(variant.channel)
    facts = load_facts(store, [variant.product_id])[variant.product_id]
    evidence = Evidence(facts, brands(store))
    messages = build_messages(facts, spec, get_tone(variant.tone), str(variant.params.get("persona", "")),
                              few_shot=not getattr(generate_fn, "tuned", False))
    done = len(variant.params.get("regenerated", []))
    seed = int(variant.params.get("seed", 0)) + 7_919 * (done + 1) if seed is None else seed
    temperature = float(variant.params.get("temperature", 0.8)) if temperature is None else temperature
    (answers,) = call_model(generate_fn, [messages], ANSWERS_PER_REGENERATION, spec.writes, temperature, seed)
    repaired = [repair(text, spec, facts, truncated=cut) for text, cut in answers]
    # Only what the model wrote this time: the product's own phrases are in the ad already, or were passed over.
    pools = asset_pool([(r.fields, r.actions) for r in repaired if r.compliant], spec, facts, evidence, points=[], banned=banned)
    fields = dict(variant.fields)
    origins = dict(variant.params.get("assets", {}))
    for key in keys:
        group = spec.field(key).group_name
        others = [v for k, v in fields.items() if k != key]
        same_group = [v for k, v in fields.items() if k != key and spec.field(k).group_name == group] if key in spec.keys else []
        taken = {asset_key(v) for v in [*others, variant.fields.get(key, "")]}
        new = next((a for a in pools.get(group, []) if a.usable and a.origin != DATA and asset_key(a.text) not in taken
                    and all(similarity({"a": a.text}, {"a": v}) < NEAR_DUPLICATE for v in same_group)), None)
        if new is None:
            raise CopyError(f"The model wrote no new usable {spec.field(key).label.lower()} this time (every one it wrote "
                            "failed a check or repeats the ad). The ad is unchanged: try again, or edit it by hand.",
                            title="No new asset")
        fields[key] = new.text
        origins[key] = new.origin
    entry: dict[str, Any] = {"at": now_text(), "by": store.user.name, "fields": list(keys), "seed": seed,
                             "before": {k: variant.fields.get(k) for k in keys}}
    variant.fields = fields
    variant.params = {**variant.params, "assets": origins, "regenerated": [*variant.params.get("regenerated", []), entry]}
    variant.scores = rescore(store, variant, banned)
    if variant.status == "approved":
        variant.status = "draft"  # an approval covers the text that was approved, not this one
    _write(store, variant)
    return variant
