"""The command-line contract: JSON on stdout with --json, exit 0; one line on stderr and non-zero otherwise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import DATA, ROOT

from core.access import auth_config, verify_password
from core.copy.variants import VariantFilter, list_variants
from core.store import Store


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)


def assert_one_clean_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_ingest_prints_a_json_report(tmp_path: Path) -> None:
    db = str(tmp_path / "cli.duckdb")
    result = cli("ingest", "products", str(DATA / "products.csv"), "--db", db, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["inserted"], report["updated"], report["rejected"], report["committed"]) == (5, 0, 0, True)

    again = json.loads(cli("ingest", "products", str(DATA / "products.csv"), "--db", db, "--json").stdout)
    assert (again["inserted"], again["updated"]) == (0, 5)


def test_ingest_maps_a_real_exports_names(tmp_path: Path) -> None:
    log = tmp_path / "events.csv"
    log.write_text("visitorid,timestamp,event,itemid\n257597,1433221332117,view,355908\n")
    result = cli("ingest", "events", str(log), "--db", str(tmp_path / "cli.duckdb"), "--json",
                 "--mapping", '{"visitorid": "user_id", "timestamp": "ts"}')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["inserted"] == 1


def test_invalid_rows_reject_the_file_unless_skip_invalid(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("product_id,title,price\nA,Lamp,10\nB,Chair,-1\n")
    db = str(tmp_path / "cli.duckdb")
    refused = cli("ingest", "products", str(bad), "--db", db, "--json")
    line = assert_one_clean_error_line(refused)
    assert "Nothing was written" in line and "line 3" in line
    assert json.loads(refused.stdout)["rejections"][0]["line"] == 3

    accepted = cli("ingest", "products", str(bad), "--db", db, "--json", "--skip-invalid")
    assert accepted.returncode == 0
    assert json.loads(accepted.stdout)["inserted"] == 1


def test_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    db = str(tmp_path / "cli.duckdb")
    assert "No such file" in assert_one_clean_error_line(cli("ingest", "products", "nope.csv", "--db", db))
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert "empty" in assert_one_clean_error_line(cli("ingest", "products", str(empty), "--db", db))
    assert "JSON object" in assert_one_clean_error_line(cli("ingest", "products", str(DATA / "products.csv"), "--db", db, "--mapping", "{nope"))
    assert "required" in assert_one_clean_error_line(
        cli("ingest", "events", str(DATA / "products.csv"), "--db", db)
    )


def test_the_upload_limit_applies_to_the_cli(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "MARKETLAB_MAX_UPLOAD_MB": "0.0001"}
    line = assert_one_clean_error_line(cli("ingest", "products", str(DATA / "products.csv"), "--db", str(tmp_path / "x.duckdb"), env=env))
    assert "File too large" in line


def test_a_bad_setting_is_named(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "MARKETLAB_MAX_UPLOAD_MB": "lots"}
    assert "MARKETLAB_MAX_UPLOAD_MB" in assert_one_clean_error_line(cli("ingest", "products", str(DATA / "products.csv"), env=env))


def test_demo_seeds_once_and_refuses_to_overwrite(tmp_path: Path) -> None:
    db = str(tmp_path / "demo.duckdb")
    seeded = cli("demo", "--db", db, "--scale", "0.02", "--json")
    assert seeded.returncode == 0, seeded.stderr
    summary = json.loads(seeded.stdout)
    assert summary["seeded"] and summary["events"] > 10_000 and summary["products"] >= 60

    skipped = json.loads(cli("demo", "--db", db, "--if-empty", "--json").stdout)
    assert skipped["seeded"] is False
    assert "--replace" in assert_one_clean_error_line(cli("demo", "--db", db, "--scale", "0.02"))


def test_funnel_prints_steps_as_json_and_refuses_unknown_steps(tmp_path: Path) -> None:
    db = str(tmp_path / "cli.duckdb")
    assert cli("ingest", "events", str(DATA / "events.csv"), "--db", db).returncode == 0
    result = cli("funnel", "--steps", "view,add_to_cart,purchase", "--window", "1d", "--db", db, "--json", "--breakdown", "device")
    assert result.returncode == 0, result.stderr
    counted = json.loads(result.stdout)
    assert [s["users"] for s in counted["steps"]] == [3, 1, 1]
    assert "Unknown funnel step" in assert_one_clean_error_line(cli("funnel", "--steps", "view,nope", "--db", db))
    assert "Bad option" in assert_one_clean_error_line(cli("funnel", "--steps", ",", "--db", db))


def test_segment_saves_a_run_and_reports_it_as_json(tmp_path: Path) -> None:
    db = str(tmp_path / "seg.duckdb")
    assert cli("demo", "--db", db, "--scale", "0.02").returncode == 0
    result = cli("segment", "--k", "4", "--db", db, "--json")
    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)
    assert run["k"] == 4 and len(run["segments"]) == 4
    assert all(seg["persona"] for seg in run["segments"])
    assert "Bad option" in assert_one_clean_error_line(cli("segment", "--k", "many", "--db", db))


def test_generate_refuses_bad_requests_before_loading_the_model(tmp_path: Path) -> None:
    db = str(tmp_path / "cli.duckdb")
    assert cli("ingest", "products", str(DATA / "products.csv"), "--db", db).returncode == 0
    # A model that does not exist: reaching the model would be a different error.
    env = {**os.environ, "MARKETLAB_MODEL": str(tmp_path / "no-such-model")}
    cases = {
        ("--product", "NOPE"): "No product with id NOPE",
        ("--product", "P1", "--channel", "tiktok"): "Unknown channel 'tiktok'",
        ("--product", "P1", "--tone", "sarcastic"): "sarcastic",
        ("--product", "P1", "--n", "50"): "1 to 10 variants",
    }
    for args, message in cases.items():
        line = assert_one_clean_error_line(cli("generate", *args, "--db", db, env=env))
        assert message in line, line
    line = assert_one_clean_error_line(cli("generate", "--product", "P1", "--db", db, "--json", env=env))
    assert "no-such-model" in line  # a valid request does reach the model, whose absence is one clear line


@pytest.mark.slow
def test_generate_writes_saves_and_prints_compliant_variants(tmp_path: Path) -> None:
    """The bundled SmolLM2 on the CPU: the documented command, end to end."""
    db = str(tmp_path / "cli.duckdb")
    assert cli("ingest", "products", str(DATA / "products.csv"), "--db", db).returncode == 0
    result = cli("generate", "--product", "P1", "--channel", "google_rsa", "--tone", "friendly", "--n", "2", "--db", db, "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert "SmolLM2-135M-Instruct" in payload["model"] and payload["saved"]
    variants = payload["variants"]
    assert len(variants) == 2 and all(v["product_id"] == "P1" and v["status"] == "draft" for v in variants)
    for v in variants:
        assert len(v["fields"]["headline"]) <= 30 and len(v["fields"]["description"]) <= 90
        assert v["params"]["prompt"] and v["model"]  # the audit trail

    listed = Store(db)
    try:
        saved = {v.variant_id for v in list_variants(listed, VariantFilter(product_ids=("P1",), channel="google_rsa"))}
    finally:
        listed.close()
    assert {v["variant_id"] for v in variants} <= saved


# ---------------------------------------------------------------- user list (sign-in)


def user_cli(*args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
    extra = ("--password-stdin",) if password is not None else ()
    return subprocess.run([sys.executable, "-m", "core", "user", *args, *extra], cwd=ROOT, capture_output=True, text=True,
                          input=None if password is None else password + "\n", timeout=60)


def test_user_add_list_replace_remove_keeps_the_rest_of_the_secrets_file(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('[connections.warehouse]\npassword = "keep me" # a comment too\n')
    assert user_cli("add", "ana", "--role", "editor", "--secrets", str(secrets), password="correct horse battery").returncode == 0
    assert user_cli("add", "pat@example.com", "--role", "viewer", "--secrets", str(secrets), password="another long one").returncode == 0
    assert secrets.stat().st_mode & 0o777 == 0o600  # it holds hashes: the owner's eyes only
    text = secrets.read_text()
    assert "correct horse battery" not in text and 'password = "keep me" # a comment too' in text
    listed = json.loads(user_cli("list", "--secrets", str(secrets), "--json").stdout)["users"]
    assert listed == [{"name": "ana", "role": "editor"}, {"name": "pat@example.com", "role": "viewer"}]

    again = user_cli("add", "ANA", "--role", "viewer", "--secrets", str(secrets), password="a new password!")
    assert "already in" in assert_one_clean_error_line(again)
    assert user_cli("add", "ana", "--role", "viewer", "--secrets", str(secrets), "--replace", password="a new password!").returncode == 0
    accounts = auth_config(tomllib.loads(secrets.read_text())).accounts
    assert accounts["ana"].role.value == "viewer" and verify_password("a new password!", accounts["ana"].password_hash)

    assert user_cli("remove", "pat@example.com", "--secrets", str(secrets)).returncode == 0
    data = tomllib.loads(secrets.read_text())
    assert list(data["marketlab"]["users"]) == ["ana"] and data["connections"]["warehouse"]["password"] == "keep me"


@pytest.mark.parametrize("args, password, message", [
    (("add", "bob", "--role", "editor"), "short", "at least 10 characters"),
    (("add", "bob", "--role", "editor"), None, "--password-stdin"),  # no terminal and nothing piped
    (("add", "bad name", "--role", "editor"), "long enough pass", "user name"),
    (("add", "bob"), "long enough pass", "--role"),
    (("remove", "nobody"), None, "No user nobody"),
])
def test_user_command_errors_are_one_line_and_change_nothing(tmp_path: Path, args: tuple[str, ...], password: str | None,
                                                             message: str) -> None:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text("[other]\nx = 1\n")
    result = subprocess.run([sys.executable, "-m", "core", "user", *args, "--secrets", str(secrets),
                             *(("--password-stdin",) if password else ())], cwd=ROOT, capture_output=True, text=True,
                            input=(password + "\n") if password else "", timeout=60)
    assert message in assert_one_clean_error_line(result)
    assert secrets.read_text() == "[other]\nx = 1\n"
