"""The gold set the tuned writer learns from (issue 14): copy the team wrote, held to every check model copy meets."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from core.copy.channels import CHANNELS
from core.copy.gold import GoldExample, gold_problems, load_gold, read_gold

GOLD = load_gold()
TUMBLER = {"product_id": "P0006", "title": "Summit Nova 890 ml Steel Tumbler", "brand": "Summit", "category": "Drinkware",
           "price": 20.99, "currency": "USD", "description": "The Summit tumbler is made of stainless steel, holds 890 ml and "
           "weighs 410 g. It is dishwasher safe. It comes in Sand.",
           "attributes": {"type": "tumbler", "material": "stainless steel", "capacity_ml": 890, "insulated": False,
                          "dishwasher_safe": True, "color": "Sand", "weight_g": 410}}


def _example(**fields: str) -> GoldExample:
    return GoldExample.from_dict({"product": TUMBLER, "channel": "google_rsa", "fields": fields})


@pytest.mark.parametrize("example", GOLD, ids=lambda e: e.where)
def test_every_gold_example_passes_every_check_model_copy_must(example: GoldExample) -> None:
    assert gold_problems(example) == []


def test_the_gold_set_covers_every_channel_and_real_as_well_as_demo_products() -> None:
    assert len(GOLD) >= 150
    channels = Counter(e.channel for e in GOLD)
    assert set(channels) == set(CHANNELS) and min(channels.values()) >= 10, channels
    assert {"demo", "amazon"} <= {e.source for e in GOLD}
    assert len({(e.facts.product_id, e.channel, json.dumps(e.fields, sort_keys=True)) for e in GOLD}) == len(GOLD)


def test_copy_no_marketer_would_send_is_not_gold() -> None:
    good = _example(headline="890 ml Steel Tumbler", headline_2="Goes in the Dishwasher",
                    description="Holds 890 ml in stainless steel, and goes straight in the dishwasher.")
    assert gold_problems(good) == []
    assert any("price" in p for p in gold_problems(_example(headline="20.99 USD", description="Holds 890 ml of coffee.")))
    assert any("unsupported claim" in p for p in gold_problems(_example(
        headline="Insulated Steel Tumbler", description="Keeps coffee hot, holds 890 ml.")))  # insulated is false
    assert any("banned word" in p for p in gold_problems(_example(headline="The Best Tumbler", description="Holds 890 ml.")))
    assert any("not a field" in p for p in gold_problems(_example(headline="Steel Tumbler", subject="Hi",
                                                                  description="Holds 890 ml.")))


def test_a_line_that_is_not_an_example_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"channel": "email"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        read_gold(bad)
