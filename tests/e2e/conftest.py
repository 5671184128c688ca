"""Real-browser fixtures: the app served by `streamlit run` on a fresh database, and system Chromium.

The recipe is /work/shared/TESTING.md (verified on these machines): pytest-playwright's own
fixtures, with `browser_type_launch_args` and `base_url` overridden; Debian's Chromium, never
`playwright install`; 127.0.0.1 only; waits on Streamlit's own state instead of sleeps.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
HOST = "127.0.0.1"
START_TIMEOUT_S = 60
# First loads import plotly and open DuckDB: allow more than Playwright's default 5 s.
expect.set_options(timeout=20_000)
# Streamlit is idle: connected to the server and no script run in progress.
IDLE = '[data-testid="stApp"][data-test-connection-state="CONNECTED"][data-test-script-state="notRunning"]'


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    """/usr/bin/chromium; its absence fails the run in CI and skips the browser tests elsewhere."""
    if not CHROMIUM.exists():
        reason = (f"{CHROMIUM} not found: install Debian's chromium "
                  "(apt-get install -y chromium chromium-driver); never `playwright install`")
        if _in_ci():
            pytest.fail(f"CI is set, so the browser tests must run: {reason}", pytrace=False)
        pytest.skip(reason)
    return str(CHROMIUM)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict, chromium_executable: str) -> dict:
    return {**browser_type_launch_args, "executable_path": chromium_executable, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict) -> dict:
    # Streamlit scrolls inside its own container, so a full-page screenshot is only the viewport:
    # a tall one lets the artifacts show a whole upload report.
    return {**browser_context_args, "viewport": {"width": 1280, "height": 2000}}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _run_cli(*args: str, env: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        pytest.fail(f"`python -m core {' '.join(args)}` failed ({done.returncode}):\n{done.stdout}\n{done.stderr}", pytrace=False)


def _wait_healthy(proc: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited with {proc.returncode} before it was healthy:\n{log.read_text(errors='replace')}",
                        pytrace=False)
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200 and r.read().decode().strip() == "ok":
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    pytest.fail(f"streamlit not healthy at {url} after {START_TIMEOUT_S} s:\n{log.read_text(errors='replace')}", pytrace=False)


@pytest.fixture(scope="session")
def app_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh DuckDB file with the small test catalog (5 products) and event log (6 events)."""
    db = tmp_path_factory.mktemp("e2e-db") / "marketlab.duckdb"
    env = {**os.environ, "MARKETLAB_DB": str(db)}
    _run_cli("ingest", "products", str(DATA / "products.csv"), "--db", str(db), env=env)
    _run_cli("ingest", "events", str(DATA / "events.csv"), "--db", str(db), env=env)
    return db


@contextlib.contextmanager
def serve_app(db: Path, workdir: Path, extra_args: Sequence[str] = ()) -> Iterator[str]:
    """`streamlit run app.py` on a free 127.0.0.1 port with MARKETLAB_DB=db; yields its URL once healthy.

    ``extra_args`` are more `streamlit run` options, e.g. ``("--secrets.files", path)`` for a user list."""
    port = _free_port()
    log = workdir / "streamlit.log"
    env = {**os.environ, "MARKETLAB_DB": str(db), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
           "--server.port", str(port), "--server.address", HOST, "--server.fileWatcherType", "none",
           "--browser.gatherUsageStats", "false", *extra_args]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"http://{HOST}:{port}"
    try:
        _wait_healthy(proc, f"{url}/_stcore/health", log)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


@pytest.fixture(scope="session")
def base_url(chromium_executable: str, app_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app, shared by the session's tests, on the pre-filled app_db."""
    with serve_app(app_db, tmp_path_factory.mktemp("e2e-server")) as url:
        yield url


@pytest.fixture(scope="session", autouse=True)
def warm_app(browser: Browser, base_url: str) -> None:
    """Open "/" once before the tests: the server's first script run (imports, first queries) is paid
    here, not by whichever test comes first, and app.py's st.navigation has run before any test."""
    context = browser.new_context(base_url=base_url)
    try:
        page = context.new_page()
        page.goto("/")
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        wait_idle(page)
    finally:
        context.close()


@pytest.fixture
def fresh_app_url(chromium_executable: str, tmp_path: Path) -> Iterator[str]:
    """A server of its own (empty database) that no browser has opened yet: for first-request behaviour."""
    with serve_app(tmp_path / "fresh.duckdb", tmp_path) as url:
        yield url


@pytest.fixture(scope="session")
def demo_app_url(chromium_executable: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server of its own on a small demo store (600 users in planted groups): for segments."""
    workdir = tmp_path_factory.mktemp("e2e-demo")
    db = workdir / "demo.duckdb"
    _run_cli("demo", "--scale", "0.02", "--db", str(db), env=dict(os.environ))
    with serve_app(db, workdir) as url:
        yield url


# ---------------------------------------------------------------- per-test helpers


def wait_idle(page: Page, timeout: float = 30_000) -> None:
    """Block until Streamlit is connected and no script run is in progress."""
    expect(page.locator(IDLE)).to_have_count(1, timeout=timeout)


@pytest.fixture
def js_errors(page: Page) -> list[str]:
    """Uncaught exceptions in the page; a test asserts this stays empty."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


@pytest.fixture
def shot(page: Page, request: pytest.FixtureRequest) -> Iterator[Callable[[str], Path]]:
    """shot("step") saves tests/e2e/artifacts/<test name>-step.png; the final state is saved as <test name>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")

    def save(step: str = "") -> Path:
        path = ARTIFACTS / (f"{name}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', step)}.png" if step else f"{name}.png")
        page.screenshot(path=str(path), full_page=True)
        return path

    yield save
    try:
        save()
    except Exception:  # the page may be gone after a failure; the failure itself is what matters
        pass
