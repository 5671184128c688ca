"""Who will buy in the next N days: trained on one window, judged on the next, applied to now.

Time split, so the evaluation is what a marketer would see in practice:

    train: features from events before  T1 = end − 2N days, label = ordered in [T1, T1 + N)
    test:  features from events before  T2 = end − N days,  label = ordered in [T2, end]
    score: the chosen model refitted on the test window, applied to features up to the end

Two models (logistic regression on log1p-scaled features; scikit-learn's
HistGradientBoostingClassifier) against a baseline that knows only the days since the last
visit. ROC AUC, PR AUC (average precision), Brier score and calibration-curve points are
measured on the test window; the model with the better PR AUC scores the users (PR AUC
because buyers are rare: ROC AUC flatters a model on imbalanced labels).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from core.errors import NoDataError
from core.segments.features import EventNames, compute_features, feature_help
from core.store import Store

__all__ = ["ModelScore", "PropensityResult", "score_propensity", "propensity_by_segment", "target_list"]

BASELINE = "recency_baseline"
_EXCLUDED = ("avg_rating",)  # mostly empty; the review count carries what it has


@dataclass
class ModelScore:
    name: str
    roc_auc: float
    pr_auc: float
    brier: float
    calibration: list[tuple[float, float, int]]  # (mean predicted, observed rate, users) per bin

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "roc_auc": round(self.roc_auc, 4), "pr_auc": round(self.pr_auc, 4),
                "brier": round(self.brier, 5), "calibration": [[round(a, 4), round(b, 4), c] for a, b, c in self.calibration]}


@dataclass
class PropensityResult:
    horizon_days: int
    train_cutoff: datetime
    test_cutoff: datetime
    end: datetime
    n_train: int
    n_test: int
    base_rate_train: float
    base_rate_test: float
    models: dict[str, ModelScore]
    chosen: str
    features: list[str]
    scores: pd.Series  # user_id -> P(order in the next horizon_days), every user active up to the end
    converted: pd.Series = field(default_factory=lambda: pd.Series(dtype=bool))  # user_id -> ordered at least once in the log

    def summary(self) -> dict[str, object]:
        return {
            "horizon_days": self.horizon_days, "train_cutoff": str(self.train_cutoff), "test_cutoff": str(self.test_cutoff),
            "end": str(self.end), "n_train": self.n_train, "n_test": self.n_test,
            "base_rate_train": round(self.base_rate_train, 5), "base_rate_test": round(self.base_rate_test, 5),
            "chosen": self.chosen, "models": {k: v.to_dict() for k, v in self.models.items()},
        }


def _buyers(store: Store, events: EventNames, start: datetime, stop: datetime, inclusive: bool) -> set[str]:
    op = "<=" if inclusive else "<"
    with store.cursor() as cur:
        rows = cur.execute(
            f"SELECT DISTINCT user_id FROM events WHERE event_name = $p AND ts >= $a AND ts {op} $b",
            {"p": events.purchase, "a": start, "b": stop},
        ).fetchall()
    return {r[0] for r in rows}


def _matrix(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    X = frame.reindex(columns=columns).to_numpy(dtype=np.float64, copy=True)
    for j, c in enumerate(columns):
        try:
            heavy = feature_help(c).heavy_tail
        except KeyError:
            heavy = False
        if heavy:
            X[:, j] = np.log1p(np.maximum(X[:, j], 0))
    return X


def _models(seed: int) -> dict[str, object]:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        "logistic": make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(),
                                  LogisticRegression(max_iter=2000, C=1.0)),
        "gradient_boosting": HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=15,
                                                            l2_regularization=1.0, random_state=seed),
    }


def _score(name: str, y: np.ndarray, p: np.ndarray, bins: int) -> ModelScore:
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    order = np.argsort(p, kind="stable")
    groups = np.array_split(order, bins)  # equal-count bins: with rare buyers, equal-width bins sit empty
    calibration = [(float(p[g].mean()), float(y[g].mean()), int(len(g))) for g in groups if len(g)]
    return ModelScore(name, float(roc_auc_score(y, p)), float(average_precision_score(y, p)), float(brier_score_loss(y, p)), calibration)


def score_propensity(
    store: Store,
    *,
    horizon_days: int = 14,
    events: EventNames = EventNames(),
    columns: Sequence[str] | None = None,
    max_train: int = 200_000,
    calibration_bins: int = 10,
    seed: int = 0,
    threads: int = 1,
    progress: Callable[[float, str], None] | None = None,
) -> PropensityResult:
    """Fit, evaluate on the next window, and score every user for the next ``horizon_days``.

    ``threads`` caps scikit-learn's thread pools, one by default (see ``clustering.cluster``).
    """
    import sklearn.ensemble  # noqa: F401  loaded before the limit, so the limit reaches its thread pools
    import sklearn.linear_model  # noqa: F401
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        return _score_propensity(store, horizon_days, events, columns, max_train, calibration_bins, seed, progress)


def _score_propensity(store, horizon_days, events, columns, max_train, calibration_bins, seed, progress) -> PropensityResult:
    from sklearn.linear_model import LogisticRegression

    report = progress or (lambda f, m: None)
    with store.cursor() as cur:
        first, end = cur.execute("SELECT min(ts), max(ts) FROM events").fetchall()[0]
    if end is None:
        raise NoDataError("The store has no events yet.", title="Nothing to score")
    horizon = timedelta(days=horizon_days)
    t1, t2 = end - 2 * horizon, end - horizon
    if t1 <= first + horizon:
        raise NoDataError(
            f"The log spans {(end - first).days} days; a {horizon_days}-day horizon needs more than {3 * horizon_days} "
            "(history, a training window and a test window). Choose a shorter horizon.",
            title="The event log is too short for this horizon",
        )
    report(0.0, "Features at the training cutoff")
    train_f = compute_features(store, as_of=t1, events=events).frame
    report(0.25, "Features at the test cutoff")
    test_f = compute_features(store, as_of=t2, events=events).frame
    report(0.5, "Features now")
    now = compute_features(store, events=events)
    cols = list(columns) if columns else [c for c in train_f.columns if c not in _EXCLUDED]
    cols = [c for c in cols if c in train_f.columns and c in test_f.columns and c in now.frame.columns]
    y_train = train_f.index.isin(list(_buyers(store, events, t1, t2, inclusive=False))).astype(int)
    y_test = test_f.index.isin(list(_buyers(store, events, t2, end, inclusive=True))).astype(int)
    if y_train.sum() < 5 or y_test.sum() < 5 or y_train.sum() == len(y_train):
        raise NoDataError(
            f"Too few buyers to learn from: {int(y_train.sum())} in the training window, {int(y_test.sum())} in the test window. "
            "Try a longer horizon.", title="Not enough purchases")

    rng = np.random.default_rng(seed)
    X_train, X_test = _matrix(train_f, cols), _matrix(test_f, cols)
    if len(X_train) > max_train:  # keep every buyer, sample the rest
        pos = np.flatnonzero(y_train == 1)
        neg = rng.choice(np.flatnonzero(y_train == 0), size=max(max_train - len(pos), 1), replace=False)
        keep = np.sort(np.concatenate([pos, neg]))
        weight = np.where(y_train[keep] == 1, 1.0, (y_train == 0).sum() / len(neg))  # undo the sampling
        X_fit, y_fit = X_train[keep], y_train[keep]
    else:
        X_fit, y_fit, weight = X_train, y_train, None

    report(0.65, "Fitting models")
    fitted, scores = {}, {}
    for name, model in _models(seed).items():
        kw = {f"{model.steps[-1][0]}__sample_weight" if hasattr(model, "steps") else "sample_weight": weight} if weight is not None else {}
        model.fit(X_fit, y_fit, **kw)
        fitted[name] = model
        scores[name] = _score(name, y_test, model.predict_proba(X_test)[:, 1], calibration_bins)
    rec = cols.index("days_since_visit") if "days_since_visit" in cols else None
    if rec is not None:
        base = LogisticRegression().fit(X_fit[:, [rec]], y_fit, sample_weight=weight)
        scores[BASELINE] = _score(BASELINE, y_test, base.predict_proba(X_test[:, [rec]])[:, 1], calibration_bins)
    chosen = max(fitted, key=lambda n: scores[n].pr_auc)

    report(0.85, "Scoring users")
    final = _models(seed)[chosen]
    X_now = _matrix(now.frame, cols)
    if len(X_test) > max_train:
        pos = np.flatnonzero(y_test == 1)
        neg = rng.choice(np.flatnonzero(y_test == 0), size=max(max_train - len(pos), 1), replace=False)
        keep = np.sort(np.concatenate([pos, neg]))
        w = np.where(y_test[keep] == 1, 1.0, (y_test == 0).sum() / len(neg))
        kw = {f"{final.steps[-1][0]}__sample_weight" if hasattr(final, "steps") else "sample_weight": w}
        final.fit(X_test[keep], y_test[keep], **kw)
    else:
        final.fit(X_test, y_test)
    p_now = pd.Series(final.predict_proba(X_now)[:, 1], index=now.frame.index, name="propensity")
    converted = now.frame["frequency"].fillna(0) > 0
    report(1.0, "Propensity ready")
    return PropensityResult(
        horizon_days=horizon_days, train_cutoff=t1, test_cutoff=t2, end=end, n_train=len(X_train), n_test=len(X_test),
        base_rate_train=float(y_train.mean()), base_rate_test=float(y_test.mean()), models=scores, chosen=chosen,
        features=cols, scores=p_now, converted=converted,
    )


def propensity_by_segment(result: PropensityResult, labels: pd.Series) -> pd.DataFrame:
    """Per segment: users, mean propensity, expected buyers in the horizon, users not yet converted."""
    frame = pd.DataFrame({"propensity": result.scores, "converted": result.converted.reindex(result.scores.index).fillna(False)})
    frame["segment"] = labels.reindex(frame.index).fillna("(not in run)").astype(str)
    out = frame.groupby("segment").agg(
        users=("propensity", "size"), mean_propensity=("propensity", "mean"),
        expected_buyers=("propensity", "sum"), not_converted=("converted", lambda c: int((~c.astype(bool)).sum())),
    )
    return out.sort_values("mean_propensity", ascending=False).reset_index()


def target_list(
    result: PropensityResult,
    *,
    labels: pd.Series | None = None,
    top_share: float = 0.1,
    min_propensity: float | None = None,
) -> pd.DataFrame:
    """High propensity, not yet converted: users who never ordered, ranked by propensity.

    Keeps users above ``min_propensity`` when given, else those in the top ``top_share`` of
    every user's propensity (so the bar does not move with who has already converted).
    """
    p = result.scores
    bar = float(min_propensity) if min_propensity is not None else float(p.quantile(1 - top_share))
    never = ~result.converted.reindex(p.index).fillna(False).astype(bool)
    picked = p[never & (p >= bar)].sort_values(ascending=False)
    out = pd.DataFrame({"user_id": picked.index.astype(str), "propensity": picked.to_numpy()})
    if labels is not None:
        out["segment"] = labels.reindex(picked.index).astype("string").to_numpy()
    return out.reset_index(drop=True)
