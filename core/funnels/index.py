"""The funnel index: the event log with users and event names as dense integers.

Funnels read it instead of ``events`` because a step then scans only its own event's row groups
and joins on user see their keys in order; it is derived data, rebuilt whenever the events change.
"""

from __future__ import annotations

import threading
import time

import duckdb

from core.funnels.contract import IndexInfo
from core.store import Store

_EVENT_COLUMNS = ("user_id", "ts", "event_name", "product_id", "session_id", "campaign", "variant_id", "device", "source", "revenue")
_ID_COLUMNS = ("product_id", "session_id")  # break down by them only on purpose: a group per product or visit
_index_lock = threading.Lock()


def _fingerprint(cur: duckdb.DuckDBPyConnection) -> tuple[str, int]:
    # Cheap (no scan): every writer of events either logs to ingest_log in the same transaction
    # (ingest, including re-uploads that replace rows) or changes the row count and row ids (the
    # demo build, inserts, deletes). Hand-written UPDATEs are not seen: ensure_index(force=True).
    n, max_rowid, logs, last_log = cur.execute(
        "SELECT count(*), max(rowid), (SELECT count(*) FROM ingest_log WHERE table_name = 'events'), "
        "(SELECT max(ingested_at) FROM ingest_log WHERE table_name = 'events') FROM events"
    ).fetchall()[0]
    return f"{n}:{max_rowid}:{logs}:{last_log}", int(n)


def _index_is_fresh(cur: duckdb.DuckDBPyConnection) -> tuple[bool, str, int]:
    fingerprint, n = _fingerprint(cur)
    try:
        row = cur.execute("SELECT fingerprint FROM funnel_index_state").fetchall()
    except duckdb.CatalogException:
        return False, fingerprint, n  # a database from before schema migration 2
    return bool(row) and row[0][0] == fingerprint, fingerprint, n


def ensure_index(store: Store, *, force: bool = False) -> IndexInfo:
    """Bring the funnel index up to date with the events table (a no-op when it already is).

    Rebuilding takes a few seconds per ten million events; it happens on the first funnel after
    the events changed. ``force`` rebuilds anyway (after events were changed by hand-written SQL
    that left their count, row ids and timestamps as they were).
    """
    began = time.perf_counter()
    failing = "DuckDB could not build the funnel index"
    with store.cursor(failing) as cur:
        fresh, fingerprint, n = _index_is_fresh(cur)
    if fresh and not force:
        return IndexInfo(n, False, time.perf_counter() - began, fingerprint)
    with _index_lock, store.transaction(derived=True, failing=failing) as cur:
        fresh, fingerprint, n = _index_is_fresh(cur)  # another thread may have just built it
        if fresh and not force:
            return IndexInfo(n, False, time.perf_counter() - began, fingerprint)
        for table in ("funnel_events", "funnel_users", "funnel_event_names", "funnel_index_state"):
            cur.execute(f"DELETE FROM {table}")
        cur.execute(
            "INSERT INTO funnel_users SELECT (row_number() OVER (ORDER BY user_id))::INTEGER, user_id "
            "FROM (SELECT DISTINCT user_id FROM events)"
        )
        cur.execute(
            "INSERT INTO funnel_event_names SELECT (row_number() OVER (ORDER BY events DESC, event_name))::INTEGER, "
            "event_name, events, users FROM (SELECT event_name, count(*) AS events, count(DISTINCT user_id) AS users "
            "FROM events GROUP BY event_name)"
        )
        columns = ", ".join(f"e.{c}" for c in _EVENT_COLUMNS)
        cur.execute(
            f"INSERT INTO funnel_events SELECT fu.u, epoch_us(e.ts), n.ev, {columns} FROM events e "
            "JOIN funnel_users fu ON fu.user_id = e.user_id JOIN funnel_event_names n ON n.event_name = e.event_name "
            "ORDER BY n.ev, fu.u, e.ts"  # each event's rows together: a step reads only its own row groups
        )
        cur.execute("INSERT INTO funnel_index_state VALUES (?, current_timestamp, ?)", [fingerprint, n])
    return IndexInfo(n, True, time.perf_counter() - began, fingerprint)
