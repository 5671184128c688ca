"""Funnel speed: MarketLab (DuckDB, funnel index) against ClickHouse windowFunnel (chdb) in the same run.

A seeded, messy event log (ties, exact duplicates, late rows, users with only later steps,
funnels that cross sessions and days) of 1M / 10M / 50M events is loaded into a MarketLab
store and into a chdb MergeTree table ORDER BY (user_id, ts) after OPTIMIZE FINAL (ClickHouse's
best storage for this query). A 4-step 7-day funnel (view -> add_to_cart -> checkout -> purchase)
is then timed three ways: plain, broken down by device, and by day of the first step. Counts
must be identical. Each timing is one warm run in a fresh process (clean peak RSS), the two
engines' processes alternating; the median of --repeat rounds is reported.

MarketLab's time is one ``funnel()`` call from the store, index freshness check included; it
returns steps, breakdown, daily trend and time-to-convert together, so each of its figures
covers more than the chdb query it is set against. Building the funnel index (once per change
of the events table) is reported beside chdb's load + OPTIMIZE FINAL.

    .venv/bin/python bench/funnels.py --sizes 1e6            # quick
    .venv/bin/python bench/funnels.py --sizes 1e6,1e7,5e7    # the RESULTS.md table

chdb is a bench-only dependency: pip install chdb
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STEPS = ("view", "add_to_cart", "checkout", "purchase")
WINDOW_S = 7 * 86400
START = np.datetime64("2026-08-03T00:00:00", "s")
DAY = 86400
QUERIES = ("plain", "breakdown", "by_day")


# ---------------------------------------------------------------------------------------
# The log
# ---------------------------------------------------------------------------------------

def generate(n_events: int, seed: int = 7):
    """Exactly n_events rows as a pyarrow table with MarketLab's event columns."""
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    n_users = max(n_events // 30, 10)
    n_sess = int(n_events / 4.3) + 50  # ~5 rows a session: some headroom, trimmed to n_events below
    s_user = np.minimum(rng.zipf(1.6, n_sess) - 1, n_users - 1)  # a few heavy users, a long tail
    s_user = (s_user * 7919 + rng.integers(0, n_users, n_sess)) % n_users
    s_start = rng.integers(0, 90 * DAY, n_sess)
    s_dev = rng.choice(3, n_sess, p=[0.6, 0.32, 0.08])
    s_camp = np.where(rng.random(n_sess) < 0.25, rng.integers(0, 4, n_sess), -1)
    n_views = np.minimum(rng.geometric(1 / 4.6, n_sess), 60)

    v_sess = np.repeat(np.arange(n_sess), n_views)
    first = np.cumsum(n_views) - n_views
    pos = np.arange(len(v_sess)) - first[v_sess]
    gap = rng.exponential(70, len(v_sess)).astype(np.int64)
    gap[pos == 0] = 0
    gap[rng.random(len(gap)) < 0.03] = 0  # same-second views: ties
    cum = np.cumsum(gap)
    v_off = cum - cum[first][v_sess]
    end = v_off[first + n_views - 1]

    # Carts in the session, or days later (some beyond the 7-day window); some at the very second of a view.
    cart = rng.random(n_sess) < 0.06
    later = rng.random(n_sess) < 0.25
    cart_off = np.where(later, end + rng.exponential(4 * DAY, n_sess), end + rng.exponential(40, n_sess)).astype(np.int64)
    cart_off = np.where(rng.random(n_sess) < 0.08, end, cart_off)
    chk = cart & (rng.random(n_sess) < 0.45)
    chk_off = cart_off + np.where(rng.random(n_sess) < 0.1, 0, rng.exponential(300, n_sess)).astype(np.int64)
    pur = chk & (rng.random(n_sess) < 0.7)
    pur_off = chk_off + np.where(rng.random(n_sess) < 0.15, 0, rng.exponential(2 * DAY, n_sess)).astype(np.int64)
    orphan = rng.random(n_sess) < 0.004  # purchases with no view before them: users with only later steps
    other = rng.random(len(v_sess)) < 0.02  # non-step events (search) between steps

    c, k, p, o = (np.flatnonzero(m) for m in (cart, chk, pur, orphan))
    ov = np.flatnonzero(other)
    sess = np.concatenate([v_sess, c, k, p, o, v_sess[ov]])
    kind = np.concatenate([np.zeros(len(v_sess), np.int8), np.full(len(c), 1, np.int8), np.full(len(k), 2, np.int8),
                           np.full(len(p), 3, np.int8), np.full(len(o), 3, np.int8), np.full(len(ov), 4, np.int8)])
    off = np.concatenate([v_off, cart_off[c], chk_off[k], pur_off[p], -rng.integers(60, 3600, len(o)), v_off[ov] + 3])
    ts = s_start[sess] + off
    dup = rng.choice(len(sess), len(sess) // 300, replace=False)  # double-firing trackers
    sess, kind, ts = (np.concatenate([a, a[dup]]) for a in (sess, kind, ts))
    if len(sess) < n_events:
        raise RuntimeError(f"generator made {len(sess)} rows, fewer than {n_events}")
    keep = np.sort(rng.choice(len(sess), n_events, replace=False))
    sess, kind, ts = sess[keep], kind[keep], ts[keep]
    # Storage order: by time, except 1 % late rows appended at the end, as a collector flushes them.
    order = np.argsort(ts, kind="stable")
    late = rng.random(n_events) < 0.01
    order = np.concatenate([order[~late], order[late]])
    sess, kind, ts = sess[order], kind[order], ts[order]

    revenue = np.where(kind == 3, np.round(rng.lognormal(3.5, 0.6, n_events), 2), np.nan)
    users = pa.array([f"U{i:08d}" for i in range(n_users)])
    camp = s_camp[sess]

    def dictionary(codes: np.ndarray, values: list[str], mask: np.ndarray | None = None):
        return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32), mask=mask), pa.array(values)).cast(pa.string())

    return pa.table({
        "user_id": pa.DictionaryArray.from_arrays(pa.array(s_user[sess].astype(np.int32)), users).cast(pa.string()),
        "ts": pa.array((START + ts.astype("timedelta64[s]")).astype("datetime64[us]")),
        "event_name": dictionary(kind, ["view", "add_to_cart", "checkout", "purchase", "search"]),
        "campaign": dictionary(np.maximum(camp, 0), ["search_brand", "search_generic", "meta_prospecting", "fall_email"], camp < 0),
        "device": dictionary(s_dev[sess], ["mobile", "desktop", "tablet"]),
        "revenue": pa.array(revenue, mask=np.isnan(revenue)),
    })


# ---------------------------------------------------------------------------------------
# One engine, one process
# ---------------------------------------------------------------------------------------

def _ml_counts(result, query: str) -> dict:
    if query == "plain":
        return {"1": [s.users for s in result.steps]}
    if query == "breakdown":
        frame = result.breakdown.sort_values(["group", "step"])
        return {g: part["users"].tolist() for g, part in frame.groupby("group")}
    frame = result.trend
    cols = ["started"] + [f"reached_{k}" for k in range(2, len(STEPS) + 1)]
    return {str(r.period.date()): [int(getattr(r, c)) for c in cols] for r in frame.itertuples()}


def run_marketlab(db: str, query: str, repeat: int) -> dict:
    from core.funnels import FunnelSpec, funnel
    from core.store import Store

    store = Store(db)
    spec = FunnelSpec.of(*STEPS, window="7d", breakdown="device" if query == "breakdown" else None)
    times, result = [], None
    for _ in range(repeat + 1):  # the first run warms the buffer pool and is not counted
        started = time.perf_counter()
        result = funnel(store, spec)
        times.append(time.perf_counter() - started)
    store.close()
    times = times[1:]
    return {"times": times, "counts": _ml_counts(result, query)}


def _chdb_sql(query: str) -> str:
    conds = ", ".join(f"event_name = '{s}'" for s in STEPS)
    names = ", ".join(f"'{s}'" for s in STEPS)
    level = f"windowFunnel({WINDOW_S})(ts, {conds}) AS level"
    where = f"WHERE event_name IN ({names})"
    if query == "plain":
        return f"SELECT '1' AS g, level, count() FROM (SELECT user_id, {level} FROM db.events {where} GROUP BY user_id) WHERE level > 0 GROUP BY g, level"
    if query == "breakdown":
        # Device on the user's first view. MarketLab breaks ties by the smallest non-empty value;
        # spelling that out in ClickHouse (argMinIf over a tuple) made chdb three times slower here,
        # so chdb gets its fastest form and the identical-counts check guards the difference.
        key = "argMinIf(device, ts, event_name = 'view') AS g"
    else:
        key = "toString(toDate(minIf(ts, event_name = 'view'))) AS g"
    return f"SELECT g, level, count() FROM (SELECT user_id, {key}, {level} FROM db.events {where} GROUP BY user_id) WHERE level > 0 GROUP BY g, level"


def run_chdb(path: str, query: str, repeat: int) -> dict:
    from chdb import session

    sess = session.Session(path)
    sql = _chdb_sql(query)
    times, out = [], ""
    for _ in range(repeat + 1):  # the first run warms the caches and is not counted
        started = time.perf_counter()
        out = sess.query(sql, "TabSeparated").data()
        times.append(time.perf_counter() - started)
    times = times[1:]
    at: dict[str, dict[int, int]] = {}
    for line in out.strip().splitlines():
        g, level, users = line.split("\t")
        at.setdefault(g, {})[int(level)] = int(users)
    counts = {g: [sum(v for lvl, v in levels.items() if lvl >= k) for k in range(1, len(STEPS) + 1)] for g, levels in at.items()}
    return {"times": times, "counts": counts}


def _peak_rss_mb() -> float:
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child would report the parent's peak.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one(engine: str, target: str, query: str, repeat: int) -> None:
    fn = run_marketlab if engine == "marketlab" else run_chdb
    out = fn(target, query, repeat)
    out["peak_mb"] = _peak_rss_mb()
    print(json.dumps(out))


def _measure_once(engine: str, target: Path, query: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--one", engine, str(target), query, "1"], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{engine} {query} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_pair(prep: dict, query: str, repeat: int) -> tuple[dict, dict]:
    """Both engines, alternating process by process, so a busy moment on the machine hits both."""
    runs: dict[str, list[dict]] = {"marketlab": [], "chdb": []}
    for _ in range(repeat):
        runs["marketlab"].append(_measure_once("marketlab", prep["db"], query))
        runs["chdb"].append(_measure_once("chdb", prep["chdb"], query))
    out = []
    for engine in ("marketlab", "chdb"):
        rs = runs[engine]
        out.append({"median": statistics.median(t for r in rs for t in r["times"]), "counts": rs[-1]["counts"],
                    "peak_mb": max(r["peak_mb"] for r in rs)})
    return out[0], out[1]


# ---------------------------------------------------------------------------------------
# Setup per size
# ---------------------------------------------------------------------------------------

def prepare(n: int, work: Path) -> dict:
    import pyarrow.parquet as pq

    from core.funnels import ensure_index
    from core.store import Store

    began = time.perf_counter()
    table = generate(n)
    parquet = work / f"events_{n}.parquet"
    pq.write_table(table, parquet)
    del table
    gen_s = time.perf_counter() - began

    db = work / f"marketlab_{n}.duckdb"
    store = Store(db)
    with store.transaction() as cur:
        cur.execute("INSERT INTO events (user_id, ts, event_name, campaign, device, revenue) "
                    "SELECT user_id, ts, event_name, campaign, device, revenue FROM read_parquet(?)", [str(parquet)])
    began = time.perf_counter()
    ensure_index(store)
    index_s = time.perf_counter() - began
    store.close()

    from chdb import session

    ch = work / f"chdb_{n}"
    sess = session.Session(str(ch))
    began = time.perf_counter()
    sess.query("CREATE DATABASE IF NOT EXISTS db")
    sess.query("CREATE TABLE db.events (user_id String, ts DateTime('UTC'), event_name LowCardinality(String), "
               "campaign LowCardinality(Nullable(String)), device LowCardinality(Nullable(String)), revenue Nullable(Float64)) "
               "ENGINE = MergeTree ORDER BY (user_id, ts)")
    sess.query(f"INSERT INTO db.events SELECT user_id, toDateTime(ts, 'UTC'), event_name, campaign, device, revenue "
               f"FROM file('{parquet}', Parquet)")
    sess.query("OPTIMIZE TABLE db.events FINAL")
    ch_load_s = time.perf_counter() - began
    sess.close()
    return {"db": db, "chdb": ch, "gen_s": gen_s, "index_s": index_s, "ch_load_s": ch_load_s, "parquet": parquet}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e6,1e7,5e7", help="comma-separated event counts, e.g. 1e6,1e7")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--queries", default=",".join(QUERIES))
    parser.add_argument("--work", help="scratch folder (default: a new temp folder, removed afterwards)")
    parser.add_argument("--one", nargs=4, metavar=("ENGINE", "TARGET", "QUERY", "REPEAT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        engine, target, query, repeat = args.one
        one(engine, target, query, int(repeat))
        return

    import chdb
    import duckdb

    sizes = [int(float(s)) for s in args.sizes.split(",")]
    queries = [q for q in args.queries.split(",") if q]
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="marketlab-funnel-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"DuckDB {duckdb.__version__}, chdb {chdb.__version__} (ClickHouse {chdb.engine_version if hasattr(chdb, 'engine_version') else '?'})")
    print(f"funnel: {' -> '.join(STEPS)}, window 7 days; median of {args.repeat} warm runs, engines alternating, each in a fresh process\n")
    setup_rows, rows = [], []
    try:
        for n in sizes:
            prep = prepare(n, work)
            setup_rows.append(f"| {n:,} | {prep['gen_s']:.1f} | {prep['index_s']:.2f} | {prep['ch_load_s']:.2f} |")
            for query in queries:
                ours, theirs = measure_pair(prep, query, args.repeat)
                same = ours["counts"] == theirs["counts"]
                if not same:
                    diff = {g: (ours["counts"].get(g), theirs["counts"].get(g)) for g in set(ours["counts"]) | set(theirs["counts"])
                            if ours["counts"].get(g) != theirs["counts"].get(g)}
                    raise AssertionError(f"counts differ at {n:,} events, {query}: {dict(list(diff.items())[:5])}")
                first = ours["counts"].get("1") or [sum(v[0] for v in ours["counts"].values())]
                rows.append(f"| {n:,} | {query} | {ours['median']:.3f} | {theirs['median']:.3f} | "
                            f"{theirs['median'] / ours['median']:.2f}× | {ours['peak_mb']:.0f} / {theirs['peak_mb']:.0f} | "
                            f"{'identical' if same else 'DIFFER'} ({first[0]:,} users at step 1) |")
                print(rows[-1], flush=True)
            for path in (prep["db"], prep["chdb"], prep["parquet"]):
                shutil.rmtree(path, ignore_errors=True) if Path(path).is_dir() else Path(path).unlink(missing_ok=True)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print("\n| events | generate + write Parquet (s) | MarketLab funnel index build (s) | chdb load + OPTIMIZE FINAL (s) |")
    print("|---|---|---|---|")
    print("\n".join(setup_rows))
    print("\n| events | query | MarketLab (s) | chdb windowFunnel (s) | chdb / MarketLab | peak RSS MarketLab / chdb (MB) | counts |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
