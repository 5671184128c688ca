"""Segments: customer clusters and RFM segments with persona cards, a map, comparison, propensity and export."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from core import catalog, segments
from core.breakdowns import segment_key
from core.errors import MarketLabError
from core.exports import safe_csv_bytes
from core.segments import FEATURE_SETS, rfm
from core.segments.persona import from_engine
from core.segments.profiles import compare, order_facts
from core.segments.runs import rewrite_personas, run_title
from pages._resources import ALL_BUT_COPY, cached_read, get_engine, get_store, note_engine_loaded
from pages._shell import ensure_shell
from pages._widgets import VIEWER_HELP, count, measure, money, plain, segment_colors, show_chart, show_error

ensure_shell()
store = get_store()
st.title("Segments")


def load_model() -> tuple[object, str] | None:
    """The resident model (a core.llm Engine) and its name, or None after showing why it could not load."""
    try:
        engine = get_engine()
        note_engine_loaded(engine)
        return engine, engine.describe().name
    except MarketLabError as e:
        show_error(e)
        return None


with st.expander("Run a new segmentation", expanded=not cached_read(segments.list_runs, reads=ALL_BUT_COPY)):
    c1, c2, c3, c4 = st.columns([1.2, 1, 1.2, 1])
    method = c1.radio("Method", ["kmeans", "rfm"], horizontal=True, key="seg_method",
                      format_func=lambda m: {"kmeans": "clusters (k-means)", "rfm": "RFM segments"}[m])
    k_choice = c2.selectbox("Segments", ["auto", *range(3, 9)], key="seg_k", disabled=method == "rfm",
                            help="auto: the k with the best silhouette between 3 and 8")
    feature_set = c3.selectbox("Features", list(FEATURE_SETS), key="seg_features", disabled=method == "rfm")
    use_text = c4.checkbox("Add review text", key="seg_text", disabled=method == "rfm",
                           help="Review texts embedded with all-MiniLM-L6-v2 and reduced to a few components. Slower.")
    horizon = st.number_input("RFM: an order counts as recent within (days of the log's end)", min_value=1, max_value=3650,
                              value=90, step=15, key="seg_horizon", disabled=method != "rfm",
                              help="Names that promise recent buying (Champions, Loyal, New…) are given only to customers whose "
                                   "last order is this recent; names that promise repeat buying need two or more orders.")
    use_model = st.checkbox("Write personas with the language model (slower)", key="seg_llm",
                            help="The resident model drafts each persona from the segment's numbers; a draft that quotes "
                                 "anything the numbers do not show is refused and the grounded template speaks instead.")
    if st.button("Run segmentation", type="primary", key="seg_run", disabled=not store.user.can_edit,
                 help=None if store.user.can_edit else VIEWER_HELP):
        generate, persona_options = None, None
        if use_model:
            loaded = load_model()
            if loaded is None:
                st.stop()  # the error says why; unticking the box runs with the template
            generate, persona_options = from_engine(loaded[0]), {"model": loaded[1]}
        bar = st.progress(0.0, text="Starting…")
        try:
            run = segments.run_segmentation(store, k=k_choice, method=method, features=feature_set, use_text=use_text,
                                            generate=generate, persona_options=persona_options, rfm_horizon_days=float(horizon),
                                            progress=lambda f, m: bar.progress(min(max(f, 0.0), 1.0), text=m))
        except MarketLabError as e:
            show_error(e)
            st.stop()
        bar.empty()
        st.session_state["seg_run_id"] = run.run_id
        title = run_title(run.method, run.k, run.created_at, use_text=bool(run.params.get("use_text")))
        st.success(plain(f"Saved {title}: {count(run.users, 'user')} in {count(len(run.segments), 'segment')}."))

def separation(silhouette: float | None) -> str:
    """The silhouette in words: what a product manager needs to know is whether the segments are real."""
    if silhouette is None:
        return "—"
    # One word: a metric's value does not wrap, and "clearly separated" was cut to "clearly se…".
    return "Strong" if silhouette >= 0.5 else "Clear" if silhouette >= 0.25 else "Weak" if silhouette >= 0.1 else "Barely any"


runs = cached_read(segments.list_runs, reads=ALL_BUT_COPY)
if not runs:
    st.info("No segmentation yet: run one above. It needs an event log (upload one, or seed the demo store).")
    st.stop()
run_labels = {r.run_id: f"{r.title} · {r.users:,} users" for r in runs}
ids = list(run_labels)
if st.session_state.get("seg_run_id") not in ids:
    st.session_state["seg_run_id"] = ids[0]
run_id = st.selectbox("Segmentation", ids, format_func=run_labels.get, key="seg_run_id")
run = cached_read(segments.load_run, run_id, reads=ALL_BUT_COPY)

m1, m2, m3, m4 = st.columns(4)
m1.metric("Users", f"{run.users:,}")
m2.metric("Segments", run.k)
silhouette = run.quality.get("silhouette")
m3.metric("Separation", separation(silhouette),
          help="How distinct the segments are (the silhouette, from -1 to 1"
               + ("" if silhouette is None else f"; this run: {silhouette:.2f}")
               + "): Strong from 0.5, Clear from 0.25 — a usable structure on behaviour data —, Weak from 0.1.")
m4.metric("Grouped by", {"kmeans": "Behaviour", "rfm": "RFM rules"}.get(run.method, run.method.replace("_", " ").capitalize()))
if run.params.get("description"):  # a saved list (core.segments.saved_lists): no clusters, so say where it came from
    list_source = run.params.get("source") or {}
    st.caption(plain(f"{run.params.get('name', '')}: {run.params['description']}"
                     + (f" Funnel: {list_source['funnel']}." if list_source.get("funnel") else "")))

for notice in run.quality.get("notices", []):
    st.warning(plain(notice))
if run.method == "rfm":
    st.caption(f"Recent means a last order within {run.params.get('rfm_horizon_days', 90):g} days of the log's end.")

names = {s.segment_id: s.name for s in run.segments}
colors = segment_colors([s.name for s in run.segments])
currency = cached_read(catalog.main_currency, reads=ALL_BUT_COPY)
left, right = st.columns([3, 2])
with left:
    if run.map is not None and not run.map.empty:
        frame = run.map.assign(segment=run.map["segment"].map(names).fillna(run.map["segment"]))
        show_chart(lambda: px.scatter(frame, x="x", y="y", color="segment", opacity=0.6, hover_data={"user_id": True, "x": False, "y": False},
                                      color_discrete_map=colors, category_orders={"segment": list(colors)},
                                      title=f"Users on a 2-D map ({run.params.get('map_method', 'PCA')}), {len(frame):,} sampled",
                                      labels={"x": "", "y": "", "segment": ""})
                   .update_traces(marker={"size": 5})
                   # Only nearness means something on this map: the axes have no units, so they are not drawn.
                   .update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
                   .update_yaxes(showticklabels=False, showgrid=False, zeroline=False)
                   .update_layout(legend={"orientation": "h", "y": -0.05, "yanchor": "top"}),
                   key="seg_map", inputs=(run.run_id,), reads=ALL_BUT_COPY)
        st.caption("Users near each other behave alike; the axes have no units.")
with right:
    sizes = pd.DataFrame([{"segment": s.name, "users": s.size, "share": s.share, "revenue share": s.profile.revenue_share}
                          for s in run.segments])
    show_chart(lambda: px.bar(sizes, x="users", y="segment", orientation="h", title="Segment sizes", color="segment",
                              color_discrete_map=colors, hover_data=["share", "revenue share"],
                              labels={"segment": ""}).update_layout(showlegend=False),
               key="seg_sizes", inputs=(run.run_id,), reads=ALL_BUT_COPY)
    by_k = run.quality.get("silhouette_by_k")
    if by_k:
        show_chart(lambda: px.line(x=[int(k) for k in by_k], y=list(by_k.values()), markers=True, title="Silhouette by k",
                                   labels={"x": "k", "y": "silhouette"}),
                   key="seg_silhouette", inputs=(run.run_id,), reads=ALL_BUT_COPY)

st.subheader("Personas")
st.caption("Each persona is written from its segment's numbers only; the numbers stay beside it.")
if st.button("Rewrite personas with the model", key="seg_rewrite", disabled=not store.user.can_edit,
             help=VIEWER_HELP if not store.user.can_edit else "Drafts new personas from the saved numbers with the resident language model and saves them into this "
                  "run; the Copy Studio then writes for them. Drafts that fail the grounding check keep the template."):
    loaded = load_model()
    if loaded is not None:
        bar = st.progress(0.0, text="Writing personas…")
        try:
            written = rewrite_personas(store, run.run_id, from_engine(loaded[0]), model=loaded[1],
                                       progress=lambda f, m: bar.progress(min(max(f, 0.0), 1.0), text=m))
        except MarketLabError as e:
            bar.empty()
            show_error(e)
        else:
            st.session_state["seg_persona_note"] = (
                f"{sum(p.source == 'model' for p in written)} of {count(len(written), 'persona')} written by {loaded[1]}; "
                "the rest keep the grounded template (each card says why).")
            st.rerun()  # redraw the map, sizes and cards with the new names
if note := st.session_state.pop("seg_persona_note", None):
    st.success(plain(note))
for row_start in range(0, len(run.segments), 3):
    columns = st.columns(3)
    for col, seg in zip(columns, run.segments[row_start:row_start + 3]):
        p = seg.profile
        with col.container(border=True):
            st.markdown(f"**{plain(seg.name)}**")
            st.caption(f"{p.size:,} users · {p.share:.0%} of the base · {p.revenue_share:.0%} of revenue")
            st.caption(plain(order_facts(p).capitalize() + "."))
            st.text(seg.persona)
            detail = seg.persona_detail
            if detail is not None:
                st.caption(plain(detail.byline))
                if detail.fallback_note:
                    st.info(plain(detail.fallback_note))
            a, b = st.columns(2)
            a.metric("Ordered", f"{p.conversion_rate:.1%}", help="Share of the segment's users who ordered in the log.")
            b.metric("Order value", money(p.aov, currency), help="Revenue per order.")
            # What sets the segment apart first (its largest real differences), then where its activity goes.
            facts = [f"{d.label}: {measure(d.segment, d.unit, currency)} against {measure(d.base, d.unit, currency)} for everyone"
                     for d in p.differences[:3]]
            if p.top_categories:
                facts.append("most viewed: " + ", ".join(f"{c} {s:.0%}" for c, s in p.top_categories[:3]))
            if p.top_devices:
                facts.append("devices: " + ", ".join(f"{d} {s:.0%}" for d, s in p.top_devices[:3]))
            st.caption(plain("; ".join(facts)))
            if detail is not None and detail.facts:
                with st.expander("The numbers the persona was written from"):
                    st.markdown("\n".join(f"- {plain(f.label)}: {plain(f.value)}" for f in detail.facts))
            st.download_button(f"Export {count(p.size, 'user id')} (CSV)",
                               cached_read(segments.export_segment_csv, run.run_id, seg.segment_id, reads=ALL_BUT_COPY),
                               file_name=f"{run.run_id}-{seg.segment_id}.csv", mime="text/csv",
                               key=f"seg_export_{seg.segment_id}")

b1, b2 = st.columns(2)
if b1.button("Break down the funnel by this segmentation", key="seg_to_funnel"):
    st.session_state["funnel_breakdown"] = segment_key(run.run_id)
    st.switch_page("pages/funnels.py")
if b2.button("See which copy converts for each segment", key="seg_to_experiments"):
    st.session_state["exp_breakdown"] = segment_key(run.run_id)
    st.switch_page("pages/experiments.py")

st.subheader("Compare two segments")
if len(run.segments) >= 2:
    c1, c2 = st.columns(2)
    a = c1.selectbox("Segment", list(names), format_func=names.get, key="seg_compare_a")
    b = c2.selectbox("with", list(names), index=1, format_func=names.get, key="seg_compare_b")
    table = compare(run.segment(a).profile, run.segment(b).profile, run.base)
    shown = [c for c in table.columns if c not in ("metric", "unit")]
    # Numbers and text ("Apparel (22%)") share a column: show every cell as text.
    table[shown] = table[shown].map(lambda v: "—" if v is None or v != v else f"{v:,.3g}" if isinstance(v, (int, float)) else str(v))
    st.dataframe(table.rename(columns=names), hide_index=True, width="stretch")

with st.expander("RFM rules (first match wins)"):
    st.dataframe(rfm.rule_table(), hide_index=True, width="stretch")

st.subheader("Conversion propensity")
st.caption("Probability of ordering in the next 14 days, learned from features up to a cutoff and checked on the "
           "following period, against a recency-only baseline.")
prop_key = f"seg_propensity_{run.run_id}"
if st.button("Score propensity", key="seg_propensity"):
    from core.segments.propensity import score_propensity

    with st.spinner("Training on one window, testing on the next…"):
        try:
            st.session_state[prop_key] = score_propensity(store, horizon_days=14)
        except MarketLabError as e:
            show_error(e)
result = st.session_state.get(prop_key)
if result is not None:
    from core.segments.propensity import propensity_by_segment, target_list

    scores = pd.DataFrame([{"model": m.name, "ROC AUC": m.roc_auc, "PR AUC": m.pr_auc, "Brier": m.brier,
                            "chosen": name == result.chosen} for name, m in result.models.items()])
    st.dataframe(scores, hide_index=True, width="stretch")
    chosen = result.models[result.chosen]
    calib = pd.DataFrame(chosen.calibration, columns=["predicted", "observed", "users"])
    fig = px.line(calib, x="predicted", y="observed", markers=True, hover_data=["users"],
                  title=f"Calibration of {chosen.name} on the test period")
    fig.add_shape(type="line", x0=0, y0=0, x1=float(calib["predicted"].max() or 1), y1=float(calib["predicted"].max() or 1),
                  line={"dash": "dot", "color": "grey"})
    show_chart(fig, key="seg_calibration")
    labels = segments.run_labels(store, run.run_id)
    per_segment = propensity_by_segment(result, labels)
    per_segment["segment"] = per_segment["segment"].map(names).fillna(per_segment["segment"])
    st.dataframe(per_segment, hide_index=True, width="stretch")
    targets = target_list(result, labels=labels)
    targets["segment"] = targets["segment"].map(names).fillna(targets["segment"])
    st.download_button(f"Download the target list: {count(len(targets), 'user')} with high propensity, not yet converted (CSV)",
                       safe_csv_bytes(targets), file_name="high-propensity-not-converted.csv", mime="text/csv",
                       key="seg_targets_csv")
