"""Users who dropped at a funnel step, saved as a segment run: exact, usable by breakdowns, nothing written on refusal."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pandas as pd
import pytest

from core.errors import MarketLabError, QueryError
from core.exports import safe_csv_bytes
from core.funnels import FunnelSpec, breakdown_options, dropped_users, funnel, funnel_levels
from core.sample_data import build_demo
from core.segments import export_segment_csv, list_runs, load_run, run_labels, segment_user_ids
from core.segments.saved_lists import MAX_NAME_CHARS, save_dropped_as_segment, save_user_list_as_run
from core.store import Store

T0 = datetime(2026, 9, 1, 10, 0, 0)
DAY = 24 * 60
FUNNEL = ("view", "add_to_cart", "purchase")
DEMO_FUNNEL = ("view", "add_to_cart", "checkout", "purchase")
SEGMENT_TABLES = ("segment_runs", "segments", "user_segments")


def add_events(store: Store, rows: list[tuple[str, float, str]]) -> None:
    frame = pd.DataFrame([{"user_id": u, "ts": T0 + timedelta(minutes=m), "event_name": e} for u, m, e in rows])
    with store.transaction() as cur:
        cur.register("new_events", frame)
        cur.execute("INSERT INTO events (user_id, ts, event_name) SELECT user_id, ts, event_name FROM new_events")
        cur.unregister("new_events")


@pytest.fixture
def shop(tmp_store: Store) -> Store:
    """view -> add_to_cart -> purchase within 7 days, with known levels (as in test_funnels.py)."""
    add_events(tmp_store, [
        ("A", 0, "view"), ("A", 60, "add_to_cart"), ("A", 120, "purchase"),  # the whole funnel: level 3
        ("B", 0, "view"), ("B", 30, "purchase"),  # never a cart: level 1
        ("C", 0, "add_to_cart"), ("C", 5, "purchase"),  # no view: not in the funnel
        ("D", 0, "view"), ("D", 8 * DAY, "add_to_cart"),  # cart outside the window: level 1
        ("E", 10, "add_to_cart"), ("E", 10, "view"),  # same instant counts as in order: level 2
        ("F", 0, "view"), ("F", 7 * DAY, "add_to_cart"), ("F", 7 * DAY + 1, "purchase"),  # purchase too late: level 2
    ])
    return tmp_store


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Store:
    store = Store(tmp_path_factory.mktemp("dropoff") / "demo.duckdb")
    build_demo(store, seed=7, scale=0.02)
    yield store
    store.close()


def counts(store: Store) -> dict[str, int]:
    return {t: store.count(t) for t in SEGMENT_TABLES}


def test_known_answers_on_a_hand_made_log(shop: Store) -> None:
    spec = FunnelSpec.of(*FUNNEL, window="7d")
    run_id = save_dropped_as_segment(shop, spec, 2)
    assert segment_user_ids(shop, run_id, "dropped") == ["E", "F"]
    assert segment_user_ids(shop, run_id, "continued") == ["A"]
    run = load_run(shop, run_id)
    assert run.method == "funnel_dropoff" and run.k == 2 and run.users == 3
    assert {s.segment_id: s.name for s in run.segments} == {
        "dropped": "Dropped after step 2: add_to_cart", "continued": "Continued past step 2: add_to_cart"}
    # The audit trail: which funnel, which step, counted how.
    source = run.params["source"]
    assert source["step"] == 2 and source["spec"]["window"] == "7d"
    assert [s["event_name"] for s in source["spec"]["steps"]] == list(FUNNEL)
    assert run.segment("dropped").persona.startswith("Reached add_to_cart (step 2) but did not go on to purchase within 7d.")

    by_run = funnel(shop, FunnelSpec.of(*FUNNEL, window="7d", breakdown=f"segment:{run_id}")).breakdown
    table = by_run.pivot(index="group", columns="step", values="users")
    assert table.loc["Dropped after step 2: add_to_cart"].tolist() == [2, 2, 0]  # E, F
    assert table.loc["Continued past step 2: add_to_cart"].tolist() == [1, 1, 1]  # A
    assert table.loc["(none)"].tolist() == [2, 0, 0]  # B, D never reached step 2


def test_the_dropped_segment_is_exactly_dropped_users_on_the_demo_store(demo: Store) -> None:
    spec = FunnelSpec.of(*DEMO_FUNNEL, window="7d")
    levels = funnel_levels(demo, spec)
    for step in (1, 2, 3):
        run_id = save_dropped_as_segment(demo, spec, step)
        expected = sorted(dropped_users(demo, spec, step)["user_id"])
        assert expected, f"the demo store has drop-off at step {step}"
        assert segment_user_ids(demo, run_id, "dropped") == expected
        assert segment_user_ids(demo, run_id, "continued") == sorted(levels.loc[levels.deepest_step > step, "user_id"])
        labels = run_labels(demo, run_id)
        assert not labels.index.duplicated().any()
        summary = next(r for r in list_runs(demo) if r.run_id == run_id)
        assert (summary.method, summary.k, summary.users, summary.silhouette) == ("funnel_dropoff", 2, len(labels), None)


def test_a_breakdown_by_the_saved_run_adds_up_to_the_funnel(demo: Store) -> None:
    spec = FunnelSpec.of(*DEMO_FUNNEL, window="7d")
    run_id = save_dropped_as_segment(demo, spec, 2, name="Cart abandoners")
    assert f"segment:{run_id}" in {o.key for o in breakdown_options(demo)}
    assert any(o.label.startswith("“Cart abandoners” · ") for o in breakdown_options(demo))
    plain = funnel(demo, spec)
    result = funnel(demo, FunnelSpec.of(*DEMO_FUNNEL, window="7d", breakdown=f"segment:{run_id}"))
    table = result.breakdown.pivot(index="group", columns="step", values="users")
    assert table.sum().tolist() == [s.users for s in plain.steps]
    dropped = plain.steps[1].dropped
    assert table.loc["Cart abandoners"].tolist() == [dropped, dropped, 0, 0]
    assert table.loc["Continued past step 2: add_to_cart", 3] == plain.steps[2].users
    assert table.loc["(none)", 2] == 0  # everyone who reached step 2 is in one of the two segments


def test_the_run_reads_like_any_other_run(demo: Store) -> None:
    spec = FunnelSpec.of(*DEMO_FUNNEL, window="7d")
    run_id = save_dropped_as_segment(demo, spec, 1)
    run = load_run(demo, run_id, with_labels=True)
    assert run.base is not None and run.map is None and run.features == []
    dropped = run.segment("dropped")
    assert dropped.profile.size == len(segment_user_ids(demo, run_id, "dropped"))
    assert dropped.profile.conversion_rate < run.segment("continued").profile.conversion_rate
    assert dropped.persona_detail is not None and dropped.persona_detail.name == dropped.name
    summary = run.summary()
    json.dumps(summary)  # what the CLI prints
    assert [s["segment_id"] for s in summary["segments"]] == [s.segment_id for s in run.segments]
    csv = export_segment_csv(demo, run_id, "dropped").decode("utf-8-sig").splitlines()
    assert csv[0] == "user_id" and len(csv) == dropped.size + 1


def test_an_empty_list_is_refused_and_nothing_is_written(shop: Store) -> None:
    before = counts(shop)
    for empty in ([], [None, "", "   ", float("nan")], pd.Series([], dtype=object)):
        with pytest.raises(MarketLabError, match="no user ids"):
            save_user_list_as_run(shop, empty, name="Nobody")
    with pytest.raises(MarketLabError, match="last step"):
        save_dropped_as_segment(shop, FunnelSpec.of(*FUNNEL, window="7d"), 3)
    with pytest.raises(MarketLabError, match="nothing to save"):  # nobody drops between view and view
        save_dropped_as_segment(shop, FunnelSpec.of("view", "view", window="7d"), 1)
    with pytest.raises(QueryError):
        save_dropped_as_segment(shop, FunnelSpec.of(*FUNNEL, window="7d"), 0)
    assert counts(shop) == before == {t: 0 for t in SEGMENT_TABLES}


def test_unknown_user_ids_are_refused_and_nothing_is_written(shop: Store) -> None:
    with pytest.raises(MarketLabError, match="'ghost'") as e:
        save_user_list_as_run(shop, ["A", "ghost", "B"], name="Typo")
    assert "1 of 3" in e.value.msg
    with pytest.raises(MarketLabError, match="and 2 more"):
        save_user_list_as_run(shop, ["A"], name="Fine", others=[f"x{i}" for i in range(7)])
    assert counts(shop) == {t: 0 for t in SEGMENT_TABLES}


def test_hostile_names_are_stored_as_text(shop: Store) -> None:
    name = "x'); DROP TABLE segments; -- <script>alert(1)</script> =HYPERLINK(\"http://evil\") **bold** ?"
    run_id = save_dropped_as_segment(shop, FunnelSpec.of(*FUNNEL, window="7d"), 1, name=name)
    assert shop.count("segments") == 2  # the table is still there, with both rows
    run = load_run(shop, run_id)
    assert run.segment("dropped").name == name and run.params["name"] == name
    by_run = funnel(shop, FunnelSpec.of(*FUNNEL, window="7d", breakdown=f"segment:{run_id}")).breakdown
    assert name in set(by_run["group"])
    csv = safe_csv_bytes(pd.DataFrame({"segment": [name]})).decode("utf-8-sig")
    assert "=HYPERLINK" in csv  # inside the text, not at a cell's start: nothing for a spreadsheet to run
    with pytest.raises(MarketLabError, match="keep it to"):
        save_user_list_as_run(shop, ["A"], name="n" * (MAX_NAME_CHARS + 1))
    # Newlines and runs of spaces collapse; a name equal to the other segment's gets told apart.
    run_id = save_user_list_as_run(shop, ["A"], name="  Two\nlines  ", others=["B"], others_name="two LINES")
    assert {s.segment_id: s.name for s in load_run(shop, run_id).segments} == {"list": "Two lines", "others": "two LINES (others)"}


def test_a_plain_list_with_users_who_have_no_events(shop: Store) -> None:
    with shop.transaction() as cur:
        cur.execute("INSERT INTO users (user_id, country) VALUES (?, ?), (?, ?)", ["newsletter-only", "DE", "A", "US"])
    run_id = save_user_list_as_run(shop, ["A", "newsletter-only", "A"], name="VIPs", description="Hand-picked.",
                                   source={"kind": "upload", "file": "vips.csv"})
    run = load_run(shop, run_id)
    assert run.method == "list" and run.k == 1 and run.users == 2
    assert run.segment("list").size == 2  # the user without events counts too
    assert run.segment("list").persona.startswith("Hand-picked.")
    assert run.params["source"] == {"kind": "upload", "file": "vips.csv"}


def test_a_store_without_events_gets_size_only_cards(tmp_store: Store) -> None:
    with tmp_store.transaction() as cur:
        cur.execute("INSERT INTO users (user_id) VALUES ('u1'), ('u2'), ('u3')")
    run_id = save_user_list_as_run(tmp_store, ["u1", "u2"], name="Imported", others=["u3"])
    run = load_run(tmp_store, run_id)
    assert run.base is None and run.sizes == {"list": 2, "others": 1}
    assert run.summary()["segments"][0]["size"] == 2
