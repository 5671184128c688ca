"""Sign-in in a real browser: a server with a local user list, entered by a deep link, as a viewer then an editor."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from .conftest import DATA, ROOT, _run_cli, serve_app, wait_idle

PASSWORDS = {"ana": "ana's long password", "pat": "pat's long password"}


@pytest.fixture(scope="module")
def signin_app_url(chromium_executable: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Its own server and database (DuckDB lets one process write a file), with ana (editor) and pat (viewer)."""
    workdir = tmp_path_factory.mktemp("e2e-sign-in")
    db = workdir / "marketlab.duckdb"
    env = {**os.environ, "MARKETLAB_DB": str(db)}
    _run_cli("ingest", "products", str(DATA / "products.csv"), "--db", str(db), env=env)
    secrets = workdir / "secrets.toml"
    for name, role in (("ana", "editor"), ("pat", "viewer")):
        subprocess.run([sys.executable, "-m", "core", "user", "add", name, "--role", role, "--secrets", str(secrets),
                        "--password-stdin"], cwd=ROOT, input=PASSWORDS[name] + "\n", text=True, check=True,
                       capture_output=True, timeout=60)
    with serve_app(db, workdir, ("--secrets.files", str(secrets))) as url:
        yield url


def sign_in(page: Page, name: str, password: str) -> None:
    expect(page.get_by_role("heading", name="Sign in to MarketLab", level=1)).to_be_visible()
    page.get_by_role("textbox", name="Name").fill(name)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    wait_idle(page)


def sidebar(page: Page):
    return page.get_by_test_id("stSidebar")


def test_sign_in_as_viewer_then_editor(page: Page, signin_app_url: str, shot, js_errors: list[str]) -> None:
    # A deep link as the server's very first request: Streamlit's pages/ mode, the hardest path for a form.
    page.goto(f"{signin_app_url}/data_import")
    expect(page.get_by_role("heading", name="Sign in to MarketLab", level=1)).to_be_visible()
    wait_idle(page)
    expect(sidebar(page).get_by_text(re.compile(r"\d+ products ·"))).to_have_count(0)  # nothing before sign-in
    shot("sign-in")

    sign_in(page, "pat", "a wrong password")
    expect(page.get_by_text("Wrong name or password.")).to_be_visible()

    sign_in(page, "pat", PASSWORDS["pat"])
    expect(sidebar(page).get_by_text("Signed in as pat · viewer")).to_be_visible()
    page.goto(f"{signin_app_url}/data_import")  # a new tab's connection: asked again
    sign_in(page, "pat", PASSWORDS["pat"])
    expect(page.get_by_role("heading", name="Import data", level=1)).to_be_visible()
    expect(page.get_by_text("Importing data is for editors")).to_be_visible()
    expect(page.get_by_test_id("stFileUploaderDropzoneInput")).to_have_count(0)
    shot("viewer-import")

    sidebar(page).get_by_test_id("stPageLink-NavLink").filter(has_text="Copy Studio").click()
    expect(page.get_by_role("heading", name="Copy Studio", level=1)).to_be_visible()
    wait_idle(page)
    expect(page.get_by_role("button", name=re.compile(r"^Generate"))).to_be_disabled()
    shot("viewer-copy")

    sidebar(page).get_by_role("button", name="Sign out").click()
    wait_idle(page)
    sign_in(page, "ana", PASSWORDS["ana"])
    expect(sidebar(page).get_by_text("Signed in as ana · editor")).to_be_visible()
    sidebar(page).get_by_test_id("stPageLink-NavLink").filter(has_text="Import data").click()
    expect(page.get_by_role("heading", name="Import data", level=1)).to_be_visible()
    wait_idle(page)
    expect(page.get_by_test_id("stFileUploaderDropzoneInput")).to_have_count(1)
    assert js_errors == []
