"""Scaling, k-means with k chosen by silhouette, and a 2-D map.

Scaling: heavy-tailed columns (counts, money, per-session rates) go through log1p; every
column is then centred on its median and divided by its IQR/1.349 (the standard deviation a
normal distribution with that IQR would have; the plain standard deviation where the IQR is
zero, as for mostly-zero columns), and clipped to ±clip so a handful of extreme users cannot
pull a centroid. Missing values (a ratio with nothing to divide by) take the median.

Choosing k: k-means is fitted for each k in the range on a sample, and the silhouette of each
fit is measured on a sub-sample; the best silhouette wins unless k is fixed. The final model
is fitted on every user (``MiniBatchKMeans`` started from the sample's centres when the base
is large), and its own silhouette is measured again on a sample and reported as it is.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.errors import InvalidRequestError, NoDataError, NotFoundError, UnavailableError
from core.segments.features import feature_help

__all__ = ["Prepared", "Clustering", "prepare", "cluster", "project_2d", "DEFAULT_K_RANGE"]

DEFAULT_K_RANGE = range(3, 9)  # fewer than 3 says little; more than 8 is more than a team can act on
_SELECT_SAMPLE = 20_000  # users k-means sees while choosing k
_SILHOUETTE_SAMPLE = 4_000  # silhouette is O(n²): measured on a sample
_MINIBATCH_ABOVE = 50_000  # full k-means below, MiniBatchKMeans above


@dataclass
class Prepared:
    """The matrix clustering sees, and how it was made (kept so a run can be explained)."""

    X: np.ndarray  # float32, users x columns
    columns: list[str]
    log_columns: list[str]
    center: np.ndarray
    scale: np.ndarray
    clip: float
    text_columns: list[str] = field(default_factory=list)
    text_weight: float = 0.0
    dropped: list[str] = field(default_factory=list)  # asked for, but the same (or empty) for every user

    def describe(self) -> dict[str, object]:
        return {
            "columns": self.columns, "dropped": self.dropped, "log1p": self.log_columns, "clip": self.clip,
            "scaling": "median / (IQR / 1.349), std where IQR is 0",
            "text_columns": self.text_columns, "text_weight": self.text_weight,
        }


def prepare(
    features: pd.DataFrame,
    columns: Sequence[str],
    *,
    clip: float = 5.0,
    text: pd.DataFrame | None = None,
    text_weight: float = 1.0,
) -> Prepared:
    """Scale ``columns`` of ``features`` for k-means; optionally append a weighted text block.

    The text block (one row per user, zeros for users without text) is scaled so that its
    total variance equals ``text_weight`` behaviour columns: at 1.0, everything a user wrote
    counts as much as, say, their views per session.
    """
    missing = [c for c in columns if c not in features.columns]
    if missing:
        raise NotFoundError(f"Unknown feature(s): {', '.join(missing)}. Available: {', '.join(features.columns)}.",
                             title="These features do not exist")
    if not len(features):
        raise NoDataError("There are no users with events to segment.", title="Nothing to segment")
    # A feature that is empty or the same for every user (sessions in a purchase-only log) separates
    # nobody; kept, it only adds noise to the distances and to the persona lines. Dropped, and said.
    values = features[list(columns)]
    dropped = [c for c in columns if values[c].nunique(dropna=True) <= 1]
    columns = [c for c in columns if c not in dropped]
    raw = features[columns].to_numpy(dtype=np.float64, copy=True)
    log_cols = [c for c in columns if _heavy(c)]
    for j, c in enumerate(columns):
        if c in log_cols:
            raw[:, j] = np.log1p(np.maximum(raw[:, j], 0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-empty column: its centre is 0 below
        center = np.nanmedian(raw, axis=0)
    center = np.where(np.isnan(center), 0.0, center)
    nan = np.isnan(raw)
    if nan.any():
        raw[nan] = np.take(center, np.nonzero(nan)[1])
    q25, q75 = np.percentile(raw, [25, 75], axis=0)
    iqr = (q75 - q25) / 1.349
    std = raw.std(axis=0)
    scale = np.where(iqr > 1e-12, iqr, np.where(std > 1e-12, std, 1.0))
    X = np.clip((raw - center) / scale, -clip, clip)
    text_cols: list[str] = []
    if text is not None and text.shape[1] and text_weight > 0:
        T = text.reindex(features.index).fillna(0.0).to_numpy(dtype=np.float64)
        has = np.abs(T).sum(axis=1) > 0
        total_var = float(T[has].var(axis=0).sum()) if has.sum() > 1 else 0.0
        if total_var > 0:
            T = T * np.sqrt(text_weight / total_var)
            X = np.hstack([X, T])
            text_cols = list(text.columns)
    if not X.shape[1]:  # review text alone can still separate users whose behaviour is all alike
        raise NoDataError(f"Every chosen feature is the same for all users ({', '.join(dropped)}): there is nothing to "
                             "separate them by. Choose other features, add review text, or import events with more detail.",
                             title="Nothing to segment by")
    return Prepared(X.astype(np.float32), list(columns), log_cols, center, scale, clip, text_cols, text_weight if text_cols else 0.0,
                    dropped)


def _heavy(column: str) -> bool:
    try:
        return feature_help(column).heavy_tail
    except KeyError:
        return False


@dataclass
class Clustering:
    labels: np.ndarray  # 0..k-1, ordered by size: 0 is the largest cluster
    k: int
    centers: np.ndarray  # in the scaled space
    silhouette: float  # of the final model, on a sample of `silhouette_sample` users
    silhouette_by_k: dict[int, float]  # while choosing k (empty when k was fixed)
    sizes: list[int]
    method: str  # kmeans | minibatch-kmeans
    k_chosen_by: str  # silhouette | fixed
    silhouette_sample: int
    inertia: float

    def quality(self) -> dict[str, object]:
        return {
            "silhouette": round(self.silhouette, 4),
            "silhouette_by_k": {str(k): round(v, 4) for k, v in self.silhouette_by_k.items()},
            "k_chosen_by": self.k_chosen_by, "sizes": self.sizes, "method": self.method,
            "silhouette_sample": self.silhouette_sample, "inertia": round(self.inertia, 2),
        }


def _sample(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    return np.arange(n) if n <= size else np.sort(rng.choice(n, size=size, replace=False))


def _silhouette(X: np.ndarray, labels: np.ndarray, rng: np.random.Generator, size: int) -> float:
    from sklearn.metrics import silhouette_score

    idx = _sample(rng, len(X), size)
    if len(np.unique(labels[idx])) < 2:
        return float("nan")
    return float(silhouette_score(X[idx], labels[idx]))


def cluster(
    X: np.ndarray,
    k: int | str = "auto",
    *,
    k_range: Sequence[int] = DEFAULT_K_RANGE,
    seed: int = 0,
    select_sample: int = _SELECT_SAMPLE,
    silhouette_sample: int = _SILHOUETTE_SAMPLE,
    minibatch_above: int = _MINIBATCH_ABOVE,
    threads: int = 1,
) -> Clustering:
    """k-means on the prepared matrix; ``k='auto'`` picks the best silhouette over ``k_range``.

    ``threads`` caps the OpenMP/BLAS threads scikit-learn uses, one by default: measured on
    the 2-core box beside another busy process, 120k users took 2.8 s on one thread and 19 s
    on two (the pools spin and contend); 1,500 users 0.2 s against 5-15 s.
    """
    import sklearn.cluster  # noqa: F401  loaded before the limit, so the limit reaches its thread pools
    import sklearn.metrics  # noqa: F401
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads or 1):
        return _cluster(X, k, k_range=k_range, seed=seed, select_sample=select_sample,
                        silhouette_sample=silhouette_sample, minibatch_above=minibatch_above)


def _cluster(X: np.ndarray, k: int | str, *, k_range: Sequence[int], seed: int, select_sample: int,
             silhouette_sample: int, minibatch_above: int) -> Clustering:
    from sklearn.cluster import KMeans, MiniBatchKMeans

    n = len(X)
    rng = np.random.default_rng(seed)
    if k == "auto":
        candidates = [int(c) for c in k_range if 2 <= int(c) < n]
        if not candidates:
            raise NoDataError(f"{n} users are too few to choose among {list(k_range)} segments.", title="Too few users")
    else:
        try:
            k = int(k)
        except (TypeError, ValueError):
            raise InvalidRequestError(f"k must be 'auto' or a whole number, got {k!r}.", title="Invalid number of segments") from None
        if not 2 <= k <= min(n - 1, 50):
            raise InvalidRequestError(f"k must be between 2 and {min(n - 1, 50)} for {n} users, got {k}.", title="Invalid number of segments")
        candidates = [k]

    pick = _sample(rng, n, select_sample)
    Xs = X[pick]
    by_k: dict[int, float] = {}
    fits: dict[int, np.ndarray] = {}
    for c in candidates:
        km = KMeans(n_clusters=c, n_init=4 if len(Xs) > 5_000 else 10, random_state=seed).fit(Xs)
        fits[c] = km.cluster_centers_
        if len(candidates) > 1:
            by_k[c] = _silhouette(Xs, km.labels_, np.random.default_rng(seed + c), silhouette_sample)
    if k == "auto":
        best = max(candidates, key=lambda c: (np.nan_to_num(by_k[c], nan=-1.0), -c))
    else:
        best = candidates[0]

    if n <= minibatch_above:
        final = KMeans(n_clusters=best, init=fits[best], n_init=1, random_state=seed).fit(X)
        method = "kmeans"
    else:
        final = MiniBatchKMeans(n_clusters=best, init=fits[best], n_init=1, batch_size=8192, max_iter=50,
                                random_state=seed).fit(X)
        method = "minibatch-kmeans"
    labels = final.predict(X) if method == "minibatch-kmeans" else final.labels_
    # Stable, readable order: segment 0 is the largest.
    sizes = np.bincount(labels, minlength=best)
    order = np.argsort(-sizes, kind="stable")
    remap = np.empty(best, dtype=np.int64)
    remap[order] = np.arange(best)
    labels = remap[labels]
    centers = final.cluster_centers_[order]
    sil = _silhouette(X, labels, np.random.default_rng(seed + 1000), silhouette_sample)
    return Clustering(
        labels=labels.astype(np.int32), k=best, centers=centers, silhouette=sil, silhouette_by_k=by_k,
        sizes=[int(s) for s in sizes[order]], method=method, k_chosen_by="silhouette" if k == "auto" else "fixed",
        silhouette_sample=int(min(n, silhouette_sample)), inertia=float(final.inertia_),
    )


def project_2d(
    X: np.ndarray,
    labels: np.ndarray,
    user_ids: Sequence[str],
    *,
    sample: int = 5_000,
    min_per_segment: int = 50,
    seed: int = 0,
    method: str = "auto",
) -> tuple[pd.DataFrame, str]:
    """A 2-D map of a sample of users: (frame of user_id, x, y, segment; the method used).

    The sample is proportional to segment size but keeps at least ``min_per_segment`` users of
    every segment, so small segments stay visible. PCA by default; UMAP when ``method`` is
    'umap' or 'auto' and umap-learn is installed.
    """
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(seed)
    n = len(X)
    if n <= sample:
        idx = np.arange(n)
    else:
        parts = []
        for seg in np.unique(labels):
            members = np.flatnonzero(labels == seg)
            take = min(len(members), max(min_per_segment, int(round(sample * len(members) / n))))
            parts.append(rng.choice(members, size=take, replace=False))
        idx = np.sort(np.concatenate(parts))
    Xs = X[idx]
    used = "pca"
    if method in ("auto", "umap"):
        try:
            import umap  # type: ignore[import-not-found]

            xy = umap.UMAP(n_components=2, random_state=seed).fit_transform(Xs)
            used = "umap"
        except ImportError:
            if method == "umap":
                raise UnavailableError("umap-learn is not installed; use PCA or install umap-learn.", title="UMAP is unavailable") from None
    if used == "pca":
        xy = PCA(n_components=2, random_state=seed).fit_transform(Xs) if Xs.shape[1] >= 2 else np.column_stack([Xs[:, 0], np.zeros(len(Xs))])
    frame = pd.DataFrame({
        "user_id": np.asarray(user_ids, dtype=object)[idx],
        "x": np.round(xy[:, 0].astype(float), 4),
        "y": np.round(xy[:, 1].astype(float), 4),
        "segment": labels[idx],
    })
    return frame, used
