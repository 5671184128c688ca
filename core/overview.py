"""What is in the store: counts, the event log's span and shape, recent imports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from core.store import Store


@dataclass
class Overview:
    counts: dict[str, int]
    first_event: datetime | None
    last_event: datetime | None
    events_by_day: pd.DataFrame  # day, event_name, events
    event_names: pd.DataFrame  # event_name, events, users
    recent_imports: pd.DataFrame


def overview(store: Store, *, top_events: int = 8) -> Overview:
    with store.cursor() as cur:
        first, last = cur.execute("SELECT min(ts), max(ts) FROM events").fetchone()
        names = cur.execute(
            "SELECT event_name, count(*) AS events, count(DISTINCT user_id) AS users FROM events GROUP BY 1 ORDER BY events DESC"
        ).df()
        shown = names["event_name"].head(top_events).tolist()
        by_day = cur.execute(
            "SELECT date_trunc('day', ts) AS day, event_name, count(*) AS events FROM events "
            "WHERE list_contains(?, event_name) GROUP BY ALL ORDER BY day",
            [shown],
        ).df()
        imports = cur.execute(
            "SELECT ingested_at, table_name, file_name, rows_in_file, inserted, updated, rejected "
            "FROM ingest_log ORDER BY ingested_at DESC LIMIT 10"
        ).df()
    return Overview(store.counts(), first, last, by_day, names, imports)


def event_span(store: Store) -> tuple[datetime | None, datetime | None]:
    """First and last event timestamps, for date pickers."""
    with store.cursor() as cur:
        first, last = cur.execute("SELECT min(ts), max(ts) FROM events").fetchall()[0]
    return first, last
