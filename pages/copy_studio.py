"""Copy Studio: several variants of ad copy from the resident model, scored side by side; edit, approve, export."""

from __future__ import annotations

import time
import zlib

import streamlit as st

from core import catalog, segments
from core.catalog import CatalogFilter
from core.copy import export, teaching
from core.copy.ad_strength import LEVELS
from core.copy.asset_actions import regenerate_assets, set_keywords, set_locked, set_pin
from core.copy.export import PIN_POSITIONS
from core.copy.channels import CHANNELS, TONES, ChannelSpec
from core.copy.variant_store import Variant, VariantFilter, list_variants, set_status, update_fields
from core.copy.variants import GenerationRequest, engine_generate_fn
from core.copy.writing_job import write_copy_work
from core.config import load_settings
from core.errors import MarketLabError
from core.jobs import Job
from core.llm.loading import resolve_adapter, resolve_model
from core.llm.tuning import TuneConfig, approx_tokens, estimate_seconds, read_manifest
from pages._resources import ALL_BUT_COPY, cached_read, get_engine, get_job_board, get_store, note_engine_loaded
from pages._shell import ensure_shell
from pages._widgets import VIEWER_HELP, count, duration, plain, show_error

ensure_shell()
store = get_store()
st.title("Copy Studio")
st.caption("The model writes from the product's own data only; the code keeps every length limit, and the scores say "
           "what a variant claims that the data does not back.")

if not catalog.count(store):
    st.info("Upload a catalog first (Catalog page), or seed the demo store.")
    st.stop()

JOB_POLL_SECONDS = 2  # how often the page looks at a running job
RECENT_RUNS = 5  # runs whose segments the target picker offers

# ---------------------------------------------------------------- the brief
with st.container(border=True):
    scope = st.radio("Products", ["one", "many"], horizontal=True, key="copy_scope",
                     format_func=lambda s: {"one": "One product", "many": "Many, by category or brand"}[s])
    facets = cached_read(catalog.facets, reads=ALL_BUT_COPY)
    if scope == "one":
        query = st.text_input("Find a product", key="copy_search", placeholder="title, brand or id")
        found = cached_read(catalog.search, CatalogFilter(text=query), limit=200, reads=ALL_BUT_COPY).rows
        labels = dict(zip(found["product_id"], found["title"] + " · " + found["product_id"]))
        chosen = st.selectbox("Product", list(labels), format_func=labels.get, key="copy_product")
        product_ids = [chosen] if chosen else []
    else:
        m1, m2 = st.columns(2)
        categories = m1.multiselect("Category", facets.categories, key="copy_categories")
        brands = m2.multiselect("Brand", facets.brands, key="copy_brands")
        picked = cached_read(catalog.search, CatalogFilter(categories=tuple(categories), brands=tuple(brands)), limit=50,
                             reads=ALL_BUT_COPY)
        product_ids = picked.rows["product_id"].tolist() if (categories or brands) else []
        st.caption(f"{count(len(product_ids), 'product')} (at most 50 per run)" if product_ids else "Choose a category or brand.")
    c1, c2, c3, c4 = st.columns([2, 1.4, 1, 1])  # the channel's name reads whole ("Google responsive search ad")
    channel = c1.selectbox("Channel", list(CHANNELS), format_func=lambda c: CHANNELS[c].label, key="copy_channel")
    tones = c2.multiselect("Tones", list(TONES), default=["friendly"], key="copy_tones")
    pooled = CHANNELS[channel].pooled  # an RSA or Meta ad holds many assets: one ad per product is the usual
    n = c3.number_input("Ads per product" if pooled else "Variants", min_value=1, max_value=6, value=1 if pooled else 3,
                        key=f"copy_n_{'ads' if pooled else 'variants'}",
                        help="Each ad is assembled from every answer the model writes: up to 15 headlines and 4 descriptions."
                        if pooled else None)
    temperature = c4.slider("Variety", 0.1, 1.5, 0.8, 0.1, key="copy_temperature",
                            help="The model's temperature. Higher: more varied wording, more misses (which the code then "
                                 "rejects or repairs); lower: safer, more alike.")
    # Segments of the recent runs (a clustering, a saved drop-off list…), newest first: the latest
    # run alone would hide a list saved from a funnel as soon as someone re-clusters.
    segment_choices: dict[tuple[str, str], tuple[str, str]] = {}
    for summary in cached_read(segments.list_runs, reads=ALL_BUT_COPY)[:RECENT_RUNS]:
        for s in cached_read(segments.load_run, summary.run_id, reads=ALL_BUT_COPY).segments:
            segment_choices[(summary.run_id, s.segment_id)] = (f"{s.name} · {summary.method} {summary.created_at:%d %b %H:%M}", s.persona)
    target_key = st.selectbox("Write for segment", [None, *segment_choices], key="copy_segment",
                              format_func=lambda key: "everyone" if key is None else segment_choices[key][0],
                              help="The segment's persona shapes the prompt; segments of the five most recent runs.")
    target = target_key[1] if target_key else None
    st.caption(f"Limits: " + "; ".join(f"{f.label.rstrip(':')} ≤ {f.max_chars}" for f in CHANNELS[channel].fields
                                       if f.max_chars and not f.label[-1:].isdigit()) + ". " + CHANNELS[channel].why)
    go = st.button(f"Generate {count(int(n) * max(len(tones), 1), 'ad' if pooled else 'variant')} per product", type="primary",
                   key="copy_generate",
                   disabled=not product_ids or not tones or not store.user.can_edit,
                   help=None if store.user.can_edit else VIEWER_HELP)

if go:
    try:
        engine = get_engine()
        note_engine_loaded(engine)
        request = GenerationRequest(
            product_ids=tuple(product_ids), channel=channel, tones=tuple(tones), n=int(n), temperature=float(temperature),
            seed=int(st.session_state.get("copy_seed", 0)), segment_id=target, segment_run_id=target_key[0] if target_key else None,
            persona=segment_choices[target_key][1] if target_key else "",
        )
        label = f"{CHANNELS[channel].label} for {count(len(product_ids), 'product')}"
        get_job_board().submit(label, store.user.name, len(product_ids), write_copy_work(store, engine_generate_fn(engine), request))
    except MarketLabError as e:
        show_error(e)
        st.stop()
    st.session_state["copy_seed"] = int(st.session_state.get("copy_seed", 0)) + 1  # the next run writes new variants


def _job_line(job: Job) -> str:
    left = job.eta_seconds()
    products = f"{int(job.done)} of {count(job.total, job.unit)}"
    return f"**{plain(job.title)}** — {products}" + (f", about {duration(left)} left" if left is not None else "") + \
        (f" · {plain(job.message)}" if job.message else "")


def jobs_panel() -> None:
    """This user's copy jobs: live progress and Stop while they run; what each left once it ends.

    Jobs run on the server beside the page (``core.jobs``): browsing elsewhere or reloading does not stop them.
    """
    board = get_job_board()
    jobs = [j for j in board.jobs(store.user.name) if j.active or not j.seen][:5]
    active = {j.job_id for j in jobs if j.active}
    if set(st.session_state.get("copy_jobs_watched", ())) - active:
        # A job ended since the last look: the whole page runs again, to show its drafts and what it left.
        st.session_state["copy_jobs_watched"] = active
        st.rerun(scope="app")
    st.session_state["copy_jobs_watched"] = active
    for job in jobs:
        if job.status == "running":
            st.progress(job.fraction, text=_job_line(job))
        elif job.status == "queued":
            st.caption(plain(f"{job.title}: waiting — the model writes one job at a time."))
        if job.active:
            if st.button("Stop", key=f"copy_job_stop_{job.job_id}", icon=":material/stop_circle:",
                         help="Drafts already saved are kept; the products being written now are not."):
                board.stop(job.job_id)
                st.rerun()
            continue
        board.mark_seen(job.job_id)
        if job.status == "done":
            st.success(plain(f"{job.title}: {job.result}."))
        elif job.status == "stopped":
            st.info(plain(f"{job.title}: stopped" + (f"; {job.result} before that." if job.result else ".")))
        else:
            st.error(plain(f"{job.title} failed: {job.error}" + (f" ({job.result} before that)" if job.result else "")))


def recent_jobs() -> None:
    """Every writing job of this user since the server started, with how it ended."""
    jobs = get_job_board().jobs(store.user.name)
    if not jobs:
        return
    with st.expander(f"Writing jobs ({len(jobs)})"):
        st.dataframe(
            [{"job": j.title, "status": j.status, "left": j.result or j.error or "—",
              "started": time.strftime("%d %b %H:%M", time.localtime(j.started or j.created)),
              "took": duration((j.finished or time.time()) - j.started) if j.started else "—"} for j in jobs],
            hide_index=True, width="stretch")


if any(j.active for j in get_job_board().jobs(store.user.name)):
    st.caption("Writing runs on the server: you can open other pages meanwhile; the sidebar says when it is done.")
    st.fragment(run_every=JOB_POLL_SECONDS)(jobs_panel)()
else:
    jobs_panel()
recent_jobs()


def _strength_meter(strength: dict) -> None:
    level = strength["level"]
    st.progress(LEVELS.index(level) / (len(LEVELS) - 1), text=f"Ad strength: **{level}**")
    for action in strength["actions"]:
        st.markdown(f"- {plain(action)}")


def _selling_points(v: Variant) -> None:
    """Which of the product's selling points the ad carries, and in which assets."""
    report = v.scores.get("selling_points") or {}
    points = report.get("points", [])
    if not points:
        return
    carried_by: dict[int, list[str]] = {}
    for key, found in report.get("carried", {}).items():
        for i in found:
            carried_by.setdefault(i, []).append(key.replace("_", " "))
    lines = [f"{'✓' if i in carried_by else '✗'} {p['text']}" + (f" — {', '.join(carried_by[i][:3])}" if i in carried_by else "")
             for i, p in enumerate(points[:6])]
    st.markdown("**Selling points** (best first)\n\n" + "\n".join(f"- {plain(line)}" for line in lines))


def _regenerate(v: Variant, keys: list[str]) -> None:
    try:
        engine = get_engine()
        with st.spinner(f"Writing new text for {', '.join(k.replace('_', ' ') for k in keys)}…"):
            regenerate_assets(store, engine_generate_fn(engine), v.variant_id, keys)
    except MarketLabError as e:
        st.session_state["copy_asset_error"] = (v.variant_id, e)
        return
    st.rerun()


def _keywords_input(v: Variant, editor: bool) -> None:
    """The ad group's keywords, comma-separated: ad strength looks for them in the headlines; the export writes them."""
    saved = ", ".join(v.params.get("keywords") or [])
    typed = st.text_input("Keywords for this ad group", saved, disabled=not editor,
                          placeholder="comma-separated, e.g. insulated water bottle, steel bottle",
                          key=f"copy_keywords_{v.variant_id}_{zlib.crc32(saved.encode()):08x}",
                          help="The searches this ad should answer. Without any, what the product is stands in.")
    if editor and typed != saved:
        try:
            set_keywords(store, v.variant_id, typed.split(","))
        except MarketLabError as e:
            show_error(e)
            return
        st.rerun()


def _pin(v: Variant, key: str, position: int | None) -> None:
    try:
        set_pin(store, v.variant_id, key, position)
    except MarketLabError as e:
        st.session_state["copy_asset_error"] = (v.variant_id, e)
    st.rerun()


def asset_ad_card(v: Variant, spec: ChannelSpec, editor: bool) -> None:
    """One assembled ad (RSA, Meta), full width: every asset editable, lockable and regenerable on its own."""
    locked = set(v.params.get("locked", []))
    pins = v.params.get("pins") or {}
    origins = v.params.get("assets", {})
    st.caption("Lock an asset to keep it when you regenerate; ↻ writes a new one in its place and leaves the rest."
               + (" Pin one to make Google always show it in that position (it lowers ad strength)." if spec.name == "google_rsa" else ""))
    left, right = st.columns([3, 2])
    edited: dict[str, str] = {}
    wanted_locks: set[str] = set()
    with left:
        for fspec in spec.fields:
            if fspec.key not in v.fields:
                continue
            value = v.fields[fspec.key]
            limit = f" ({len(value)}/{fspec.max_chars})" if fspec.max_chars else ""
            source = {"model": " · model", "data": " · product data"}.get(origins.get(fspec.key, ""), "")
            # Keyed by the saved text too: a browser sends back what an input shows, so after a regeneration
            # only a new key makes it show the new text.
            widget = f"copy_edit_{v.variant_id}_{fspec.key}_{zlib.crc32(value.encode()):08x}"
            if fspec.group_name == "path":
                edited[fspec.key] = st.text_input(f"{fspec.label}{limit}", value, key=widget)
                continue
            places = PIN_POSITIONS.get(fspec.group_name, ()) if spec.name == "google_rsa" else ()
            columns = st.columns([6, 1.4, 1.5, 0.9] if places else [6, 1.5, 0.9], vertical_alignment="bottom")
            c_text, c_lock, c_regen = columns[0], columns[-2], columns[-1]
            edited[fspec.key] = c_text.text_input(f"{fspec.label}{limit}{source}", value, key=widget)
            if places:
                saved = pins.get(fspec.key)
                # Keyed by the saved pin: a refused pin must not stay shown as chosen.
                chosen = columns[1].selectbox("Pin", [None, *places], index=[None, *places].index(saved) if saved in places else 0,
                                         format_func=lambda p: "—" if p is None else f"Position {p}", disabled=not editor,
                                         key=f"copy_pin_{v.variant_id}_{fspec.key}_{saved}",
                                         help=f"Google always shows a pinned {fspec.group_name} in that position.")
                if chosen != saved:
                    _pin(v, fspec.key, chosen)
            if c_lock.checkbox("Lock", fspec.key in locked, key=f"copy_lock_{v.variant_id}_{fspec.key}", disabled=not editor):
                wanted_locks.add(fspec.key)
            if c_regen.button("↻", key=f"copy_regen_{v.variant_id}_{fspec.key}", disabled=not editor or fspec.key in locked,
                              help=f"Write a new {fspec.label.lower()}; the rest of the ad stays."):
                _regenerate(v, [fspec.key])
            if fspec.max_chars and len(value) > fspec.max_chars:
                st.error(f"{len(value)} characters: over the {fspec.max_chars} limit.")
    if editor and wanted_locks != locked:
        set_locked(store, v.variant_id, sorted(wanted_locks))
        st.rerun()
    with right:
        if spec.name == "google_rsa":
            _keywords_input(v, editor)
        if strength := v.scores.get("ad_strength"):
            _strength_meter(strength)
        _selling_points(v)
        failed = st.session_state.get("copy_asset_error")
        if failed and failed[0] == v.variant_id:
            show_error(failed[1])
            st.session_state.pop("copy_asset_error", None)
        for claim in v.unsupported_claims:
            st.warning(plain(claim))
        for gate in v.scores.get("gates", []):
            st.warning(plain(gate["message"]))
        if v.compliant:
            st.caption("Within every limit of the channel.")
        if v.scores.get("explanation"):
            st.caption(plain(v.scores["explanation"]))
        unlocked = [f.key for f in spec.fields if f.key in v.fields and f.key not in locked and f.group_name != "path"]
        try:
            if st.button(f"Regenerate {len(unlocked)} unlocked", key=f"copy_regen_all_{v.variant_id}", width="stretch",
                         disabled=not editor or not unlocked):
                _regenerate(v, unlocked)
            _review_buttons(v, edited, editor)
        except MarketLabError as e:
            show_error(e)


def _review_buttons(v: Variant, edited: dict[str, str], editor: bool) -> None:
    # Stacked, full width: three buttons side by side in a third of the page were cut to "App…".
    if st.button("Approve", key=f"copy_approve_{v.variant_id}", disabled=v.status == "approved" or not v.compliant or not editor,
                 type="primary", width="stretch"):
        set_status(store, v.variant_id, "approved")
        st.rerun()
    if st.button("Save edit", key=f"copy_save_{v.variant_id}", disabled=edited == {k: v.fields[k] for k in edited} or not editor,
                 width="stretch"):
        update_fields(store, v.variant_id, edited)
        st.rerun()
    if st.button("Reject", key=f"copy_reject_{v.variant_id}", width="stretch", disabled=not editor):
        set_status(store, v.variant_id, "rejected")
        st.rerun()


# ---------------------------------------------------------------- teach the writer
with st.expander("Teach the writer: tune the model on the gold set and on your approved or edited copy"):
    settings = load_settings()
    try:
        adapter = resolve_adapter(settings.adapter, settings.model)
    except MarketLabError as e:
        show_error(e)
        adapter = None
    if adapter:
        made = read_manifest(adapter)
        st.caption(plain(f"The writer now: {settings.model.split('/')[-1]} tuned with the adapter in {adapter}"
                         + (f" ({made['data']['pairs']} examples, {made.get('created', '')[:10]})" if made.get("data") else "")
                         + ". It writes without few-shot examples."))
    else:
        st.caption("The writer now: the base model, steered by few-shot examples in every prompt (slower: the examples "
                   "are most of what it reads).")
    lessons = cached_read(teaching.teaching_set, reads=("copy_variants", "products"))
    config = TuneConfig()
    seconds = estimate_seconds(approx_tokens(lessons.pairs), config.epochs)
    sources = lessons.by_source()
    st.markdown(plain(f"It would learn from {count(len(lessons.pairs), 'example')}: {sources.get('gold', 0)} from the gold set, "
                      f"{sources.get('approved', 0)} you approved, {sources.get('edited', 0)} you edited"
                      f"{f' ({len(lessons.refused)} left out: they fail a check)' if lessons.refused else ''}. "
                      f"{config.epochs} epochs take about {duration(seconds)} on this machine's CPU; it runs as a job, "
                      f"so you can keep working, and Stop keeps a checkpoint to go on from."))
    out_dir = settings.db_path.parent / "adapters" / "mine"  # beside the database: data/adapters/mine by default
    teach = st.button("Teach the writer", key="copy_teach", icon=":material/school:",
                      disabled=not lessons.pairs or not store.user.can_edit, help=None if store.user.can_edit else VIEWER_HELP)
    if teach:
        try:
            from core.llm.generator import base_model_dir  # torch and transformers load here, only when asked

            base_dir, _ = base_model_dir(settings.model, settings.model_cache)
            work = teaching.teach_work(store, lessons, base_dir, out_dir, config, base_name=resolve_model(settings.model).name)
            get_job_board().submit("Teaching the writer", store.user.name, teaching.steps_of(lessons, config), work, unit="step")
            st.rerun()
        except MarketLabError as e:
            show_error(e)
    if (out_dir / "manifest.json").is_file() and adapter != out_dir.resolve():
        st.info(plain(f"An adapter you trained is in {out_dir}. To write with it, set MARKETLAB_ADAPTER={out_dir} and restart "
                      "MarketLab (make run); set it to none to go back to the base model."))

# ---------------------------------------------------------------- the variants, side by side
shown = cached_read(list_variants, VariantFilter(product_ids=tuple(product_ids), channel=channel, statuses=("draft", "approved")))
if not product_ids:
    st.stop()
if not shown:
    st.info("No variants for this product and channel yet: generate some.")
    st.stop()

spec = CHANNELS[channel]
editor = store.user.can_edit
if not editor:
    st.caption(f"You are signed in as a viewer: approving, editing and rejecting are for editors. {VIEWER_HELP}")
for product_id in dict.fromkeys(v.product_id for v in shown):
    # By rank only: approving must not move the card from under the pointer (the badge says it is approved).
    variants = sorted([v for v in shown if v.product_id == product_id], key=lambda v: (v.rank or 99, v.created_at))
    if len(product_ids) > 1:
        detail = cached_read(catalog.get_product, product_id, reads=ALL_BUT_COPY)
        st.subheader(plain(detail.product["title"] if detail else product_id))
    diversity = variants[0].scores.get("set", {}) if variants and isinstance(variants[0].scores.get("set"), dict) else {}
    if diversity:
        st.caption(f"How different these variants are: {diversity.get('distinct_2', 0):.0%} of their word pairs are not "
                   f"repeated, and they overlap {diversity.get('self_bleu', 0):.0%} with each other.",
                   help="Distinct-2 (share of word pairs used once; higher is more varied) and self-BLEU (overlap between "
                        "variants; lower is more varied).")
    if spec.pooled:
        for v in variants:
            with st.container(border=True):
                badge = "✅ approved" if v.status == "approved" else "draft"
                st.markdown(f"**Ad #{v.rank or '–'}** · {plain(v.tone)} · {badge}")
                if v.status == "approved" and v.last_review:
                    st.caption(plain(f"Approved by {v.last_review['by']}, {v.last_review['at']}"))
                asset_ad_card(v, spec, editor)
        continue
    for row in range(0, len(variants), 3):
        for col, v in zip(st.columns(3), variants[row:row + 3]):
            with col.container(border=True):
                badge = "✅ approved" if v.status == "approved" else "draft"
                st.markdown(f"**#{v.rank or '–'}** · {plain(v.tone)} · {badge}")
                if v.status == "approved" and v.last_review:
                    st.caption(plain(f"Approved by {v.last_review['by']}, {v.last_review['at']}"))
                edited: dict[str, str] = {}
                for fspec in spec.fields:
                    if fspec.key not in v.fields:
                        continue
                    value = v.fields[fspec.key]
                    limit = f" ({len(value)}/{fspec.max_chars})" if fspec.max_chars else ""
                    edited[fspec.key] = st.text_area(f"{fspec.label.rstrip(':')}{limit}", value, key=f"copy_edit_{v.variant_id}_{fspec.key}",
                                                     height=68 if (fspec.max_chars or 200) <= 40 else 110)
                    if fspec.max_chars and len(value) > fspec.max_chars:
                        st.error(f"{len(value)} characters: over the {fspec.max_chars} limit.")
                if v.compliant:
                    st.caption("Within every limit of the channel.")
                for claim in v.unsupported_claims:
                    st.warning(plain(claim))
                for gate in v.scores.get("gates", []):  # limits kept, yet not publishable as is: say what to fix
                    st.warning(plain(gate["message"]))
                if strength := v.scores.get("ad_strength"):
                    st.markdown(f"**Ad strength: {strength['level']}**")
                    if strength["actions"]:
                        st.caption(plain(" ".join(strength["actions"])))
                coverage = v.scores.get("coverage", {})
                if coverage:
                    st.caption(plain("Mentions: " + (", ".join(coverage.get("mentioned", [])) or "no key attribute")))
                readability = v.scores.get("readability")
                banned = [b.get("term", b.get("word", "")) for b in v.scores.get("banned", [])]
                st.caption(("" if readability is None else f"Reading ease {readability:.0f}") +
                           (f" · banned words: {', '.join(banned)}" if banned else "") + f" · tries {v.tries}")
                if v.scores.get("explanation"):
                    st.caption(plain(v.scores["explanation"]))
                try:
                    _review_buttons(v, edited, editor)
                except MarketLabError as e:
                    show_error(e)

# ---------------------------------------------------------------- export
st.subheader("Export approved copy")
approved = [v for v in shown if v.status == "approved"]
if not approved:
    st.caption("Approve variants to export them.")
else:
    e1, e2 = st.columns(2)
    if channel == "google_rsa":
        campaign = e1.text_input("Campaign name", "MarketLab", key="copy_export_campaign")
        template = e1.text_input("Final URL template", "", key="copy_export_url",
                                 placeholder="https://shop.example/p/{product_id}?utm_content={variant_id}",
                                 help="Where each ad leads. {product_id}, {variant_id}, {campaign} and {product_url} are filled in; "
                                      "left empty, the product's own URL from the catalog is used.")
        try:
            editor_csv = export.google_ads_export(store, campaign=campaign, final_url_template=template.strip(), product_ids=product_ids)
        except MarketLabError as e:
            show_error(e)
        else:
            e1.download_button(f"Google Ads Editor CSV ({count(editor_csv.ads, 'ad')})", editor_csv.csv,
                               file_name="responsive-search-ads.csv", mime="text/csv", key="copy_export_csv",
                               disabled=not editor_csv.ads)
            for reason in editor_csv.skipped:
                e1.warning(plain(reason))
    e2.download_button(f"JSON ({count(len(approved), 'variant')})",
                       export.approved_json(store, channel=channel, product_ids=product_ids),
                       file_name=f"copy-{channel}.json", mime="application/json", key="copy_export_json")
