"""Server load without browsers: N sessions speaking Streamlit's own websocket protocol to one MarketLab.

Why a second load bench: on the 2-core dev box the N Chromiums of ``bench/load.py`` need more
CPU than the server (server CPU stays under a third of a core while the load average passes 15),
so at N = 10 that bench measures Chromium, not MarketLab. On a real team every browser runs on
its own machine; what the app serves is the server's side. This bench is the server's side,
measured: each session connects to ``/_stcore/stream`` as the browser does, and each interaction
is one ``BackMsg.rerun_script`` (the page and the widget values, as the browser sends them),
timed until the server's ``script_finished`` — script run, queries, charts and every element
serialised and sent. Nothing is rendered. The same store, server, think time and mix as
``bench/load.py`` (whose helpers it imports):

    Overview     open it
    Catalog      open it, search a word (the "<n> products match" caption must carry the right n)
    Funnels      open it, change "Break down by" (device / campaign / the segment run)
    Segments     open it, pick another run (the page redraws its map, cards and charts)
    Copy Studio  open it on one of the session's products and the Email channel, approve a draft
                 (the next rerun must show its Approve button disabled); the approvals are
                 checked in the database at the end

An error is an exception or error alert in the page, a missing expected element, or no answer
within 30 s. Uses the ``websockets`` package (installed with Streamlit's server).

    .venv/bin/python bench/load_server.py --sessions 1,5,10,20 --duration 60 --think 3,10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState
from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load  # noqa: E402  (bench/load.py: store, server, probe, percentiles)

TIMEOUT_S = 30
AREAS = {"Overview": 1.0, "Catalog": 2.0, "Funnels": 2.0, "Segments": 1.5, "Copy Studio": 1.5}
PATHS = {"Overview": "", "Catalog": "catalog", "Funnels": "funnels", "Segments": "segments", "Copy Studio": "copy_studio"}


@dataclass
class Widget:
    id: str
    kind: str
    proto: object


@dataclass
class Page:
    """What one script run sent: its widgets by user key, the text of its markdown, errors."""
    widgets: dict[str, Widget] = field(default_factory=dict)
    texts: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def key(self, suffix: str) -> Widget | None:
        return self.widgets.get(suffix)


def _user_key(widget_id: str) -> str:
    # "$$ID-<hex hash>-<user key>" when a key was given (streamlit.elements.lib.utils); keys may hold "-".
    parts = widget_id.split("-", 2)
    return parts[2] if widget_id.startswith("$$ID-") and len(parts) == 3 else ""


class Session:
    def __init__(self, url: str, index: int, n: int, fx: load.Fixture, rng: random.Random, products: list[str],
                 records: list, approvals: list) -> None:
        self.ws_url = url.replace("http://", "ws://") + "/_stcore/stream"
        self.origin = url
        self.index, self.n, self.fx, self.rng, self.products = index, n, fx, rng, products
        self.records, self.approvals = records, approvals
        self.ws = None
        self.path = ""
        self.states: dict[str, WidgetState] = {}  # the current page's widget values, as a browser keeps them

    async def rerun(self, kind: str, path: str, changes: list[WidgetState] = ()) -> Page | None:
        """One interaction: send the page and widget values, wait for script_finished. None on error."""
        if path != self.path:
            self.states = {}
        self.path = path
        for change in changes:
            if not change.HasField("trigger_value"):
                self.states[change.id] = change
        msg = BackMsg()
        msg.rerun_script.page_name = path
        msg.rerun_script.query_string = ""
        msg.rerun_script.widget_states.widgets.extend([*self.states.values(),
                                                       *[c for c in changes if c.HasField("trigger_value")]])
        started = time.monotonic()
        page = Page()
        try:
            await self.ws.send(msg.SerializeToString())
            async with asyncio.timeout(TIMEOUT_S):
                while True:
                    fwd = ForwardMsg()
                    fwd.ParseFromString(await self.ws.recv())
                    which = fwd.WhichOneof("type")
                    if which == "new_session":
                        page = Page()  # a new run of the script (e.g. after st.rerun): only its elements count
                    elif which == "delta" and fwd.delta.WhichOneof("type") == "new_element":
                        self._collect(fwd.delta.new_element, page)
                    elif which == "script_finished" and fwd.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                        break  # an st.rerun() in the page (Approve does one) is part of the same interaction
        except (TimeoutError, OSError, Exception) as e:  # a dropped connection counts as an error too
            self.records.append(load.Record(self.n, self.index, kind, started, time.monotonic() - started, False,
                                            error=f"{type(e).__name__}: {e}"[:200]))
            return None
        seconds = time.monotonic() - started
        ok = not page.errors
        self.records.append(load.Record(self.n, self.index, kind, started, seconds, ok,
                                        error="; ".join(page.errors)[:200] if page.errors else ""))
        return page if ok else None

    @staticmethod
    def _collect(element, page: Page) -> None:
        kind = element.WhichOneof("type")
        inner = getattr(element, kind)
        if kind == "exception":
            page.errors.append(f"exception: {inner.message[:120]}")
        elif kind == "alert" and inner.format == 1:  # Alert.Format.ERROR
            page.errors.append(f"error: {inner.body[:120]}")
        elif kind in ("markdown", "heading"):
            page.texts.append(inner.body)
        widget_id = getattr(inner, "id", "")
        if widget_id and widget_id.startswith("$$ID-"):
            page.widgets[_user_key(widget_id)] = Widget(widget_id, kind, inner)

    async def expect_text(self, page: Page | None, kind: str, pattern: str) -> bool:
        if page is None:
            return False
        if not any(re.search(pattern, t) for t in page.texts):
            self.records[-1].ok = False
            self.records[-1].error = f"expected text {pattern!r} not on the page"
            return False
        return True

    def select(self, page: Page, key: str, choose) -> WidgetState | None:
        widget = page.key(key)
        if widget is None:
            return None
        options = list(widget.proto.options)
        label = choose(options)
        if label is None:
            return None
        return WidgetState(id=widget.id, string_value=label)

    # ---------------------------------------------------------------- the mix

    async def catalog(self) -> None:
        page = await self.rerun("open Catalog", "catalog")
        if page is None or page.key("catalog_search") is None:
            return
        await self.think()
        word = self.rng.choice(sorted(self.fx.search_counts))
        n = self.fx.search_counts[word]
        page = await self.rerun("catalog: search", "catalog", [WidgetState(id=page.key("catalog_search").id, string_value=word)])
        await self.expect_text(page, "catalog: search", rf"\b{n:,} products? match")

    async def funnels(self) -> None:
        page = await self.rerun("open Funnels", "funnels")
        if page is None:
            return
        await self.think()
        wanted = self.rng.choice(["device", "campaign", self.fx.run_label])
        change = self.select(page, "funnel_breakdown", lambda options: wanted if wanted in options else None)
        if change is not None:
            page = await self.rerun("funnels: breakdown", "funnels", [change])
            await self.expect_text(page, "funnels: breakdown", rf"By {re.escape(wanted)}")

    async def segments(self) -> None:
        page = await self.rerun("open Segments", "segments")
        if page is None:
            return
        await self.think()
        change = self.select(page, "seg_run_id", lambda options: self.rng.choice(options) if options else None)
        if change is not None:
            await self.rerun("segments: pick a run", "segments", [change])

    async def copy_studio(self) -> None:
        page = await self.rerun("open Copy Studio", "copy_studio")
        if page is None or not self.products:
            return
        pid = self.rng.choice(self.products)
        product = self.select(page, "copy_product", lambda options: next((o for o in options if o.endswith(f" · {pid}")), None))
        channel = self.select(page, "copy_channel", lambda options: next((o for o in options if o.lower().startswith("email")), None))
        if product is None or channel is None:
            return
        await self.think()
        page = await self.rerun("copy: product and channel", "copy_studio", [product, channel])
        if page is None:
            return
        drafts = [w for key, w in page.widgets.items() if key.startswith("copy_approve_") and not w.proto.disabled]
        if not drafts:
            return
        target = self.rng.choice(drafts)
        await self.think()
        begun = time.monotonic()
        page = await self.rerun("copy: approve", "copy_studio", [WidgetState(id=target.id, trigger_value=True)])
        if page is None:
            return
        variant_id = _user_key(target.id).removeprefix("copy_approve_")
        after = page.key(f"copy_approve_{variant_id}")
        if after is None or not after.proto.disabled:
            self.records[-1].ok = False
            self.records[-1].error = f"{variant_id} still approvable after Approve"
            return
        self.approvals.append(load.Approval(self.n, self.index, variant_id, begun, time.monotonic()))

    async def think(self) -> None:
        await asyncio.sleep(self.rng.uniform(*load.THINK_S))

    async def run(self, deadline: float, stagger: float) -> None:
        await asyncio.sleep(stagger)
        async with connect(self.ws_url, subprotocols=["streamlit"], origin=self.origin, max_size=2**28,
                           open_timeout=TIMEOUT_S) as ws:
            self.ws = ws
            await self.rerun("open app", "")
            areas, weights = zip(*AREAS.items())
            while time.monotonic() < deadline:
                await self.think()
                area = self.rng.choices(areas, weights)[0]
                await {"Overview": lambda: self.rerun("open Overview", ""), "Catalog": self.catalog, "Funnels": self.funnels,
                       "Segments": self.segments, "Copy Studio": self.copy_studio}[area]()


async def run_n(url: str, n: int, duration: float, seed: int, fx: load.Fixture, probe: load.ServerProbe,
                offset: int) -> tuple[load.Results, dict]:
    results = load.Results()
    sessions = [Session(url, i, n, fx, random.Random(seed * 1000 + n * 100 + i),
                        load.session_products(fx.draft_products, offset, i, n), results.records, results.approvals)
                for i in range(n)]
    info = await load.drive(sessions, n, duration, seed, probe, results, hard_limit_s=duration + 4 * TIMEOUT_S)
    return results, info


async def bench(args: argparse.Namespace, url: str, fx: load.Fixture, probe: load.ServerProbe) -> tuple[list[dict], load.Results]:
    everything = load.Results()
    rows = []
    # A warm-up session first: imports and first queries are the server start's cost, not N's.
    warm, _ = await run_n(url, 1, 5, args.seed + 99, fx, probe, offset=0)
    print(f"warm-up: {len(warm.records)} interactions, {sum(not r.ok for r in warm.records)} errors", flush=True)
    offset = 0
    for n in args.sessions:
        results, info = await run_n(url, n, args.duration, args.seed, fx, probe, offset)
        offset += n
        everything.records += results.records
        everything.approvals += results.approvals
        rows.append(load.report_n(n, results, info))
    return rows, everything


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", default="1,5,10,20")
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--think", default="3,10", help="MIN,MAX seconds between one session's interactions")
    parser.add_argument("--scale", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    args.sessions = [int(s) for s in args.sessions.split(",") if s.strip()]
    load.THINK_S = tuple(float(x) for x in args.think.split(","))
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    with tempfile.TemporaryDirectory(prefix="marketlab-load-server-") as tmp:
        work = Path(tmp)
        db = work / "load.duckdb"
        began = time.monotonic()
        fx = load.build_store(db, args.scale, args.seed)
        print(f"store built in {time.monotonic() - began:.1f} s", flush=True)
        hook = work / "hook"
        hook.mkdir()
        (hook / "sitecustomize.py").write_text(load.LOG_HOOK)
        saved = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = os.pathsep.join([str(hook), *([saved] if saved else [])])
        try:
            with load.serve_app(db, work) as url:
                probe = load.ServerProbe(int(url.rsplit(":", 1)[1]))
                rows, results = asyncio.run(bench(args, url, fx, probe))
        finally:
            os.environ.pop("PYTHONPATH", None) if saved is None else os.environ.__setitem__("PYTHONPATH", saved)
        log = (work / "streamlit.log").read_text(errors="replace")
        landed, missing, _ = load.check_database(db, results.approvals)
    runs = [(float(m.group(1)), float(m.group(2))) for m in re.finditer(r"MARKETLAB_SCRIPT_RUN (\S+) (\S+)", log)]
    print(f"\n### Summary (no browsers; think time {load.THINK_S[0]:g}–{load.THINK_S[1]:g} s)\n")
    print("Latency: rerun sent to script_finished received (the server's whole answer). Script run: the script's own time.\n")
    print("| sessions | interactions | errors | p50 (s) | p95 (s) | max (s) | script p50 / p95 (s) | server CPU | server RSS peak (MB) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        start, end = r.pop("window")
        secs = [s for at, s in runs if start <= at <= end]
        print(f"| {r['sessions']} | {r['interactions']} | {r['errors']} | {load.fmt(r['p50_s'])} | {load.fmt(r['p95_s'])} "
              f"| {load.fmt(r['max_s'])} | {load.fmt(load.pct(secs, 50))} / {load.fmt(load.pct(secs, 95))} "
              f"| {r['server_cpu_pct']:.0f}% | {r['server_rss_peak_mb']:.0f} |")
    print(f"\nMachine: {load.machine_line('(no browser)')}")
    print(f"Approvals: {landed} of {len({a.variant_id for a in results.approvals})} landed in the database"
          + (f"; NOT landed: {', '.join(missing[:10])}" if missing else "")
          + f"; {load.overlapping(results.approvals)} pairs from different sessions overlapped in time.")
    tracebacks = log.count("Traceback (most recent call last)")
    if tracebacks:
        print(f"Server log: {tracebacks} traceback(s).")
    target = next((r for r in rows if r["sessions"] == 10), None)
    if target:
        met = target["errors"] == 0 and target["p95_s"] < 2.0
        print(f"Target (10 sessions: zero errors, p95 < 2 s): {'met' if met else 'MISSED'} "
              f"({target['errors']} errors, p95 {load.fmt(target['p95_s'])} s).")
    return 1 if (sum(not r.ok for r in results.records) or missing) else 0


if __name__ == "__main__":
    sys.exit(main())
