"""What the writer is taught from (issue 14): copy that passed every check, as (prompt, answer) lessons.

Three sources, each held to the checks model copy must pass (limits in the answer format, every
gate, the faithfulness checker, banned words), so the tuned writer never learns a mistake:

- the gold set the team wrote (``data/copy_gold``, ``core.copy.gold``);
- copy the few-shot pipeline wrote and every gate accepted (``accepted``: fields per product, such
  as ``bench/copy_throughput.py --sets-out`` saves);
- the marketer's own approved and edited variants in the store: their voice.

Each lesson's prompt is the one the tuned writer reads, without few-shot turns
(``build_messages(few_shot=False)``); its answer is the model's labelled-lines format, the first
fields of each group of a saved variant (an RSA answer has three headlines and two descriptions).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.copy.channels import get_channel, get_tone
from core.copy.facts import ProductFacts, load_facts
from core.copy.gold import GoldExample, gold_problems, load_gold
from core.copy.prompts import answer_text, build_messages
from core.copy.scoring import FAMOUS_BRANDS
from core.copy.variant_store import VariantFilter, list_variants
from core.errors import InvalidRequestError
from core.jobs import JobContext, Work
from core.llm.tuning import TrainingPair, TuneConfig, total_steps, train_adapter
from core.store import Store

__all__ = ["Lessons", "gold_lessons", "lesson", "steps_of", "store_lessons", "teach_work", "teaching_set"]


@dataclass
class Lessons:
    pairs: list[TrainingPair]
    refused: list[str]  # "P0003 google_rsa (approved): description over 90 characters", one per lesson left out

    def by_source(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for pair in self.pairs:
            counts[pair.source] = counts.get(pair.source, 0) + 1
        return counts


def lesson(facts: ProductFacts, channel: str, fields: dict[str, str], tone: str, source: str,
           known_brands: Iterable[str] = FAMOUS_BRANDS) -> tuple[TrainingPair | None, list[str]]:
    """One lesson from one product's copy, or None and why not: the answer-format fields must pass every check."""
    spec = get_channel(channel)
    answer_fields = {f.key: str(fields[f.key]) for f in spec.writes.fields if str(fields.get(f.key) or "").strip()}
    problems = gold_problems(GoldExample(facts, channel, answer_fields, tone, source), known_brands)
    if problems:
        return None, problems
    messages = build_messages(facts, spec, get_tone(tone), few_shot=False)
    return TrainingPair.of(messages, answer_text(answer_fields, spec), source), []


def gold_lessons(examples: Sequence[GoldExample] | None = None) -> Lessons:
    out = Lessons([], [])
    for example in load_gold() if examples is None else examples:
        pair, problems = lesson(example.facts, example.channel, example.fields, example.tone, "gold")
        if pair:
            out.pairs.append(pair)
        else:
            out.refused.append(f"{example.where or example.facts.product_id} (gold): {problems[0]}")
    return out


def store_lessons(store: Store) -> Lessons:
    """The marketer's approved variants and the drafts they edited (an edit is their voice too), newest first."""
    out = Lessons([], [])
    variants = [v for v in list_variants(store, VariantFilter(limit=100_000))
                if v.status == "approved" or v.params.get("edited")]
    facts = load_facts(store, sorted({v.product_id for v in variants})) if variants else {}
    brands = [*FAMOUS_BRANDS, *(f.brand for f in facts.values() if f.brand)]
    for v in variants:
        if v.product_id not in facts:
            continue
        source = "approved" if v.status == "approved" else "edited"
        pair, problems = lesson(facts[v.product_id], v.channel, v.fields, v.tone or "friendly", source, brands)
        if pair:
            out.pairs.append(pair)
        else:
            out.refused.append(f"{v.product_id} {v.channel} ({source}): {problems[0]}")
    return out


def teaching_set(store: Store | None = None, *, gold: bool = True,
                 accepted: Sequence[tuple[ProductFacts, str, dict[str, str], str]] = ()) -> Lessons:
    """Every lesson: the gold set, the accepted pipeline copy ((facts, channel, fields, tone) each) and the store's."""
    out = gold_lessons() if gold else Lessons([], [])
    for facts, channel, fields, tone in accepted:
        pair, problems = lesson(facts, channel, fields, tone, "accepted")
        if pair:
            out.pairs.append(pair)
        else:
            out.refused.append(f"{facts.product_id} {channel} (accepted): {problems[0]}")
    if store is not None:
        mine = store_lessons(store)
        out.pairs += mine.pairs
        out.refused += mine.refused
    return out


def teach_work(store: Store, lessons: Lessons, base_dir: Path, out_dir: Path, config: TuneConfig,
               base_name: str = "", device: str = "cpu") -> Work:
    """Training as a job (``core.jobs``): progress in steps with the loss, Stop keeps a checkpoint, and the same
    lessons and settings started again go on from it (after a Stop or a server restart)."""
    store.require_editor("teaching the writer")
    config.check()
    if not lessons.pairs:
        raise InvalidRequestError("There is nothing to learn from yet: no gold set and no approved copy.", title="No examples")

    def work(ctx: JobContext) -> str:
        def step(done: int, total: int, loss: float) -> None:
            ctx.report(done, f"step {done} of {total}, loss {loss:.2f}")

        result = train_adapter(base_dir, lessons.pairs, out_dir, config, base_name=base_name, device=device, on_step=step,
                               extra_manifest={"trained_by": store.user.name})
        return result.summary

    return work


def steps_of(lessons: Lessons, config: TuneConfig) -> int:
    """How many training steps the job will report: its progress bar's total."""
    return total_steps(len(lessons.pairs), config)
