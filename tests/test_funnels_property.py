"""The SQL funnel against the plain-Python reference on hundreds of small random event logs.

Each case is a random log (equal timestamps, exact duplicates, rows in random order, repeated
steps, events exactly at the window edge, users with only later steps) and a random spec. All
cases live in one store, each under its own event names, so the funnel index is built once.
Where chdb is installed (the benchmark's peer), default-mode cases are also checked against
ClickHouse's windowFunnel itself.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from core.funnels import Condition, FunnelSpec, Step, funnel, funnel_levels, reference_funnel
from core.store import Store

CASES = 300
BASE = datetime(2026, 9, 1, 12, 0, 0)
DEVICES = ("mobile", "desktop", None)


@dataclass
class Case:
    name: str
    events: pd.DataFrame
    spec: FunnelSpec


def _random_case(rng: random.Random, i: int) -> Case:
    prefix = f"c{i}:"
    letters = ["a", "b", "c", "d"]
    rows = []
    for u in range(rng.randint(1, 6)):
        user = f"{prefix}u{u}"
        n = rng.randint(0, 9)
        for _ in range(n):
            minute = rng.randint(0, 40)  # few distinct minutes: many ties and window edges
            rows.append({
                "user_id": user,
                "ts": BASE + timedelta(minutes=minute, seconds=rng.choice((0, 0, 0, 30))),
                "event_name": prefix + rng.choice(letters + ["x"]),
                "device": rng.choice(DEVICES),
                "revenue": rng.choice((None, 0.0, 5.0)),
            })
        if rows and rng.random() < 0.3:
            rows.append(dict(rng.choice(rows)))  # an exact duplicate
    rng.shuffle(rows)  # out of order, as loaded
    n_steps = rng.randint(1, 4)
    steps = []
    for _ in range(n_steps):
        name = prefix + rng.choice(letters[:3] if rng.random() < 0.8 else letters)
        filters = (Condition("revenue", ">", 0),) if rng.random() < 0.15 else ()
        steps.append(Step(name, filters))
    window = timedelta(minutes=rng.choice((1, 5, 10, 10, 20, 30, 60)))
    start = end = None
    if rng.random() < 0.2:
        start = BASE + timedelta(minutes=rng.randint(0, 15))
        end = start + timedelta(minutes=rng.randint(5, 30))
    spec = FunnelSpec(
        steps=tuple(steps), window=window, mode=rng.choice(("ordered", "ordered", "strict")),
        first_touch_only=rng.random() < 0.25, start=start, end=end,
        event_filters=(Condition("device", "is not null"),) if rng.random() < 0.1 else (),
        breakdown="device" if rng.random() < 0.4 else None,
    )
    frame = pd.DataFrame(rows, columns=["user_id", "ts", "event_name", "device", "revenue"])
    return Case(prefix, frame, spec)


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, list[Case]]:
    rng = random.Random(20261124)
    cases = [_random_case(rng, i) for i in range(CASES)]
    store = Store(tmp_path_factory.mktemp("prop") / "prop.duckdb")
    everything = pd.concat([c.events for c in cases if len(c.events)], ignore_index=True)
    with store.transaction() as cur:
        cur.register("random_log", everything)
        cur.execute("INSERT INTO events (user_id, ts, event_name, device, revenue) SELECT user_id, ts, event_name, device, revenue FROM random_log")
        cur.unregister("random_log")
    yield store, cases
    store.close()


def _expected_reached(ref: dict, n: int) -> list[int]:
    return [sum(1 for r in ref.values() if r["level"] >= k) for k in range(1, n + 1)]


def test_sql_matches_the_reference_on_random_logs(cases: tuple[Store, list[Case]]) -> None:
    store, all_cases = cases
    checked = {"strict": 0, "first_touch": 0, "deeper_than_1": 0, "empty": 0}
    for case in all_cases:
        spec = case.spec
        names = {s.event_name for s in spec.steps}
        present = set(case.events["event_name"])
        if not names <= present:
            continue  # an unknown step name is refused, tested elsewhere
        ref = reference_funnel(case.events, spec)
        levels = funnel_levels(store, spec)
        levels = levels[levels["user_id"].str.startswith(case.name)]
        got = {r.user_id: int(r.deepest_step) for r in levels.itertuples()}
        want = {u: r["level"] for u, r in ref.items()}
        assert got == want, (case.name, spec, case.events.sort_values("ts").to_string())
        firsts = {r.user_id: r.first_step_at for r in levels.itertuples()}
        assert firsts == {u: r["first"] for u, r in ref.items()}, case.name

        result = funnel(store, spec)
        n = len(spec.steps)
        # Other cases' users never have this case's event names, so the counts are the case's own.
        assert [s.users for s in result.steps] == _expected_reached(ref, n), (case.name, spec)
        for k in range(1, n):
            gaps = np.array([r["gaps"][k] for r in ref.values() if k in r["gaps"]], dtype=float)
            timing = result.timings[k - 1]
            assert timing.users == len(gaps), (case.name, k)
            if len(gaps):
                assert timing.median_s == pytest.approx(float(np.quantile(gaps, 0.5)))
                assert timing.p90_s == pytest.approx(float(np.quantile(gaps, 0.9)))
            assert sum(b[3] for b in timing.histogram) == len(gaps)
        if result.total_timing is not None:
            totals = [r["total"] for r in ref.values() if r["total"] is not None]
            assert result.total_timing.users == len(totals)
            if totals:
                assert result.total_timing.median_s == pytest.approx(float(np.quantile(totals, 0.5)))
        if spec.breakdown:
            frame = result.breakdown
            for group in set(frame["group"]):
                label_of = lambda g: "(none)" if g is None else g  # noqa: E731
                members = {u: r for u, r in ref.items() if label_of(r["group"]) == group}
                got_counts = frame[frame["group"] == group].sort_values("step")["users"].tolist()
                assert got_counts == _expected_reached(members, n), (case.name, group)
        checked["strict"] += spec.mode == "strict"
        checked["first_touch"] += spec.first_touch_only
        checked["deeper_than_1"] += any(r["level"] > 1 for r in ref.values())
        checked["empty"] += not ref
    # The generator really exercised what it claims to.
    assert all(v >= 10 for v in checked.values()), checked


def test_ordered_mode_matches_clickhouse_windowfunnel(cases: tuple[Store, list[Case]]) -> None:
    """ClickHouse's own windowFunnel (via chdb, the benchmark's peer) on the same logs."""
    chdb = pytest.importorskip("chdb")
    store, all_cases = cases
    compared = 0
    for case in all_cases:
        spec = case.spec
        if spec.mode != "ordered" or spec.first_touch_only or spec.start or spec.event_filters or len(case.events) == 0:
            continue
        if any(s.filters for s in spec.steps) or not {s.event_name for s in spec.steps} <= set(case.events["event_name"]):
            continue
        values = ", ".join(
            f"('{r.user_id}', toDateTime('{r.ts:%Y-%m-%d %H:%M:%S}', 'UTC'), '{r.event_name}')" for r in case.events.itertuples()
        )
        conds = ", ".join(f"event_name = '{s.event_name}'" for s in spec.steps)
        sql = (f"SELECT u, windowFunnel({int(spec.window.total_seconds())})(ts, {conds}) AS lvl FROM "
               f"(SELECT * FROM values('u String, ts DateTime(\\'UTC\\'), event_name String', {values})) GROUP BY u")
        out = chdb.query(sql, "CSV").data()
        theirs = {}
        for line in out.strip().splitlines():
            user, lvl = line.rsplit(",", 1)
            if int(lvl) > 0:
                theirs[user.strip('"')] = int(lvl)
        levels = funnel_levels(store, spec)
        ours = {r.user_id: int(r.deepest_step) for r in levels.itertuples() if r.user_id.startswith(case.name)}
        assert ours == theirs, (case.name, spec)
        compared += 1
    assert compared >= 50
