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
- usable assets: the share of returned assets (headlines, descriptions…) that pass every gate
  (``core.copy.gates``, re-run here on the returned text and the product's set), and the share
  of variants whose every asset does;
- selling-point coverage: the share of products whose set carries the product's top selling
  point (``core.copy.selling_points``: concrete numbers and benefits first, colour and price last);
- ad strength (Google RSA): the distribution of levels, recomputed here from the returned ad;
- diversity: mean distinct-2 and self-BLEU of each product's set;
- effort: candidates asked for, candidates rejected by repair, rounds needed, products short
  of n variants, seconds.

    .venv/bin/python bench/copy_quality.py                       # 50 products × 3 channels, n=3
    .venv/bin/python bench/copy_quality.py --products 5 --channels google_rsa   # a quick look
    .venv/bin/python bench/copy_quality.py --state bench/out/quality-50.jsonl   # resumable
    .venv/bin/python bench/copy_quality.py --catalog ../shared/data/real/amazon_products_promptcloud_2020/amazon_products_sample_1000.csv --products 10
    .venv/bin/python bench/copy_quality.py --channels google_rsa --n 1 --peer --sample 20   # issue 13: before/after

``--peer`` runs, in the same process on the same products, the path as it was before issue 13: the
RSA as the model's one answer (3 headlines, 2 descriptions), chosen among candidates, not assembled.
Its row is the time peer, and ``--sample`` prints that many products' sets (seeded) from both.

On a quiet 2-core CPU the full run takes about 75 minutes (hours beside other work): with ``--state`` each
chunk of products is written to that file as it finishes, and a later run with the same
arguments skips what the file already holds (same store, seed and product order, so the
chunks are the same) and prints the table over all of it.

``--catalog FILE`` runs on a real catalog export instead of the demo store: the file goes
through the product's own importer (mapping suggested from its column names, invalid rows
skipped), as an upload would.

Needs no streamlit and no network. Prints a markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
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
from core.copy.ad_strength import ad_strength  # noqa: E402
from core.copy.channels import CHANNELS, get_channel  # noqa: E402
from core.copy.data_headlines import ad_keyword  # noqa: E402
from core.copy.selling_points import carries, selling_points  # noqa: E402
from core.copy.facts import iter_values, load_facts  # noqa: E402
from core.copy.gates import asset_gates, set_gates  # noqa: E402
from core.copy.limits import check_fields  # noqa: E402
from core.copy.variants import GenerationRequest, engine_generate_fn, generate_variants  # noqa: E402
from core.copy.gold import load_gold  # noqa: E402
from core.llm import load_engine, load_generator  # noqa: E402
from core.store import Store  # noqa: E402

from catalog_store import catalog_store  # noqa: E402  (bench/, beside this file)


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


CHUNK = 5  # products per generate call, and per line of the --state file


def run_chunk(store: Store, generate_fn, product_ids: list[str], channel: str, n: int, seed: int) -> dict:  # noqa: ANN001
    """Generate for a few products and keep, per product, only what the table needs."""
    spec = get_channel(channel)
    facts = load_facts(store, product_ids)
    texts = {pid: data_text(f) for pid, f in facts.items()}
    started = time.perf_counter()
    request = GenerationRequest(product_ids=tuple(product_ids), channel=channel, tones=("friendly",), n=n, seed=seed)
    variants = generate_variants(store, generate_fn, request)
    products = {pid: {"variants": []} for pid in product_ids}
    # Usable assets, re-checked here from the returned text (not from the scores the generator stored).
    failing: dict[int, set[str]] = {}
    for pid in product_ids:
        group = [v for v in variants if v.product_id == pid]
        for v, set_failures in zip(group, set_gates([v.fields for v in group], spec)):
            failing[id(v)] = {g.field for g in [*asset_gates(v.fields, spec, facts[pid]), *set_failures]}
    for v in variants:
        claims = v.scores.get("unsupported_claims", [])
        assets = [k for k, value in v.fields.items() if str(value).strip() and not k.startswith("path")]
        points = selling_points(facts[v.product_id])
        products[v.product_id].setdefault("has_point", bool(points))
        products[v.product_id]["top_point"] = products[v.product_id].get("top_point", False) or bool(
            points and any(carries(str(value), points[0]) for value in v.fields.values()))
        products[v.product_id]["title"] = facts[v.product_id].title
        products[v.product_id].setdefault("sets", []).append(v.fields)
        products[v.product_id]["variants"].append({
            "within_limits": not check_fields(v.fields, spec), "claims": len(claims), "tries": v.tries,
            "ad_strength": ad_strength(v.fields, [k] if (k := ad_keyword(facts[v.product_id])) else []).level
            if channel == "google_rsa" else None,
            "assets": len(assets), "usable_assets": sum(k not in failing[id(v)] for k in assets),
            "false_flags": [c["text"] for c in claims if is_false_flag(c["text"], texts[v.product_id])]})
        products[v.product_id].update(set=v.scores.get("set", {}), candidates=int(v.params.get("candidates", 0)),
                                      rejected=int(v.params.get("rejected", 0)))
    return {"channel": channel, "product_ids": product_ids, "products": products, "seconds": time.perf_counter() - started}


def summarize(channel: str, chunks: list[dict], n: int) -> dict:
    products = [p for c in chunks for p in c["products"].values()]
    variants = [v for p in products for v in p["variants"]]
    sets = [p["set"] for p in products if len(p["variants"]) > 1 and p.get("set")]
    with_points = [p for p in products if p.get("has_point")]
    return {
        "channel": channel,
        "products": len(products),
        "variants": len(variants),
        "short": sum(1 for p in products if len(p["variants"]) < n),
        "within_limits": sum(v["within_limits"] for v in variants) / len(variants) if variants else float("nan"),
        "with_claims": sum(v["claims"] > 0 for v in variants) / len(variants) if variants else float("nan"),
        "claims": sum(v["claims"] for v in variants),
        "false_flags": [f for v in variants for f in v["false_flags"]],
        "distinct_2": statistics.mean(s["distinct_2"] for s in sets) if sets else float("nan"),
        "self_bleu": statistics.mean(s["self_bleu"] for s in sets) if sets else float("nan"),
        "candidates": sum(p.get("candidates", 0) for p in products),
        "rejected": sum(p.get("rejected", 0) for p in products),
        "mean_tries": statistics.mean(v["tries"] for v in variants) if variants else float("nan"),
        # Chunks recorded before the gates existed have no asset counts: the rate is over those that do.
        "usable_assets": (sum(v.get("usable_assets", 0) for v in variants) / assets
                          if (assets := sum(v.get("assets", 0) for v in variants)) else float("nan")),
        "usable_variants": (sum(v["usable_assets"] == v["assets"] for v in variants if "assets" in v)
                            / max(1, sum("assets" in v for v in variants))),
        "top_point": (sum(p.get("top_point", False) for p in with_points) / len(with_points)) if with_points else float("nan"),
        "strength": {level: sum(v.get("ad_strength") == level for v in variants) for level in
                     ("Excellent", "Good", "Average", "Poor", "Incomplete") if any(v.get("ad_strength") for v in variants)},
        "seconds": sum(c["seconds"] for c in chunks),
    }


def run_channel(store: Store, generate_fn, product_ids: list[str], channel: str, n: int, seed: int,  # noqa: ANN001
                state: Path | None, label: str = "") -> dict:
    done: dict[tuple[str, ...], dict] = {}
    if state is not None and state.exists():
        for line in state.read_text().splitlines():
            record = json.loads(line)
            if (record["channel"] == channel and record.get("n") == n and record.get("seed") == seed
                    and record.get("label", "") == label):
                done[tuple(record["product_ids"])] = record
    chunks = []
    for start in range(0, len(product_ids), CHUNK):
        ids = product_ids[start:start + CHUNK]
        record = done.get(tuple(ids))
        if record is None:
            record = {**run_chunk(store, generate_fn, ids, channel, n, seed), "n": n, "seed": seed, "label": label}
            if state is not None:
                state.parent.mkdir(parents=True, exist_ok=True)
                with state.open("a") as out:
                    out.write(json.dumps(record) + "\n")
            print(f"{channel}{label}: {start + len(ids)} of {len(product_ids)} products ({record['seconds']:.0f} s)",
                  file=sys.stderr, flush=True)
        chunks.append(record)
    return {**summarize(channel + label, chunks, n), "chunks": chunks}


def one_answer_format(channel: str):  # noqa: ANN201 - a context manager
    """The format as it was before issue 13: the model's one answer is the ad (the time and quality peer)."""
    from contextlib import contextmanager

    @contextmanager
    def swapped():
        before = CHANNELS[channel]
        CHANNELS[channel] = before.writes
        try:
            yield
        finally:
            CHANNELS[channel] = before

    return swapped()


def print_blind_pairs(base: dict, tuned: dict, count: int, seed: int) -> None:
    """``count`` products' first set from each writer as A and B, in a seeded random order; which is which at the end."""
    import random

    rng = random.Random(seed)
    products = {name: {pid: p for c in row["chunks"] for pid, p in c["products"].items()} for name, row in
                (("base", base), ("tuned", tuned))}
    pids = sorted(pid for pid in products["base"] if products["base"][pid].get("sets") and products["tuned"].get(pid, {}).get("sets"))
    key = []
    for i, pid in enumerate(rng.sample(pids, min(count, len(pids))), start=1):
        order = ["base", "tuned"] if rng.random() < 0.5 else ["tuned", "base"]
        key.append(f"{i}: A={order[0]}, B={order[1]}")
        print(f"\n### blind {i}. {products['base'][pid].get('title', '')[:80]}")
        for letter, writer in zip("AB", order):
            print(f"  {letter}:")
            for k, value in products[writer][pid]["sets"][0].items():
                print(f"    {k:14} {value}")
    print("\nkey: " + "; ".join(key))


def print_sample(rows: list[dict], count: int, seed: int) -> None:
    """``count`` products' sets, chosen at random (seeded), from every row, for a person to read."""
    import random

    pids = sorted({pid for r in rows for c in r["chunks"] for pid in c["products"]})
    chosen = random.Random(seed).sample(pids, min(count, len(pids)))
    for i, pid in enumerate(chosen, start=1):
        for r in rows:
            product = next((c["products"][pid] for c in r["chunks"] if pid in c["products"]), None)
            if not product or not product.get("sets"):
                continue
            print(f"\n### {i}. {pid} — {product.get('title', '')[:80]} ({r['channel']})")
            for fields in product["sets"]:
                for key, value in fields.items():
                    print(f"    {key:14} {value}")
                print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=50)
    parser.add_argument("--channels", default="google_rsa,meta,email")
    parser.add_argument("--n", type=int, default=3, help="variants per product")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=float, default=0.05, help="demo store scale (products are what matters)")
    parser.add_argument("--show", type=int, default=2, help="print this many example variants per channel")
    parser.add_argument("--state", type=Path, help="keep finished chunks here and skip them on the next run")
    parser.add_argument("--catalog", type=Path, help="a real catalog export to import and write for, instead of the demo store")
    parser.add_argument("--peer", action="store_true", help="also run the one-answer path of before issue 13 (pooled channels)")
    parser.add_argument("--sample", type=int, default=0, help="print this many products' sets (seeded) for a person to read")
    parser.add_argument("--adapter", type=Path, help="write with this LoRA adapter (the tuned writer) instead of MARKETLAB_ADAPTER; "
                                                     "the base model with few-shot examples is its peer in the same run")
    parser.add_argument("--unseen", action="store_true", help="only products the gold set (what the writer is tuned on) does not hold")
    parser.add_argument("--blind", type=int, default=0, help="with --adapter: print this many products' base and tuned sets "
                                                            "as A and B in a seeded random order, the key at the end")
    args = parser.parse_args()

    settings = load_settings()
    t0 = time.perf_counter()
    if args.adapter:
        from dataclasses import replace as _replace

        engine = load_generator(settings.model, device=settings.device, cache_dir=settings.model_cache, adapter=args.adapter)
        base_engine = load_engine(_replace(settings, adapter="none"))
    else:
        engine, base_engine = load_engine(settings), None
    load_s = time.perf_counter() - t0
    generate_fn = engine_generate_fn(engine)
    info = engine.describe()

    with tempfile.TemporaryDirectory() as tmp:
        store, source = catalog_store(tmp, args.catalog, scale=args.scale)
        with store.cursor() as cur:
            # Spread over the catalog (every category), reproducibly: not just the first 50 ids.
            ordered = cur.execute("SELECT product_id, title FROM products ORDER BY hash(product_id || 'quality')").fetchall()
        taught = {_norm(e.facts.title) for e in load_gold()} if args.unseen else set()
        ids = [pid for pid, title in ordered if _norm(title or "") not in taught][: args.products]
        rows = []
        for channel in [c.strip() for c in args.channels.split(",") if c.strip()]:
            if base_engine is not None:
                rows.append(run_channel(store, engine_generate_fn(base_engine), ids, channel, args.n, args.seed, args.state,
                                        " (base, few-shot)"))
                print(f"{channel} (base): {rows[-1]['variants']} variants in {rows[-1]['seconds']:.0f} s", file=sys.stderr)
            if args.peer and get_channel(channel).pooled:
                with one_answer_format(channel):
                    rows.append(run_channel(store, generate_fn, ids, channel, args.n, args.seed, args.state, " (before: one answer)"))
            row = run_channel(store, generate_fn, ids, channel, args.n, args.seed, args.state, " (tuned)" if args.adapter else "")
            rows.append(row)
            print(f"{channel}: {row['variants']} variants in {row['seconds']:.0f} s", file=sys.stderr)
            if args.show:
                for v in generate_variants(store, generate_fn, GenerationRequest(product_ids=(ids[0],), channel=channel, n=args.show,
                                                                                  seed=args.seed))[: args.show]:
                    print(f"  e.g. {v.product_id}: {v.fields} claims={v.unsupported_claims}", file=sys.stderr)
        store.close()

    print(f"\nMachine: {platform.machine()}, {os.cpu_count()} CPUs; model {info.summary} (loaded in {load_s:.1f} s); "
          f"{len(ids)} of {source}, tone friendly, n={args.n}, temperature 0.8, oversample 3, seed {args.seed}.\n")
    print("| channel | variants | within limits | usable assets | variants with every asset usable | top selling point carried | "
          "ad strength | with an unsupported claim | "
          "claims flagged | false flags | products short of n | mean distinct-2 | mean self-BLEU | candidates (rejected) | mean rounds | time (s) | s per product |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        strength = ", ".join(f"{k} {v}" for k, v in r["strength"].items() if v) or "—"
        print(f"| {r['channel']} | {r['variants']} | {r['within_limits']:.1%} | {r['usable_assets']:.1%} | {r['usable_variants']:.1%} | "
              f"{r['top_point']:.1%} | {strength} | {r['with_claims']:.1%} | {r['claims']} | "
              f"{len(r['false_flags'])} | {r['short']} of {r['products']} | {r['distinct_2']:.2f} | {r['self_bleu']:.2f} | "
              f"{r['candidates']} ({r['rejected']}) | {r['mean_tries']:.2f} | {r['seconds']:.0f} | {r['seconds'] / max(1, r['products']):.1f} |")
    for r in rows:
        if r["false_flags"]:
            print(f"\nfalse flags in {r['channel']}: {sorted(set(r['false_flags']))[:20]}")
    if args.sample:
        print_sample(rows, args.sample, args.seed)
    if args.blind and base_engine is not None:
        for channel in [c.strip() for c in args.channels.split(",") if c.strip()]:
            pair = [r for r in rows if r["channel"] in (f"{channel} (base, few-shot)", f"{channel} (tuned)")]
            if len(pair) == 2:
                print_blind_pairs(pair[0], pair[1], args.blind, args.seed)


if __name__ == "__main__":
    main()
