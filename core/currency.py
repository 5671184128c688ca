"""Money as shoppers and marketers read it: "$20.99", "€9.50", "129 SEK" — one table of signs for
the copy writer and the pages, so a price in an ad and on a dashboard look the same."""

from __future__ import annotations

__all__ = ["CURRENCY_SIGNS", "with_currency"]

# Currencies whose sign is unambiguous before the amount; any other is written after it by code.
CURRENCY_SIGNS = {"USD": "$", "EUR": "€", "GBP": "£", "CAD": "CA$", "AUD": "A$", "JPY": "¥", "INR": "₹"}


def with_currency(amount: str, currency: str | None) -> str:
    """``amount`` (already formatted) with its currency: "$1,204", "1,204 BRL", or the amount alone when none is known."""
    sign = CURRENCY_SIGNS.get((currency or "").upper())
    return f"{sign}{amount}" if sign else f"{amount} {currency}" if currency else amount
