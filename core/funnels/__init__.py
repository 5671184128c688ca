"""Conversion funnels: FunnelSpec -> parameterised SQL on DuckDB -> FunnelResult.

Counting follows ClickHouse's ``windowFunnel(window)`` in its default mode, so results can be
checked against a peer (bench/funnels.py does, on millions of events): a user reaches step k
when they have events of steps 1..k at times t1 <= t2 <= ... <= tk (equal times count as in
order, as ClickHouse orders ties by step) with tk - t1 <= window. One event may serve two
steps that it matches (steps "view, view" are reached by a single view, as in ClickHouse).
Each user counts once, at the deepest step reached.

``mode="strict"``: the matched events must follow each other directly in the user's sequence
of funnel-step events (sorted by time, ties by step; repeats of one step at one instant count
once): no other funnel-step event in between. Events that are no funnel step never break a
chain. (ClickHouse's ``strict_order`` also stops at non-step events, and lets a repeat of an
already reached step pass; this is the stricter, simpler reading.)

``first_touch_only``: only chains that start at the user's first step-1 event count.

Breakdowns, trend and time to convert, and why they are defined so:

- A breakdown by an event column (device, campaign, variant_id, ...) uses the value on the
  user's first step-1 event in the range (ties: the smallest non-empty value), so every user
  sits in exactly one group and the groups add up to the funnel.
- The trend groups users by the day or week of that same first step-1 event.
- Time to convert from step k to k+1: for each user who reached k+1, the earliest step-(k+1)
  event that completes a chain within the window, minus the latest step-k event that can
  precede it in such a chain.

How it is fast: a funnel index (tables ``funnel_users``, ``funnel_event_names``,
``funnel_events``; schema migration 2) holds the event log with users and event names as dense
integers, sorted by event, user and time (so a step's scan skips every other event's row
groups, and joins on user see their keys in order), rebuilt whenever the events table changed. On it, each step
is a hash join of the (few) step-k events against the chains that reached step k-1 of the same
user, keeping the latest possible start: no sort, and only users who reached step k-1 enter it.

Where each part lives: ``contract`` (the spec, the result, the window rules), ``index`` (the
funnel index), ``engine`` (planning, the SQL, the public queries), ``reference`` (the plain-Python
definition the tests check the engine against). Breakdown keys and the checks on the names in them
are shared with experiments in ``core.breakdowns``. Import from ``core.funnels``: the names below
are its public face, wherever they are defined.
"""

from __future__ import annotations

from core.funnels.contract import (
    MAX_GROUPS, MAX_STEPS, MAX_WINDOW, MIN_WINDOW, MODES, NONE_LABEL, OTHER_LABEL, BreakdownOption, Condition, FunnelMode,
    FunnelResult, FunnelSpec, IndexInfo, Step, StepStat, StepTiming, parse_window,
)
from core.funnels.engine import (
    breakdown_options, dropped_users, funnel, funnel_levels, last_step_users, list_event_names,
)
from core.funnels.index import ensure_index
from core.funnels.reference import reference_funnel

__all__ = [
    "MODES", "BreakdownOption", "Condition", "FunnelMode", "FunnelResult", "FunnelSpec", "IndexInfo", "Step", "StepStat", "StepTiming",
    "breakdown_options", "dropped_users", "ensure_index", "funnel", "funnel_levels", "last_step_users", "list_event_names",
    "parse_window",
    "reference_funnel",
]
