"""Saved copy variants: the ``Variant`` record, and saving, listing, reviewing, editing and rescoring it.

Generation (``core.copy.variants``) makes variants and saves them here in one transaction; the
Copy Studio page, the export and the CLI read and review them here. Every status change and edit is
recorded in the variant's ``params`` (who, when, what), and an edit is rescored on the spot.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from core.copy.ad_strength import ad_strength
from core.copy.channels import CHANNELS, ChannelSpec, get_channel
from core.copy.data_headlines import ad_keyword
from core.copy.facts import ProductFacts, catalog_brands, load_facts
from core.copy.limits import check_fields
from core.copy.prompts import EXAMPLE_BRANDS
from core.copy.scoring import DEFAULT_BANNED, FAMOUS_BRANDS, Evidence, score_set, score_variant
from core.errors import InvalidRequestError, MarketLabError, NotFoundError
from core.store import Store

__all__ = ["STATUSES", "CopyError", "Variant", "VariantFilter", "ad_strength_fields", "brands", "get_variant", "list_variants", "new_variant_id",
           "now_text", "require_variant", "rescore", "save_variant", "save_variants", "set_status", "update_fields"]

STATUSES = ("draft", "approved", "rejected")


class CopyError(MarketLabError):
    default_title = "Copy could not be generated"


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)  # stored as UTC without a zone, like events.ts


def now_text() -> str:
    """Now, as the audit trail (reviews, edits, regenerations) records it."""
    return _now().isoformat(sep=" ", timespec="seconds")


def new_variant_id() -> str:
    return "CV-" + uuid.uuid4().hex[:16]


@dataclass
class Variant:
    product_id: str
    channel: str
    tone: str
    fields: dict[str, str]
    scores: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)  # model, temperature, seed, prompt…: the audit trail
    model: str | None = None
    segment_id: str | None = None
    status: str = "draft"
    variant_id: str = field(default_factory=new_variant_id)
    created_at: datetime = field(default_factory=_now)

    @property
    def last_review(self) -> dict[str, Any] | None:
        """The latest approve / reject / back-to-draft decision: at, by, status; None if never reviewed."""
        reviews = self.params.get("reviews") or []
        return reviews[-1] if reviews else None

    @property
    def compliant(self) -> bool:
        """Within every limit of its channel: from the scores, or checked now for copy never scored (the demo's)."""
        if "compliant" in self.scores:
            return bool(self.scores["compliant"])
        try:
            return not check_fields(self.fields, get_channel(self.channel))
        except MarketLabError:
            return False

    @property
    def tries(self) -> int:
        return int(self.params.get("tries", 0))

    @property
    def rank(self) -> int:
        return int(self.scores.get("rank", 0))

    @property
    def unsupported_claims(self) -> list[str]:
        return [c["message"] for c in self.scores.get("unsupported_claims", [])]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["created_at"] = self.created_at.isoformat(sep=" ", timespec="seconds")
        return out


def brands(store: Store) -> list[str]:
    return [*catalog_brands(store), *EXAMPLE_BRANDS, *FAMOUS_BRANDS]


# --- persistence -----------------------------------------------------------------------

_COLUMNS = "variant_id, product_id, channel, tone, segment_id, fields, model, params, scores, status, created_at"


def _row(variant: Variant) -> list[Any]:
    return [variant.variant_id, variant.product_id, variant.channel, variant.tone, variant.segment_id,
            json.dumps(variant.fields, ensure_ascii=False), variant.model,
            json.dumps(variant.params, ensure_ascii=False, default=str), json.dumps(variant.scores, ensure_ascii=False, default=str),
            variant.status, variant.created_at]


def _loads(value: Any) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        return value
    try:
        loaded = json.loads(value)
    except (TypeError, json.JSONDecodeError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _from_row(row: Sequence[Any]) -> Variant:
    vid, pid, channel, tone, segment, fields, model, params, scores, status, created = row
    return Variant(product_id=pid, channel=channel, tone=tone, fields={k: str(v) for k, v in _loads(fields).items()},
                   scores=_loads(scores), params=_loads(params), model=model, segment_id=segment, status=status,
                   variant_id=vid, created_at=created)


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise InvalidRequestError(f"Status must be one of {', '.join(STATUSES)}, not {status!r}.", title="Invalid status")


def _refuse_non_compliant(variant: Variant, status: str) -> None:
    """Approved copy is copy within limits: checked here, on the text itself, not on stored scores."""
    if status == "approved":
        try:
            spec = get_channel(variant.channel)
        except MarketLabError:
            return  # a channel this version does not know: nothing to check against
        problems = check_fields(variant.fields, spec)
        if problems:
            listed = "; ".join(f"{k}: {', '.join(v)}" for k, v in problems.items())
            raise InvalidRequestError(f"Variant {variant.variant_id} breaks its channel's limits ({listed}). Edit it first.",
                                 title="Only copy within limits can be approved")


def save_variants(store: Store, variants: Iterable[Variant], status: str | None = None) -> int:
    """Insert or replace variants (as ``status`` when given) in one transaction: all or nothing.

    Every variant is checked before anything is written; approving copy that breaks a limit
    is refused. Returns how many were written.
    """
    store.require_editor("saving copy")
    staged = []
    for variant in variants:
        target = status or variant.status
        _check_status(target)
        _refuse_non_compliant(variant, target)
        staged.append((variant, target))
    if not staged:
        return 0
    with store.transaction(touches=("copy_variants",)) as cur:
        cur.executemany(f"INSERT OR REPLACE INTO copy_variants ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [_row(replace(v, status=target)) for v, target in staged])
    for variant, target in staged:
        variant.status = target
    return len(staged)


def save_variant(store: Store, variant: Variant, status: str | None = None) -> Variant:
    """Save one variant (as ``status`` when given); approving copy that breaks a limit is refused."""
    save_variants(store, [variant], status)
    return variant


def get_variant(store: Store, variant_id: str) -> Variant | None:
    with store.cursor() as cur:
        row = cur.execute(f"SELECT {_COLUMNS} FROM copy_variants WHERE variant_id = ?", [variant_id]).fetchone()
    return _from_row(row) if row else None


def require_variant(store: Store, variant_id: str) -> Variant:
    variant = get_variant(store, variant_id)
    if variant is None:
        raise NotFoundError(f"No saved copy variant {variant_id!r}.", title="Unknown variant")
    return variant


def set_status(store: Store, variant_id: str, status: str) -> Variant:
    """Approve, reject or return a saved variant to draft; approval re-checks the limits.

    Who changed it, and when, go into params' "reviews" (the audit trail of what reached a campaign).
    """
    store.require_editor("approving or rejecting copy")
    _check_status(status)
    variant = require_variant(store, variant_id)
    _refuse_non_compliant(variant, status)
    variant.status = status
    reviews = [*variant.params.get("reviews", []), {"at": now_text(),
                                                     "by": store.user.name, "status": status}]
    variant.params = {**variant.params, "reviews": reviews}
    with store.transaction(touches=("copy_variants",)) as cur:
        cur.execute("UPDATE copy_variants SET status = ?, params = ? WHERE variant_id = ?",
                    [status, json.dumps(variant.params, ensure_ascii=False, default=str), variant_id])
    return variant


@dataclass(frozen=True)
class VariantFilter:
    product_ids: tuple[str, ...] = ()
    channel: str | None = None
    statuses: tuple[str, ...] = ()
    tones: tuple[str, ...] = ()
    segment_id: str | None = None
    variant_ids: tuple[str, ...] = ()
    limit: int = 1000


def list_variants(store: Store, filters: VariantFilter | None = None) -> list[Variant]:
    """Saved variants, newest first, narrowed by ``filters``."""
    flt = filters or VariantFilter()
    clauses, params = [], []
    for column, values in (("product_id", flt.product_ids), ("status", flt.statuses), ("tone", flt.tones),
                           ("variant_id", flt.variant_ids)):
        if values:
            clauses.append(f"list_contains(?, {column})")
            params.append(list(values))
    if flt.channel:
        clauses.append("channel = ?")
        params.append(flt.channel)
    if flt.segment_id:
        clauses.append("segment_id = ?")
        params.append(flt.segment_id)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    with store.cursor() as cur:
        rows = cur.execute(
            f"SELECT {_COLUMNS} FROM copy_variants{where} ORDER BY created_at DESC, variant_id LIMIT ?", [*params, flt.limit]
        ).fetchall()
    variants = [_from_row(r) for r in rows]
    _score_unscored(store, [v for v in variants if not v.scores])
    return variants


def _score_unscored(store: Store, variants: list[Variant]) -> None:
    """Scores for copy saved without any (the demo's hand-written campaigns, imports), computed on read.

    Ranked among the unscored copy of the same product and channel; not written back, so
    the stored row stays as it was until someone edits it.
    """
    groups: dict[tuple[str, str], list[Variant]] = {}
    for v in variants:
        if v.channel in CHANNELS:
            groups.setdefault((v.product_id, v.channel), []).append(v)
    if not groups:
        return
    try:
        facts = load_facts(store, sorted({pid for pid, _ in groups}))
    except MarketLabError:
        return  # copy for a product no longer in the catalog keeps empty scores
    known_brands = brands(store)
    for (pid, channel), group in groups.items():
        spec = get_channel(channel)
        evidence = Evidence(facts[pid], known_brands)
        scores = [score_variant(v.fields, spec, facts[pid], evidence=evidence) for v in group]
        set_score = score_set([v.fields for v in group], scores, spec)
        for v, score in zip(group, scores):
            v.scores = {**score.to_dict(), "set": {"distinct_2": set_score.distinct_2, "self_bleu": set_score.self_bleu,
                                                    "size": len(group)}, "scored_on_read": True, **ad_strength_fields(v, spec, facts[pid])}


def rescore(store: Store, variant: Variant, banned: Sequence[str] = DEFAULT_BANNED) -> dict[str, Any]:
    """Scores for a variant's current fields, ranked against the other saved variants of its product and channel."""
    spec = get_channel(variant.channel)
    facts = load_facts(store, [variant.product_id])[variant.product_id]
    evidence = Evidence(facts, brands(store))
    siblings = [v for v in list_variants(store, VariantFilter(product_ids=(variant.product_id,), channel=variant.channel))
                if v.variant_id != variant.variant_id and v.status != "rejected"]
    group = [variant, *siblings]
    scores = [score_variant(v.fields, spec, facts, banned=banned, evidence=evidence) for v in group]
    set_score = score_set([v.fields for v in group], scores, spec)
    return {**scores[0].to_dict(), "set": {"distinct_2": set_score.distinct_2, "self_bleu": set_score.self_bleu, "size": len(group)},
            **ad_strength_fields(variant, spec, facts)}


def ad_strength_fields(variant: Variant, spec: ChannelSpec, facts: ProductFacts) -> dict[str, Any]:
    """{"ad_strength": …} for a Google RSA (its keywords, else what the product is, ``ad_keyword``; its pins), nothing for other channels."""
    if spec.name != "google_rsa":
        return {}
    keywords = [k for k in variant.params.get("keywords") or [] if isinstance(k, str)] or [ad_keyword(facts)]
    pins = variant.params.get("pins") if isinstance(variant.params.get("pins"), Mapping) else {}
    return {"ad_strength": ad_strength(variant.fields, [k for k in keywords if k], pins).to_dict()}


def update_fields(store: Store, variant_id: str, fields: Mapping[str, str], *, banned: Sequence[str] = DEFAULT_BANNED) -> Variant:
    """A marketer's edit: the given fields replace the saved ones ("" removes one) and the scores are recomputed.

    The edit is stored as written, not trimmed: if it breaks a limit the scores say so and the
    variant cannot be approved until it is fixed. The edit is recorded in params.
    """
    store.require_editor("editing copy")
    variant = require_variant(store, variant_id)
    spec = get_channel(variant.channel)
    unknown = [k for k in fields if k not in spec.keys and k not in variant.fields]
    if unknown:
        raise NotFoundError(f"{spec.label} copy has no field {', '.join(map(repr, unknown))}; its fields are "
                             f"{', '.join(spec.keys)}.", title="Unknown copy field")
    updated = dict(variant.fields)
    for key, value in fields.items():
        text = "" if value is None else str(value).strip()
        if text:
            updated[key] = text
        else:
            updated.pop(key, None)
    edits = list(variant.params.get("edits", []))
    edits.append({"at": now_text(), "by": store.user.name, "fields": sorted(fields)})
    variant.fields = updated
    variant.params = {**variant.params, "edited": True, "edits": edits}
    variant.scores = rescore(store, variant, banned)
    if variant.status == "approved" and not variant.scores.get("compliant"):
        variant.status = "draft"  # an approval covers the text that was approved, not this one
    with store.transaction(touches=("copy_variants",)) as cur:
        cur.execute("UPDATE copy_variants SET fields = ?, params = ?, scores = ?, status = ? WHERE variant_id = ?",
                    [json.dumps(updated, ensure_ascii=False), json.dumps(variant.params, ensure_ascii=False, default=str),
                     json.dumps(variant.scores, ensure_ascii=False, default=str), variant.status, variant_id])
    return variant
