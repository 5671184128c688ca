"""Copy variants generated: oversample, repair, score, keep the best (saving, listing and review: ``variant_store``).

``generate_variants`` asks the model for ``oversample`` times more candidates than wanted,
turns each answer into fields within the channel's limits (``core.copy.limits``), scores
them (``core.copy.scoring``), drops exact duplicates, and keeps the best ``n`` per product
and tone: compliant first, then faithful, then by score, skipping near-duplicates while
there is choice. When too few candidates are compliant and faithful it asks again with
the next seed, up to ``max_rounds`` times; ``tries`` on each variant says how many rounds
its product needed. A variant that is not compliant is never returned.

The model is a plain callable, so tests pass a fake and the page passes the resident one
(``engine_generate_fn(engine)`` wraps a ``core.llm`` engine):

    generate_fn(prompts: list[list[dict]], n: int, max_new_tokens: int, temperature: float, seed: int)
        -> list[list[str]]   # n answers per prompt, in order

An answer may also be an object with ``.text`` and ``.finish_reason`` (core.llm's
GenerationResult): one cut at max_new_tokens ("length") loses its last, possibly half, word.

Nothing is written while generating; ``save=True`` writes the returned drafts in one
transaction at the end, so a failed or cancelled run leaves saved variants as they were.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from core.copy.assemble import DATA, asset_pool, assemble_ads
from core.copy.channels import ChannelSpec, get_channel, get_tone
from core.copy.facts import ProductFacts, instruction_like, iter_values, load_facts
from core.copy.limits import Repaired, repair
from core.copy.prompts import build_messages
from core.copy.scoring import (
    DEFAULT_BANNED, NEAR_DUPLICATE, WEIGHTS, Evidence, VariantScore, components, names_product,
    score_set, score_variant, similarity,
)
# Saved variants live in variant_store; their names are re-exported so callers of generation need one import.
from core.copy.variant_store import (  # noqa: F401
    STATUSES, CopyError, Variant, VariantFilter, ad_strength_fields, brands, get_variant, list_variants, new_variant_id, now_text,
    require_variant, rescore, save_variant, save_variants, set_status, update_fields,
)
from core.errors import InvalidRequestError, MarketLabError
from core.llm.grouped import accepts as _accepts
from core.llm.grouped import engine_generate_fn  # noqa: F401 - re-exported: the page and the CLI adapt engines here
from core.store import Store

GenerateFn = Callable[..., list[list[str]]]
ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]
StepFn = Callable[[int, int], None]  # progress inside one model call: (done, total), see core.llm.types
# In-call progress at most this often: each report is a message to the browser, and once a
# second is plenty for a bar over a call of minutes. It is also how soon a Stop acts, since
# Streamlit stops a script at its next message.
STEP_REPORT_SECONDS = 1.0

MAX_N = 10  # variants per product and tone a marketer can compare side by side
MAX_OVERSAMPLE = 8


@dataclass(frozen=True)
class GenerationRequest:
    product_ids: tuple[str, ...]
    channel: str
    tones: tuple[str, ...] = ("friendly",)
    n: int = 3  # variants returned per product and tone
    temperature: float = 0.8
    seed: int = 0
    segment_id: str | None = None  # the target segment, stored with each variant for funnels
    # The segmentation run it belongs to: every k-means run has a "c1", so the id alone names no one.
    segment_run_id: str | None = None
    persona: str = ""  # that segment's persona text, shown to the model
    oversample: int = 3  # candidates asked for per variant wanted: small models miss limits and facts
    max_rounds: int = 3  # model calls per product before settling for what there is
    batch_size: int = 16  # prompts per model call; progress and cancel act between calls
    banned: tuple[str, ...] = DEFAULT_BANNED

    def __post_init__(self) -> None:
        for name in ("product_ids", "tones", "banned"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, (value,))
            else:
                object.__setattr__(self, name, tuple(value))

    def check(self) -> ChannelSpec:
        """The channel spec, once every setting is known to be usable."""
        spec = get_channel(self.channel)
        if not self.tones:
            raise InvalidRequestError("Pick at least one tone.", title="No tone chosen")
        for tone in self.tones:
            get_tone(tone)
        if not self.product_ids:
            raise InvalidRequestError("Pick at least one product.", title="No product chosen")
        if not 1 <= self.n <= MAX_N:
            raise InvalidRequestError(f"Ask for 1 to {MAX_N} variants, not {self.n}.", title="Invalid number of variants")
        if not 0.0 <= self.temperature <= 2.0:
            raise InvalidRequestError(f"Temperature must be between 0 and 2, not {self.temperature}.", title="Invalid temperature")
        if not 1 <= self.oversample <= MAX_OVERSAMPLE:
            raise InvalidRequestError(f"Oversampling must be between 1 and {MAX_OVERSAMPLE}.", title="Invalid setting")
        if self.max_rounds < 1 or self.batch_size < 1:
            raise InvalidRequestError("max_rounds and batch_size must be at least 1.", title="Invalid setting")
        return spec


# --- generation ------------------------------------------------------------------------


@dataclass
class _Candidate:
    repaired: Repaired
    score: VariantScore
    round: int
    seed: int
    names_product: bool = True  # scoring.names_product: the title or brand appears in it

    @property
    def fields(self) -> dict[str, str]:
        return self.repaired.fields

    @property
    def good(self) -> bool:
        """What more rounds are spent looking for: compliant, faithful text the model wrote about this product.

        "About this product": it mentions at least one key attribute, or, for a product with none,
        a word of its title or brand; SmolLM2 sometimes answers "Love you. Love you." in perfect format.
        """
        return self.score.compliant and self.score.faithful and self.repaired.from_model > 0 and self.on_topic

    @property
    def on_topic(self) -> bool:
        cov = self.score.coverage
        return bool(cov["mentioned"]) or (not cov["missing"] and self.names_product)

    def sort_key(self) -> tuple:
        # Gates come after what the model itself wrote: a candidate filled from the product's data
        # ("Love you" plus fallbacks) passes gates by not trying. Among the rest, the gates choose.
        prelim = sum(WEIGHTS[k] * v for k, v in components(self.score).items())
        return (not self.score.compliant, len(self.score.distinct_claims), bool(self.score.banned),
                not self.names_product, -self.repaired.from_model, len(self.score.gate_kinds), -prelim)


@dataclass
class _Job:
    facts: ProductFacts
    tone: str
    messages: list[dict[str, str]]
    evidence: Evidence
    pool: list[_Candidate] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    tries: int = 0
    answers: int = 0
    rejected: int = 0

    def good_count(self) -> int:
        return sum(1 for c in self.pool if c.good)


def _model_name(generate_fn: GenerateFn, given: str | None) -> str:
    if given:
        return given
    for owner in (generate_fn, getattr(generate_fn, "__self__", None)):
        for attr in ("model_name", "name"):
            value = getattr(owner, attr, None)
            if isinstance(value, str) and value:
                return value
    return "unknown"


def _notices(generate_fn: GenerateFn) -> Callable[[], list[str]]:
    source = getattr(generate_fn, "notices", None)
    return source if callable(source) else list


def _answer(item: Any) -> tuple[str, bool]:
    """(text, cut at max_new_tokens) from a str or a GenerationResult-like object."""
    if isinstance(item, str):
        return item, False
    text = getattr(item, "text", None)
    if isinstance(text, str):
        return text, getattr(item, "finish_reason", "") == "length"
    return str(item), False


def call_model(generate_fn: GenerateFn, prompts: list[list[dict[str, str]]], n: int, spec: ChannelSpec,
                temperature: float, seed: int, on_step: StepFn | None = None) -> list[list[tuple[str, bool]]]:
    # Stop strings and step reports only for callables that take them (engine_generate_fn does);
    # a plain generate_fn, like the tests' fakes, keeps the documented five-argument signature.
    extra: dict[str, Any] = {"stop": spec.stop_strings} if _accepts(generate_fn, "stop") else {}
    if on_step is not None and _accepts(generate_fn, "on_step"):
        extra["on_step"] = on_step
    try:
        answers = generate_fn(prompts, n=n, max_new_tokens=spec.max_new_tokens, temperature=temperature, seed=seed, **extra)
    except MarketLabError:
        raise
    except Exception as e:  # the model's own errors (CUDA, out of memory, a server) are wrapped once, here
        raise CopyError(f"{type(e).__name__}: {e}", title="The language model failed") from e
    if not isinstance(answers, (list, tuple)) or len(answers) != len(prompts):
        raise CopyError(f"The model returned {len(answers) if isinstance(answers, (list, tuple)) else 'no'} answer lists "
                        f"for {len(prompts)} prompts.", title="The language model failed")
    return [[_answer(a) for a in (group if isinstance(group, (list, tuple)) else [group])] for group in answers]


def _dedupe_key(fields: Mapping[str, str]) -> str:
    return " | ".join(" ".join(str(v).lower().split()) for _, v in sorted(fields.items()))


def _select(pool: list[_Candidate], n: int) -> list[_Candidate]:
    """The best n compliant candidates, skipping near-duplicates of those already kept while there is choice."""
    ranked = sorted((c for c in pool if c.score.compliant), key=_Candidate.sort_key)
    chosen: list[_Candidate] = []
    for candidate in ranked:
        if len(chosen) == n:
            break
        if all(similarity(candidate.fields, c.fields) < NEAR_DUPLICATE for c in chosen):
            chosen.append(candidate)
    for candidate in ranked:  # too few distinct ones: near-duplicates fill up, and self-BLEU shows it
        if len(chosen) == n:
            break
        if candidate not in chosen:
            chosen.append(candidate)
    return chosen


def _data_warnings(facts: ProductFacts) -> list[str]:
    """What a marketer should know about the product's own data before trusting the copy."""
    texts = [str(v) for v in facts.field_values().values()]
    texts += [t for v in facts.attributes.values() for t in iter_values(v)] + list(facts.attributes)
    if any(instruction_like(t) for t in texts):
        return ["The product's data contains text addressed to a language model (e.g. 'ignore previous "
                "instructions'). It was given to the model as quoted data only, and it backs no claim."]
    return []


def _step_reporter(report: ProgressFn, start: float, span: float, message: str) -> StepFn:
    """Moves the progress bar inside one model call (which takes minutes on a CPU), and gives a
    Stop in the browser a chance to end it: Streamlit stops a script at its next message."""
    last = time.monotonic()

    def on_step(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= STEP_REPORT_SECONDS and total > 0:
            last = now
            report(start + span * min(done / total, 1.0), message)

    return on_step


def generate_variants(
    store: Store,
    generate_fn: GenerateFn,
    request: GenerationRequest,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    *,
    model_name: str | None = None,
    save: bool = False,
) -> list[Variant]:
    """Variants for every product and tone of ``request``, best first per product; see the module doc.

    ``progress(fraction, message)`` is called before and after each model call, and every
    second inside one when the engine reports its steps; the message after a call carries any
    new notice of the engine's (e.g. an out-of-memory fallback) when ``generate_fn`` has
    ``notices``, as ``engine_generate_fn`` gives it; ``cancel()`` is asked before each, and a cancelled run
    returns the variants finished so far. Raises MarketLabError for a bad request or unknown
    product, CopyError when the model fails.
    """
    store.require_editor("writing copy")
    spec = request.check()
    report = progress or (lambda fraction, message: None)
    stop = cancel or (lambda: False)
    model = _model_name(generate_fn, model_name)
    facts = load_facts(store, request.product_ids)
    known_brands = brands(store)
    tuned = bool(getattr(generate_fn, "tuned", False))  # a tuned writer reads no few-shot examples (core.copy.teaching)
    jobs = [
        _Job(f, tone, build_messages(f, spec, get_tone(tone), request.persona, few_shot=not tuned), Evidence(f, known_brands))
        for f in facts.values() for tone in request.tones
    ]
    per_prompt = request.n * request.oversample
    total_calls = -(-len(jobs) // request.batch_size)
    finished: list[_Job] = []
    cancelled = False
    notices = _notices(generate_fn)
    seen_notices = len(notices())
    report(0.0, f"Writing {spec.label} copy for {len(facts)} product(s)")
    for b, start in enumerate(range(0, len(jobs), request.batch_size)):
        batch = jobs[start : start + request.batch_size]
        for round_no in range(1, request.max_rounds + 1):
            pending = [j for j in batch if j.good_count() < request.n]
            if not pending:
                break
            if stop():
                cancelled = True
                break
            seed = request.seed + 1_000_003 * (round_no - 1)  # a new draw each round, reproducible per request
            # One call can take a minute on a CPU: say what is happening before it, not only after.
            before = (b + (round_no - 1) / request.max_rounds) / total_calls
            doing = (f"Writing {len(pending) * per_prompt} candidates for {len(pending)} product/tone pair(s)"
                     + (f" (round {round_no} of up to {request.max_rounds}: too few good ones yet)" if round_no > 1 else ""))
            report(before, doing)
            on_step = _step_reporter(report, before, 1 / (request.max_rounds * total_calls), doing)
            answers = call_model(generate_fn, [j.messages for j in pending], per_prompt, spec.writes, request.temperature, seed, on_step)
            for job, texts in zip(pending, answers):
                job.tries = round_no
                for raw, cut in texts:
                    job.answers += 1
                    fixed = repair(raw, spec, job.facts, truncated=cut)
                    if not fixed.compliant:
                        job.rejected += 1
                        continue
                    key = _dedupe_key(fixed.fields)
                    if key in job.seen:
                        continue
                    job.seen.add(key)
                    score = score_variant(fixed.fields, spec.writes, job.facts, banned=request.banned, evidence=job.evidence)
                    job.pool.append(_Candidate(fixed, score, round_no, seed, names_product(fixed.fields, job.facts)))
        finished += [j for j in batch if j.tries]
        message = f"{min(start + len(batch), len(jobs))} of {len(jobs)} product/tone pairs written"
        current = notices()
        if len(current) > seen_notices:  # e.g. out of memory: smaller batches, then the CPU — the user is told
            message += ". " + " ".join(current[seen_notices:])
            seen_notices = len(current)
        report(min(1.0, (b + 1) / total_calls), message)
        if cancelled:
            break

    variants: list[Variant] = []
    by_product: dict[str, list[tuple[Variant, VariantScore]]] = {}
    for job in finished:
        warnings = _data_warnings(job.facts)
        if spec.pooled:
            for variant, score in _assembled(job, spec, request, model, warnings):
                by_product.setdefault(job.facts.product_id, []).append((variant, score))
            continue
        for candidate in _select(job.pool, request.n):
            variant = Variant(
                product_id=job.facts.product_id,
                channel=spec.name,
                tone=job.tone,
                fields=dict(candidate.fields),
                model=model,
                segment_id=request.segment_id,
                params={
                    "model": model, "temperature": request.temperature, "seed": request.seed, "round_seed": candidate.seed,
                    "tries": job.tries, "round": candidate.round, "candidates": job.answers, "rejected": job.rejected,
                    "oversample": request.oversample, "max_new_tokens": spec.max_new_tokens, "persona": request.persona,
                    "segment_run_id": request.segment_run_id,
                    "repairs": dict(candidate.repaired.actions), "labelled": candidate.repaired.labelled,
                    "raw": candidate.repaired.raw, "prompt": job.messages, "warnings": warnings,
                },
            )
            by_product.setdefault(job.facts.product_id, []).append((variant, candidate.score))
    for pairs in by_product.values():
        # Rank across all tones of one product: they are compared side by side.
        scores = [replace(s) for _, s in pairs]
        set_score = score_set([v.fields for v, _ in pairs], scores, spec)
        ordered = sorted(zip(pairs, scores), key=lambda item: item[1].rank)
        for (variant, _), score in ordered:
            variant.scores = {**score.to_dict(), "set": {"distinct_2": set_score.distinct_2, "self_bleu": set_score.self_bleu,
                                                          "size": len(pairs)}, **ad_strength_fields(variant, spec, facts[variant.product_id])}
            variants.append(variant)
    report(1.0, "Stopped: kept the finished products" if cancelled else f"{len(variants)} variant(s) ready")
    if save and variants:
        save_variants(store, variants)
    return variants


def _assembled(job: _Job, spec: ChannelSpec, request: GenerationRequest, model: str,
               warnings: list[str]) -> list[tuple[Variant, VariantScore]]:
    """A pooled format's ads (an RSA's 15 headlines): assembled from every answer's usable assets and the
    product's selling points (core.copy.assemble), each scored as the whole ad it is."""
    answers = [(c.fields, c.repaired.actions) for c in job.pool]
    pools = asset_pool(answers, spec, job.facts, job.evidence, banned=request.banned)
    origins = {a.text: a.origin for assets in pools.values() for a in assets}
    out = []
    for fields in assemble_ads(pools, spec, job.facts, request.n):
        score = score_variant(fields, spec, job.facts, banned=request.banned, evidence=job.evidence)
        if not score.compliant:  # too few usable assets for the format's minimum: never shown
            continue
        variant = Variant(
            product_id=job.facts.product_id, channel=spec.name, tone=job.tone, fields=fields, model=model,
            segment_id=request.segment_id,
            params={
                "model": model, "temperature": request.temperature, "seed": request.seed, "tries": job.tries,
                "candidates": job.answers, "rejected": job.rejected, "oversample": request.oversample,
                "max_new_tokens": spec.writes.max_new_tokens, "persona": request.persona, "assembled": True,
                "segment_run_id": request.segment_run_id,
                # Where each asset came from: the model's answers, or the product's own data.
                "assets": {k: origins.get(v, DATA) for k, v in fields.items() if spec.field(k).group_name != "path"},
                "raw": [c.repaired.raw for c in job.pool], "prompt": job.messages, "warnings": warnings,
            },
        )
        out.append((variant, score))
    return out
