"""Saved user lists: a list of user ids (say, who dropped at a funnel step) kept as a segment run.

A saved list is an ordinary segmentation run (rows in ``segment_runs``, ``segments`` and
``user_segments``, written by ``runs._save``), so everything that reads a run reads it too with
no special case: funnel and experiment breakdowns (``segment:RUN_ID``), the Segments page
(sizes, profile cards, compare, CSV export), the copy studio's "Write for segment" picker.

What differs from a k-means run: ``method`` is ``"list"`` (or ``"funnel_dropoff"``), there are
no features, silhouette or map, ``params`` hold the name, the description and the ``source``
(for a drop-off: the funnel spec and the step, the audit trail), and each segment's persona is
a plain sentence saying who is in it, followed by the grounded template persona of its numbers.
"""

from __future__ import annotations

import json
import math
import numbers
import uuid
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from core.errors import InvalidRequestError, NoDataError, NotFoundError, QueryError
from core.funnels import FunnelSpec, dropped_users, funnel_levels
from core.segments.features import compute_features
from core.segments.persona import template_persona
from core.segments.profiles import SegmentProfile, profile_segments
from core.segments.runs import Segment, SegmentRun, _save
from core.store import Store

__all__ = ["LIST_METHODS", "MAX_NAME_CHARS", "save_user_list_as_run", "save_dropped_as_segment"]

LIST_METHODS = ("list", "funnel_dropoff")
MAX_NAME_CHARS = 120  # a legend entry and a picker label, not a paragraph
_UNKNOWN_SHOWN = 5  # unknown ids quoted in the error; the count says the rest


def _clean_name(text: str | None, what: str) -> str:
    # Whitespace collapsed (a newline in a legend or a CSV header helps nobody); every other
    # character is kept as typed: names are bound values, and pages show them with plain().
    name = " ".join(str(text or "").split())
    if len(name) > MAX_NAME_CHARS:
        raise InvalidRequestError(f"The {what} has {len(name)} characters; keep it to {MAX_NAME_CHARS}.", title="Name too long")
    return name


def _clean_ids(user_ids: Iterable[object]) -> list[str]:
    """Text ids, blanks and missing values dropped, each once, in first-seen order."""
    out: dict[str, None] = {}
    for value in user_ids:
        if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
            continue
        text = str(value).strip()
        if text:
            out[text] = None
    return list(out)


def _check_known(store: Store, ids: list[str]) -> None:
    """Every id must be a user the store knows (in ``users`` or in ``events``): a typo or a list from
    another shop would otherwise become a segment of nobody, silently."""
    frame = pd.DataFrame({"user_id": ids})
    with store.cursor() as cur:
        cur.register("listed_users", frame)
        try:
            unknown = cur.execute(
                "SELECT count(*) OVER () AS n, l.user_id FROM listed_users l "
                "WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.user_id = l.user_id) "
                "AND NOT EXISTS (SELECT 1 FROM events e WHERE e.user_id = l.user_id) "
                "ORDER BY l.user_id LIMIT ?",
                [_UNKNOWN_SHOWN],
            ).fetchall()
        finally:
            cur.unregister("listed_users")
    if unknown:
        n = int(unknown[0][0])
        shown = ", ".join(repr(r[1]) for r in unknown)
        more = f" and {n - len(unknown):,} more" if n > len(unknown) else ""
        raise NotFoundError(
            f"{n:,} of {len(ids):,} user ids are neither in the users table nor in the event log: {shown}{more}. "
            "Nothing was saved.",
            title="Unknown users in the list",
        )


def _size_card(segment_id: str, size: int, n_all: int) -> SegmentProfile:
    """A card with sizes only, for a store without events: the Segments page still draws it."""
    return SegmentProfile(segment_id=segment_id, size=size, share=size / n_all if n_all else 0.0, buyers=0,
                          conversion_rate=0.0, session_conversion=0.0, revenue=0.0, revenue_share=0.0, aov=None,
                          recency_mean=None, recency_median=None, frequency_mean=0.0, frequency_median=0.0,
                          monetary_mean=0.0, monetary_median=0.0, days_since_visit_median=None, sessions_median=None,
                          views_per_session_median=None, campaign_share=None)


def _cards(store: Store, labels: pd.Series, profile: bool) -> tuple[dict[str, SegmentProfile], SegmentProfile | None]:
    """Profile cards per segment id (and the whole base), from the same features k-means runs use.

    Cheap next to a clustering run (no scaling, no k-means, no map): a fraction of a second on
    the demo store. Listed users without events count in their segment with empty features, so
    every card's size is the segment's size.
    """
    if profile:
        try:
            frame = compute_features(store).frame
        except QueryError:
            frame = None  # no events at all: sizes only
        if frame is not None:
            missing = labels.index.difference(frame.index)
            if len(missing):
                frame = frame.reindex(frame.index.append(missing))
            profiles, base = profile_segments(frame, labels)
            return {p.segment_id: p for p in profiles}, base
    sizes = labels.value_counts()
    return {str(sid): _size_card(str(sid), int(n), len(labels)) for sid, n in sizes.items()}, None


def _json_ready(value: object, what: str) -> object:
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError) as e:
        raise InvalidRequestError(f"The {what} cannot be saved as JSON: {e}.", title="Invalid segment source") from e


def save_user_list_as_run(
    store: Store,
    user_ids: Iterable[object],
    *,
    name: str,
    description: str = "",
    source: dict[str, Any] | None = None,
    others: Iterable[object] | None = None,
    others_name: str = "Everyone else",
    others_description: str = "",
    segment_ids: tuple[str, str] = ("list", "others"),
    method: str = "list",
    profile: bool = True,
) -> str:
    """Save ``user_ids`` as a segmentation run and return its run id.

    The list becomes segment ``segment_ids[0]`` named ``name``; ``others`` (optional) become a
    second segment ``segment_ids[1]`` named ``others_name``, so a breakdown by the run compares
    the list with a chosen reference group rather than with "(none)". An id in both stays in the
    list. ``source`` (JSON-able) records where the list came from. Every id must be a user of
    the store; an empty list, an unknown id or a bad name raises ``InvalidRequestError`` and nothing
    is written. Run, segments and assignments are written in one transaction.
    """
    store.require_editor("saving a segment")
    if method not in LIST_METHODS:
        raise InvalidRequestError(f"method must be one of {', '.join(LIST_METHODS)}, got {method!r}.", title="Unknown method")
    if len(set(segment_ids)) != 2 or not all(isinstance(s, str) and s for s in segment_ids):
        raise InvalidRequestError(f"Two different segment ids are needed, got {segment_ids!r}.", title="Invalid segment ids")
    listed = _clean_ids(user_ids)
    if not listed:
        raise NoDataError("The list has no user ids: there is nothing to save.", title="Empty segment")
    name = _clean_name(name, "segment name") or "Saved list"
    others_name = _clean_name(others_name, "name of the other segment") or "Everyone else"
    if others_name.casefold() == name.casefold():
        others_name = f"{others_name} (others)"  # breakdowns group by name: two equal names would merge
    in_list = set(listed)
    rest = [u for u in _clean_ids(() if others is None else others) if u not in in_list]
    source = _json_ready(source or {}, "source")
    _check_known(store, listed + rest)

    list_id, rest_id = segment_ids
    labels = pd.Series([list_id] * len(listed) + [rest_id] * len(rest), index=pd.Index(listed + rest, name="user_id"),
                       name="segment_id", dtype=object)
    cards, base = _cards(store, labels, profile)
    groups = [(list_id, name, description)] + ([(rest_id, others_name, others_description)] if rest else [])
    segments = []
    for seg_id, seg_name, about in groups:
        card = cards[seg_id]
        persona = template_persona(card, base) if base is not None else None
        if persona is not None:
            persona.name = seg_name  # the user's name stays the segment's name; the template only describes it
        # Who is in the segment comes first: that is what the copy studio's model must read.
        text = " ".join(t for t in (about.strip(), persona.text if persona else "") if t)
        segments.append(Segment(seg_id, seg_name, text, card, persona))

    created = datetime.now(timezone.utc)
    run = SegmentRun(
        run_id=f"run-{created:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}",
        created_at=created.replace(tzinfo=None), method=method, k=len(segments), features=[],
        params={"name": name, "description": description, "source": source, "profiled": base is not None},
        quality={"users": int(len(labels)), "sizes": {s.segment_id: s.size for s in segments}, "silhouette": None,
                 **({"base_profile": base.to_dict()} if base is not None else {})},
        segments=segments, base=base, labels=labels,
    )
    try:
        _save(store, run)  # one transaction: the run, its segments and every assignment, or nothing
    except QueryError as e:
        raise QueryError(e.msg, title="The segment could not be saved") from e
    return run.run_id


def save_dropped_as_segment(store: Store, spec: FunnelSpec, step: int, name: str | None = None, *, profile: bool = True) -> str:
    """Save the users who reached ``step`` (1-based) of the funnel ``spec`` but not the next as a segment run.

    The run has two segments: ``dropped`` (exactly ``core.funnels.dropped_users(store, spec, step)``)
    and ``continued``, the users who reached ``step`` and went on to step ``step + 1`` or
    further. Why "continued" and not "all other users": both groups got as far as ``step``, so
    comparing them (their profile cards, a funnel or experiment breakdown by the run) isolates
    what happened next; "everyone else" would mix in people who never got that far, and the
    whole base is already the cards' reference. Users in neither group show as "(none)" in a
    breakdown, so the groups of a funnel broken down by this run still add up to the funnel.
    """
    store.require_editor("saving a segment")
    if not isinstance(spec, FunnelSpec):
        raise InvalidRequestError("A funnel spec is needed to save its drop-off.", title="Invalid funnel")
    n = len(spec.steps)
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or not 1 <= step <= n:
        raise QueryError(f"Step {step!r} is not in this {n}-step funnel.", title="Unknown funnel step")
    step = int(step)  # a numpy integer from a widget or a frame prints and serialises as a plain one
    if step == n:
        raise NoDataError(f"Step {step} is the last step: whoever reached it converted, so nobody dropped there. "
                             "Pick an earlier step.", title="Nobody drops at the last step")
    here, after = spec.steps[step - 1].title, spec.steps[step].title
    dropped = dropped_users(store, spec, step)
    if dropped.empty:
        raise NoDataError(f"Nobody reached step {step} ({here}) without going on to {after} in this funnel: "
                             "there is nothing to save.", title="Empty segment")
    levels = funnel_levels(store, spec)
    continued = levels.loc[levels["deepest_step"] > step, "user_id"]

    window = spec.to_dict()["window"]
    # Short, because it leads the persona the copy studio shows its model (cut at 300 characters);
    # the whole funnel (counting, dates, filters) is in source["spec"].
    how = "".join((f"within {window}", f", {spec.mode} counting" if spec.mode != "ordered" else "",
                   ", first touch only" if spec.first_touch_only else ""))
    return save_user_list_as_run(
        store, dropped["user_id"],
        name=name if name and name.strip() else f"Dropped after step {step}: {here}",
        description=f"Reached {here} (step {step}) but did not go on to {after} {how}.",
        others=continued,
        others_name=f"Continued past step {step}: {here}",
        others_description=f"Reached {here} (step {step}) and went on to {after} {how}.",
        segment_ids=("dropped", "continued"),
        method="funnel_dropoff",
        source={"kind": "funnel_dropoff", "funnel": " → ".join(s.title for s in spec.steps), "spec": spec.to_dict(),
                "step": step, "step_label": here, "next_label": after,
                "dropped": int(len(dropped)), "continued": int(len(continued))},
        profile=profile,
    )
