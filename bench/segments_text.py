"""Review-text segmentation on a real export: cold (nothing embedded yet) and warm (a restart).

The Women's Clothing E-Commerce reviews (23,486 rows, ../shared/data/real) go through the
product's own importer; the export has no reviewer ids, so each review is given one of
``--users`` synthetic authors (a hash of its id), each with one event, so that
``run_segmentation(use_text=True)`` has users to cluster. Then:

- cold: a fresh database and a freshly loaded encoder: every text is embedded;
- warm: a new encoder (as after a restart) on the same database: vectors come from the
  ``text_embeddings`` table, nothing is embedded;
- peer, same run: the encoder as it was before (texts in file order, float32) on a sample,
  against today's (length-sorted batches, bfloat16 where the CPU has AMX/AVX512-BF16).

    .venv/bin/python bench/segments_text.py            # prints a markdown table for bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from core.ingest import ingest_file  # noqa: E402
from core.segments import run_segmentation  # noqa: E402
from core.segments.text import TextEmbedder  # noqa: E402
from core.store import Store  # noqa: E402

REVIEWS = ROOT.parent / "shared" / "data" / "real" / "womens_clothing_ecommerce_reviews" / "Womens Clothing E-Commerce Reviews.csv"


def old_way(embedder: TextEmbedder, texts: list[str]) -> np.ndarray:
    """The encoder before this change: file order, float32, no store."""
    tok, model = embedder._tokenizer, embedder._model
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), 64):
            batch = tok(texts[start:start + 64], padding=True, truncation=True, max_length=128, return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, p=2, dim=1).numpy())
    return np.concatenate(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=REVIEWS)
    parser.add_argument("--users", type=int, default=8000, help="synthetic authors (the export has no reviewer id)")
    parser.add_argument("--peer-sample", type=int, default=1500)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "text.duckdb")
        report = ingest_file(store, "reviews", args.file, skip_invalid=True)
        with store.transaction() as cur:
            cur.execute("UPDATE reviews SET user_id = 'U' || (hash(review_id) % ?)::VARCHAR", [args.users])
            cur.execute("INSERT INTO events (user_id, ts, event_name) SELECT DISTINCT user_id, TIMESTAMP '2026-01-01', 'view' FROM reviews")
            texts = cur.execute("SELECT count(*) FROM reviews WHERE coalesce(text, title) IS NOT NULL").fetchall()[0][0]

        started = time.perf_counter()
        embedder = TextEmbedder()
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        last = [0.0]

        def progress(fraction: float, message: str) -> None:
            if time.perf_counter() - last[0] > 20:
                last[0] = time.perf_counter()
                print(f"  {fraction:.0%} {message}", file=sys.stderr, flush=True)

        cold = run_segmentation(store, k=5, use_text=True, embedder=embedder, save=False, progress=progress)
        cold_s = time.perf_counter() - started

        started = time.perf_counter()
        restarted = TextEmbedder()
        warm = run_segmentation(store, k=5, use_text=True, embedder=restarted, save=False)
        warm_s = time.perf_counter() - started

        with store.cursor() as cur:
            rows = cur.execute("SELECT trim(coalesce(title, '') || '. ' || coalesce(text, ''), '. ') FROM reviews "
                               "ORDER BY review_id LIMIT ?", [args.peer_sample]).fetchall()
        sample = [text for (text,) in rows if text]
        fresh = TextEmbedder()
        started = time.perf_counter()
        before = old_way(fresh, sample)
        old_s = time.perf_counter() - started
        started = time.perf_counter()
        now = fresh.embed(sample)
        new_s = time.perf_counter() - started
        store.close()

    cos = float((before * now).sum(axis=1).min())
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name")), "?")
    print(f"Machine: {cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads); "
          f"encoder on {embedder.device} in {str(embedder.dtype).replace('torch.', '')}, loaded in {load_s:.1f} s.")
    print(f"File: {args.file.name}, {report.inserted:,} reviews imported ({texts:,} with text), {args.users:,} synthetic authors.\n")
    print("| run | what is embedded | wall (s) | of which text (s) | users with text |")
    print("|---|---|---|---|---|")
    print(f"| cold: fresh database, fresh encoder | {cold.quality['text']['texts']:,} texts | {cold_s:.1f} | "
          f"{cold.quality['timings'].get('text', float('nan')):.1f} | {cold.quality['text']['users_with_text']:,} |")
    print(f"| warm: restart, same database | nothing (vectors from text_embeddings) | {warm_s:.1f} | "
          f"{warm.quality['timings'].get('text', float('nan')):.1f} | {warm.quality['text']['users_with_text']:,} |")
    print(f"\nPeer, same run, {len(sample):,} texts: before (file order, float32) {old_s:.1f} s, now {new_s:.1f} s "
          f"({old_s / new_s:.1f}× faster); lowest cosine between the two vectors of a text {cos:.5f}.")


if __name__ == "__main__":
    main()
