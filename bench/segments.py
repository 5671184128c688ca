"""Segmentation speed and memory: features to saved run for 100k and 1M users.

The user base is synthesised from the demo store: the demo is built once (50k users,
~1.65M events) and its users, events and reviews are copied under new ids inside DuckDB
(``U000001`` -> ``U000001~3``) until the target size is reached. Every user therefore
behaves like a demo shopper, the per-user work is real, and the planted group of every copy
is known, so the run's adjusted Rand index is reported beside its time.

Each measurement runs ``run_segmentation(store, k='auto')`` in a fresh process (clean peak
RSS): DuckDB features, scaling, k chosen by silhouette over 3..8 on a 20k sample, the final
k-means on everyone (MiniBatchKMeans above 50k), the 2-D map, profiles, template personas
and one transaction writing the run. The propensity model is timed separately with
``--propensity`` (three feature passes, two models).

    .venv/bin/python bench/segments.py [--users 100000 1000000] [--propensity]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BASE_USERS = 50_000  # the demo is built at this size and copied


def synthesise(path: Path, users: int) -> dict[str, int]:
    """A store at ``path`` with about ``users`` users: the demo, copied under new ids."""
    from core.sample_data import build_demo
    from core.store import Store

    store = Store(path)
    base = min(users, BASE_USERS)
    build_demo(store, seed=42, scale=base / 30_000)
    copies = max(1, round(users / base))
    with store.transaction() as cur:
        for table, cols, ids in (
            ("users", "first_seen, country, attributes", "user_id || '~' || k"),
            ("events", "ts, event_name, product_id, campaign, variant_id, device, source, revenue",
             "user_id || '~' || k, session_id || '~' || k"),
            ("reviews", "product_id, rating, title, text, ts", "review_id || '~' || k, user_id || '~' || k"),
        ):
            key = {"users": "user_id", "events": "user_id, session_id", "reviews": "review_id, user_id"}[table]
            cur.execute(
                f"INSERT INTO {table} ({key}, {cols}) SELECT {ids}, {cols} FROM {table}, range(1, ?) AS r(k)",
                [copies],
            )
        counts = {t: int(cur.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]) for t in ("users", "events", "reviews")}
    store.close()
    return counts


def measure_once(db: str, what: str) -> dict[str, object]:
    import resource

    from core.store import Store

    store = Store(db)
    started = time.perf_counter()
    cpu0 = time.process_time()
    if what == "segment":
        from core.segments import run_segmentation

        run = run_segmentation(store, k="auto")
        seconds = time.perf_counter() - started
        out: dict[str, object] = {"seconds": seconds, "cpu": time.process_time() - cpu0, "k": run.k, "silhouette": run.quality["silhouette"],
                                  "timings": run.quality["timings"], "method": run.quality["method"]}
        with store.cursor() as cur:
            frame = cur.execute(
                "SELECT s.segment_id, u.attributes->>'demo_group' AS g FROM user_segments s JOIN users u USING (user_id) "
                "WHERE s.run_id = ?", [run.run_id]).df()
        from sklearn.metrics import adjusted_rand_score

        out["ari"] = adjusted_rand_score(frame["g"], frame["segment_id"])
    else:
        from core.segments.propensity import score_propensity

        result = score_propensity(store, horizon_days=14)
        seconds = time.perf_counter() - started
        out = {"seconds": seconds, "cpu": time.process_time() - cpu0, "chosen": result.chosen,
               "roc_auc": {k: round(v.roc_auc, 3) for k, v in result.models.items()},
               "pr_auc": {k: round(v.pr_auc, 3) for k, v in result.models.items()}}
    out["cpu_seconds"] = out.pop("cpu", None) or 0.0
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    store.close()
    return out


def measure(db: Path, what: str) -> dict[str, object]:
    proc = subprocess.run([sys.executable, __file__, "--one", what, str(db)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--propensity", action="store_true", help="also time the propensity model")
    parser.add_argument("--one", nargs=2, metavar=("WHAT", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_once(args.one[1], args.one[0]), default=str))
        return

    import duckdb
    import sklearn

    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores; Python {platform.python_version()}, "
          f"DuckDB {duckdb.__version__}, scikit-learn {sklearn.__version__}\n")
    rows = []
    for users in args.users:
        work = Path(tempfile.mkdtemp(prefix="marketlab-seg-bench-"))
        db = work / "bench.duckdb"
        t = time.perf_counter()
        counts = synthesise(db, users)
        built = time.perf_counter() - t
        print(f"synthesised {counts['users']:,} users / {counts['events']:,} events in {built:.1f} s", file=sys.stderr)
        seg = measure(db, "segment")
        row = {"users": counts["users"], "events": counts["events"], **seg}
        if args.propensity:
            row["propensity"] = measure(db, "propensity")
        rows.append(row)
        print(json.dumps(row, default=str), file=sys.stderr)
        for f in work.iterdir():
            f.unlink()
        work.rmdir()

    print("| users | events | features (s) | clustering (s) | map (s) | profiles + personas (s) | save (s) | total (s) | CPU (s) | peak RSS (MB) | k | silhouette | ARI vs planted |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        t = r["timings"]
        print(f"| {r['users']:,} | {r['events']:,} | {t['features']:.1f} | {t['clustering']:.1f} | {t['map']:.1f} | "
              f"{t['profiles'] + t['personas']:.1f} | {t.get('save', 0):.1f} | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} | {r['peak_mb']:,.0f} | "
              f"{r['k']} | {r['silhouette']:.3f} | {r['ari']:.3f} |")
    if args.propensity:
        print("\n| users | propensity, 3 feature passes + 2 models (s) | CPU (s) | peak RSS (MB) | ROC AUC logistic / GB / recency | PR AUC logistic / GB / recency |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            p = r["propensity"]
            roc, pr = p["roc_auc"], p["pr_auc"]
            print(f"| {r['users']:,} | {p['seconds']:.1f} | {p['cpu_seconds']:.1f} | {p['peak_mb']:,.0f} | "
                  f"{roc['logistic']} / {roc['gradient_boosting']} / {roc['recency_baseline']} | "
                  f"{pr['logistic']} / {pr['gradient_boosting']} / {pr['recency_baseline']} |")


if __name__ == "__main__":
    main()
