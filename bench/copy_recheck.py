"""Re-check the ads a ``copy_quality.py --state`` run saved against today's gates and faithfulness checker.

Gates are added after a person reads a run's output; this says how many of the assets that run
showed today's checks would refuse, without generating again (the product would now put another
asset in their place). No model is loaded.

The state does not say which assets the model wrote; those the product's data alone does not give
(``asset_pool([])``) are taken as the model's and held to the model-only rules too (a headline of
unfamiliar words, about nothing the product is, or pasted from the data and cut at the limit).

    .venv/bin/python bench/copy_recheck.py bench/out/i13-demo50.jsonl
    .venv/bin/python bench/copy_recheck.py bench/out/i13-amz30.jsonl --catalog ../shared/data/real/amazon_products_promptcloud_2020/amazon_products_sample_1000.csv
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.copy.channels import get_channel  # noqa: E402
from core.copy.facts import load_facts  # noqa: E402
from core.copy.assemble import asset_pool  # noqa: E402
from core.copy.gates import asset_gates, model_asset_problem  # noqa: E402
from core.copy.scoring import Evidence, claims_in  # noqa: E402
from core.copy.variant_store import brands  # noqa: E402

from catalog_store import catalog_store  # noqa: E402  (bench/, beside this file)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("state", type=Path)
    parser.add_argument("--catalog", type=Path)
    parser.add_argument("--label", default="", help="which path's chunks: '' for the product's, or the peer's label")
    parser.add_argument("--show", action="store_true", help="print each refused asset")
    args = parser.parse_args()
    records = [json.loads(line) for line in args.state.read_text().splitlines() if line.strip()]
    records = [r for r in records if r.get("label", "") == args.label]
    with tempfile.TemporaryDirectory() as tmp:
        store, where = catalog_store(tmp, args.catalog)
        ids = sorted({pid for r in records for pid in r["products"]})
        facts = load_facts(store, ids)
        known = brands(store)
        shown = refused = ads = clean = 0
        reasons: dict[str, int] = {}
        for record in records:
            spec = get_channel(record["channel"])
            for pid, product in record["products"].items():
                evidence = Evidence(facts[pid], known)
                from_data = {a.text for assets in asset_pool([], spec, facts[pid], evidence).values() for a in assets}
                for fields in product.get("sets", []):
                    ads += 1
                    failing = {g.field: g.gate for g in asset_gates(fields, spec, facts[pid])}
                    for key, text in fields.items():
                        short = (spec.field(key).max_chars or 999) <= 40 if not key.startswith("path") else False
                        if key.startswith("path") or key in failing or text in from_data:
                            continue
                        if problem := model_asset_problem(text, facts[pid], short=short):
                            failing[key] = f"model: {problem}"
                    for key, text in fields.items():
                        if key.startswith("path") or not str(text).strip():
                            continue
                        shown += 1
                        claims = claims_in(str(text), evidence, key)
                        if key in failing or claims:
                            refused += 1
                            why = failing.get(key) or f"claim: {claims[0].kind}"
                            reasons[why] = reasons.get(why, 0) + 1
                    clean += not failing and not any(claims_in(str(t), evidence, k) for k, t in fields.items())
                    if failing and args.show:
                        print(f"  {facts[pid].title[:50]}: " + "; ".join(f"{k}={fields[k]!r} ({why})" for k, why in failing.items()))
        store.close()
    print(f"{where}; {ads} ads, {shown} assets shown")
    print(f"refused by today's checks: {refused} ({refused / max(shown, 1):.1%}); usable: {1 - refused / max(shown, 1):.1%}; "
          f"ads with every asset usable: {clean / max(ads, 1):.1%}")
    for why, n in sorted(reasons.items(), key=lambda item: -item[1]):
        print(f"  {why}: {n}")


if __name__ == "__main__":
    main()
