"""The one place that talks to DuckDB.

A ``Store`` owns one DuckDB connection per process; every caller borrows a cursor for the
duration of one piece of work (``with store.cursor() as cur``). DuckDB cursors are
independent connections to the same database, which is what makes one store safe to share
between Streamlit sessions running on different threads.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import gc
import re
import threading
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import duckdb

from core.access import LOCAL_EDITOR, User, require_editor
from core.errors import QueryError, StoreError

TABLES = ("products", "users", "events", "reviews", "copy_variants", "segment_runs", "segments", "user_segments", "ingest_log")

_MIGRATION_HEADER = re.compile(r"^-- migration: (\d+)\s*$", re.MULTILINE)


def migrations() -> list[tuple[int, str]]:
    """The numbered sections of schema.sql, in order."""
    text = resources.files("core").joinpath("schema.sql").read_text(encoding="utf-8")
    parts = _MIGRATION_HEADER.split(text)
    # split() gives [preamble, n1, sql1, n2, sql2, ...]
    numbered = [(int(n), sql) for n, sql in zip(parts[1::2], parts[2::2])]
    versions = [n for n, _ in numbered]
    if versions != list(range(1, len(versions) + 1)):
        raise StoreError(f"schema.sql migrations must be numbered 1, 2, 3…; found {versions}.")
    return numbered


SCHEMA_VERSION = len(migrations())


def quote_ident(name: str) -> str:
    """Quote an identifier for DuckDB. Only for names already checked against the schema."""
    return '"' + name.replace('"', '""') + '"'


_VERSIONS: dict[str, dict[str, int]] = {}
_OPEN: weakref.WeakSet[Store] = weakref.WeakSet()


@atexit.register
def _close_open_stores() -> None:
    """Close what is still open when the process ends.

    A server or test run keeps stores in caches (st.cache_resource) and job closures until the end;
    a DuckDB connection still alive when the interpreter tears DuckDB down is reported on stderr as
    dozens of "nanobind: leaked …" lines, which read like a crash to whoever stops the server.
    """
    for store in list(_OPEN):
        with contextlib.suppress(Exception):
            store._con.close()
        store.__dict__.pop("_con", None)
    gc.collect()


class Store:
    """A migrated DuckDB database. Create one per process and pass it in.

    ``user`` is who the calls are made for: the local editor by default (the CLI, a server with no
    login), a signed-in user in a view made by :meth:`as_user`. A viewer's store opens no write
    transaction, so every write in core is refused for viewers whichever page or script calls it.
    """

    user: User = LOCAL_EDITOR

    def __init__(self, path: str | Path = ":memory:", *, read_only: bool = False) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(self.path, read_only=read_only)
        except duckdb.IOException as e:
            if "lock" in str(e).lower():
                raise StoreError(
                    f"{self.path} is open in another process (another MarketLab or a script). "
                    "Close it, or point MARKETLAB_DB at another file.",
                    title="The database file is locked",
                ) from e
            raise StoreError(str(e), title="The database file could not be opened") from e
        except duckdb.Error as e:
            raise StoreError(str(e), title="The database file could not be opened") from e
        self._write_lock = threading.Lock()
        _OPEN.add(self)
        # Shared by every Store on this file in the process (and the views made by as_user): DuckDB
        # gives them one database, so a write through any of them changes what all of them read.
        key = f"memory:{id(self)}" if self.path == ":memory:" else str(Path(self.path).resolve())
        self._versions = _VERSIONS.setdefault(key, {})
        if not read_only:
            self.migrate()

    def close(self) -> None:
        self._con.close()

    def as_user(self, user: User) -> "Store":
        """This store, acting for ``user``: same connection and write lock, that user's rights."""
        view = copy.copy(self)
        view.user = user
        _OPEN.add(view)  # it holds the connection too
        return view

    def data_version(self, tables: Iterable[str] | None = None) -> int:
        """A number that changes whenever data in ``tables`` (default: any table) may have changed.

        The cache key for what is read. Complete for a read-write store: DuckDB lets no other
        process write the file while this one has it open, so every change goes through a
        ``transaction`` in this process, which counts it against the tables it declares it touches
        (all of them unless it says).
        """
        return sum(self._versions.get(t, 0) for t in (TABLES if tables is None else tables))

    def require_editor(self, action: str) -> None:
        """Refuse ``action`` up front for a viewer, with a message that names it."""
        require_editor(self.user, action)

    @contextmanager
    def cursor(self, failing: str | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor for this thread's piece of work; closed afterwards.

        A DuckDB error inside becomes a ``QueryError`` titled ``failing`` ("The catalog could not be
        searched"): wrapped once, here, so that no caller shows a library's exception and none has to
        remember to wrap it. Code that expects a DuckDB error (a table that may not exist yet) catches it
        inside the block, before it gets here.
        """
        cur = self._con.cursor()
        try:
            yield cur
        except duckdb.Error as e:
            raise QueryError(str(e), title=failing) from e
        finally:
            cur.close()

    @contextmanager
    def transaction(self, *, derived: bool = False, touches: Iterable[str] | None = None,
                    failing: str | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor inside BEGIN … COMMIT; anything raised rolls the whole piece back (a DuckDB error
        after the rollback as a ``QueryError`` titled ``failing``, see ``cursor``).

        ``touches`` names the only tables the transaction writes (a cached funnel stays valid
        when a variant is approved); by default it may have written any.

        Refused for a viewer unless ``derived``: a rebuild of data computed from what is stored
        (the funnel index), which any reader may trigger and which changes no user's data.
        """
        if not derived:
            require_editor(self.user, "changing data")
        touched = TABLES if touches is None else tuple(touches)
        if unknown := set(touched) - set(TABLES):
            raise QueryError(f"Unknown table(s) {sorted(unknown)}.")
        # Writers take turns: DuckDB's optimistic concurrency aborts one of two transactions
        # that touch the same rows, and a marketer's upload should wait, not fail.
        with self._write_lock, self.cursor(failing) as cur:
            cur.begin()
            try:
                yield cur
            except BaseException:
                cur.rollback()
                raise
            cur.commit()
            if not derived:
                for table in touched:
                    self._versions[table] = self._versions.get(table, 0) + 1

    def schema_version(self) -> int:
        with self.cursor() as cur:
            exists = cur.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'"
            ).fetchone()[0]
            if not exists:
                return 0
            row = cur.execute("SELECT max(version) FROM schema_version").fetchone()
            return int(row[0] or 0)

    def migrate(self) -> int:
        """Bring the database up to SCHEMA_VERSION; returns the version it is at."""
        current = self.schema_version()
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} is at schema version {current}, newer than this MarketLab ({SCHEMA_VERSION}). Upgrade MarketLab.",
                title="The database is from a newer MarketLab",
            )
        for version, sql in migrations():
            if version <= current:
                continue
            with self.transaction() as cur:
                cur.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP DEFAULT current_timestamp)")
                cur.execute(sql)
                cur.execute("INSERT INTO schema_version (version) VALUES (?)", [version])
        return SCHEMA_VERSION

    def columns(self, table: str) -> list[str]:
        """Column names of a MarketLab table, in order; the allow-list for user-chosen identifiers."""
        if table not in TABLES:
            raise QueryError(f"Unknown table {table!r}.")
        with self.cursor() as cur:
            rows = cur.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
                [table],
            ).fetchall()
        return [r[0] for r in rows]

    def count(self, table: str) -> int:
        if table not in TABLES:
            raise QueryError(f"Unknown table {table!r}.")
        with self.cursor() as cur:
            return int(cur.execute(f"SELECT count(*) FROM {quote_ident(table)}").fetchone()[0])

    def counts(self) -> dict[str, int]:
        return {t: self.count(t) for t in ("products", "users", "events", "reviews", "copy_variants")}

    def is_empty(self) -> bool:
        return not any(self.counts().values())
