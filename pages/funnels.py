"""Funnels: where shoppers drop off, broken down by anything, over time, and how long each step takes."""

from __future__ import annotations

from datetime import timedelta

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from core import funnels, segments
from core.breakdowns import segment_key, segment_run_of
from core.errors import MarketLabError
from core.exports import safe_csv_bytes
from core.funnels import MODES, Condition, FunnelSpec, Step
from core.segments.saved_lists import MAX_NAME_CHARS, save_dropped_as_segment
from pages._resources import ALL_BUT_COPY, cached_read, get_store
from pages._shell import ensure_shell
from pages._widgets import (
    VIEWER_HELP, count, date_range, duration, everyday_keys, plain, segment_colors, show_chart, show_error,
)

ensure_shell()
store = get_store()
st.title("Funnels")

names = cached_read(funnels.list_event_names, reads=ALL_BUT_COPY)
if names.empty:
    st.info("No events yet. Import an event log on **Import data**, or seed the demo store.")
    st.stop()

known = names["event_name"].tolist()
usual = [e for e in ("view", "add_to_cart", "checkout", "purchase") if e in known]
with st.container(border=True):
    steps = st.multiselect(
        "Steps, in order", known, default=usual or known[:3], key="funnel_steps",
        help="Pick event names in the order shoppers should do them; reorder with the arrows below.",
    )

    def swap(k: int) -> None:
        order = list(st.session_state["funnel_steps"])
        order[k - 1], order[k] = order[k], order[k - 1]
        st.session_state["funnel_steps"] = order

    if len(steps) > 1:
        # A column per swap, at least two wide: "add_to_cart ⇄ checkout" must read whole.
        for k, col in enumerate(st.columns(max(len(steps) - 1, 2))[: len(steps) - 1], start=1):
            col.button(f"{steps[k - 1]} ⇄ {steps[k]}", key=f"funnel_swap_{k}", on_click=swap, args=(k,),
                       help=f"Swap steps {k} and {k + 1}", width="stretch")
    c1, c2, c3, c4 = st.columns([1, 1, 1.3, 1.2])
    amount = c1.number_input("Window", min_value=1, max_value=2160, value=7, key="funnel_window_n")
    unit = c2.selectbox("unit", ["days", "hours", "minutes"], key="funnel_window_unit", label_visibility="hidden")
    mode = c3.radio("Steps must come", list(MODES), horizontal=True, key="funnel_mode", format_func=lambda m: MODES[m].label,
                    help="  \n".join(f"{m.label.capitalize()}: {m.help}" for m in MODES.values()))
    # A short label: the column is narrow, and the help says the rest.
    first_touch = c4.checkbox("First visit only", key="funnel_first_touch",
                              help="Start each user's path at their first visit to step 1 (first touch); "
                                   "otherwise any of their step-1 events may start it.")
    d1, d2, d3 = st.columns([2, 2, 1])
    with d1:
        start, end = date_range(store, key="funnel_dates")
    options = cached_read(funnels.breakdown_options, reads=ALL_BUT_COPY)
    labels = {o.key: o.label for o in options}
    with d2:
        breakdown = st.selectbox("Break down by", [None, *everyday_keys(options, "funnel_breakdown", "funnel_breakdown_all")],
                                 format_func=lambda k: "nothing" if k is None else labels[k], key="funnel_breakdown")
        st.checkbox("Every column (ids too)", key="funnel_breakdown_all",
                    help="Product and session ids, and the demo's planted groups, give a group per id: off the list unless asked for.")
    trend = d3.radio("Trend by", ["day", "week"], horizontal=True, key="funnel_trend")
    with st.expander("Filters: only purchases with revenue, one category, one country…"):
        f1, f2, f3 = st.columns(3)
        filter_step = f1.selectbox("Narrow events of", [None, "all", *range(1, len(steps) + 1)],
                                   format_func=lambda k: "no event filter" if k is None else "every step" if k == "all"
                                   else f"step {k}: {steps[k - 1]}",
                                   key="funnel_filter_step")
        filter_column = f2.selectbox("where", ["revenue", "category", "device", "source", "campaign", "variant_id", "product_id"],
                                     key="funnel_filter_column")
        op = f3.selectbox("is", ["=", "!=", ">", ">=", "<", "<="], key="funnel_filter_op")
        raw_value = st.text_input("value", key="funnel_filter_value", placeholder="e.g. 0, Drinkware, mobile")
        user_keys = [o.key for o in options if o.kind in ("user", "attribute")]
        u1, u2 = st.columns([1, 2])
        user_column = u1.selectbox("Only users whose", [None, *user_keys], key="funnel_user_column",
                                   format_func=lambda k: "no user filter" if k is None else labels[k])
        user_value = u2.text_input("equals", key="funnel_user_value", placeholder="e.g. DE, loyal_big_spenders")

if not steps:
    st.info("Pick at least one step.")
    st.stop()


def _value(text: str) -> object:
    try:
        return float(text)
    except ValueError:
        return text


step_objects = [Step(e) for e in steps]
event_filters: tuple[Condition, ...] = ()
user_filters: tuple[Condition, ...] = ()
try:
    if filter_step == "all" and raw_value.strip():
        event_filters = (Condition(filter_column, op, _value(raw_value.strip())),)
    elif filter_step and raw_value.strip():
        k = filter_step - 1
        condition = Condition(filter_column, op, _value(raw_value.strip()))
        step_objects[k] = Step(steps[k], (condition,), label=f"{steps[k]} ({filter_column} {op} {raw_value.strip()})")
    if user_column and user_value.strip():
        user_filters = (Condition(user_column, "=", user_value.strip()),)
except MarketLabError as e:
    show_error(e)
    st.stop()

try:
    spec = FunnelSpec(
        steps=tuple(step_objects), window=timedelta(**{unit: amount}), mode=mode,
        first_touch_only=first_touch, start=start, end=end, breakdown=breakdown, trend=trend,
        event_filters=event_filters, user_filters=user_filters,
        repeat_needs_later=bool(st.session_state.get("funnel_later_repeat")) and MODES[mode].later_repeat,
    )
    if spec.repeated_steps():
        for note in spec.notes():
            st.info(plain(note))
        st.checkbox("Count a later, different event for a repeated step (e.g. a second purchase)", key="funnel_later_repeat",
                    disabled=not MODES[mode].later_repeat,
                    help="Available in ordered counting: in strict counting nothing comes between an event and itself.")
    with st.spinner("Counting…"):
        result = cached_read(funnels.funnel, spec, reads=ALL_BUT_COPY)
except MarketLabError as e:
    show_error(e)
    st.stop()

m1, m2, m3, m4 = st.columns(4)
m1.metric("Entered the funnel", f"{result.users:,}")
m2.metric("Completed", f"{result.steps[-1].users:,}")
m3.metric("Overall conversion", "—" if result.conversion is None else f"{result.conversion:.2%}")
if result.total_timing and result.total_timing.median_s is not None:
    m4.metric("Median time to complete", duration(result.total_timing.median_s))
elif result.timings and result.timings[0].median_s is not None:
    m4.metric("Median time to step 2", duration(result.timings[0].median_s))
st.caption(f"Answered in {result.seconds:.2f} s.")



def trend_chart(frame, unit: str) -> go.Figure:  # noqa: ANN001 - the funnel's trend frame
    """Conversion of each period's entrants (line; hollow where the window is not over) over their number (bars)."""
    fig = go.Figure()
    fig.add_bar(x=frame["period"], y=frame["started"], name="entrants", yaxis="y2", marker_color="rgba(150,150,150,0.35)")
    fig.add_scatter(x=frame["period"], y=frame["conversion"], name="conversion", mode="lines+markers",
                    marker={"symbol": ["circle" if done else "circle-open" for done in frame["complete"]], "size": 7},
                    line={"color": "#1f77b4"})
    return fig.update_layout(title=f"Conversion of each {unit}'s entrants", yaxis={"tickformat": ".1%", "title": "conversion"},
                             yaxis2={"overlaying": "y", "side": "right", "title": "entrants", "showgrid": False},
                             legend={"orientation": "h", "y": -0.2}, margin={"l": 10, "r": 10})


def funnel_chart() -> go.Figure:
    fig = go.Figure(go.Funnel(y=[s.label for s in result.steps], x=[s.users for s in result.steps],
                              textinfo="value+percent previous+percent initial"))
    return fig.update_layout(title="Users reaching each step", margin={"l": 10, "r": 10})


show_chart(funnel_chart, key="funnel_chart", inputs=(spec,), reads=ALL_BUT_COPY)

# Step 1 has no previous step: everyone who entered is there, so 100 % (a blank read as "None" in the table).
table = [{"step": s.step, "event": s.label, "users": s.users, "from previous": 1.0 if s.from_previous is None else s.from_previous,
          "from first": s.from_first, "dropped here": s.dropped} for s in result.steps]
st.dataframe(table, hide_index=True, width="stretch", column_config={
    "from previous": st.column_config.NumberColumn(format="percent"),
    "from first": st.column_config.NumberColumn(format="percent"),
})

if result.breakdown is not None and not result.breakdown.empty:
    st.subheader(f"By {labels.get(breakdown, breakdown)}")
    if breakdown in ("variant_id", "campaign"):
        # The two pages count a variant differently; each says how, so their numbers are read, not compared blindly.
        st.caption(f"Here a user belongs to the {labels.get(breakdown, breakdown)} on their first {steps[0]} event in the range, "
                   f"and converts by going through every step. Experiments counts everyone who saw a variant, from their "
                   f"first event of the campaign, and any {steps[-1]} within the window: more users, a different rate. "
                   "The two agree for a two-step funnel counted from the first touch when every visit carries the campaign.")
        st.page_link("pages/experiments.py", label="Which variant converts, tested: Experiments", icon=":material/science:")
    frame = result.breakdown

    # A segmentation's segments keep the colours the Segments page gives them.
    run_of_breakdown = segment_run_of(breakdown)
    run_colors = (segment_colors([s.name for s in cached_read(segments.load_run, run_of_breakdown, reads=ALL_BUT_COPY).segments])
                  if run_of_breakdown is not None else None)

    def breakdown_chart() -> go.Figure:
        fig = px.bar(frame, x="label", y="from_first", color="group", barmode="group", color_discrete_map=run_colors,
                     title=f"Share of step-1 users reaching each step, by {labels.get(breakdown, breakdown)}",
                     labels={"label": "", "from_first": "from step 1", "group": ""}, hover_data=["users"])
        return fig.update_yaxes(tickformat=".0%")

    show_chart(breakdown_chart, key="funnel_breakdown_chart", inputs=(spec,), reads=ALL_BUT_COPY)
    st.dataframe(result.by_group(), hide_index=True,
                 width="stretch", column_config={"conversion": st.column_config.NumberColumn(format="percent")})

left, right = st.columns(2)
with left:
    if not result.trend.empty:
        last_step = steps[-1]
        view = st.radio("Over time", ["entrants", "finishers"], horizontal=True, key="funnel_trend_view",
                        format_func=lambda v: {"entrants": f"Conversion of each {trend}'s entrants",
                                               "finishers": f"Users with a {last_step} per {trend}"}[v])
        if view == "entrants":
            show_chart(lambda: trend_chart(result.trend, trend), key="funnel_trend_chart", inputs=(spec, view),
                       reads=ALL_BUT_COPY)
            open_days = int((~result.trend["complete"]).sum())
            st.caption(f"Each {trend} counts the users whose first {steps[0]} fell in it (bars, right axis), as converted if "
                       f"they completed the funnel by the end of the range. Early {trend}s had longer to do so, so the "
                       "line can drift down at the end with nothing wrong"
                       + (f"; the last {count(open_days, trend)} (hollow) have not had the whole window yet." if open_days
                          else "."))
        else:
            # On the trend's own days, so the two views share their axis.
            finishers = result.trend[["period"]].merge(cached_read(funnels.last_step_users, spec, reads=ALL_BUT_COPY),
                                                       on="period", how="left").fillna({"users": 0})
            show_chart(lambda: px.bar(finishers, x="period", y="users",
                                      title=f"Users with a {last_step} each {trend} (in or out of this funnel)",
                                      labels={"period": "", "users": "users"}),
                       key="funnel_finishers_chart", inputs=(spec, view), reads=ALL_BUT_COPY)
with right:
    timed = [t for t in result.timings if t.users]
    if timed:
        pick = st.selectbox("Time to convert", range(len(timed)), key="funnel_timing",
                            format_func=lambda i: f"step {timed[i].from_step} → {timed[i].to_step}")
        t = timed[pick]
        bins = [{"time": label, "users": users} for label, _, _, users in t.histogram]
        show_chart(lambda: px.bar(bins, x="time", y="users", title=f"Step {t.from_step} → {t.to_step}: "
                                                                 f"median {duration(t.median_s)}, p90 {duration(t.p90_s)}"),
                   key="funnel_timing_chart", inputs=(spec, pick), reads=ALL_BUT_COPY)

st.subheader("Who dropped off")
drop_choices = [s for s in result.steps[:-1] if s.dropped]
if not drop_choices:
    st.caption("Nobody dropped between steps." if len(result.steps) > 1 else "A one-step funnel has no drop-off.")
else:
    chosen = st.selectbox("Users who reached", [s.step for s in drop_choices], key="funnel_drop_step",
                          format_func=lambda k: f"step {k} ({result.steps[k - 1].label}) but not the next — "
                                                f"{count(result.steps[k - 1].dropped, 'user')}")
    b1, b2, b3 = st.columns([1, 2, 1], vertical_alignment="bottom")
    prepare = b1.button("Prepare the list", key="funnel_drop_prepare")
    segment_name = b2.text_input("Segment name (optional)", key="funnel_drop_name", max_chars=MAX_NAME_CHARS,
                                 placeholder=f"Dropped after step {chosen}: {result.steps[chosen - 1].label}")
    save = b3.button("Save as segment", key="funnel_drop_save", disabled=not store.user.can_edit,
                     help=VIEWER_HELP if not store.user.can_edit else "Saves these users, and those who went on, as a segment: funnels, experiments and the "
                          "Copy Studio can then use it.")
    if prepare:
        try:
            dropped = funnels.dropped_users(store, spec, chosen)
        except MarketLabError as e:
            show_error(e)
            st.stop()
        st.download_button(f"Download {count(len(dropped), 'user id')} (CSV)", safe_csv_bytes(dropped),
                           file_name=f"dropped-at-step-{chosen}.csv", mime="text/csv", key="funnel_drop_csv")
        st.dataframe(dropped.head(200), hide_index=True, width="stretch")
    if save:
        try:
            with st.spinner("Saving the segment…"):
                run_id = save_dropped_as_segment(store, spec, chosen, name=segment_name)
                saved = segments.load_run(store, run_id)
        except MarketLabError as e:
            show_error(e)
        else:
            st.session_state["seg_run_id"] = run_id  # the Segments page opens on it
            dropped_seg = saved.segment("dropped")
            st.success(f"Saved {count(dropped_seg.size, 'user')} as the segment **{plain(dropped_seg.name)}**, beside the "
                       f"{count(saved.users - dropped_seg.size, 'user')} who went on (run {plain(run_id)}). Funnels and "
                       "experiments can now be broken down by it (pick it under *Break down by*), and the Copy Studio "
                       "can write for it.")
            l1, l2 = st.columns(2)
            with l1:
                st.page_link("pages/segments.py", label="See it on Segments", icon=":material/group:")
            l2.button("Break this funnel down by it", key="funnel_drop_breakdown",
                      on_click=lambda: st.session_state.update(funnel_breakdown=segment_key(run_id)))
st.caption(plain(f"Window {amount} {unit}, steps {MODES[mode].label}" + (", first touch only" if first_touch else "") + "."))
