"""An ad made of many assets (a Google RSA's 15 headlines and 4 descriptions, Meta's 5 + 5), assembled.

A 135M model writes three headlines and two descriptions per answer at best, and not all of them
usable. So the ad is assembled: every asset of every answer, and grounded assets built from the
product's ranked selling points (``core.copy.selling_points``), go through the same checks one by
one — the field's limits, every gate, the faithfulness checker, banned words — and the survivors,
near-duplicates dropped, fill the ad: the assets carrying the best selling points first, so the
ad leads with them, then what the model wrote, then the product's own phrases. With several ads
per product the assets are dealt out in turn, so the ads differ, and each still carries the top
selling point.

Nothing here calls the model; ``variants`` does, and hands over the answers it got.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from core.copy.channels import ChannelSpec, FieldSpec
from core.copy.data_headlines import (call_to_action, call_to_action_sentence, closing_sentences, kind_is_named, maker_name,
                                      offer_sentence, price_headline, second_call_to_action, title_phrases)
from core.copy.facts import ProductFacts
from core.copy.gates import TITLE_BOUNDARY, asset_gates, asset_key, model_asset_problem, pastes_a_cut
from core.copy.limits import field_problems, short_forms, trim_to_limit
from core.copy.scoring import DEFAULT_BANNED, NEAR_DUPLICATE, Evidence, banned_hits, claims_in, similarity
from core.copy.selling_points import SellingPoint, carries, selling_points

__all__ = ["Asset", "assemble_ads", "asset_pool", "display_paths", "usable_asset"]

MODEL, DATA = "model", "data"
# Descriptions built from selling points join this many of them at most: two facts a sentence
# each reads like copy; four reads like a spec sheet.
_POINTS_PER_DESCRIPTION = 2
# Shorter than this, a description says one small thing ("Comes in Sand.", "2 pockets.").
_SHORT_DESCRIPTION = 30


@dataclass(frozen=True)
class Asset:
    group: str  # the channel's field group: "headline", "description", "primary_text"
    text: str
    origin: str  # MODEL (an answer's field) or DATA (the product's own selling points and phrases)
    points: tuple[int, ...] = ()  # ranks (0 = best) of the selling points it carries
    # False for an asset within limits that fails a gate or the faithfulness check: used only when
    # the format's minimum cannot be met otherwise, so the ad is shown with its problems named.
    usable: bool = True

    @property
    def rank_key(self) -> tuple:
        # Usable first; best selling point next; then the model's words over the data's phrases;
        # then shorter (a headline that says one thing well reads better than one that crams).
        return (not self.usable, min(self.points, default=99), self.origin != MODEL, -len(self.points), len(self.text))


def usable_asset(text: str, fspec: FieldSpec, spec: ChannelSpec, facts: ProductFacts, evidence: Evidence,
                 banned: Sequence[str] = DEFAULT_BANNED) -> bool:
    """Whether one asset, alone, could be published: limits, gates, faithfulness and banned words all pass."""
    fields = {fspec.key: text}
    return (not field_problems(text, fspec) and not asset_gates(fields, spec, facts)
            and not claims_in(text, evidence, fspec.key) and not banned_hits(fields, banned))


def _data_texts(group: str, fspec: FieldSpec, facts: ProductFacts, points: Sequence[SellingPoint], slots: int,
                brands: Sequence[str] = ()) -> list[str]:
    """Assets built only from the product's data for one group: selling points phrased to fit, and the product's names."""
    limit = fspec.max_chars or 999
    if limit <= 40:  # a headline: the point as a phrase, the title's phrases, the product's names, price, a call to action
        out = [p.headline for p in points if p.headline]
        out += [h for p in points for h in p.headlines if h != p.headline]  # other phrasings, after every point's best
        out += [p.text.rstrip(".") for p in points if len(p.text.rstrip(".")) <= limit]
        out += title_phrases(facts, limit, brands) + [t for t in [maker_name(facts, limit)] if t]
        # A category leaf the title does not bear out ("Birthday Candles" for balloons) names a shelf, not the product.
        shelf = facts.kind.lower() if facts.kind and not kind_is_named(facts) else None
        out += [f for f in short_forms(facts) if len(f) <= limit and not (shelf and shelf in f.lower())]
        cut = trim_to_limit(facts.title, limit)
        out += [cut] if cut and _ends_a_phrase(cut, facts.title) else []
        return out + [t for t in (price_headline(facts, limit, brands), call_to_action(facts, limit, brands),
                                  second_call_to_action(facts, limit, brands)) if t]
    # A description or primary text: the points that fit, as many descriptions as the ad has room for
    # (Google rates an RSA by how many distinct ones it has), the best points paired while there are
    # more points than room: 6 points in 4 descriptions are 2 pairs and 2 singles. Singles of every
    # point follow, for the minimum when a pair is taken elsewhere.
    fitting = [p.text for p in points if len(p.text) <= limit]
    pairs_wanted = max(0, len(fitting) - slots)
    out, i = [], 0
    while i < len(fitting):
        pair = " ".join(fitting[i : i + _POINTS_PER_DESCRIPTION])
        if pairs_wanted and i + 1 < len(fitting) and len(pair) <= limit:
            out.append(pair)
            pairs_wanted -= 1
            i += _POINTS_PER_DESCRIPTION
        else:
            out.append(fitting[i])
            i += 1
    dealt = len(out)
    out += [t for t in fitting if t not in out]
    # A description of one short fact ("Comes in Sand.") is closed with a call to action or the price;
    # the thinnest of those the ad is meant to show first (the singles after them only meet a minimum).
    closings = closing_sentences(facts, limit, brands)
    unused = iter(closings)
    for i in sorted(range(dealt), key=lambda j: len(out[j])):
        text = out[i]
        if len(text) < _SHORT_DESCRIPTION and (closing := next(unused, None)) and len(text) + 1 + len(closing) <= limit:
            out[i] = f"{text} {closing}"
    # Last, for a product whose data gives fewer descriptions than the ad takes (Google needs two): the offer
    # said whole, then the call to action on its own if no description closes with it already.
    offer = offer_sentence(facts, limit, brands)
    call = call_to_action_sentence(facts, limit, brands)
    extra = [offer] + ([call] if call and not any(t.endswith(call) for t in out) else [])
    return out + [t for t in extra if t and t not in out]


def _ends_a_phrase(cut: str, title: str) -> bool:
    """Whether the title's words after ``cut`` start a new phrase ("Little JJ Cole Backpack | for Kids"), so
    the cut names something; "Transformers Toys Studio | Series 52…" names nothing."""
    rest = title[len(cut):].strip()
    following = re.split(r"\s+", rest)[0].lower() if rest else ""
    return not rest or following in TITLE_BOUNDARY or rest[0] in ",-–—|(/:;"


def asset_pool(answers: Iterable[tuple[Mapping[str, str], Mapping[str, str]]], spec: ChannelSpec, facts: ProductFacts,
               evidence: Evidence, *, points: Sequence[SellingPoint] | None = None,
               banned: Sequence[str] = DEFAULT_BANNED) -> dict[str, list[Asset]]:
    """Distinct assets within limits per group of ``spec``, usable ones first, best first.

    ``answers``: (fields, actions) of each repaired model answer; a field its repair filled from
    the product's data ("fallback") counts as DATA, like the assets built here from ``points``.
    """
    points = selling_points(facts) if points is None else points
    pools: dict[str, list[Asset]] = {}
    # The groups the model writes (headlines, descriptions); display paths are not written but derived.
    for group in dict.fromkeys(f.group_name for f in spec.writes.fields):
        fspec = spec.group(group)[0]
        raw: list[tuple[str, str]] = []
        # The answers' repair fills a field the model left unusable from the data, cutting the title at a
        # word if nothing shorter fits ("LEGO The Powerpuff Girls Mojo"): such a cut is held to the rule
        # for pasted cuts below, like the model's own, while this module's data texts cut only where a phrase ends.
        repaired: set[str] = set()
        for fields, actions in answers:
            for key, text in fields.items():
                if key == group or re.fullmatch(rf"{re.escape(group)}_\d+", key):
                    raw.append((text, DATA if actions.get(key) == "fallback" else MODEL))
                    if actions.get(key) == "fallback":
                        repaired.add(text)
        raw += [(text, DATA) for text in _data_texts(group, fspec, facts, points, len(spec.group(group)), evidence.brands)]
        seen: set[str] = set()
        assets = []
        for text, origin in raw:
            key = asset_key(text)
            if not key or key in seen:
                continue
            seen.add(key)
            if not field_problems(text, fspec):
                carried = tuple(i for i, p in enumerate(points) if carries(text, p))
                usable = usable_asset(text, fspec, spec, facts, evidence, banned)
                # What the model wrote on its own is about this product, in its words and plain ones: a 135M model
                # strings real but unrelated words into names ("Disney Resin Acrylic Key Ring", "Polyester Beach
                # Bunker") and sentences ("100 Guns Bite") that every other check lets through.
                short = (fspec.max_chars or 999) <= 40
                if usable and origin == MODEL and model_asset_problem(text, facts, short=short):
                    usable = False
                if usable and short and text in repaired and pastes_a_cut(text, facts):
                    usable = False
                assets.append(Asset(group, text, origin, carried, usable))
        pools[group] = _distinct(sorted(assets, key=lambda a: a.rank_key))
    return pools


def _distinct(assets: list[Asset]) -> list[Asset]:
    """The assets in order, without those that say nearly what an earlier one says."""
    kept: list[Asset] = []
    for asset in assets:
        if all(similarity({"a": asset.text}, {"a": k.text}) < NEAR_DUPLICATE for k in kept):
            kept.append(asset)
    return kept


def display_paths(facts: ProductFacts, max_chars: int = 15) -> list[str]:
    """Display-URL paths from what the product is: its category, then its kind ("Outerwear", "Rain-Jacket")."""
    paths: list[str] = []
    for text in (facts.category or "", facts.kind or ""):
        words = re.findall(r"[A-Za-z0-9]+", re.split(r"\s*[|>/]\s*", text)[-1].replace("'", "") if text else "")  # "Chefs-Knife"
        # The last words that fit: "Insulated-Water-Bottle" is too long; "Water-Bottle" fits.
        while words and len("-".join(words)) > max_chars:
            words = words[1:]
        path = "-".join(w.capitalize() if w.islower() else w for w in words)
        if path and path.lower().rstrip("s") not in (p.lower().rstrip("s") for p in paths):  # "Running-Shoes", "Running-Shoe": one
            paths.append(path)
    return paths[:2]


def _deal(candidates: Sequence[Asset], spare: Sequence[Asset], slots: int, required: int, long: bool,
          used: set[str]) -> list[Asset]:
    """Up to ``slots`` assets for one group of one ad, each saying something the ad does not say yet.

    A description shares no selling point with another (Google shows two side by side: "Taped
    seams keep you dry" twice reads as a mistake); a headline may share one, as long as it adds
    one ("Made of recycled nylon" next to "Recycled Nylon Outerwear" adds nothing). Assets that
    carry no selling point (the model's "Stay Dry in Any Downpour") are distinct already. Short of
    ``required``, the rest fill up regardless, then ``spare`` (the other ads' shares). Nothing the ad
    already says in another group (``used``: asset keys) is said again.
    """
    # What another group of the ad already says ("Comes in Blue" as a headline: the gates refuse it
    # twice), and what fails a gate, only meet the minimum, shown with their problems named.
    fallback = [a for a in [*candidates, *spare] if a.usable and asset_key(a.text) in used]
    fallback += [a for a in [*candidates, *spare] if not a.usable]
    candidates = [a for a in candidates if a.usable and asset_key(a.text) not in used]
    spare = [a for a in spare if a.usable and asset_key(a.text) not in used]
    taken: list[Asset] = []
    carried: set[int] = set()
    for strict in ((True,) if long else (False,)):
        for asset in candidates:
            if len(taken) == slots:
                break
            points = set(asset.points)
            adds = not points or (not points & carried if strict else bool(points - carried))
            if asset not in taken and adds:
                taken.append(asset)
                carried |= points
    if not long:
        # Google tests headlines in combinations and rates an ad by how many distinct ones it has: a
        # second phrasing of a point already carried ("Adjustable Straps", "Comes with No-Slip Grips")
        # is a variation worth testing, so the ad's own share fills the rest of its slots.
        taken += [a for a in candidates if a not in taken][: slots - len(taken)]
    taken += [a for a in [*candidates, *spare, *fallback] if a not in taken][: max(0, required - len(taken))]
    return taken


def assemble_ads(pools: Mapping[str, list[Asset]], spec: ChannelSpec, facts: ProductFacts, n: int) -> list[dict[str, str]]:
    """``n`` ads from the pools: assets dealt out in rank order, so ad 1 gets the best, ad 2 the next…

    Each ad keeps the best-ranked asset of each group (the top selling point), then takes its
    share; an ad short of the group's required minimum borrows from the others' shares.
    """
    ads: list[dict[str, str]] = [{} for _ in range(n)]
    # Descriptions first: they are fewer to be had (a point a sentence), and a headline must not repeat one.
    by_length = sorted(pools.items(), key=lambda item: -(spec.group(item[0])[0].max_chars or 999))
    for group, assets in by_length:
        slots = spec.group(group)
        required = sum(1 for f in slots if f.required)
        lead, rest = assets[:1], assets[1:]
        long = (slots[0].max_chars or 999) > 40
        for i, ad in enumerate(ads):
            mine = lead + rest[i::n]
            used = {asset_key(text) for text in ad.values()}
            chosen = _deal(mine, [a for a in rest if a not in mine], len(slots), required, long, used)
            for fspec, asset in zip(slots, chosen):
                ad[fspec.key] = asset.text
    ads = [{f.key: ad[f.key] for f in spec.fields if f.key in ad} for ad in ads]  # in the channel's field order
    paths = display_paths(facts)
    for ad in ads:
        for fspec, path in zip(spec.group("path"), paths):
            if not field_problems(path, fspec):
                ad[fspec.key] = path
    return ads
