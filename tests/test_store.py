"""The store: versioned migrations, one connection shared by threads, all-or-nothing transactions."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from core.errors import StoreError
from core.store import SCHEMA_VERSION, Store, migrations


def test_new_database_is_migrated_to_the_latest_version(tmp_store: Store) -> None:
    assert tmp_store.schema_version() == SCHEMA_VERSION == len(migrations())
    assert tmp_store.columns("events")[:3] == ["user_id", "ts", "event_name"]


def test_reopening_does_not_migrate_twice(tmp_path: Path) -> None:
    Store(tmp_path / "db.duckdb").close()
    store = Store(tmp_path / "db.duckdb")
    with store.cursor() as cur:
        assert cur.execute("SELECT count(*) FROM schema_version").fetchone()[0] == SCHEMA_VERSION


def test_a_database_from_a_newer_marketlab_is_refused(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.duckdb")
    with store.transaction() as cur:
        cur.execute("INSERT INTO schema_version (version) VALUES (?)", [SCHEMA_VERSION + 1])
    store.close()
    with pytest.raises(StoreError, match="newer"):
        Store(tmp_path / "db.duckdb")


def test_a_failed_transaction_writes_nothing(tmp_store: Store) -> None:
    with pytest.raises(RuntimeError):
        with tmp_store.transaction() as cur:
            cur.execute("INSERT INTO users (user_id) VALUES ('U1')")
            raise RuntimeError("boom")
    assert tmp_store.count("users") == 0


def test_threads_share_one_store_with_a_cursor_each(tmp_store: Store) -> None:
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(20):
                with tmp_store.transaction() as cur:
                    cur.execute("INSERT INTO users (user_id) VALUES (?)", [f"T{n}-{i}"])
                with tmp_store.cursor() as cur:
                    cur.execute("SELECT count(*) FROM users").fetchone()
        except BaseException as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert tmp_store.count("users") == 80


def test_a_locked_database_gets_a_clear_message(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "locked.duckdb"
    Store(path).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb,sys,time; c=duckdb.connect({str(path)!r}); print('ready', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreError) as caught:
            Store(path)
        assert caught.value.title == "The database file is locked"
    finally:
        holder.kill()
        holder.wait()


def test_unknown_table_names_never_reach_sql(tmp_store: Store) -> None:
    from core.errors import QueryError

    with pytest.raises(QueryError):
        tmp_store.count("users; DROP TABLE users")
    with pytest.raises(QueryError):
        tmp_store.columns("nope")


def test_a_store_still_held_when_the_process_ends_is_closed_quietly(tmp_path: Path) -> None:
    """A server keeps its store in a cache and its job thread until the end; DuckDB torn down under a live
    connection prints dozens of "nanobind: leaked …" lines on stop, which read like a crash (issue 16)."""
    import subprocess
    import sys

    script = (
        "import sys, threading, time\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})\n"
        "from core.store import Store\n"
        "store = Store(sys.argv[1]); store.count('products')\n"
        "threading.Thread(target=lambda s=store: time.sleep(3600), daemon=True).start()\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "held.duckdb")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "leaked" not in done.stderr
