"""Breaking users into groups: the breakdown keys funnels and experiments share, checked before SQL.

Both pages split users by a users column, a key of ``users.attributes`` or a saved segmentation
run (the key ``segment:RUN_ID``). Each of those is defined once here, so the two pages group a user
the same way and every name a user typed is checked against the live schema (and quoted) in one
place before it reaches SQL; values, JSON paths and run ids are always bound, never pasted.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

from core.errors import QueryError
from core.store import Store, quote_ident

__all__ = ["Schema", "SegmentJoin", "segment_join", "segment_key", "segment_run_of", "user_column"]

# The one spelling of a breakdown by a segmentation run; pages build and read keys through the two
# functions below, so the prefix can never drift between the page that writes it and the query that reads it.
_SEGMENT_PREFIX = "segment:"


def segment_key(run_id: str) -> str:
    """The breakdown key for the segments of one segmentation run."""
    return f"{_SEGMENT_PREFIX}{run_id}"


def segment_run_of(key: str | None) -> str | None:
    """The run id a breakdown key names, or None when it is no segment key (taken as is: no trimming)."""
    if key and key.startswith(_SEGMENT_PREFIX):
        return key[len(_SEGMENT_PREFIX):]
    return None


# ---------------------------------------------------------------------------------------
# Checking names against the schema
# ---------------------------------------------------------------------------------------

_columns_cache: weakref.WeakKeyDictionary[Store, tuple[list[str], list[str], list[str]]] = weakref.WeakKeyDictionary()


@dataclass
class Schema:
    """The columns of events, products and users (and the keys of users.attributes): what a name is checked against."""

    events: list[str]
    products: list[str]
    users: list[str]
    _attribute_keys: list[str] | None = None
    _store: Store | None = None

    @classmethod
    def load(cls, store: Store) -> Schema:
        # Columns change only by migrations, which run when a Store opens: read them once per store.
        columns = _columns_cache.get(store)
        if columns is None:
            columns = _columns_cache[store] = tuple(store.columns(t) for t in ("events", "products", "users"))
        return cls(*columns, None, store)

    def attribute_keys(self) -> list[str]:
        if self._attribute_keys is None:
            with self._store.cursor() as cur:
                rows = cur.execute(
                    "SELECT DISTINCT k FROM (SELECT unnest(json_keys(attributes)) AS k FROM users "
                    "WHERE attributes IS NOT NULL AND json_type(attributes) = 'OBJECT') ORDER BY k"
                ).fetchall()
            self._attribute_keys = [r[0] for r in rows]
        return self._attribute_keys


def _json_path(key: str) -> str:
    return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def user_column(schema: Schema, column: str) -> tuple[str, list[Any]]:
    """SQL for a users column (alias us), or one key of users.attributes; with its bound values."""
    name = column.strip()
    for prefix in ("user.", "users."):
        if name.startswith(prefix):
            name = name[len(prefix):]
    if name.startswith("attributes."):
        key = name[len("attributes."):]
        if key in schema.attribute_keys():
            return "json_extract_string(us.attributes, ?)", [_json_path(key)]
    elif name in schema.users and name != "attributes":
        return f"us.{quote_ident(name)}", []
    elif name in schema.attribute_keys():
        return "json_extract_string(us.attributes, ?)", [_json_path(name)]
    allowed = [c for c in schema.users if c != "attributes"] + [f"attributes.{k}" for k in schema.attribute_keys()]
    raise QueryError(f"{column!r} is not a user column. Use one of: {', '.join(allowed)}.", title="Unknown column in the funnel")


# ---------------------------------------------------------------------------------------
# A breakdown by a segmentation run
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SegmentJoin:
    """LEFT JOINs that give each user row its segment in one run, and the group they yield (NULL: in no segment)."""

    join: str  # appended after the caller's FROM; aliases user_seg and seg
    expr: str  # the group as text: the segment's name, else its id
    params: list[Any]  # bound in the join: the run id


def segment_join(store: Store, key: str, *, user_id: str) -> SegmentJoin | None:
    """The segment-join SQL for a ``segment:RUN_ID`` breakdown key, None for any other key.

    ``user_id`` is the caller's column of user ids (``fu.user_id``, ``x.user_id``): SQL written in code,
    never user text. The run id is checked to exist (a clear error, not an empty breakdown) and bound.
    """
    run_id = segment_run_of(key)
    if run_id is None:
        return None
    with store.cursor() as cur:
        found = cur.execute("SELECT count(*) FROM segment_runs WHERE run_id = ?", [run_id]).fetchall()[0][0]
    if not found:
        raise QueryError(f"There is no segmentation run {run_id!r}.", title="Unknown breakdown")
    join = (f"LEFT JOIN user_segments user_seg ON user_seg.user_id = {user_id} AND user_seg.run_id = ? "
            "LEFT JOIN segments seg ON seg.run_id = user_seg.run_id AND seg.segment_id = user_seg.segment_id")
    return SegmentJoin(join, "coalesce(seg.name, user_seg.segment_id)", [run_id])
