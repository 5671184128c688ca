"""What a funnel is: the spec a caller writes, the result it gets back, and the window rules.

Kept apart from the SQL so the page, the CLI, the tests' reference and the engine all read one
definition of a step, a filter and a window, and so checking a spec never needs a database.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pandas as pd

from core.errors import QueryError

MIN_WINDOW = timedelta(minutes=1)
MAX_WINDOW = timedelta(days=90)  # longer windows mean "ever", which a funnel without a window says better
MAX_STEPS = 10
MAX_GROUPS = 25  # breakdown groups shown; the rest are merged into "(other)"
NONE_LABEL = "(none)"
OTHER_LABEL = "(other)"

# Time-to-convert histogram edges, in seconds: human units, cut at the window.
_BINS = (0, 60, 300, 1800, 3600, 3 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, 60 * 86400, 90 * 86400)



@dataclass(frozen=True)
class FunnelMode:
    """A way of counting steps, as the page offers it and the CLI takes it (``--mode NAME``)."""

    name: str
    label: str  # how the page says it: "Steps must come … in order"
    help: str
    later_repeat: bool  # whether a repeated step may ask for a later event (``repeat_needs_later``)


# Every counting mode, in the order the page shows them; the engine implements each (engine._run / _run_strict).
MODES: dict[str, FunnelMode] = {m.name: m for m in (
    FunnelMode("ordered", "in order", "Each step after the one before, within the window, other steps in between "
               "allowed (ClickHouse's windowFunnel).", later_repeat=True),
    FunnelMode("strict", "one right after another", "No other funnel step between two consecutive steps.",
               later_repeat=False),
)}

_OPS = {"=": "=", "!=": "<>", "<>": "<>", ">": ">", ">=": ">=", "<": "<", "<=": "<=",
        "in": "IN", "not in": "NOT IN", "is null": "IS NULL", "is not null": "IS NOT NULL"}

# ---------------------------------------------------------------------------------------
# The contract
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Condition:
    """``column op value``. Columns: an events column, a products column (``category`` or
    ``product.brand``, via the event's product_id) for step and event filters; a users column
    or ``attributes.KEY`` for user filters. Values are always bound, never pasted."""

    column: str
    op: str = "="
    value: Any = None

    def __post_init__(self) -> None:
        op = self.op.strip().lower()
        if op not in _OPS:
            raise QueryError(f"Unknown comparison {self.op!r}; use one of {', '.join(_OPS)}.", title="Invalid funnel filter")
        object.__setattr__(self, "op", op)
        if op in ("in", "not in"):
            values = self.value if isinstance(self.value, (list, tuple, set, frozenset)) else [self.value]
            object.__setattr__(self, "value", tuple(values))


@dataclass(frozen=True)
class Step:
    event_name: str
    filters: tuple[Condition, ...] = ()
    label: str | None = None  # shown instead of the event name, e.g. "purchase > $0"

    def __post_init__(self) -> None:
        object.__setattr__(self, "filters", tuple(self.filters))

    @property
    def title(self) -> str:
        return self.label or self.event_name


def _bound(value: Any, name: str) -> datetime | None:
    """A date range bound as a naive UTC datetime (events are stored so): from a date, a datetime
    (an aware one converted to UTC) or ISO text. Anything else is refused here, not left to fail as
    a TypeError deep in the query."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise QueryError(f"The {name} date must look like 2026-09-01 or 2026-09-01T12:00, got {value!r}.",
                             title="Invalid funnel dates") from None
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo is not None else value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    raise QueryError(f"The {name} date must be a date, a datetime or text like 2026-09-01, got {value!r}.",
                     title="Invalid funnel dates")


@dataclass(frozen=True)
class FunnelSpec:
    steps: tuple[Step, ...]
    window: timedelta = timedelta(days=7)  # last step no later than this after the first
    mode: str = "ordered"  # "ordered" (ClickHouse windowFunnel default) | "strict"
    first_touch_only: bool = False  # only chains starting at the user's first step-1 event
    start: datetime | None = None  # events at or after (UTC; a date, an aware datetime or ISO text is converted)
    end: datetime | None = None  # events before
    event_filters: tuple[Condition, ...] = ()  # narrow every step's events
    user_filters: tuple[Condition, ...] = ()
    breakdown: str | None = None  # see breakdown_options()
    trend: str = "day"  # "day" | "week"
    # A step that repeats the step before it (purchase -> purchase) is met by the same event, as
    # in ClickHouse's windowFunnel; True asks for a later event instead (a second purchase).
    repeat_needs_later: bool = False

    def __post_init__(self) -> None:
        steps = tuple(Step(s) if isinstance(s, str) else s for s in self.steps)
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "window", parse_window(self.window))
        object.__setattr__(self, "event_filters", tuple(self.event_filters))
        object.__setattr__(self, "user_filters", tuple(self.user_filters))
        for name in ("start", "end"):
            object.__setattr__(self, name, _bound(getattr(self, name), name))
        if not steps:
            raise QueryError("Pick at least one step.", title="Invalid funnel")
        if len(steps) > MAX_STEPS:
            raise QueryError(f"A funnel has at most {MAX_STEPS} steps, got {len(steps)}.", title="Invalid funnel")
        if any(not isinstance(s.event_name, str) or not s.event_name for s in steps):
            raise QueryError("Every step needs an event name.", title="Invalid funnel")
        if self.mode not in MODES:
            raise QueryError(f"mode must be one of {', '.join(map(repr, MODES))}, got {self.mode!r}.", title="Invalid funnel")
        if self.repeat_needs_later and not MODES[self.mode].later_repeat:
            # In strict mode one event is its own next step by definition (nothing comes between).
            raise QueryError(f"A later event for a repeated step needs the ordered mode, not {self.mode}.", title="Invalid funnel")
        if self.trend not in ("day", "week"):
            raise QueryError(f"trend must be 'day' or 'week', got {self.trend!r}.", title="Invalid funnel")
        if self.start and self.end and self.start >= self.end:
            raise QueryError("The date range is empty: its start is not before its end.", title="Invalid funnel")

    def repeated_steps(self) -> list[int]:
        """1-based steps whose event (and filters) are those of the step before them."""
        return [k for k in range(2, len(self.steps) + 1) if self.steps[k - 1] == self.steps[k - 2]]

    def notes(self) -> list[str]:
        """What a reader of this funnel must know about how it counts."""
        repeated = self.repeated_steps()
        if not repeated:
            return []
        names = ", ".join(f"step {k} ({self.steps[k - 1].event_name})" for k in repeated)
        if self.repeat_needs_later:
            return [f"{names} repeats the step before it and counts only a later event of that name (a second one)."]
        return [f"{names} repeats the step before it: one event counts as both steps (as ClickHouse's windowFunnel "
                "does), so the step cannot drop anyone. Ask for a later, different event to count a second one."]

    @classmethod
    def of(cls, *event_names: str, **options: Any) -> FunnelSpec:
        """``FunnelSpec.of("view", "add_to_cart", "purchase", window="7d")``."""
        return cls(steps=tuple(Step(n) for n in event_names), **options)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (the window as '7d'): what results and saved segments record as their audit trail."""
        spec = asdict(self)
        spec["window"] = _format_window(self.window)
        return spec


@dataclass(frozen=True)
class StepStat:
    step: int  # 1-based
    label: str
    users: int  # reached this step (and so every step before it)
    from_previous: float | None  # users / users of the previous step
    from_first: float | None  # users / users of step 1
    dropped: int  # reached this step but not the next (0 at the last step)


@dataclass(frozen=True)
class StepTiming:
    from_step: int
    to_step: int
    users: int
    median_s: float | None
    p90_s: float | None
    histogram: tuple[tuple[str, float, float, int], ...]  # (label, from seconds, to seconds, users)


@dataclass
class FunnelResult:
    spec: FunnelSpec
    steps: list[StepStat]
    breakdown: pd.DataFrame | None  # group, step, label, users, from_previous, from_first
    trend: pd.DataFrame  # period, started, reached_2.., conversion, complete (window over)
    timings: list[StepTiming]  # k -> k+1
    total_timing: StepTiming | None  # step 1 -> last step
    seconds: float = 0.0

    @property
    def users(self) -> int:
        return self.steps[0].users if self.steps else 0

    @property
    def conversion(self) -> float | None:
        return self.steps[-1].from_first if self.steps else None

    def by_group(self) -> pd.DataFrame:
        """One row per breakdown group: entered (step 1), completed (the last step), conversion; best first.
        Empty without a breakdown. What the page's table and the CLI's lines show."""
        if self.breakdown is None or self.breakdown.empty:
            return pd.DataFrame(columns=["group", "entered", "completed", "conversion"])
        frame = self.breakdown
        entered = frame[frame["step"] == 1][["group", "users"]].rename(columns={"users": "entered"})
        completed = frame[frame["step"] == len(self.spec.steps)][["group", "users", "from_first"]].rename(
            columns={"users": "completed", "from_first": "conversion"})
        return entered.merge(completed, on="group").sort_values("conversion", ascending=False, kind="stable").reset_index(drop=True)

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_dict(),
            "users": self.users,
            "conversion": self.conversion,
            "steps": [asdict(s) for s in self.steps],
            "breakdown": None if self.breakdown is None else self.breakdown.to_dict(orient="records"),
            "trend": self.trend.to_dict(orient="records"),
            "timings": [asdict(t) for t in self.timings],
            "total_timing": asdict(self.total_timing) if self.total_timing else None,
            "seconds": self.seconds,
            "notes": self.spec.notes(),
        }


@dataclass(frozen=True)
class BreakdownOption:
    key: str  # what FunnelSpec.breakdown takes
    label: str
    kind: str  # event | user | attribute | segment
    # What a marketer breaks down by: not an id (thousands of one-user groups) nor the demo's planted truth.
    everyday: bool = True


@dataclass(frozen=True)
class IndexInfo:
    events: int
    rebuilt: bool
    seconds: float
    fingerprint: str = ""


# ---------------------------------------------------------------------------------------
# Windows
# ---------------------------------------------------------------------------------------

_WINDOW_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|min|mins|minutes?|h|hours?|d|days?|w|weeks?)\s*$", re.IGNORECASE)


def parse_window(value: str | timedelta | int | float) -> timedelta:
    """'30m', '12h', '7d', '2w' (or a timedelta, or seconds) -> timedelta within 1 minute .. 90 days."""
    if isinstance(value, timedelta):
        window = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        window = timedelta(seconds=value)
    elif isinstance(value, str):
        m = _WINDOW_RE.match(value)
        if not m:
            raise QueryError(f"Write the window as a number and a unit, like 30m, 12h, 7d or 2w; got {value!r}.", title="Invalid funnel window")
        unit = m.group(2)[0].lower()
        window = timedelta(**{{"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[unit]: float(m.group(1))})
    else:
        raise QueryError(f"Invalid window {value!r}.", title="Invalid funnel window")
    if not MIN_WINDOW <= window <= MAX_WINDOW:
        shown = repr(value) if isinstance(value, str) else _format_window(window)
        raise QueryError(f"The window must be between 1 minute and 90 days, got {shown}.", title="Invalid funnel window")
    return window


def _format_window(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _us(window: timedelta) -> int:
    return window // timedelta(microseconds=1)


def _epoch_us(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1)) // timedelta(microseconds=1)
