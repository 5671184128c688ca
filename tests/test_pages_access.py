"""Sign-in through the pages (AppTest): nothing shows before it, roles shape the pages, the gate fails closed."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from conftest import ROOT
from core.access import hash_password
from core.copy.variants import Variant, save_variants
from core.store import Store

PASSWORD = "correct horse battery"
HASH = hash_password(PASSWORD)


def users(**roles: str) -> dict:
    return {"users": {name: {"password_hash": HASH, "role": role} for name, role in roles.items()}}


@pytest.fixture(autouse=True)
def fresh_guard() -> None:
    """Failed tries are counted per server (a cache_resource): each test starts with none."""
    from pages._auth import _login_guard

    _login_guard.clear()


@pytest.fixture
def db_path(db_path: Path) -> Path:
    """conftest's small catalog and events, and one draft variant to approve (or not)."""
    store = Store(db_path)
    save_variants(store, [Variant("P1", "meta", "friendly", {"primary_text": "Cold for 24 hours.", "headline": "Stay cool"})])
    store.close()
    return db_path


def app(secrets: dict | None = None, user: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    if secrets:
        at.secrets.update(secrets)
    if user is not None:
        at.user = user
    # Twice: AppTest's first run is app.py, later ones run the page itself (Streamlit's pages/ mode), and a
    # widget's id includes the script it was drawn from, so the sign-in form must be drawn as later runs draw it.
    return at.run().run()


def sign_in(at: AppTest, name: str, password: str = PASSWORD) -> AppTest:
    at.text_input(key="sign_in_name").set_value(name)
    at.text_input(key="sign_in_password").set_value(password)
    return at.button[0].click().run()  # the form's submit button is the only button on the sign-in screen


def open_copy_studio(at: AppTest) -> AppTest:
    """On the draft saved for P1's Meta ad."""
    at.switch_page("pages/copy_studio.py").run()
    at.selectbox(key="copy_product").set_value("P1")
    return at.selectbox(key="copy_channel").set_value("meta").run()


def on_sign_in_screen(at: AppTest) -> bool:
    return [t.value for t in at.title] == ["Sign in to MarketLab"] and not at.metric


def sidebar_text(at: AppTest) -> str:
    return " ".join(c.value for c in at.sidebar.caption).replace("\\", "")  # plain() escapes markdown


def test_without_a_sign_in_configured_the_local_user_is_an_editor(db_path: Path) -> None:
    at = app()
    assert not at.exception and at.metric and "Signed in" not in sidebar_text(at)
    at.switch_page("pages/data_import.py").run()
    assert at.get("file_uploader")


def test_nothing_shows_before_sign_in_and_a_wrong_password_is_refused(db_path: Path) -> None:
    at = app({"marketlab": users(ana="editor")})
    assert not at.exception and on_sign_in_screen(at)
    assert not at.sidebar.caption  # not even the database's counts
    at = sign_in(at, "ana", "not the password")
    assert on_sign_in_screen(at)
    assert [e.value for e in at.error] == ["Wrong name or password."]
    at.switch_page("pages/data_import.py").run()  # a deep link is gated too
    assert on_sign_in_screen(at) and not at.get("file_uploader")


def test_an_editor_signs_in_works_and_signs_out(db_path: Path) -> None:
    at = sign_in(app({"marketlab": users(ana="editor", pat="viewer")}), "Ana")
    assert not at.exception and at.metric
    assert "Signed in as ana · editor" in sidebar_text(at)
    assert "sign_in_password" not in at.session_state  # the password does not stay in the session
    at = open_copy_studio(at)
    assert not at.button(key="copy_generate").disabled
    approve = [b for b in at.button if b.key and b.key.startswith("copy_approve_")]
    assert approve and not approve[0].disabled
    at.sidebar.button(key="sign_out").click().run()
    assert on_sign_in_screen(at)


def test_a_viewer_reads_but_every_change_is_off(db_path: Path) -> None:
    at = sign_in(app({"marketlab": users(pat="viewer")}), "pat")
    assert "Signed in as pat · viewer" in sidebar_text(at)
    at.switch_page("pages/data_import.py").run()
    assert not at.get("file_uploader")
    assert any("Importing data is for editors" in i.value for i in at.info)
    at.switch_page("pages/catalog.py").run()
    assert not at.exception and not at.get("file_uploader")
    at = open_copy_studio(at)
    assert not at.exception
    assert at.button(key="copy_generate").disabled
    card_buttons = [b for b in at.button if b.key and b.key.startswith(("copy_approve_", "copy_save_", "copy_reject_"))]
    assert card_buttons and all(b.disabled for b in card_buttons)
    at.switch_page("pages/segments.py").run()
    assert not at.exception and at.button(key="seg_run").disabled


def test_a_role_changed_in_the_secrets_file_applies_at_the_next_click(db_path: Path) -> None:
    at = sign_in(app({"marketlab": users(ana="editor")}), "ana")
    assert "ana · editor" in sidebar_text(at)
    at.secrets["marketlab"] = users(ana="viewer")
    at.run()
    assert "ana · viewer" in sidebar_text(at)
    at.secrets["marketlab"] = users(someone_else="editor")
    at.run()
    assert on_sign_in_screen(at)


def test_guessing_through_the_page_locks_the_name(db_path: Path) -> None:
    at = app({"marketlab": users(ana="editor")})
    for _ in range(5):
        at = sign_in(at, "ana", "guess")
    at = sign_in(at, "ana")
    assert on_sign_in_screen(at)
    assert "Too many wrong passwords" in at.error[0].value


def test_a_broken_user_list_stops_every_page_with_a_clear_message(db_path: Path) -> None:
    at = app({"marketlab": {"users": {"ana": {"password_hash": "plain-text-password", "role": "editor"}}}})
    assert not at.exception
    assert "user list in the secrets file is invalid" in at.error[0].value
    assert not at.metric and not at.sidebar.caption


def test_an_unreadable_secrets_file_is_not_taken_for_no_sign_in(db_path: Path, tmp_path: Path) -> None:
    from streamlit import config

    broken = tmp_path / "secrets.toml"
    broken.write_text('[marketlab.users.ana]\npassword_hash = "unterminated\n')
    previous = config.get_option("secrets.files")
    config.set_option("secrets.files", [str(broken)])
    try:
        at = app()
    finally:
        config.set_option("secrets.files", previous)
    assert not at.exception
    assert "secrets file could not be read" in at.error[0].value
    assert not at.metric


def test_a_shared_address_without_sign_in_is_refused(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pages._auth

    monkeypatch.setattr(pages._auth, "_listening_address", lambda: "0.0.0.0")
    at = app()
    assert "Sign-in required on a shared address" in at.error[0].value
    assert not at.metric
    at = app({"marketlab": users(ana="editor")})  # with a user list the same address is fine
    assert on_sign_in_screen(at)


OIDC = {"auth": {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "s3cret",
                 "google": {"client_id": "id", "client_secret": "secret",
                            "server_metadata_url": "https://accounts.google.com/.well-known/openid-configuration"}},
        "marketlab": {"editors": ["ana@example.com"], "viewers": ["@example.com"]}}


def test_openid_connect_asks_for_the_provider_then_maps_addresses_to_roles(db_path: Path) -> None:
    at = app(OIDC, user={"is_logged_in": False})
    assert on_sign_in_screen(at)
    assert at.button(key="sign_in_oidc").label == "Sign in with Google"
    at = app(OIDC, user={"is_logged_in": True, "email": "ana@example.com"})
    assert at.metric and "ana@example.com · editor" in sidebar_text(at)
    at = app(OIDC, user={"is_logged_in": True, "email": "pm@example.com"})
    assert "pm@example.com · viewer" in sidebar_text(at)
    at = app(OIDC, user={"is_logged_in": True, "email": "eve@elsewhere.org"})
    assert on_sign_in_screen(at)
    assert "not on this MarketLab's list" in at.error[0].value
    assert at.button(key="sign_out_oidc")
