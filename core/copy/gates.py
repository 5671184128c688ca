"""Gates: what makes an asset unusable as a marketer reads it, though it keeps every limit.

Each gate is one rule a person applied to real output (issue 13): a data label echoed as copy
("Category: Building Sets."), a price for a headline ("169.95 USD"), the raw title pasted into a
description, a title cut inside its noun phrase ("10000 mm Waterproof Rain"), a word said over
and over in one asset, a description that stops mid-sentence, mail pretending to be a reply or
an order, a persona speaking in the first person, the same asset twice in one variant, and the
same asset in every variant of a set. A gate names the field and says why, in words the card can
show. Limits and faithfulness are checked elsewhere (``limits``, ``scoring``); these are the rest.

Scoring ranks a variant that fails a gate after every usable one and halves its score per failed
gate; generation prefers usable candidates (the model writes more than are shown).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from core.copy.channels import ChannelSpec
from core.copy.facts import ProductFacts, attribute_key

__all__ = ["GateFailure", "asset_gates", "asset_key", "set_gates"]

# "Category: …", "Capacity: 750 ml": a catalog field or attribute name followed by its value.
_LABELLED = re.compile(r"(?:^|[.!?;]\s+)([A-Za-z][A-Za-z _-]{1,30}?)\s*[:=]\s*\S")
_DATA_LABELS = frozenset({
    "category", "price", "brand", "title", "material", "color", "colour", "size", "sku", "asin", "attribute", "attributes",
    "description", "product", "product name", "type", "model", "model number", "weight", "dimensions", "capacity",
    "volume", "certification", "certifications", "features", "specifications",
})
_PRICE = r"(?:[$€£¥₹]\s*\d[\d,]*(?:\.\d+)?|\d[\d,]*(?:\.\d+)?\s*(?:USD|EUR|GBP|JPY|INR|[$€£¥₹]))"
_PRICE_ONLY = re.compile(rf"^\W*(?:only|just|from|now)?\W*{_PRICE}\W*$", re.IGNORECASE)
_FAKE_REPLY = re.compile(r"^\s*(?:re|fw|fwd)\s*:|\byour order (?:is|has|#)|\border (?:confirmation|#\s*\d)", re.IGNORECASE)
_FIRST_PERSON = re.compile(r"\b(?:hello|hi),? i am\b|\bi am an?\b|\bi'm an?\b|\bmy name is\b", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?…][\"')\]]?\s*$")
# Words that do not make an asset redundant when they recur ("the", "and", "with"), lower case.
_STOP = frozenset("""a an and are as at be by for from has have in is it its of on or our so that the this to with
    your you we will can all more new now get one two just also than very""".split())
_TITLE_BOUNDARY = frozenset({",", "-", "–", "—", "|", "(", "/", ":", ";", "with", "for", "and", "in", "by", "&"})
_LONG_TITLE = 6  # words: a title this long pasted whole into a description is a label, not a sentence


@dataclass(frozen=True)
class GateFailure:
    gate: str  # data_label | price_headline | raw_title | cut_title | redundant | unfinished | off_voice | repeated | same_in_set
    field: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def asset_key(text: str) -> str:
    """What makes two assets the same one: their words, case and punctuation aside ("Rain jacket!" = "rain jacket")."""
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split())


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z][A-Za-z'-]+", text)


def _title_tokens(title: str) -> list[str]:
    return re.findall(r"[A-Za-z0-9][\w'&.]*|[,|()/:;\-–—&]", title)


def _cut_inside_phrase(headline: str, title: str) -> bool:
    """The headline is the title's first words, stopped where the title's noun phrase goes on.

    "10000 mm Waterproof Rain" of "10000 mm Waterproof Rain Jacket": cut before the head noun.
    "Harbor & Pine Rain Jacket" of "Harbor & Pine Rain Jacket, recycled nylon": a natural end.
    """
    head, full = _title_tokens(headline), _title_tokens(title)
    if len(head) < 2 or len(head) >= len(full):
        return False
    if [t.lower() for t in full[: len(head)]] != [t.lower() for t in head]:
        return False
    following = full[len(head)].lower()
    if following in _TITLE_BOUNDARY or head[-1].lower() in _TITLE_BOUNDARY:
        return False  # the title's own phrase ends there
    # The phrase runs to the title's next boundary; its last word is the head noun. A cut that
    # drops only that noun (and perhaps one modifier) reads unfinished; a cut after a model
    # number ("Stride Tempo 3" of "Stride Tempo 3 Road Running Shoe") names the product.
    end = next((i for i in range(len(head), len(full)) if full[i].lower() in _TITLE_BOUNDARY), len(full))
    return len(head) >= end - 2 and not any(ch.isdigit() for ch in head[-1])


def _redundant(value: str, is_short: bool) -> str | None:
    counts = Counter(w.lower() for w in _words(value) if len(w) >= 4 and w.lower() not in _STOP)
    limit = 2 if is_short else 3  # a headline that says a word twice, a description three times
    word, n = counts.most_common(1)[0] if counts else ("", 0)
    return word if n >= limit else None


def asset_gates(fields: Mapping[str, str], spec: ChannelSpec, facts: ProductFacts) -> list[GateFailure]:
    """Every gate one variant fails, field by field, in the channel's field order."""
    failures: list[GateFailure] = []
    title = facts.title or ""
    title_words = len(_words(title))
    keys = {attribute_key(k) for k in facts.attributes}
    seen: dict[str, str] = {}
    for fspec in spec.fields:
        value = str(fields.get(fspec.key) or "").strip()
        if not value:
            continue
        label = fspec.label.rstrip(":")
        short = bool(fspec.max_chars and fspec.max_chars <= 60)  # headlines, subjects, paths
        # "Category: Building Sets." is a label; "OVEN SAFE: goes into the oven…" is Amazon's bullet style.
        labelled = next((m for m in _LABELLED.finditer(value) if not m.group(1).isupper()
                         and (m.group(1).strip().lower() in _DATA_LABELS or attribute_key(m.group(1)) in keys)), None)
        if labelled:  # quoted from the label on: the start of the field may be fine ("Made of steel. Capacity: 750 ml.")
            failures.append(GateFailure("data_label", fspec.key,
                                        f"{label} echoes a data label ({value[labelled.start(1):][:40]!r}), not copy."))
        if short and _PRICE_ONLY.match(value):
            failures.append(GateFailure("price_headline", fspec.key, f"{label} is only a price ({value!r}); say what the product does."))
        # A listing's own title field is where the title belongs; elsewhere it is pasted, not written.
        if not short and fspec.key != "title" and title_words >= _LONG_TITLE and asset_key(title) in asset_key(value):
            failures.append(GateFailure("raw_title", fspec.key, f"{label} pastes the whole product title; a description says what it does."))
        if short and _cut_inside_phrase(value, title):
            failures.append(GateFailure("cut_title", fspec.key, f"{label} cuts the title inside its phrase ({value!r}): it drops the noun."))
        word = _redundant(value, short)
        if word:
            failures.append(GateFailure("redundant", fspec.key, f"{label} repeats {word!r}: say it once, then say something else."))
        prose = bool(fspec.min_sentences or fspec.max_sentences) or fspec.key.startswith(("description", "primary", "body"))
        if not short and prose and not _SENTENCE_END.search(value):
            failures.append(GateFailure("unfinished", fspec.key, f"{label} stops mid-sentence ({value[-30:]!r})."))
        if _FAKE_REPLY.search(value) or _FIRST_PERSON.search(value):
            failures.append(GateFailure("off_voice", fspec.key, f"{label} pretends to be a reply, an order or a person ({value[:40]!r})."))
        key = asset_key(value)
        if key in seen:
            failures.append(GateFailure("repeated", fspec.key, f"{label} repeats {seen[key]} word for word."))
        else:
            seen[key] = label
    return failures


def set_gates(variant_fields: Sequence[Mapping[str, str]], spec: ChannelSpec) -> list[list[GateFailure]]:
    """Per variant: fields whose text another variant of the set already uses (every description alike).

    The first variant to use a text keeps it; each later one is told which variant it repeats.
    """
    out: list[list[GateFailure]] = [[] for _ in variant_fields]
    first_use: dict[tuple[str, str], int] = {}
    for i, fields in enumerate(variant_fields):
        for fspec in spec.fields:
            value = str(fields.get(fspec.key) or "").strip()
            if not value:
                continue
            key = (fspec.key, asset_key(value))
            if key in first_use:
                out[i].append(GateFailure("same_in_set", fspec.key,
                                          f"{fspec.label.rstrip(':')} is the same as in variant {first_use[key] + 1} of this set."))
            else:
                first_use[key] = i
    return out
