"""Load: N concurrent real browser sessions against one MarketLab server, for a bounded time.

A demo store (``python -m core demo --scale 0.05``, ~67 products, 1,500 users, ~50k events) is
seeded into a temp database, segmented once (``python -m core segment --k 4``) so the Segments
page and the segment breakdown have a run, and given a few template-written email drafts per
product (written through ``core.copy.variants.generate_variants`` with a canned writer, no model)
so there is something to approve. ONE ``streamlit run app.py`` serves it on 127.0.0.1 (the
helpers of tests/e2e/conftest.py: the same command, the same health check).

For each N in ``--sessions``, one system Chromium (the flags of /work/shared/TESTING.md) opens N
browser contexts, each a separate Streamlit session driven by its own asyncio task (Playwright's
async API: one browser, N contexts, N tasks). Each session opens the app, then loops for
``--duration`` seconds, with a small seeded think time between interactions, over a weighted mix:

    Overview     open it (metrics and charts of the whole store; opening is the interaction)
    Catalog      search a word (the "<n> products match" caption must show the exact count,
                 computed beforehand from the database); sometimes open a product
    Funnels      change "Break down by" to device / campaign / the segment run
    Segments     open a persona card's numbers (an expander: the browser only, no script run);
                 change the compared segment
    Copy Studio  find the session's product, pick the Email channel, approve a random draft
                 (the button of that very variant must turn disabled); with ``--generate``,
                 about 1 iteration in 10 also writes 1 email variant with the resident model

Latency is one interaction: from the click (or keystroke) until the expected element is
visible AND Streamlit is idle (``tests/e2e/conftest.IDLE``: connected, no script running).
It includes the browser's own rendering: Chromium runs on the same machine as the server, so at
high N the two compete for the same cores. An error is a timeout (30 s, 300 s for generation),
an ``stException`` or ``st.error`` element on the page after the interaction, or an uncaught
page error. After an error the session reloads "/" and carries on. Percentiles are nearest-rank.

Printed per N: interactions, errors, p50 / p95 / max of non-generation interactions, the same
by interaction kind, count / p50 / p95 of generations, the server's peak RSS and CPU use, and
the load average. The summary adds the server's own time per script run (a sitecustomize hook
times Streamlit's ScriptRunner._run_script), because the browsers share the server's cores here:
on a real team each browser has a machine of its own. At the end: every approval a session saw land is checked in the database (two
sessions share each product, so approvals of one product's drafts do overlap in time), and the
server log is searched for model loads (a sitecustomize hook in the server's PYTHONPATH only
turns the ``core.llm`` logger's INFO lines on; nothing else of the app changes): with
``--generate`` there must be exactly one "Loaded" line however many sessions generate.

    .venv/bin/python bench/load.py --sessions 1,2 --duration 20                 # smoke
    .venv/bin/python bench/load.py --sessions 1,5,10,20 --duration 60           # the RESULTS.md table (stress)
    .venv/bin/python bench/load.py --sessions 1,5,10,20 --duration 60 --think 3,10   # people reading pages
    .venv/bin/python bench/load.py --sessions 1,5,10,20 --duration 60 --generate

Needs Debian's chromium at /usr/bin/chromium and the dev extras (playwright, pytest); never
``playwright install``. The target (issue 6): 10 sessions with zero errors and p95 under 2 s for
non-generation interactions on the 2-core dev box.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import re
import signal
import sys
import tempfile
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.async_api import Page, async_playwright, expect  # noqa: E402


def _e2e_conftest():
    """tests/e2e/conftest.py, imported by path: a site-packages `tests` package can shadow the repo's tests/."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("marketlab_e2e_conftest", ROOT / "tests" / "e2e" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_e2e = _e2e_conftest()
CHROMIUM, CHROMIUM_ARGS, IDLE = _e2e.CHROMIUM, _e2e.CHROMIUM_ARGS, _e2e.IDLE
_run_cli, serve_app = _e2e._run_cli, _e2e.serve_app  # the same commands and health check as the browser tests

TIMEOUT_MS = 30_000  # one interaction, as conftest.wait_idle
GEN_TIMEOUT_MS = 300_000  # one generation: the model loads on first use, and several sessions queue on it
THINK_S = (0.3, 1.5)  # --think: the pause between one session's interactions
SHOTS: Path | None = None  # --shots
BENCH_MODEL = "bench-template"  # the `model` of the seeded drafts, to tell them from generated ones
SEARCH_WORDS = ("Summit", "Mug", "Headlamp", "Tent", "Water Bottle", "Ridgeway", "Steel", "Running")
DRAFT_PRODUCTS = 40  # products given seeded email drafts
DRAFT_TONES = ("friendly", "premium", "urgent")
DRAFTS_PER_TONE = 2
# Area -> weight of an iteration going there (Copy Studio is also forced when a generation is due).
AREAS = {"Overview": 1.0, "Catalog": 2.0, "Funnels": 2.0, "Segments": 1.5, "Copy Studio": 1.5}
TITLES = {"Overview": "MarketLab", "Catalog": "Catalog", "Funnels": "Funnels", "Segments": "Segments",
          "Copy Studio": "Copy Studio"}
APP_ERRORS = '[data-testid="stException"], [data-testid="stAlertContentError"]'
# Turns on the INFO lines of core.llm (e.g. "Loaded SmolLM2… on cpu in 2.1 s") in the server's log only.
LOG_HOOK = """import logging, sys
_h = logging.StreamHandler(sys.stderr)
_h.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
_l = logging.getLogger("core.llm")
_l.addHandler(_h)
_l.setLevel(logging.INFO)
_l.propagate = False

# The server's own share of each interaction: every script run's duration, as one line in the log.
import time as _time
from streamlit.runtime.scriptrunner import script_runner as _sr
_run = _sr.ScriptRunner._run_script
def _timed(self, rerun_data):
    _t0 = _time.perf_counter()
    try:
        return _run(self, rerun_data)
    finally:
        sys.stderr.write(f"MARKETLAB_SCRIPT_RUN {_time.time():.3f} {_time.perf_counter() - _t0:.4f}\\n")
_sr.ScriptRunner._run_script = _timed
"""


# ---------------------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------------------

@dataclass
class Fixture:
    """What the sessions need to know about the store to check what they see."""
    search_counts: dict[str, int]  # word -> "<n> products match"
    products: dict[str, str]  # product id -> title (for "Open a product")
    run_label: str  # the segment run's breakdown label on Funnels
    segment_names: list[str]
    draft_products: list[str]  # products with seeded email drafts, in assignment order


def _template_writer(prompts: list[list[dict[str, str]]], n: int, max_new_tokens: int, temperature: float,
                     seed: int) -> list[list[str]]:
    """Email copy from the product title in the prompt, varied by seed and index: drafts to approve, no model."""
    phrases = ["Made for every day", "Ready when you are", "A smart everyday choice", "Simple and well made",
               "Here for the long run", "Good to go", "Your new favourite", "Take it along", "Pick yours today"]
    out = []
    for messages in prompts:
        found = re.search(r"^title: (.*)$", messages[-1]["content"], re.MULTILINE)
        title = found.group(1).strip() if found else "this pick"
        brand = title.split()[0]
        k = seed + zlib.crc32(json.dumps(messages).encode())  # the tone is in the prompt: tones differ
        out.append([f"Subject: {brand}: {phrases[(k + i) % len(phrases)]}\n"
                    f"Preheader: {phrases[(k + i + 3) % len(phrases)]}, the {title[:50]}."
                    for i in range(n)])
    return out


def build_store(db: Path, scale: float, seed: int) -> Fixture:
    env = dict(os.environ)
    _run_cli("demo", "--scale", str(scale), "--seed", str(seed), "--db", str(db), env=env)
    _run_cli("segment", "--k", "4", "--db", str(db), env=env)

    from core import catalog, funnels, segments
    from core.catalog import CatalogFilter
    from core.copy.variants import GenerationRequest, generate_variants
    from core.store import Store

    store = Store(db)
    try:
        with store.cursor() as cur:
            products = dict(cur.execute("SELECT product_id, title FROM products ORDER BY product_id").fetchall())
        counts = {w: catalog.search(store, CatalogFilter(text=w)).total for w in SEARCH_WORDS}
        counts = {w: c for w, c in counts.items() if c}
        run_id = segments.list_runs(store)[0].run_id
        run_label = next(o.label for o in funnels.breakdown_options(store) if o.key == f"segment:{run_id}")
        names = [s.name for s in segments.load_run(store, run_id).segments]
        pool = random.Random(seed).sample(sorted(products), min(DRAFT_PRODUCTS, len(products)))
        request = GenerationRequest(tuple(pool), "email", tones=DRAFT_TONES, n=DRAFTS_PER_TONE, seed=seed, oversample=2)
        made = generate_variants(store, _template_writer, request, model_name=BENCH_MODEL, save=True)
        approvable = {v.product_id for v in made if v.compliant}
    finally:
        store.close()
    drafts = [p for p in pool if p in approvable]
    print(f"store: {len(products)} products, {len(made)} seeded email drafts on {len(drafts)} products, run {run_id}",
          flush=True)
    return Fixture(counts, products, run_label, names, drafts)


# ---------------------------------------------------------------------------------------
# One session
# ---------------------------------------------------------------------------------------

@dataclass
class Record:
    n: int
    session: int
    kind: str
    start: float  # monotonic
    seconds: float
    ok: bool
    generation: bool = False
    error: str = ""


@dataclass
class Approval:
    n: int
    session: int
    variant_id: str
    start: float
    end: float


@dataclass
class Results:
    records: list[Record] = field(default_factory=list)
    approvals: list[Approval] = field(default_factory=list)
    no_draft_left: int = 0


class Session:
    def __init__(self, page: Page, n: int, index: int, fixture: Fixture, results: Results, rng: random.Random,
                 generate: bool, products: list[str]) -> None:
        self.page, self.n, self.index, self.fx, self.results, self.rng = page, n, index, fixture, results, rng
        self.generate = generate
        self.products = products  # this session's draft products, in the order it works through them
        self.page_errors: list[str] = []
        self.current = ""
        self.opened_personas: set[int] = set()
        self.shots = 0
        page.on("pageerror", lambda exc: self.page_errors.append(str(exc).splitlines()[0][:200]))

    # ------------------------------------------------------------ measuring

    async def idle(self, timeout: float = TIMEOUT_MS) -> None:
        await expect(self.page.locator(IDLE)).to_have_count(1, timeout=timeout)

    async def measure(self, kind: str, action: Callable[[], Awaitable[Any]], *, generation: bool = False) -> bool:
        seen_errors = len(self.page_errors)
        start = time.monotonic()
        error = ""
        try:
            await action()
        except Exception as e:  # Playwright's TimeoutError, expect's AssertionError, a closed page…
            lines = [line.strip() for line in str(e).strip().splitlines() if line.strip() and line.strip() != "Call log:"]
            error = f"{type(e).__name__}: {' / '.join(lines[:3])[:400]}"
        seconds = time.monotonic() - start
        if not error:
            try:
                shown = self.page.locator(APP_ERRORS)
                if await shown.count():
                    error = "app error on the page: " + (await shown.first.inner_text(timeout=2_000)).replace("\n", " ")[:200]
            except Exception as e:
                error = f"checking the page failed: {type(e).__name__}"
        if not error and len(self.page_errors) > seen_errors:
            error = "page error: " + self.page_errors[seen_errors]
        self.results.records.append(Record(self.n, self.index, kind, start, seconds, not error, generation, error))
        if error:
            await self.screenshot(kind)
            await self.recover()
        return not error

    async def screenshot(self, kind: str) -> None:
        """With --shots DIR, the page as it was at an error (at most 5 per session and N)."""
        if SHOTS is None or self.shots >= 5:
            return
        self.shots += 1
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"n{self.n}-s{self.index}-{self.shots}-{kind}")
        try:
            SHOTS.mkdir(parents=True, exist_ok=True)
            await self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
        except Exception:
            pass

    async def recover(self) -> None:
        """After an error: reload the app at "/" so the next interaction starts clean (not measured)."""
        self.current = ""
        try:
            await self.page.goto("/", timeout=60_000)
            await expect(self.page.get_by_role("heading", name="MarketLab", level=1)).to_be_visible(timeout=60_000)
            await self.idle(60_000)
            self.current = "Overview"
        except Exception:
            pass  # the next interaction will fail and try again

    async def think(self) -> None:
        await asyncio.sleep(self.rng.uniform(*THINK_S))

    # ------------------------------------------------------------ interactions

    async def open_app(self) -> None:
        async def act() -> None:
            await self.page.goto("/")
            await expect(self.page.get_by_role("heading", name="MarketLab", level=1)).to_be_visible(timeout=TIMEOUT_MS)
            await self.idle()
        if await self.measure("open app", act):
            self.current = "Overview"

    async def go_to(self, area: str) -> bool:
        page = self.page

        async def act() -> None:
            await page.get_by_test_id("stSidebar").get_by_test_id("stPageLink-NavLink").filter(has_text=area).click()
            await expect(page.get_by_role("heading", name=TITLES[area], level=1)).to_be_visible(timeout=TIMEOUT_MS)
            await self.idle()
        ok = await self.measure(f"open {area}", act)
        if ok:
            self.current = area
            self.opened_personas.clear()
        return ok

    async def choose(self, box, option: str) -> None:
        """Pick an option of a Streamlit selectbox: open it, type to filter (long lists are virtualised), click."""
        combo = box.get_by_role("combobox")
        await combo.click()
        await combo.fill(option[:40])
        await self.page.get_by_role("option", name=option, exact=True).click()

    @staticmethod
    async def selected(box) -> set[str]:
        """What a selectbox shows now: its input's value and its text (either may hold the choice)."""
        shown: set[str] = set()
        try:
            shown.add((await box.get_by_role("combobox").input_value(timeout=5_000)).strip())
        except Exception:
            pass
        try:
            shown.update(line.strip() for line in (await box.inner_text(timeout=5_000)).splitlines())
        except Exception:
            pass
        return shown

    async def catalog(self) -> None:
        page = self.page
        word = self.rng.choice(sorted(self.fx.search_counts))
        n = self.fx.search_counts[word]
        caption = f"{n:,} product{' matches' if n == 1 else 's match'}"

        async def search() -> None:
            box = page.get_by_role("textbox", name="Search")
            await box.fill(word)
            await box.press("Enter")
            await expect(page.get_by_text(re.compile("^" + re.escape(caption)))).to_be_visible(timeout=TIMEOUT_MS)
            await self.idle()
        if not await self.measure("catalog: search", search) or self.rng.random() < 0.5:
            return
        await self.think()
        # A product the search found (its title holds the word), picked in "Open a product".
        word_products = [(pid, t) for pid, t in self.fx.products.items() if word.lower() in t.lower()]
        if not word_products:
            return
        pid, title = self.rng.choice(word_products)

        async def open_product() -> None:
            await self.choose(page.get_by_test_id("stSelectbox").filter(has_text="Open a product"), f"{title} · {pid}")
            await expect(page.get_by_role("heading", name=title, level=3)).to_be_visible(timeout=TIMEOUT_MS)
            await self.idle()
        await self.measure("catalog: open product", open_product)

    async def funnels(self) -> None:
        page = self.page
        box = page.get_by_test_id("stSelectbox").filter(has_text="Break down by")
        current = await self.selected(box)
        choices = [c for c in ("device", "campaign", self.fx.run_label) if c not in current]
        label = self.rng.choice(choices)

        async def act() -> None:
            await self.choose(box, label)
            await expect(page.get_by_role("heading", name=f"By {label}", exact=True)).to_be_visible(timeout=TIMEOUT_MS)
            await self.idle()
        await self.measure("funnels: breakdown", act)

    async def segments(self) -> None:
        page = self.page
        cards = page.get_by_test_id("stExpander").filter(has_text="The numbers the persona was written from")
        count = await cards.count()
        closed = [i for i in range(count) if i not in self.opened_personas]
        if closed:
            i = self.rng.choice(closed)

            async def open_persona() -> None:
                card = cards.nth(i)
                await card.get_by_text("The numbers the persona was written from").click()
                await expect(card.get_by_test_id("stExpanderDetails")).to_be_visible(timeout=TIMEOUT_MS)
                await self.idle()
            if await self.measure("segments: open persona (no rerun)", open_persona):
                self.opened_personas.add(i)
            await self.think()
        box = page.locator(".st-key-seg_compare_b")
        current = await self.selected(box)
        others = [name for name in self.fx.segment_names if name not in current]
        if not others:
            return
        name = self.rng.choice(others)

        async def compare() -> None:
            await self.choose(box, name)
            await expect(box.get_by_role("combobox")).to_have_value(name, timeout=TIMEOUT_MS)
            await self.idle()
        await self.measure("segments: compare", compare)

    async def copy_studio(self, generate: bool) -> None:
        page = self.page
        if not self.products:
            return
        pid = self.products[0]

        async def find() -> None:
            box = page.get_by_role("textbox", name="Find a product")
            await box.fill(pid)
            await box.press("Enter")
            await expect(page.get_by_role("combobox", name="Product")).to_have_value(re.compile(re.escape(pid)),
                                                                                     timeout=TIMEOUT_MS)
            await self.idle()
        if not await self.measure("copy: find product", find):
            return
        channel = page.get_by_test_id("stSelectbox").filter(has_text="Channel")
        if "Email" not in await self.selected(channel):
            async def email() -> None:
                await self.choose(channel, "Email")
                await expect(page.get_by_text(re.compile(r"^Limits: Subject ≤ 50"))).to_be_visible(timeout=TIMEOUT_MS)
                await self.idle()
            if not await self.measure("copy: email channel", email):
                return
        await self.think()
        if generate:
            await self.generate_one()
            await self.think()
        await self.approve()

    async def generate_one(self) -> None:
        page = self.page

        async def one_variant() -> None:
            box = page.get_by_role("spinbutton", name="Variants")
            await box.fill("1")
            await box.press("Enter")
            await expect(page.get_by_role("button", name="Generate 1 variant(s) per product")).to_be_visible(timeout=TIMEOUT_MS)
            await self.idle()
        if not await self.measure("copy: variants = 1", one_variant):
            return

        async def generate() -> None:
            await page.get_by_role("button", name="Generate 1 variant(s) per product").click()
            saved = page.get_by_text(re.compile(r"\d+ new drafts? saved"))
            await expect(saved.or_(page.locator(APP_ERRORS))).to_be_visible(timeout=GEN_TIMEOUT_MS)
            await self.idle(GEN_TIMEOUT_MS)
        await self.measure("copy: generate (email, n=1)", generate, generation=True)

    async def approve(self) -> None:
        page = self.page
        buttons = page.locator('[class*="st-key-copy_approve_"] button:enabled')
        count = await buttons.count()
        if not count:
            self.results.no_draft_left += 1
            self.products.append(self.products.pop(0))  # the pair's drafts are used up: move to the next product
            return
        target = buttons.nth(self.rng.randrange(count))
        classes = await target.evaluate("b => b.closest('[class*=\"st-key-copy_approve_\"]').className")
        variant_id = re.search(r"st-key-copy_approve_(\S+)", classes).group(1)
        # While a run redraws the cards (approved ones move first), the old button can linger as a stale copy.
        mine = page.locator(f'.st-key-copy_approve_{variant_id}:not([data-stale="true"]) button')
        start = time.monotonic()

        async def act() -> None:
            await mine.click()
            await expect(mine.first).to_be_disabled(timeout=TIMEOUT_MS)
            await self.idle()
            await expect(mine).to_be_disabled(timeout=TIMEOUT_MS)  # one button now, and it stayed disabled
        if await self.measure("copy: approve", act):
            self.results.approvals.append(Approval(self.n, self.index, variant_id, start, time.monotonic()))

    # ------------------------------------------------------------ the loop

    async def run(self, deadline: float, stagger: float) -> None:
        await asyncio.sleep(stagger)
        await self.open_app()
        while time.monotonic() < deadline:
            await self.think()
            generate = self.generate and self.rng.random() < 0.1
            area = "Copy Studio" if generate else self.rng.choices(list(AREAS), weights=list(AREAS.values()))[0]
            if area != self.current and not await self.go_to(area):
                continue
            if time.monotonic() >= deadline:
                break
            await self.think()
            if area == "Catalog":  # Overview has nothing to do but look: opening it is the interaction
                await self.catalog()
            elif area == "Funnels":
                await self.funnels()
            elif area == "Segments":
                await self.segments()
            elif area == "Copy Studio":
                await self.copy_studio(generate)


# ---------------------------------------------------------------------------------------
# The server and the runs
# ---------------------------------------------------------------------------------------

class ServerProbe:
    """RSS and CPU time of the streamlit process (psutil when installed, else /proc)."""

    def __init__(self, port: int) -> None:
        self.pid = self._find(port)
        self.peak_mb = 0.0

    @staticmethod
    def _find(port: int) -> int | None:
        needle = f"--server.port\0{port}\0"
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    cmd = (entry / "cmdline").read_bytes().decode(errors="replace")
                except OSError:
                    continue
                if "streamlit" in cmd and needle in cmd:
                    return int(entry.name)
        return None

    def rss_mb(self) -> float:
        if self.pid is None:
            return float("nan")
        try:
            import psutil
            return psutil.Process(self.pid).memory_info().rss / 2**20
        except ImportError:
            pass
        except Exception:
            return float("nan")
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")

    def cpu_s(self) -> float:
        if self.pid is None:
            return float("nan")
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
        except (OSError, IndexError, ValueError):
            return float("nan")

    async def sample(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.peak_mb = max(self.peak_mb, self.rss_mb())
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except asyncio.TimeoutError:
                pass


async def warm_up(browser, url: str, generate: bool, fixture: Fixture) -> dict[str, float]:
    """One session visits every page once (the server's first imports and queries), and generates once with --generate."""
    results = Results()
    context = await browser.new_context(base_url=url, viewport={"width": 1280, "height": 1000})
    try:
        page = await context.new_page()
        session = Session(page, 0, 0, fixture, results, random.Random(0), generate, list(fixture.draft_products[-1:]))
        await session.open_app()
        for area in ("Catalog", "Funnels", "Segments", "Copy Studio"):
            await session.go_to(area)
        if generate and session.products:
            await session.copy_studio(generate=True)
    finally:
        await context.close()
    bad = [r for r in results.records if not r.ok]
    for r in bad:
        print(f"  warm-up error in {r.kind}: {r.error}", flush=True)
    return {r.kind: r.seconds for r in results.records}


def session_products(pool: list[str], offset: int, i: int, n: int) -> list[str]:
    """Session i's products: two sessions per product (i // 2), so their approvals of its drafts overlap in time."""
    pairs = max(1, math.ceil(n / 2))
    return [pool[(offset + i // 2 + j * pairs) % len(pool)] for j in range(max(1, len(pool) // pairs))] if pool else []


async def run_n(browser, url: str, n: int, duration: float, seed: int, generate: bool, fixture: Fixture,
                offset: int, probe: ServerProbe) -> tuple[Results, dict[str, float]]:
    results = Results()
    contexts = [await browser.new_context(base_url=url, viewport={"width": 1280, "height": 1000}) for _ in range(n)]
    sessions = []
    for i, context in enumerate(contexts):
        mine = session_products(fixture.draft_products, offset, i, n)
        sessions.append(Session(await context.new_page(), n, i, fixture, results, random.Random(seed * 1000 + n * 100 + i),
                                generate, mine))
    info = await drive(sessions, n, duration, seed, probe, results, hard_limit_s=duration + GEN_TIMEOUT_MS / 1000 + 60)
    for context in contexts:
        await context.close()
    return results, info


async def drive(sessions: list, n: int, duration: float, seed: int, probe: ServerProbe, results: Results,
                hard_limit_s: float) -> dict[str, Any]:
    """Run every session's ``run(deadline, stagger)`` for ``duration`` while sampling the server; the window's figures.

    Shared by this bench (browsers) and bench/load_server.py (the websocket protocol)."""
    stop = asyncio.Event()
    probe.peak_mb = probe.rss_mb()
    sampler = asyncio.create_task(probe.sample(stop))
    load_before = os.getloadavg()
    cpu_before, started = probe.cpu_s(), time.monotonic()
    stagger = random.Random(seed + n)
    tasks = [asyncio.create_task(s.run(started + duration, stagger.uniform(0, min(2.0, duration / 4)))) for s in sessions]
    done, pending = await asyncio.wait(tasks, timeout=hard_limit_s)
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.wait(pending, timeout=30)
    for t in done:
        if t.exception():
            results.records.append(Record(n, -1, "session crashed", started, 0.0, False, error=repr(t.exception())[:200]))
    wall = time.monotonic() - started
    stop.set()
    await sampler
    return {"window": (time.time() - wall, time.time()), "wall_s": wall,
            "server_cpu_pct": 100 * (probe.cpu_s() - cpu_before) / wall, "server_rss_peak_mb": probe.peak_mb,
            "server_rss_end_mb": probe.rss_mb(), "loadavg_1m_before": load_before[0], "loadavg_1m_after": os.getloadavg()[0],
            "cancelled_sessions": len(pending)}


# ---------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------

def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def fmt(x: float) -> str:
    return "—" if x != x else f"{x:.2f}"


def report_n(n: int, results: Results, info: dict[str, float]) -> dict[str, Any]:
    records = [r for r in results.records if r.n == n]
    plain = [r for r in records if not r.generation]
    gens = [r for r in records if r.generation]
    ok_s = [r.seconds for r in plain if r.ok]
    gen_s = [r.seconds for r in gens if r.ok]
    errors = [r for r in records if not r.ok]
    row = {"sessions": n, "interactions": len(plain), "errors": sum(not r.ok for r in plain),
           "p50_s": pct(ok_s, 50), "p95_s": pct(ok_s, 95), "max_s": max(ok_s, default=float("nan")),
           "generations": len(gens), "generation_errors": sum(not r.ok for r in gens),
           "generation_p50_s": pct(gen_s, 50), "generation_p95_s": pct(gen_s, 95),
           "approvals": sum(a.n == n for a in results.approvals), **info}
    print(f"\n### N = {n} sessions, {info['wall_s']:.0f} s\n")
    print("| sessions | interactions | errors | p50 (s) | p95 (s) | max (s) | generations (errors) | gen p50 / p95 (s) "
          "| approvals | server RSS peak (MB) | server CPU | load avg 1m |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {n} | {row['interactions']} | {row['errors']} | {fmt(row['p50_s'])} | {fmt(row['p95_s'])} | {fmt(row['max_s'])} "
          f"| {len(gens)} ({row['generation_errors']}) | {fmt(row['generation_p50_s'])} / {fmt(row['generation_p95_s'])} "
          f"| {row['approvals']} | {info['server_rss_peak_mb']:.0f} | {info['server_cpu_pct']:.0f}% "
          f"| {info['loadavg_1m_before']:.1f} → {info['loadavg_1m_after']:.1f} |")
    print("\n| interaction | count | errors | p50 (s) | p95 (s) | max (s) |")
    print("|---|---|---|---|---|---|")
    for kind in sorted({r.kind for r in records}):
        rs = [r for r in records if r.kind == kind]
        secs = [r.seconds for r in rs if r.ok]
        print(f"| {kind} | {len(rs)} | {sum(not r.ok for r in rs)} | {fmt(pct(secs, 50))} | {fmt(pct(secs, 95))} "
              f"| {fmt(max(secs, default=float('nan')))} |")
    if errors:
        print(f"\nErrors ({len(errors)}; first 10):")
        for r in errors[:10]:
            print(f"- session {r.session}, {r.kind} after {r.seconds:.1f} s: {r.error}")
    if info.get("cancelled_sessions"):
        print(f"\n{info['cancelled_sessions']} session(s) still running at the hard limit were cancelled.")
    return row


def overlapping(approvals: list[Approval]) -> int:
    """Pairs of approvals from different sessions whose click-to-idle intervals overlap."""
    pairs = 0
    for i, a in enumerate(approvals):
        for b in approvals[i + 1:]:
            if a.session != b.session and a.n == b.n and a.start < b.end and b.start < a.end:
                pairs += 1
    return pairs


def check_database(db: Path, approvals: list[Approval]) -> tuple[int, list[str], int]:
    """Approvals that landed, those that did not, and drafts written by the model (not the template)."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        status = dict(con.execute("SELECT variant_id, status FROM copy_variants").fetchall())
        generated = con.execute("SELECT count(*) FROM copy_variants WHERE model IS DISTINCT FROM ? AND created_at > "
                                "(SELECT min(created_at) FROM copy_variants WHERE model = ?)",
                                [BENCH_MODEL, BENCH_MODEL]).fetchone()[0]
    finally:
        con.close()
    missing = sorted({a.variant_id for a in approvals if status.get(a.variant_id) != "approved"})
    return len({a.variant_id for a in approvals}) - len(missing), missing, generated


def machine_line(chromium: str) -> str:
    import duckdb
    import playwright
    import streamlit

    try:
        mem = f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GB"
    except (ValueError, OSError):
        mem = "? GB"
    try:
        pw = playwright.__version__
    except AttributeError:
        from importlib.metadata import version
        pw = version("playwright")
    return (f"{platform.machine()}, {os.cpu_count()} cores, {mem}; Python {platform.python_version()}, "
            f"streamlit {streamlit.__version__}, DuckDB {duckdb.__version__}, playwright {pw}, Chromium {chromium}")


# ---------------------------------------------------------------------------------------

async def bench(args: argparse.Namespace, url: str, fixture: Fixture, probe: ServerProbe) -> tuple[list[dict], Results, str]:
    all_results = Results()
    rows = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            chromium = browser.version
            print(f"\nMachine: {machine_line(chromium)}", flush=True)
            warm = await warm_up(browser, url, args.generate, fixture)
            print("warm-up (one session, s): " + ", ".join(f"{k} {v:.2f}" for k, v in warm.items()), flush=True)
            print(f"server RSS after warm-up: {probe.rss_mb():.0f} MB", flush=True)
        finally:
            await browser.close()
        offset = 0
        for n in args.sessions:
            # A fresh browser per N: one Chromium, N contexts (TESTING.md's launch flags).
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                results, info = await run_n(browser, url, n, args.duration, args.seed, args.generate, fixture, offset, probe)
            finally:
                await browser.close()
            offset += math.ceil(n / 2)
            all_results.records += results.records
            all_results.approvals += results.approvals
            all_results.no_draft_left += results.no_draft_left
            rows.append(report_n(n, results, info))
    return rows, all_results, chromium


def pin(server_pid: int) -> None:
    """The server's threads on the last core; this process (and so Playwright's driver and Chromium) on the rest."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        raise SystemExit("--pin needs at least 2 cores")
    for tid in os.listdir(f"/proc/{server_pid}/task"):  # threads made later inherit from these
        os.sched_setaffinity(int(tid), {cores[-1]})
    os.sched_setaffinity(0, set(cores[:-1]))
    print(f"pinned: server on core {cores[-1]}, browsers on {cores[:-1]}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", default="1,5,10,20", help="comma-separated numbers of concurrent sessions")
    parser.add_argument("--duration", type=float, default=60, help="seconds each N runs (sessions finish the interaction in flight)")
    parser.add_argument("--generate", action="store_true", help="about 1 iteration in 10 writes 1 email variant with the resident model")
    parser.add_argument("--scale", type=float, default=0.05, help="demo store scale (0.05: 1,500 users, ~50k events)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--pin", action="store_true", help="server on the last core, this process and Chromium on the others: "
                                                         "the server's time is then its own, as with browsers on other machines")
    parser.add_argument("--think", default="0.3,1.5", help="MIN,MAX seconds a session waits between interactions "
                                                           "(0.3,1.5: a stress test; 3,10: people reading what they opened)")
    parser.add_argument("--json", type=Path, help="also write every interaction and the summary rows here")
    parser.add_argument("--shots", type=Path, help="save a screenshot of the page at each error (5 per session) here")
    args = parser.parse_args()
    global SHOTS, THINK_S
    SHOTS = args.shots
    THINK_S = tuple(float(x) for x in args.think.split(","))
    args.sessions = [int(s) for s in args.sessions.split(",") if s.strip()]
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} not found: apt-get install -y chromium (never `playwright install`)", file=sys.stderr)
        return 2

    # A `timeout`/kill -TERM unwinds like Ctrl-C: the server is stopped and the temp folder removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    with tempfile.TemporaryDirectory(prefix="marketlab-load-") as tmp:
        work = Path(tmp)
        db = work / "load.duckdb"
        started = time.monotonic()
        fixture = build_store(db, args.scale, args.seed)
        print(f"store built in {time.monotonic() - started:.1f} s", flush=True)

        hook = work / "hook"
        hook.mkdir()
        (hook / "sitecustomize.py").write_text(LOG_HOOK)
        saved_path = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = os.pathsep.join([str(hook), *([saved_path] if saved_path else [])])
        try:
            with serve_app(db, work) as url:
                port = int(url.rsplit(":", 1)[1])
                probe = ServerProbe(port)
                print(f"server {url} (pid {probe.pid}), RSS at start {probe.rss_mb():.0f} MB", flush=True)
                if args.pin:
                    pin(probe.pid)
                rows, results, chromium = asyncio.run(bench(args, url, fixture, probe))
        finally:
            if saved_path is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = saved_path
        log = (work / "streamlit.log").read_text(errors="replace")
        landed, missing, generated = check_database(db, results.approvals)

    loads = [line for line in log.splitlines() if re.search(r"core\.llm\.\w+ INFO Loaded ", line)]
    script_runs = [(float(m.group(1)), float(m.group(2))) for m in re.finditer(r"MARKETLAB_SCRIPT_RUN (\S+) (\S+)", log)]
    for r in rows:
        start, end = r.pop("window")
        secs = [s for at, s in script_runs if start <= at <= end]
        r.update(server_runs=len(secs), server_p50_s=pct(secs, 50), server_p95_s=pct(secs, 95))
    tracebacks = log.count("Traceback (most recent call last)")
    print("\n### Summary\n")
    print(f"Think time {THINK_S[0]:g}–{THINK_S[1]:g} s. Latency: click to page drawn and idle, in a Chromium on the same cores. "
          "Server: each script run's own time (the part MarketLab controls), in the same window.\n")
    print("| sessions | interactions | errors | p50 (s) | p95 (s) | max (s) | server runs | server p50 / p95 (s) "
          "| server CPU | generations (errors) | gen p50 / p95 (s) | server RSS peak (MB) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['sessions']} | {r['interactions']} | {r['errors']} | {fmt(r['p50_s'])} | {fmt(r['p95_s'])} | {fmt(r['max_s'])} "
              f"| {r['server_runs']} | {fmt(r['server_p50_s'])} / {fmt(r['server_p95_s'])} | {r['server_cpu_pct']:.0f}% "
              f"| {r['generations']} ({r['generation_errors']}) | {fmt(r['generation_p50_s'])} / {fmt(r['generation_p95_s'])} "
              f"| {r['server_rss_peak_mb']:.0f} |")
    print(f"\nMachine: {machine_line(chromium)}")
    print(f"Approvals: {landed} of {len({a.variant_id for a in results.approvals})} landed in the database"
          + (f"; NOT landed: {', '.join(missing[:10])}" if missing else "")
          + f"; {overlapping(results.approvals)} pairs from different sessions overlapped in time"
          + (f"; {results.no_draft_left} Copy Studio visits found no draft left" if results.no_draft_left else "") + ".")
    gens = [r for r in results.records if r.generation]
    expected_loads = 1 if gens else 0
    print(f"Model loads in the server log: {len(loads)} (expected {expected_loads})"
          + (f"; {generated} drafts written by the model" if gens else "") + ".")
    for line in loads:
        print(f"  {line.strip()}")
    if tracebacks:
        print(f"Server log: {tracebacks} traceback(s) — see below.")
        for block in log.split("Traceback (most recent call last)")[1:4]:
            print("  Traceback" + block[:800].replace("\n", "\n  "))
    target = next((r for r in rows if r["sessions"] == 10), None)
    if target:
        met = target["errors"] == 0 and target["p95_s"] < 2.0 and target["generation_errors"] == 0
        print(f"Target (10 sessions: zero errors, non-generation p95 < 2 s): {'met' if met else 'MISSED'} "
              f"({target['errors']} errors, p95 {fmt(target['p95_s'])} s).")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine_line(chromium), "rows": rows,
                                         "records": [asdict(r) for r in results.records],
                                         "approvals": [asdict(a) for a in results.approvals],
                                         "model_loads": loads}, indent=1, default=str))
    bad = sum(not r.ok for r in results.records) + len(missing) + (len(loads) != expected_loads)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
