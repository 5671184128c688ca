"""Copy quality over the demo catalog: limits kept, claims backed, variants distinct.

Generates with the product's own path (``core.copy.variants.generate_variants`` over the
resident model, exactly what Copy Studio and ``python -m core generate`` run) for N demo
products × several channels, then measures what a marketer would check by hand:

- within limits: every returned variant re-checked against its channel's limits by
  ``core.copy.limits.check_fields`` (target: 100 % — a variant shown as compliant must be);
- unsupported claims: the share of variants with at least one claim the product's data does
  not back, as flagged by the faithfulness score;
- false flags: flagged claims whose words do appear in the product's data (an independent,
  cruder substring check: a flag it contradicts is worth a look, not proof of a bug);
- diversity: mean distinct-2 and self-BLEU of each product's set;
- effort: candidates asked for, candidates rejected by repair, rounds needed, products short
  of n variants, seconds.

    .venv/bin/python bench/copy_quality.py                       # 50 products × 3 channels, n=3
    .venv/bin/python bench/copy_quality.py --products 5 --channels google_rsa   # a quick look

Needs no streamlit and no network. Prints a markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from core.config import load_settings  # noqa: E402
from core.copy.channels import get_channel  # noqa: E402
from core.copy.facts import iter_values, load_facts  # noqa: E402
from core.copy.limits import check_fields  # noqa: E402
from core.copy.variants import GenerationRequest, engine_generate_fn, generate_variants  # noqa: E402
from core.llm import load_engine  # noqa: E402
from core.sample_data import build_demo  # noqa: E402
from core.store import Store  # noqa: E402


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower().replace(",", "")).split())


def data_text(facts) -> str:  # noqa: ANN001 - ProductFacts
    parts = [str(v) for v in facts.field_values().values()]
    if facts.price is not None:
        parts.append(f"{facts.price:g}")
    for key, value in facts.attributes.items():
        parts.append(key.replace("_", " "))
        parts.extend(str(v) for v in iter_values(value))
    return " " + _norm(" | ".join(parts)) + " "


def is_false_flag(claim_text: str, text: str) -> bool:
    claim = _norm(claim_text)
    return bool(claim) and f" {claim} " in text


def run_channel(store: Store, generate_fn, product_ids: list[str], channel: str, n: int, seed: int) -> dict:  # noqa: ANN001
    spec = get_channel(channel)
    facts = load_facts(store, product_ids)
    texts = {pid: data_text(f) for pid, f in facts.items()}
    started = time.perf_counter()
    request = GenerationRequest(product_ids=tuple(product_ids), channel=channel, tones=("friendly",), n=n, seed=seed)
    variants = generate_variants(store, generate_fn, request)
    seconds = time.perf_counter() - started

    compliant = [not check_fields(v.fields, spec) for v in variants]
    flagged = [bool(v.scores.get("unsupported_claims")) for v in variants]
    claims = [c for v in variants for c in v.scores.get("unsupported_claims", [])]
    false_flags = [c["text"] for v in variants for c in v.scores.get("unsupported_claims", [])
                   if is_false_flag(c["text"], texts[v.product_id])]
    by_product: dict[str, list] = {}
    for v in variants:
        by_product.setdefault(v.product_id, []).append(v)
    sets = [vs[0].scores.get("set", {}) for vs in by_product.values() if len(vs) > 1]
    asked = sum(int(vs[0].params.get("candidates", 0)) for vs in by_product.values())
    rejected = sum(int(vs[0].params.get("rejected", 0)) for vs in by_product.values())
    return {
        "channel": channel,
        "products": len(product_ids),
        "variants": len(variants),
        "short": sum(1 for pid in product_ids if len(by_product.get(pid, [])) < n),
        "within_limits": sum(compliant) / len(variants) if variants else float("nan"),
        "with_claims": sum(flagged) / len(variants) if variants else float("nan"),
        "claims": len(claims),
        "false_flags": false_flags,
        "distinct_2": statistics.mean(s["distinct_2"] for s in sets) if sets else float("nan"),
        "self_bleu": statistics.mean(s["self_bleu"] for s in sets) if sets else float("nan"),
        "candidates": asked,
        "rejected": rejected,
        "mean_tries": statistics.mean(v.tries for v in variants) if variants else float("nan"),
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=50)
    parser.add_argument("--channels", default="google_rsa,meta,email")
    parser.add_argument("--n", type=int, default=3, help="variants per product")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=float, default=0.05, help="demo store scale (products are what matters)")
    parser.add_argument("--show", type=int, default=2, help="print this many example variants per channel")
    args = parser.parse_args()

    settings = load_settings()
    t0 = time.perf_counter()
    engine = load_engine(settings)
    load_s = time.perf_counter() - t0
    generate_fn = engine_generate_fn(engine)
    info = engine.describe()

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "quality.duckdb")
        build_demo(store, seed=42, scale=args.scale)
        with store.cursor() as cur:
            # Spread over the catalog (every category), reproducibly: not just the first 50 ids.
            ids = [r[0] for r in cur.execute(
                "SELECT product_id FROM products ORDER BY hash(product_id || 'quality') LIMIT ?", [args.products]).fetchall()]
        rows = []
        for channel in [c.strip() for c in args.channels.split(",") if c.strip()]:
            row = run_channel(store, generate_fn, ids, channel, args.n, args.seed)
            rows.append(row)
            print(f"{channel}: {row['variants']} variants in {row['seconds']:.0f} s", file=sys.stderr)
            if args.show:
                for v in generate_variants(store, generate_fn, GenerationRequest(product_ids=(ids[0],), channel=channel, n=args.show,
                                                                                  seed=args.seed))[: args.show]:
                    print(f"  e.g. {v.product_id}: {v.fields} claims={v.unsupported_claims}", file=sys.stderr)
        store.close()

    print(f"\nMachine: {platform.machine()}, {os.cpu_count()} CPUs; model {info.summary} (loaded in {load_s:.1f} s); "
          f"{args.products} demo products (seed 42), tone friendly, n={args.n}, temperature 0.8, oversample 3, seed {args.seed}.\n")
    print("| channel | variants | within limits | with an unsupported claim | claims flagged | false flags | "
          "products short of n | mean distinct-2 | mean self-BLEU | candidates (rejected) | mean rounds | time (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['channel']} | {r['variants']} | {r['within_limits']:.1%} | {r['with_claims']:.1%} | {r['claims']} | "
              f"{len(r['false_flags'])} | {r['short']} of {r['products']} | {r['distinct_2']:.2f} | {r['self_bleu']:.2f} | "
              f"{r['candidates']} ({r['rejected']}) | {r['mean_tries']:.2f} | {r['seconds']:.0f} |")
    for r in rows:
        if r["false_flags"]:
            print(f"\nfalse flags in {r['channel']}: {sorted(set(r['false_flags']))[:20]}")


if __name__ == "__main__":
    main()
