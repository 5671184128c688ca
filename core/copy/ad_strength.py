"""Ad strength for a Google responsive search ad, from the factors Google documents, with what to do next.

Google rates an RSA Incomplete, Poor, Average, Good or Excellent from the number of headlines
(up to 15) and descriptions (up to 4), how distinct they are, whether headlines carry the ad
group's keywords, and how much pinning limits the combinations. Google does not publish its
formula, so the levels here are explicit rules over those factors, each unmet rule becoming an
action item ("add 12 more headlines", "2 headlines say the same thing", "no headline has the
keyword 'water bottle'"). Pinning lowers the level the way Google says it does: a position pinned
to one asset always shows that asset, so the combinations Google can test shrink; the level drops
one step and the action item names the position ("pin 2 or 3 headlines to position 1, or unpin").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from core.copy.gates import asset_key
from core.copy.scoring import NEAR_DUPLICATE, similarity

__all__ = ["LEVELS", "AdStrength", "ad_strength"]

LEVELS = ("Incomplete", "Poor", "Average", "Good", "Excellent")
MAX_HEADLINES, MAX_DESCRIPTIONS = 15, 4
# (level, unique headlines, descriptions, headlines with a keyword) needed, best first.
_RULES = (("Excellent", 10, 4, 2), ("Good", 8, 3, 1), ("Average", 5, 2, 0))


@dataclass
class AdStrength:
    level: str
    headlines: int  # distinct ones
    descriptions: int
    keyword_headlines: int
    near_duplicates: list[tuple[str, str]] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _distinct(texts: Sequence[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Texts kept once (case and punctuation aside), and the pairs that say nearly the same thing."""
    kept: list[str] = []
    pairs: list[tuple[str, str]] = []
    for text in texts:
        twin = next((k for k in kept if asset_key(k) == asset_key(text)
                     or similarity({"a": k}, {"a": text}) >= NEAR_DUPLICATE), None)
        if twin is None:
            kept.append(text)
        else:
            pairs.append((twin, text))
    return kept, pairs


def _pinned_alone(fields: Mapping[str, str], pins: Mapping[str, int]) -> list[str]:
    """Positions pinned to exactly one asset with text ("headline position 1"): each always shows that asset."""
    per_position: dict[tuple[str, int], int] = {}
    for key, position in pins.items():
        if str(position).isdigit() and int(position) and str(fields.get(key) or "").strip():
            group = "headline" if key.startswith("headline") else "description"
            per_position[(group, int(position))] = per_position.get((group, int(position)), 0) + 1
    return [f"{group} position {position}" for (group, position), count in sorted(per_position.items()) if count == 1]


def ad_strength(fields: Mapping[str, str], keywords: Sequence[str] = (), pins: Mapping[str, int] | None = None) -> AdStrength:
    """The level of one RSA (fields headline, headline_2…, description, description_2…) and its action items.

    ``pins``: ``{field key: position}`` as saved with the ad (``params["pins"]``), if any.
    """
    headlines = [str(v).strip() for k, v in fields.items() if k.startswith("headline") and str(v).strip()]
    descriptions = [str(v).strip() for k, v in fields.items() if k.startswith("description") and str(v).strip()]
    unique_h, near_h = _distinct(headlines)
    unique_d, near_d = _distinct(descriptions)
    wanted = [k for k in (asset_key(k) for k in keywords) if k]
    with_keyword = sum(any(k in asset_key(h) for k in wanted) for h in unique_h)
    actions: list[str] = []
    if len(headlines) < 3 or len(descriptions) < 2:
        level = "Incomplete"
    else:
        level = next((name for name, h, d, kw in _RULES
                      if len(unique_h) >= h and len(unique_d) >= d and (not wanted or with_keyword >= kw)), "Poor")
    fixed = _pinned_alone(fields, pins or {})
    if fixed and level not in ("Incomplete", "Poor"):
        level = LEVELS[LEVELS.index(level) - 1]
    for where in fixed:
        kind = where.split()[0]
        actions.append(f"{where[0].upper()}{where[1:]} is pinned to one {kind}: pin 2 or 3 {kind}s there, or unpin it "
                       "(each pin to one asset halves what Google can test).")
    if len(unique_h) < MAX_HEADLINES:
        actions.append(f"Add {MAX_HEADLINES - len(unique_h)} more headline{'s' if MAX_HEADLINES - len(unique_h) > 1 else ''} "
                       f"({len(unique_h)} of {MAX_HEADLINES}).")
    if len(unique_d) < MAX_DESCRIPTIONS:
        missing = MAX_DESCRIPTIONS - len(unique_d)
        actions.append(f"Add {missing} more description{'s' if missing > 1 else ''} ({len(unique_d)} of {MAX_DESCRIPTIONS}).")
    if near_h:
        actions.append(f"{len(near_h) + 1} headlines say the same thing (e.g. {near_h[0][1]!r}): make them distinct.")
    if near_d:
        actions.append(f"{len(near_d) + 1} descriptions say the same thing: make them distinct.")
    missing = [k for k in keywords if asset_key(k) and not any(asset_key(k) in asset_key(h) for h in unique_h)]
    if missing:
        more = f" (and {len(missing) - 2} more)" if len(missing) > 2 else ""
        actions.append(f"No headline has the keyword{'s' if len(missing) > 1 else ''} "
                       f"{' or '.join(repr(k) for k in missing[:2])}{more}.")
    return AdStrength(level, len(unique_h), len(unique_d), with_keyword, near_h + near_d, actions)
