"""Ingest speed: the demo store's ~1M-event log from CSV and from Parquet, against DuckDB's own readers.

DuckDB's ``read_csv`` / ``read_parquet`` straight into a table is the floor: it does no
validation, no per-row reasons, no upsert. MarketLab's ingest reads, validates every row,
plans insert/update per row and commits in one transaction; the ratio says what that costs.

Each measurement runs in a fresh process (clean peak RSS), median of --repeat runs.

    .venv/bin/python bench/ingest.py [--scale 1.0] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# One measurement, run as `python bench/ingest.py --one ENGINE FILE`: prints seconds and peak RSS.
ENGINES = {
    "marketlab": "from core.ingest import ingest_file; from core.store import Store; "
                 "s = Store(db); r = ingest_file(s, 'events', path); assert r.inserted > 0, r",
    "duckdb": "import duckdb; c = duckdb.connect(db); "
              "c.execute(f\"CREATE TABLE events AS SELECT * FROM {'read_parquet' if path.endswith('.parquet') else 'read_csv'}(?)\", [path])",
}


def measure_once(engine: str, path: str) -> dict[str, float]:
    import resource

    db = tempfile.mktemp(suffix=".duckdb")
    started = time.perf_counter()
    exec(ENGINES[engine], {"db": db, "path": path})
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    os.remove(db)
    return {"seconds": seconds, "peak_mb": peak_mb}


def measure(engine: str, path: Path, repeat: int) -> dict[str, float]:
    runs = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, __file__, "--one", engine, str(path)], capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {"seconds": statistics.median(r["seconds"] for r in runs), "peak_mb": max(r["peak_mb"] for r in runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--one", nargs=2, metavar=("ENGINE", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_once(*args.one)))
        return

    from core.sample_data import build_demo
    from core.store import Store

    work = Path(tempfile.mkdtemp(prefix="marketlab-bench-"))
    store = Store(work / "demo.duckdb")
    started = time.perf_counter()
    summary = build_demo(store, scale=args.scale)
    build_seconds = time.perf_counter() - started
    files = {"csv": work / "events.csv", "parquet": work / "events.parquet"}
    with store.cursor() as cur:
        cur.execute(f"COPY (SELECT * FROM events ORDER BY ts) TO '{files['csv']}' (HEADER)")
        cur.execute(f"COPY (SELECT * FROM events ORDER BY ts) TO '{files['parquet']}' (FORMAT parquet)")
    store.close()

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"demo store (scale {args.scale}): {summary.events:,} events, built in {build_seconds:.1f} s")
    print(f"CSV {files['csv'].stat().st_size / 2**20:.0f} MB, Parquet {files['parquet'].stat().st_size / 2**20:.0f} MB; "
          f"median of {args.repeat}, fresh process each\n")
    print(f"| file | MarketLab ingest (s) | DuckDB read into table (s) | ratio | MarketLab rows/s | peak RSS MarketLab / DuckDB (MB) |")
    print("|---|---|---|---|---|---|")
    for fmt, path in files.items():
        ours, floor = measure("marketlab", path, args.repeat), measure("duckdb", path, args.repeat)
        print(f"| {fmt} | {ours['seconds']:.2f} | {floor['seconds']:.2f} | {ours['seconds'] / floor['seconds']:.1f}× "
              f"| {summary.events / ours['seconds']:,.0f} | {ours['peak_mb']:.0f} / {floor['peak_mb']:.0f} |")


if __name__ == "__main__":
    main()
