"""LoRA training speed for the copy writer (peft): seconds per step, tokens/s and memory, CPU or GPU.

Measures what issue 14's "Teach the writer" will cost before it exists as a product feature:
a LoRA adapter (r=16 on every attention and MLP projection, the recipe the issue names) on the
resident SmolLM2-135M-Instruct, trained on prompt -> answer pairs whose prompts carry no
few-shot turns (the tuned writer's prompt, a few hundred tokens), loss on the answer only.

1. Fixed shapes: ``--shapes 8x64,32x512`` times steps of B sequences × L tokens (the 8 × 64 shape
   is the one measured on the 2-core CPU box: ~9 s a step).
2. A real run over ``--sets`` (JSON lines from ``bench/copy_throughput.py --sets-out``: answers
   the few-shot pipeline wrote and every gate accepted, i.e. the issue's training source (b)),
   ``--epochs`` epochs, its loss at the start and the end, and the adapter saved to ``--out``.
   Without ``--sets`` the pairs come from the channel's few-shot examples (timing only).

    .venv/bin/python bench/tune_speed.py --device cpu --shapes 8x64 --steps 3
    python3 bench/tune_speed.py --device cuda --sets sets.jsonl --products-file catalog.csv --out adapter/

Needs torch, transformers and peft (and duckdb for ``--sets``); no streamlit, no network.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from core.copy.channels import get_channel, get_tone  # noqa: E402
from core.copy.prompts import EXAMPLE_PRODUCTS, EXAMPLES, request_message, system_message  # noqa: E402
from core.llm import DEFAULT_MODEL, load_generator  # noqa: E402

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def zero_shot(facts, channel: str, tone: str = "friendly") -> list[dict[str, str]]:  # noqa: ANN001 - ProductFacts
    """The tuned writer's prompt: the same system and request as today, without the few-shot turns."""
    spec = get_channel(channel)
    return [{"role": "system", "content": system_message(spec)},
            {"role": "user", "content": request_message(facts, spec, get_tone(tone))}]


def answer_text(fields: dict[str, str], channel: str) -> str:
    spec = get_channel(channel)
    return "\n".join(f"{f.label}: {fields[f.key]}" for f in spec.fields if fields.get(f.key))


def pairs_from_examples() -> list[tuple[list[dict[str, str]], str]]:
    return [(zero_shot(EXAMPLE_PRODUCTS[ex.product], channel, ex.tone), ex.answer)
            for channel, examples in EXAMPLES.items() for ex in examples]


def pairs_from_sets(sets: Path, products_file: Path) -> list[tuple[list[dict[str, str]], str]]:
    from core.copy.facts import load_facts
    from core.ingest import ingest_file
    from core.store import Store

    rows = [json.loads(line) for line in sets.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [r for r in rows if not r.get("unsupported_claims")]  # only what every gate and the checker accepted
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "tune.duckdb")
        ingest_file(store, "products", products_file, skip_invalid=True)
        facts = load_facts(store, sorted({r["product_id"] for r in rows}))
        store.close()
    return [(zero_shot(facts[r["product_id"]], r["channel"]), answer_text(r["fields"], r["channel"])) for r in rows]


def encode(tokenizer, pairs, max_len: int) -> list[tuple[list[int], list[int]]]:  # noqa: ANN001
    """Token ids and labels (-100 over the prompt: the loss is on the answer only)."""
    out = []
    for messages, answer in pairs:
        prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        a_ids = tokenizer(answer + "<|im_end|>", add_special_tokens=False)["input_ids"]
        ids = (p_ids + a_ids)[-max_len:]
        labels = ([-100] * len(p_ids) + a_ids)[-max_len:]
        out.append((ids, labels))
    return out


def collate(batch, pad_id: int, device) -> dict[str, torch.Tensor]:  # noqa: ANN001
    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, (x, y) in enumerate(batch):  # right padding: training needs no generation alignment
        ids[i, : len(x)] = torch.tensor(x)
        labels[i, : len(y)] = torch.tensor(y)
        mask[i, : len(x)] = 1
    return {"input_ids": ids.to(device), "labels": labels.to(device), "attention_mask": mask.to(device)}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--shapes", default="8x64,32x512", help="BxL step shapes to time")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per shape (after 2 warm-up steps)")
    parser.add_argument("--sets", type=Path, help="JSON lines of accepted variants to train on")
    parser.add_argument("--products-file", type=Path, help="the catalog those variants were written for")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-len", type=int, default=768)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="save the trained adapter here")
    args = parser.parse_args()

    from peft import LoraConfig, get_peft_model

    torch.manual_seed(args.seed)
    random.seed(args.seed)
    generator = load_generator(args.model, device=args.device)
    device, tokenizer = generator.device, generator.tokenizer
    model = get_peft_model(generator.model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules=TARGETS,
                                                       task_type="CAUSAL_LM"))
    model.train()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    dtype = next(generator.model.parameters()).dtype
    print(f"model: {generator.describe().summary}; LoRA r=16 on {', '.join(TARGETS)}: {trainable / 1e6:.2f}M trainable; "
          f"base weights {str(dtype).replace('torch.', '')}, torch {torch.__version__}, {os.cpu_count()} CPUs"
          + (f", GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ", no GPU"))

    def step(batch: dict[str, torch.Tensor]) -> float:
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    print("\n| step shape (sequences × tokens) | s/step | tokens/s | peak GPU memory (GiB) |\n|---|---|---|---|")
    for shape in [s for s in args.shapes.split(",") if s.strip()]:
        b, length = (int(x) for x in shape.lower().split("x"))
        batch = {"input_ids": torch.randint(100, 40000, (b, length), device=device)}
        batch["labels"] = batch["input_ids"].clone()
        batch["attention_mask"] = torch.ones_like(batch["input_ids"])
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        try:
            for _ in range(2):
                step(batch)
            sync(device)
            started = time.perf_counter()
            for _ in range(args.steps):
                step(batch)
            sync(device)
        except torch.OutOfMemoryError:
            # Seen on an H200 at 128 × 768: the loss holds float32 logits over the whole vocabulary.
            optimizer.zero_grad(set_to_none=True)
            del batch
            torch.cuda.empty_cache()
            print(f"| {b} × {length} | out of memory | – | – |", flush=True)
            continue
        per_step = (time.perf_counter() - started) / args.steps
        memory = f"{torch.cuda.max_memory_allocated(device) / 2**30:.1f}" if device.type == "cuda" else "–"
        print(f"| {b} × {length} | {per_step:.3f} | {b * length / per_step:,.0f} | {memory} |", flush=True)

    pairs = pairs_from_sets(args.sets, args.products_file) if args.sets else pairs_from_examples()
    data = encode(tokenizer, pairs, args.max_len)
    lengths = sorted(len(ids) for ids, _ in data)
    steps = max(1, round(len(data) * args.epochs / args.batch))
    print(f"\ntraining: {len(data)} pairs ({'accepted variants from ' + args.sets.name if args.sets else 'few-shot examples'}), "
          f"prompt+answer tokens median {lengths[len(lengths) // 2]}, max {lengths[-1]}; batch {args.batch}, "
          f"{args.epochs:g} epoch(s) = {steps} steps, lr {args.lr}, seed {args.seed}", flush=True)
    order: list[int] = []
    losses = []
    sync(device)
    started = time.perf_counter()
    tokens = 0
    for s in range(steps):
        if len(order) < args.batch:
            more = list(range(len(data)))
            random.shuffle(more)
            order += more
        chosen, order = order[: args.batch], order[args.batch :]
        batch = [data[i] for i in chosen]
        tokens += sum(len(ids) for ids, _ in batch)
        losses.append(step(collate(batch, pad_id, device)))
        if s % max(1, steps // 10) == 0:
            print(f"  step {s + 1}/{steps} loss {losses[-1]:.3f} ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    sync(device)
    seconds = time.perf_counter() - started
    head = sum(losses[: max(1, len(losses) // 10)]) / max(1, len(losses) // 10)
    tail = sum(losses[-max(1, len(losses) // 10):]) / max(1, len(losses) // 10)
    print(f"trained {steps} steps in {seconds:.1f} s ({seconds / steps:.3f} s/step, {tokens / seconds:,.0f} tokens/s); "
          f"loss {head:.3f} over the first tenth -> {tail:.3f} over the last")
    if device.type == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB allocated")
    if args.out:
        model.save_pretrained(str(args.out))
        size = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
        print(f"adapter saved to {args.out} ({size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
