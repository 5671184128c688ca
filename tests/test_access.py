"""Sign-in and roles: salted hashes, the secrets layout, guessing slowed down, and viewers refused in core."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from core.access import (
    LOCAL_EDITOR, AccessDenied, LoginFailed, LoginGuard, Role, RoleRules, User, auth_config, hash_password,
    verify_password,
)
from core.catalog import CatalogFilter, search
from core.copy.variants import (
    GenerationRequest, generate_variants, get_variant, list_variants, save_variants, set_status, update_fields,
)
from core.errors import ConfigError
from core.funnels import FunnelSpec, ensure_index, funnel
from core.ingest import ingest_file
from core.sample_data import build_demo
from core.segments import list_runs, run_segmentation
from core.segments.runs import delete_run, rewrite_personas
from core.segments.saved_lists import save_dropped_as_segment, save_user_list_as_run
from core.store import TABLES, Store

PASSWORD = "correct horse battery"
VIEWER = User("pat", Role.VIEWER, "password")
EDITOR = User("ana", Role.EDITOR, "password")


# ---------------------------------------------------------------- hashes


def test_a_hash_verifies_its_password_and_no_other() -> None:
    encoded = hash_password(PASSWORD)
    assert encoded.startswith("scrypt$") and PASSWORD not in encoded
    assert verify_password(PASSWORD, encoded)
    assert not verify_password(PASSWORD + " ", encoded)
    assert not verify_password("", encoded)


def test_each_hash_has_its_own_salt() -> None:
    first, second = hash_password(PASSWORD), hash_password(PASSWORD)
    assert first != second
    assert first.split("$")[4] != second.split("$")[4]
    assert verify_password(PASSWORD, first) and verify_password(PASSWORD, second)


@pytest.mark.parametrize("mangle", [
    lambda h: h[:-4] + ("AAAA" if not h.endswith("AAAA") else "BBBB"),  # another key
    lambda h: h.replace("scrypt$", "md5$"),
    lambda h: "scrypt$1024$8$1$c2FsdA==",  # a part missing
    lambda h: "$".join(["scrypt", str(2**30), *h.split("$")[2:]]),  # a gigabyte per try: refused, not run
    lambda h: "$".join(["scrypt", "1000", *h.split("$")[2:]]),  # N not a power of two
    lambda h: "not a hash at all",
    lambda h: "",
])
def test_a_tampered_or_malformed_hash_never_matches(mangle) -> None:
    assert not verify_password(PASSWORD, mangle(hash_password(PASSWORD)))


def test_a_short_password_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least 10"):
        hash_password("short")


# ---------------------------------------------------------------- the secrets layout


def accounts_section(**roles: str) -> dict:
    encoded = hash_password(PASSWORD)
    return {"marketlab": {"users": {name: {"password_hash": encoded, "role": role} for name, role in roles.items()}}}


def test_no_section_means_no_login() -> None:
    assert auth_config({}).mode == "none"
    assert not auth_config({"marketlab": {}}).required


def test_a_user_list_means_password_login() -> None:
    config = auth_config(accounts_section(Ana="editor", pat="Viewer"))
    assert config.mode == "password" and config.required
    assert config.accounts["ana"].role is Role.EDITOR and config.accounts["ana"].name == "Ana"
    assert config.accounts["pat"].role is Role.VIEWER


@pytest.mark.parametrize("section, message", [
    ({"pat": {"password_hash": "x", "role": "viewer"}}, "not a MarketLab hash"),
    ({"pat": {"role": "viewer"}}, "needs password_hash and role"),
    ({"pat": "editor"}, "needs password_hash and role"),
    ({"bad name!": {"password_hash": "x", "role": "viewer"}}, "a user name is"),
])
def test_a_malformed_user_list_is_a_clear_config_error(section: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        auth_config({"marketlab": {"users": section}})


def test_an_unknown_role_or_a_name_twice_is_refused() -> None:
    section = accounts_section(pat="admin")
    with pytest.raises(ConfigError, match="'editor' or 'viewer'"):
        auth_config(section)
    section = accounts_section(pat="viewer", PAT="editor")
    with pytest.raises(ConfigError, match="appears twice"):
        auth_config(section)


def test_streamlit_auth_section_means_openid_connect() -> None:
    bare = {"auth": {"client_id": "x", "server_metadata_url": "https://id.example.com/.well-known/openid-configuration"},
            "marketlab": {"editors": ["Ana@Example.com"], "viewers": ["@example.com"]}}
    config = auth_config(bare)
    assert config.mode == "oidc" and config.provider is None
    named = {"auth": {"redirect_uri": "http://localhost:8501/oauth2callback", "google": {"client_id": "x"}},
             "marketlab": {"viewers": ["@example.com"]}}
    assert auth_config(named).provider == "google"


def test_openid_connect_without_lists_would_let_nobody_in_and_says_so() -> None:
    with pytest.raises(ConfigError, match="neither editors nor viewers"):
        auth_config({"auth": {"client_id": "x"}})
    with pytest.raises(ConfigError, match="list of addresses"):
        auth_config({"auth": {"client_id": "x"}, "marketlab": {"editors": "ana@example.com"}})


def test_role_rules_by_address_and_domain() -> None:
    rules = RoleRules(editors=("ana@example.com",), viewers=("@example.com", "guest@other.org"))
    assert rules.role_for("ANA@example.com") is Role.EDITOR  # editors win over the domain's viewer entry
    assert rules.role_for("pat@example.com") is Role.VIEWER
    assert rules.role_for("guest@other.org") is Role.VIEWER
    assert rules.role_for("eve@other.org") is None
    assert rules.role_for("eve@example.com.evil.org") is None  # a domain entry matches the whole domain only
    assert rules.role_for(None) is None and rules.role_for("no-at-sign") is None


# ---------------------------------------------------------------- signing in


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_sign_in_gives_the_account_its_role() -> None:
    accounts = auth_config(accounts_section(ana="editor", pat="viewer")).accounts
    guard = LoginGuard()
    assert guard.sign_in(accounts, "Ana", PASSWORD) == User("ana", Role.EDITOR, "password")
    assert not guard.sign_in(accounts, " pat ", PASSWORD).can_edit


def test_wrong_password_and_unknown_name_read_the_same() -> None:
    accounts = auth_config(accounts_section(ana="editor")).accounts
    guard = LoginGuard()
    with pytest.raises(LoginFailed) as wrong:
        guard.sign_in(accounts, "ana", "not the password")
    with pytest.raises(LoginFailed) as unknown:
        guard.sign_in(accounts, "nobody", PASSWORD)
    assert wrong.value.msg == unknown.value.msg == "Wrong name or password."


def test_guessing_locks_the_name_for_a_while() -> None:
    accounts = auth_config(accounts_section(ana="editor", pat="viewer")).accounts
    clock = Clock()
    guard = LoginGuard(clock)
    for _ in range(LoginGuard.MAX_FAILURES):
        with pytest.raises(LoginFailed, match="Wrong"):
            guard.sign_in(accounts, "ana", "guess")
    with pytest.raises(LoginFailed, match="Too many wrong passwords"):
        guard.sign_in(accounts, "ana", PASSWORD)  # even the right password, while locked
    assert guard.sign_in(accounts, "pat", PASSWORD).name == "pat"  # other names are not locked
    clock.now += LoginGuard.WINDOW_S + 1
    assert guard.sign_in(accounts, "ana", PASSWORD).name == "ana"


# ---------------------------------------------------------------- viewers change nothing, in core


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("access") / "demo.duckdb"
    store = Store(path)
    build_demo(store, scale=0.02)
    run_segmentation(store, k=3, map_sample=300)
    store.close()
    return path


@pytest.fixture
def demo(demo_db: Path, tmp_path: Path) -> Store:
    copy = tmp_path / "demo.duckdb"
    copy.write_bytes(demo_db.read_bytes())
    store = Store(copy)
    yield store
    store.close()


def snapshot(store: Store) -> dict[str, str]:
    """A digest of every table's rows, in a stable order."""
    out = {}
    with store.cursor() as cur:
        for table in TABLES:
            frame = cur.execute(f"SELECT * FROM {table}").df()
            frame = frame.sort_values(list(frame.columns)[:3]).reset_index(drop=True) if len(frame) else frame
            out[table] = hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()
    return out


class CountingModel:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, prompts, **kwargs):
        self.calls += 1
        return [["Headline 1: Hello"] * kwargs.get("n", 1) for _ in prompts]


def every_write(store: Store, tmp_path: Path) -> tuple[dict[str, Callable[[], object]], CountingModel]:
    """Each core call that changes data, as a viewer would make it from any page or script."""
    variant = list_variants(store)[0]
    run_id = list_runs(store)[0].run_id
    with store.cursor() as cur:
        users = [u for (u,) in cur.execute("SELECT user_id FROM users LIMIT 5").fetchall()]
    products_csv = tmp_path / "products.csv"
    products_csv.write_text("product_id,title,price\nNEW1,A new thing,9.99\n")
    model = CountingModel()
    spec = FunnelSpec(("view", "add_to_cart", "purchase"))
    return {
        "import a file": lambda: ingest_file(store, "products", products_csv),
        "load the demo": lambda: build_demo(store, scale=0.02, replace=True),
        "generate copy": lambda: generate_variants(store, model, GenerationRequest(("P0001",), "meta", n=1)),
        "save copy": lambda: save_variants(store, [variant]),
        "approve copy": lambda: set_status(store, variant.variant_id, "approved"),
        "reject copy": lambda: set_status(store, variant.variant_id, "rejected"),
        "edit copy": lambda: update_fields(store, variant.variant_id, {next(iter(variant.fields)): "Edited"}),
        "run and save a segmentation": lambda: run_segmentation(store, k=2, map_sample=200),
        "rewrite personas": lambda: rewrite_personas(store, run_id, model),
        "delete a segment run": lambda: delete_run(store, run_id),
        "save a user list": lambda: save_user_list_as_run(store, users, name="list"),
        "save a drop-off": lambda: save_dropped_as_segment(store, spec, 1),
        "a raw transaction": lambda: raw_delete(store),
    }, model


def raw_delete(store: Store) -> None:
    with store.transaction() as cur:
        cur.execute("DELETE FROM copy_variants")


def test_a_viewer_is_refused_every_write_and_nothing_changes(demo: Store, tmp_path: Path) -> None:
    viewer = demo.as_user(VIEWER)
    before = snapshot(demo)
    writes, model = every_write(viewer, tmp_path)
    for action, call in writes.items():
        with pytest.raises(AccessDenied, match="viewer"):
            call()
        assert snapshot(demo) == before, f"{action} changed the database for a viewer"
    assert model.calls == 0  # refused before the model was asked for anything


def test_a_viewer_reads_everything_including_a_funnel_that_needs_its_index_rebuilt(demo: Store) -> None:
    viewer = demo.as_user(VIEWER)
    before = snapshot(demo)
    assert ensure_index(viewer, force=True).rebuilt  # derived data: allowed for anyone
    result = funnel(viewer, FunnelSpec(("view", "add_to_cart", "purchase")))
    assert result.users > 0
    assert list_variants(viewer) and list_runs(viewer) and search(viewer, CatalogFilter()).total > 0
    unsaved = run_segmentation(viewer, k=2, map_sample=200, save=False)  # exploring changes nothing
    assert len(unsaved.segments) == 2
    assert snapshot(demo) == before


def test_an_editor_view_writes_and_the_shared_store_keeps_its_own_user(demo: Store) -> None:
    editor = demo.as_user(EDITOR)
    variant = list_variants(editor)[0]
    set_status(editor, variant.variant_id, "rejected")
    assert get_variant(demo, variant.variant_id).status == "rejected"
    viewer = demo.as_user(VIEWER)
    assert viewer.user is VIEWER and demo.user is LOCAL_EDITOR  # a view never changes the store it came from
    with pytest.raises(AccessDenied):
        set_status(viewer, variant.variant_id, "draft")
    assert get_variant(demo, variant.variant_id).status == "rejected"


def test_who_approved_and_who_edited_is_kept_with_the_copy(demo: Store) -> None:
    variant = list_variants(demo)[0]
    field = next(iter(variant.fields))
    update_fields(demo.as_user(EDITOR), variant.variant_id, {field: "Stay cool all day"})
    set_status(demo.as_user(User("bo", Role.EDITOR, "oidc")), variant.variant_id, "rejected")
    saved = get_variant(demo, variant.variant_id)
    assert saved.params["edits"][-1]["by"] == "ana"
    assert saved.last_review["by"] == "bo" and saved.last_review["status"] == "rejected"
