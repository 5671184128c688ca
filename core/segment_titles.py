"""What people call a segmentation run. Its own module: funnels and experiments name runs in their
breakdown pickers, and ``core.segments`` imports funnels (saved drop-off lists), so neither may import the other."""

from __future__ import annotations

from datetime import datetime

__all__ = ["run_title"]


def run_title(method: str, k: int, created_at: datetime, *, name: str | None = None, use_text: bool = False) -> str:
    """A run as people call it: "5 behaviour segments · 4 Dec 14:53", "RFM segments · …", "“Cart abandoners” · …".

    The run id ("run-20261204-145312-e76cb0") is for the machine; titles and pickers show this instead.
    """
    when = f"{created_at:%-d %b %H:%M}"
    if name:
        return f"“{name}” · {when}"
    if method == "rfm":
        return f"RFM segments · {when}"
    if method == "kmeans":
        return f"{k} {'behaviour and review-text' if use_text else 'behaviour'} segment{'s' if k != 1 else ''} · {when}"
    return f"{k} segment{'s' if k != 1 else ''} ({method.replace('_', ' ')}) · {when}"
