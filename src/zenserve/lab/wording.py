"""How the readings spell numbers: rates, milliseconds, counts, shares, lists of names."""

from __future__ import annotations

import math
from collections.abc import Sequence


def rate(value: float) -> str:
    """``12,345 req/s``."""
    return f"{value:,.0f} req/s"


def millis(value: float) -> str:
    """Milliseconds with sensible precision, or "no answers" for NaN."""
    if math.isnan(value):
        return "no answers"
    return f"{value:.2f} ms" if value < 10 else f"{value:,.0f} ms"


def count(value: float, noun: str) -> str:
    """``1 connection``, ``4 connections``."""
    number = int(value) if value == int(value) else value
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def percent(value: float) -> str:
    """``99.5%``; ``100%`` exactly when nothing failed."""
    return "100%" if value >= 1 else f"{100 * value:.1f}%"


def names(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
