"""The gold set: copy the team wrote by hand for real and demo products (issue 14).

It is what the tuned writer learns from and what a prompt's examples could be drawn from, so every
example must be copy a marketer would publish *and* pass every check the product applies to model
output: the channel's limits in the model's own answer format (``spec.writes``: three headlines and
two descriptions for an RSA), every gate, the faithfulness checker (each claim backed by the
product's data) and the banned words. ``gold_problems`` says what an example fails; a test holds
the whole set to none.

Files: ``data/copy_gold/*.jsonl``, one example per line::

    {"product": {"product_id": …, "title": …, "brand": …, "category": …, "price": …, "currency": …,
                 "description": …, "attributes": {…}},
     "source": "demo" | "amazon" | …, "channel": "google_rsa", "tone": "friendly",
     "fields": {"headline": …, "headline_2": …, …}, "author": "…"}

The product is kept whole in the example (not looked up), so the set means the same thing after
the demo store or an import changes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.copy.channels import CHANNELS, TONES, get_channel
from core.copy.facts import ProductFacts
from core.copy.gates import asset_gates
from core.copy.limits import check_fields
from core.copy.scoring import DEFAULT_BANNED, FAMOUS_BRANDS, Evidence, banned_hits, claims_in

__all__ = ["GOLD_DIR", "GoldExample", "gold_problems", "load_gold", "read_gold"]

GOLD_DIR = Path(__file__).resolve().parents[2] / "data" / "copy_gold"


@dataclass(frozen=True)
class GoldExample:
    facts: ProductFacts
    channel: str
    fields: dict[str, str]
    tone: str = "friendly"
    source: str = ""
    author: str = ""
    where: str = ""  # file:line, for messages
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, item: dict[str, Any], where: str = "") -> GoldExample:
        product = dict(item["product"])
        facts = ProductFacts(
            product_id=str(product["product_id"]), title=str(product["title"]), brand=product.get("brand") or None,
            category=product.get("category") or None,
            price=float(product["price"]) if product.get("price") is not None else None,
            currency=product.get("currency") or None, description=product.get("description") or None,
            attributes=dict(product.get("attributes") or {}))
        known = {"product", "channel", "fields", "tone", "source", "author"}
        return cls(facts, str(item["channel"]), {str(k): str(v) for k, v in dict(item["fields"]).items()},
                   str(item.get("tone") or "friendly"), str(item.get("source") or ""), str(item.get("author") or ""),
                   where, {k: v for k, v in item.items() if k not in known})


def read_gold(path: Path) -> list[GoldExample]:
    """The examples of one file; a line that is not an example raises ValueError naming it."""
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path.name}:{number}"
        try:
            out.append(GoldExample.from_dict(json.loads(line), where))
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{where}: not a gold example ({e})") from e
    return out


def load_gold(folder: Path = GOLD_DIR) -> list[GoldExample]:
    """Every example of every ``*.jsonl`` file in ``folder``, in file order."""
    return [example for path in sorted(folder.glob("*.jsonl")) for example in read_gold(path)]


def gold_problems(example: GoldExample, known_brands: Iterable[str] = FAMOUS_BRANDS) -> list[str]:
    """Why ``example`` cannot be gold, one sentence each; empty when it passes every check."""
    if example.channel not in CHANNELS:
        return [f"unknown channel {example.channel!r}"]
    if example.tone not in TONES:
        return [f"unknown tone {example.tone!r}"]
    spec = get_channel(example.channel).writes
    problems = [f"{key} is not a field of {spec.label}'s answer" for key in example.fields if key not in spec.keys]
    problems += [f"{key}: {', '.join(found)}" for key, found in check_fields(example.fields, spec).items()]
    problems += [f"{g.field}: {g.message}" for g in asset_gates(example.fields, spec, example.facts)]
    evidence = Evidence(example.facts, known_brands)
    for key, text in example.fields.items():
        problems += [f"{key}: unsupported claim {c.text!r} ({c.reason})" for c in claims_in(text, evidence, key)]
    problems += [f"{h['field']}: banned word {h['word']!r}" for h in banned_hits(example.fields, DEFAULT_BANNED)]
    return problems
