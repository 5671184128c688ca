"""Copy generation throughput: generated tokens/s and variants/s at several batch sizes.

Runs the product's own path (``core.llm.Generator.generate``: chat template, left padding,
``model.generate`` with sampling) on a Google responsive-search-ad prompt, one headline per
product, ~30 new tokens. Batch B means B different products in one ``model.generate`` call;
the peer in the same run is batch 1 (one variant at a time), and the speed-up column is the
ratio to it. ``--catalog N`` then times a whole catalog: N products × ``--variants`` variants
through ``generate_batches``, the way Copy Studio generates for many products.

    .venv/bin/python bench/copy_throughput.py                      # bundled SmolLM2, CPU or GPU
    .venv/bin/python bench/copy_throughput.py --model PATH         # any Hugging Face directory
    .venv/bin/python bench/copy_throughput.py --random-weights --tokenizer PATH   # GPU box, no weights
    .venv/bin/python bench/copy_throughput.py --device cuda --batches 1,8,32,128 --catalog 1000
    .venv/bin/python bench/copy_throughput.py --device cuda --rsa-sets 1000 --products-file FILE.csv --sets-out sets.jsonl

``--rsa-sets N`` times the whole product path instead: ``generate_variants`` (the ~1,000-token
grounded few-shot prompt, repair, gates, scoring, up to three rounds) for N products of a
temporary store (the demo catalog, or ``--products-file`` imported as an upload would be),
``--variants`` finished Google RSA variants each; it reports wall time, prompt and generated
tokens per second, rows per model call and peak GPU memory, and can keep every returned set
(fields, scores) as JSON lines for reading and for training data.

Needs only torch + transformers (no streamlit, no network); ``--rsa-sets`` also duckdb and textstat. ``--random-weights`` builds the
SmolLM2-135M architecture with random weights: the same compute per token, but it rarely
ends a turn early, so every variant runs the full ``--new-tokens``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from core.llm import DEFAULT_MODEL, bundled_gguf, load_generator, pick_device  # noqa: E402
from core.llm.generator import Generator  # noqa: E402

SYSTEM = (
    "You write Google responsive search ad headlines. Use only the facts given about the product. "
    "Answer with one headline of at most 30 characters and nothing else."
)
# (brand, title, facts): varied lengths, so batches carry real left padding.
PRODUCTS = [
    ("Hydra", "Insulated steel water bottle 750 ml", "keeps drinks cold 24 h; leak-proof lid; dishwasher safe"),
    ("Nordhem", "Merino wool hiking socks, 3 pairs", "cushioned heel; sizes 36-47"),
    ("Lumio", "LED desk lamp with wireless charger", "5 colour temperatures; USB-C; 10 W Qi pad; touch dimmer; foldable arm"),
    ("Koru", "Organic cotton bath towel set", "2 bath towels and 2 hand towels; 600 gsm; GOTS certified"),
    ("Vanta", "Noise-cancelling wireless earbuds", "30 h battery with case; IPX4; Bluetooth 5.3"),
    ("Brio", "Cast iron skillet 26 cm", "pre-seasoned; oven safe to 260 °C"),
    ("Peak", "Ultralight two-person tent", "1.4 kg; two doors; aluminium poles; 3000 mm waterproof flysheet; packs to 40 cm"),
    ("Solis", "Mineral sunscreen SPF 50, 100 ml", "reef-friendly zinc oxide; fragrance free"),
]


def product_prompt(i: int) -> list[dict[str, str]]:
    brand, title, facts = PRODUCTS[i % len(PRODUCTS)]
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Product: {title} (item {i + 1})\nBrand: {brand}\nFacts: {facts}\nHeadline:"},
    ]


def random_weights_generator(tokenizer_path: str | None, device: str) -> Generator:
    """The SmolLM2-135M architecture with random weights, on the chosen device and dtype."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    if tokenizer_path:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    else:
        gguf = bundled_gguf()
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = LlamaConfig(  # SmolLM2-135M-Instruct's own config
        vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
        num_key_value_heads=3, head_dim=64, max_position_embeddings=8192, rms_norm_eps=1e-5, tie_word_embeddings=True,
        rope_parameters={"rope_theta": 100000.0, "rope_type": "default"},
        bos_token_id=1, eos_token_id=2, pad_token_id=2,
    )
    torch_device, dtype = pick_device(device)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(device=torch_device, dtype=dtype)
    return Generator(model, tokenizer, name="SmolLM2-135M architecture, random weights", source="random weights")


def machine_line(generator: Generator) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem = f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
    except (ValueError, OSError, AttributeError):
        mem = "? GiB"
    gpu = f", GPU {torch.cuda.get_device_name(generator.device)}" if generator.device.type == "cuda" else ", no GPU used"
    import transformers

    return (
        f"machine: {cpu}, {os.cpu_count()} cores ({torch.get_num_threads()} torch threads), {mem}{gpu}; "
        f"Python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}"
    )


def measure(generator: Generator, batch: int, new_tokens: int, repeat: int, temperature: float) -> dict[str, float]:
    prompts = [product_prompt(i) for i in range(batch)]
    runs = []
    for r in range(repeat):
        started = time.perf_counter()
        results = generator.generate(prompts, n=1, max_new_tokens=new_tokens, temperature=temperature, seed=1000 + r)
        seconds = time.perf_counter() - started
        runs.append((seconds, sum(x.completion_tokens for x in results)))
    # Figures from the run with the best tokens/s: on a shared box it is the one least disturbed by
    # other work. The median tokens/s is shown beside it so a noisy run is visible.
    seconds, tokens = max(runs, key=lambda run: run[1] / run[0])
    median = statistics.median(t / s for s, t in runs)
    return {"seconds": seconds, "median_tps": median, "tokens": tokens, "tokens_per_s": tokens / seconds, "variants_per_s": batch / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", help=f"model: a Hugging Face directory or .gguf (default: the bundled {DEFAULT_MODEL.split('/')[-1]})")
    source.add_argument("--random-weights", action="store_true", help="SmolLM2-135M architecture, random weights (no weights needed)")
    parser.add_argument("--tokenizer", help="tokenizer directory for --random-weights (default: the bundled GGUF's)")
    parser.add_argument("--device", default=os.environ.get("MARKETLAB_DEVICE", "auto"), choices=["auto", "cpu", "cuda"])
    parser.add_argument("--cache", default=os.environ.get("MARKETLAB_MODEL_CACHE") or None, help="model cache folder (MARKETLAB_MODEL_CACHE)")
    parser.add_argument("--batches", default="1,8,32", help="comma-separated batch sizes (sequences per model.generate)")
    parser.add_argument("--new-tokens", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3, help="runs per batch size; figures from the best by tokens/s, median shown too")
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--catalog", type=int, default=0, help="also time N products × --variants through generate_batches")
    parser.add_argument("--variants", type=int, default=3)
    parser.add_argument("--catalog-batch", type=int, default=0, help="products per batch in --catalog (default: 8 on CPU, 128 on GPU)")
    parser.add_argument("--rsa-sets", type=int, default=0, help="time N products through the product path (generate_variants, Google RSA)")
    parser.add_argument("--channel", default="google_rsa", help="channel for --rsa-sets")
    parser.add_argument("--products-file", type=Path, help="catalog export to import for --rsa-sets (default: the demo catalog)")
    parser.add_argument("--request-batch", type=int, default=0, help="products per model call in --rsa-sets (default: 16 on CPU, 64 on GPU)")
    parser.add_argument("--max-rows", type=int, default=0, help="sequences per model.generate (default: the generator's own)")
    parser.add_argument("--sets-out", type=Path, help="write every returned variant of --rsa-sets here as JSON lines")
    args = parser.parse_args()

    started = time.perf_counter()
    if args.random_weights:
        generator = random_weights_generator(args.tokenizer, args.device)
    else:
        generator = load_generator(args.model or DEFAULT_MODEL, device=args.device, cache_dir=args.cache)
    load_seconds = time.perf_counter() - started
    batches = [int(b) for b in args.batches.split(",") if b.strip()]
    generator.max_batch_rows = args.max_rows or max(generator.max_batch_rows, max(batches), args.variants * (args.catalog_batch or 0))
    info = generator.describe()

    generator.generate([product_prompt(0)], max_new_tokens=4, seed=0)  # warm-up: first-call allocations, kernels

    print(machine_line(generator))
    print(f"model: {info.summary} ({info.source}); loaded in {load_seconds:.1f} s" + (" including the one-time GGUF conversion" if generator.converted else ""))
    print(f"prompt: Google RSA headline, system + user turn (~{generator.generate([product_prompt(0)], max_new_tokens=1, seed=0)[0].prompt_tokens} tokens), "
          f"max {args.new_tokens} new tokens, temperature {args.temperature}; the best of {args.repeat} runs by tokens/s")
    print()
    print("| batch | wall (s) | generated tokens | tokens/s | variants/s | tokens/s vs batch 1 | median tokens/s |")
    print("|---|---|---|---|---|---|---|")
    base = None
    for batch in batches:
        m = measure(generator, batch, args.new_tokens, args.repeat, args.temperature)
        base = base or m["tokens_per_s"]
        print(
            f"| {batch} | {m['seconds']:.2f} | {m['tokens']:.0f} | {m['tokens_per_s']:.1f} "
            f"| {m['variants_per_s']:.2f} | {m['tokens_per_s'] / base:.1f}× | {m['median_tps']:.1f} |",
            flush=True,
        )

    if args.catalog:
        per_batch = args.catalog_batch or (128 if generator.device.type == "cuda" else 8)
        prompts = [product_prompt(i) for i in range(args.catalog)]
        started = time.perf_counter()
        tokens = variants = 0
        batches = generator.generate_batches(
            prompts, n=args.variants, batch_size=per_batch, max_new_tokens=args.new_tokens, temperature=args.temperature, seed=1
        )
        for results in batches:
            tokens += sum(r.completion_tokens for r in results)
            variants += len(results)
        seconds = time.perf_counter() - started
        print()
        print(f"catalog: {args.catalog} products × {args.variants} variants, {per_batch} products per batch: "
              f"{seconds:.1f} s, {variants / seconds:.1f} variants/s, {tokens / seconds:.0f} tokens/s "
              f"({'under' if seconds < 60 else 'over'} one minute)")
    if args.rsa_sets:
        product_path(generator, args)
    if generator.device.type == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated(generator.device) / 2**30:.2f} GiB allocated, "
              f"{torch.cuda.max_memory_reserved(generator.device) / 2**30:.2f} GiB reserved by PyTorch")
    for notice in generator.notices:
        print(f"notice: {notice}")


class CountingEngine:
    """The generator as generate_variants sees it, counting tokens and rows per model call on the way."""

    def __init__(self, generator: Generator) -> None:
        self.generator = generator
        self.notices = generator.notices
        self.calls = self.rows = self.prompt_tokens = self.completion_tokens = 0
        self.generate_seconds = 0.0
        self.per_call: list[tuple[int, float, int]] = []  # (rows, seconds, longest answer in tokens) per model call

    def describe(self):  # noqa: ANN201 - ModelInfo
        return self.generator.describe()

    def generate(self, prompts, **kwargs):  # noqa: ANN001, ANN201 - the Generator's own signature
        started = time.perf_counter()
        results = self.generator.generate(prompts, **kwargs)
        self.generate_seconds += time.perf_counter() - started
        self.calls += 1
        self.rows += len(results)
        self.prompt_tokens += sum(r.prompt_tokens for r in results)
        self.completion_tokens += sum(r.completion_tokens for r in results)
        self.per_call.append((len(results), time.perf_counter() - started, max((r.completion_tokens for r in results), default=0)))
        return results


def product_path(generator: Generator, args: argparse.Namespace) -> None:
    """N products through generate_variants, the path Copy Studio and `python -m core generate` take."""
    import json
    import tempfile

    from core.copy.channels import get_channel
    from core.copy.limits import check_fields
    from core.copy.variants import GenerationRequest, engine_generate_fn, generate_variants
    from catalog_store import catalog_store  # bench/, beside this file

    spec = get_channel(args.channel)
    engine = CountingEngine(generator)
    per_call = args.request_batch or (64 if generator.device.type == "cuda" else 16)
    with tempfile.TemporaryDirectory() as tmp:
        store, source = catalog_store(tmp, args.products_file, scale=max(0.05, (args.rsa_sets / 300) ** 2))
        with store.cursor() as cur:
            ids = [r[0] for r in cur.execute("SELECT product_id FROM products ORDER BY product_id LIMIT ?", [args.rsa_sets]).fetchall()]
        request = GenerationRequest(product_ids=tuple(ids), channel=spec.name, n=args.variants, seed=1, batch_size=per_call)
        last = [0.0]

        def progress(fraction: float, message: str) -> None:
            if time.perf_counter() - last[0] > 15:
                last[0] = time.perf_counter()
                print(f"  {fraction:.0%} {message}", file=sys.stderr, flush=True)

        started = time.perf_counter()
        variants = generate_variants(store, engine_generate_fn(engine), request, progress)
        seconds = time.perf_counter() - started
        store.close()
    products = {v.product_id for v in variants}
    within = sum(not check_fields(v.fields, spec) for v in variants)
    claims = sum(bool(v.unsupported_claims) for v in variants)
    print()
    print(f"product path: {spec.label}, {len(ids)} products from {source}, n={args.variants}, {per_call} products per "
          f"request batch, at most {generator.max_batch_rows} sequences per model.generate")
    print("| products with a set | variants | within limits | with an unsupported claim | wall (s) | in model.generate (s) "
          "| model calls | rows generated | prompt tokens/s | generated tokens/s | sets/s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {len(products)} of {len(ids)} | {len(variants)} | {within / max(1, len(variants)):.1%} | {claims / max(1, len(variants)):.1%} "
          f"| {seconds:.1f} | {engine.generate_seconds:.1f} | {engine.calls} | {engine.rows} "
          f"| {engine.prompt_tokens / max(engine.generate_seconds, 1e-9):,.0f} | {engine.completion_tokens / max(engine.generate_seconds, 1e-9):,.0f} "
          f"| {len(products) / seconds:.2f} |", flush=True)
    print(f"{'under' if seconds < 60 else 'over'} one minute for {len(ids)} products")
    # Where the time goes: a call costs its longest answer's decoding steps, whatever its row count.
    print("\n| model call | rows | seconds | longest answer (tokens) | ms per decoding step |\n|---|---|---|---|---|")
    for i, (rows, secs, longest) in enumerate(engine.per_call, start=1):
        print(f"| {i} | {rows} | {secs:.1f} | {longest} | {1000 * secs / max(1, longest):.0f} |")
    if args.sets_out:
        with args.sets_out.open("w", encoding="utf-8") as out:
            for v in variants:
                out.write(json.dumps({"product_id": v.product_id, "channel": v.channel, "fields": v.fields,
                                      "rank": v.scores.get("rank"), "overall": v.scores.get("overall"),
                                      "unsupported_claims": v.unsupported_claims, "raw": v.params.get("raw")},
                                     ensure_ascii=False, default=str) + "\n")


if __name__ == "__main__":
    main()
