"""Numbers as people read them, by their unit: money with its currency ("$20.99", "129 SEK"), shares as
percentages, durations in the unit that reads best, never 8.95e+03. One place for the copy writer's
prices, the personas' facts and the pages' metrics, so the same number reads the same everywhere."""

from __future__ import annotations

__all__ = ["CURRENCY_SIGNS", "duration", "measure", "money", "with_currency"]

# Currencies whose sign is unambiguous before the amount; any other is written after it by code.
CURRENCY_SIGNS = {"USD": "$", "EUR": "€", "GBP": "£", "CAD": "CA$", "AUD": "A$", "JPY": "¥", "INR": "₹"}


def with_currency(amount: str, currency: str | None) -> str:
    """``amount`` (already formatted) with its currency: "$1,204", "1,204 BRL", or the amount alone when none is known."""
    sign = CURRENCY_SIGNS.get((currency or "").upper())
    return f"{sign}{amount}" if sign else f"{amount} {currency}" if currency else amount


def money(value: float | None, currency: str | None, *, cents: bool = False) -> str:
    """'$1,204', '€89.50', '1,204 BRL': money always with its currency, never a bare number."""
    if value is None or value != value:
        return "—"
    return with_currency(f"{value:,.2f}" if cents else f"{value:,.0f}", currency)


def duration(seconds: float | None) -> str:
    """'45 s', '12 min', '3.5 h', '2.1 days' — for medians and percentiles of time to convert."""
    if seconds is None:
        return "—"
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            value = seconds / size
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{seconds:.0f} s"


def measure(value: float | None, unit: str, currency: str | None = None) -> str:
    """A number as people read it, by its unit (share, money, days, seconds, ratio, or a count)."""
    if value is None or value != value:
        return "—"
    if unit == "share":
        return f"{value:.0%}" if value >= 0.1 else f"{value:.1%}"
    if unit == "money":
        return money(value, currency, cents=abs(value) < 100)  # "$23.99", "$276"
    if unit == "days":
        return f"{value:,.0f} days" if value >= 10 else f"{value:.1f} days"
    if unit == "seconds":
        return duration(value)
    if unit == "ratio":
        return f"{value:.2f}×"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}".rstrip("0").rstrip(".")
