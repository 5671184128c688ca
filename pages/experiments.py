"""Experiments: which copy variant of a campaign converts, for whom — and whether we can say so yet."""

from __future__ import annotations

import plotly.graph_objects as go
import plotly.express as px
import streamlit as st

from core import experiments, funnels
from core.errors import MarketLabError
from core.experiments import ExperimentSpec
from pages._resources import cached_read, get_store
from pages._shell import ensure_shell
from pages._widgets import everyday_keys, plain, show_chart, show_error

ensure_shell()
store = get_store()
st.title("Experiments")
st.caption("Copy variants of a campaign side by side: users exposed, who converted, with intervals and a significance test. "
           "A user is exposed at their first event of the campaign and converts with the conversion event within the "
           "window, by any path; users are counted, not sessions. Funnels broken down by variant count a user by their "
           "first step-1 event and through every step, so their rates differ.")
st.page_link("pages/funnels.py", label="The same variants step by step: Funnels", icon=":material/filter_alt:")

campaigns = cached_read(experiments.list_campaigns)
if campaigns.empty:
    st.info("No events carry a campaign and a copy variant yet. Import an event log with `campaign` and `variant_id` columns, or seed the demo store.")
    st.stop()

c1, c2, c3, c4 = st.columns([2, 1.2, 1, 1.6])
campaign = c1.selectbox("Campaign", campaigns["campaign"].tolist(), key="exp_campaign",
                        format_func=lambda c: f"{c} — {int(campaigns.set_index('campaign').at[c, 'users']):,} users")
variants = list(campaigns.set_index("campaign").at[campaign, "variants"])
events = cached_read(funnels.list_event_names)["event_name"].tolist()
conversion = c2.selectbox("Conversion event", events, index=events.index("purchase") if "purchase" in events else 0, key="exp_conversion")
days = c3.number_input("Within (days)", min_value=1, max_value=90, value=7, key="exp_window")
breakdown_options = [o for o in cached_read(funnels.breakdown_options) if o.kind in ("user", "attribute", "segment")]
labels = {o.key: o.label for o in breakdown_options}
with c4:
    breakdown = st.selectbox("For whom", [None, *everyday_keys(breakdown_options, "exp_breakdown", "exp_breakdown_all")],
                             format_func=lambda k: "everyone" if k is None else f"by {labels[k]}", key="exp_breakdown")
    st.checkbox("Every column", key="exp_breakdown_all", help="The demo's planted groups too.")
with st.expander("Test settings"):
    s1, s2, s3 = st.columns(3)
    control = s1.selectbox("Control", [None, *variants], format_func=lambda v: "automatic (variant A)" if v is None else v, key="exp_control")
    alpha = s2.select_slider("Significance level", [0.01, 0.05, 0.1], value=0.05, key="exp_alpha")
    min_users = s3.number_input("Minimum exposed users per variant", min_value=10, value=100, step=10, key="exp_min_users")

try:
    spec = ExperimentSpec(campaign=campaign, conversion_event=conversion, window=f"{days}d", control=control,
                          alpha=alpha, min_users=int(min_users), breakdown=breakdown)
    with st.spinner("Counting users…"):
        result = cached_read(experiments.experiment, spec)
except MarketLabError as e:
    show_error(e)
    st.stop()

verdict = plain(result.verdict)
if result.srm_mismatch:
    st.warning(verdict)
elif result.winner:
    st.success(verdict)
else:
    st.info(verdict)
if result.need is not None:
    st.caption(plain(result.need.sentence()))
with st.expander("How this was tested"):
    st.caption(plain(result.details + (f" {result.mixed_users:,} users saw more than one variant and are left out."
                                       if result.mixed_users else "")))

columns = st.columns(len(result.variants))
for col, v in zip(columns, result.variants):
    with col.container(border=True):
        st.markdown(f"**{plain(v.variant_id)}**" + (" · control" if v.is_control else "") + (" · 🏆" if v.variant_id == result.winner else ""))
        if v.copy:
            for field, text in v.copy.items():
                st.caption(plain(field))
                st.text(str(text))
        else:
            st.caption("No copy saved for this variant.")
        # The uplift is coloured only when it is a real difference: a green +12 % from noise reads as a win.
        st.metric("Conversion", "—" if v.rate is None else f"{v.rate:.2%}",
                  delta=None if v.is_control or v.uplift is None else f"{v.uplift:+.1%} vs control",
                  delta_color="normal" if v.significant else "off")
        st.caption(f"{v.converted:,} of {v.exposed:,} users" +
                   ("" if v.ci_low is None else f" · likely between {v.ci_low:.2%} and {v.ci_high:.2%}"))
        if v.exposed < spec.min_users:
            st.caption(f":orange[Only {v.exposed:,} users: too few to judge (a verdict needs {spec.min_users:,}).]")


def variants_chart() -> go.Figure:
    fig = go.Figure(go.Bar(
        x=[v.variant_id for v in result.variants], y=[v.rate or 0 for v in result.variants],
        error_y={"type": "data", "symmetric": False,
                 "array": [(v.ci_high or 0) - (v.rate or 0) for v in result.variants],
                 "arrayminus": [(v.rate or 0) - (v.ci_low or 0) for v in result.variants]},
        marker_color=["#888" if v.is_control else "#1f77b4" for v in result.variants],
    ))
    return fig.update_layout(title=f"Conversion to {conversion} within {days} days, with 95 % intervals", yaxis_tickformat=".1%")


show_chart(variants_chart, key="exp_chart", inputs=(spec,))

if result.breakdown is not None and not result.breakdown.empty:
    st.subheader(f"By {labels[breakdown]}")
    bars = result.breakdown.assign(above=lambda f: f["ci_high"] - f["rate"], below=lambda f: f["rate"] - f["ci_low"])
    show_chart(lambda: px.bar(bars, x="group", y="rate", color="variant_id", barmode="group",
                              error_y="above", error_y_minus="below",
                              title=f"Which variant converts, for whom ({labels[breakdown]}), with 95 % intervals",
                              labels={"group": "", "rate": "conversion", "variant_id": "variant"},
                              hover_data={"exposed": True, "converted": True, "above": False, "below": False})
               .update_yaxes(tickformat=".1%"),
               key="exp_breakdown_chart", inputs=(spec,))
    best = (result.breakdown[result.breakdown["exposed"] > 0]
            .sort_values("rate", ascending=False).groupby("group", as_index=False).first())
    best = best[["group", "variant_id", "rate", "exposed", "significant"]].rename(columns={"variant_id": "best variant"})
    st.dataframe(best, hide_index=True, width="stretch", column_config={"rate": st.column_config.NumberColumn(format="percent")})
    st.caption("'significant' means that group's best variant differs from control at the chosen level with the minimum sample.")
