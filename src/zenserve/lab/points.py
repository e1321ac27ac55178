"""The unit of every result: one point of one figure, the median of several short runs.

A ``Point`` says which section, architecture and setting it belongs to, what
was measured (``metric``), its median over the runs and their spread (lowest
and highest), the raw samples, and whether the load generator may have been
the bottleneck in any of the runs. results.json and results.csv hold the same
points, row for row.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any

# Columns of results.csv, in order (also the keys of each point in results.json).
COLUMNS = ("section", "architecture", "workers", "cost_kind", "condition", "x_name", "x",
           "metric", "median", "low", "high", "runs", "saturated", "samples")


@dataclass(frozen=True, slots=True)
class Point:
    """One measured point; ``x`` is None for points that are not on a curve."""

    section: str
    architecture: str
    metric: str
    median: float
    low: float
    high: float
    samples: tuple[float, ...]
    x_name: str = ""
    x: float | None = None
    workers: int = 0
    cost_kind: str = ""
    condition: str = ""
    saturated: bool = False

    @property
    def runs(self) -> int:
        """How many runs the point summarises."""
        return len(self.samples)

    @property
    def measured(self) -> bool:
        """False when no run produced a value (e.g. a latency with no answer at all)."""
        return not math.isnan(self.median)

    def to_row(self) -> dict[str, Any]:
        """The point as a flat row: JSON numbers and booleans, None for absent values."""
        row: dict[str, Any] = {name: getattr(self, name) for name in COLUMNS if name != "runs"}
        row["runs"] = self.runs
        for name in ("median", "low", "high"):
            row[name] = _plain(row[name])
        row["samples"] = [_plain(value) for value in self.samples]
        return {name: row[name] for name in COLUMNS}


def _plain(value: float) -> float | None:
    """Rounded for the files; NaN (nothing measured) becomes None (JSON null, empty CSV cell)."""
    return None if math.isnan(value) else round(value, 6)


def summarize(section: str, architecture: str, metric: str, samples: Iterable[float],
              saturated: bool = False, **where: Any) -> Point:
    """A point from the runs' samples: the median, and the lowest and highest as the spread.

    NaN samples (runs that measured nothing) are kept in ``samples`` but left
    out of the median; a point whose runs all measured nothing has NaN values.
    """
    values = tuple(float(value) for value in samples)
    real = [value for value in values if not math.isnan(value)]
    if real:
        median, low, high = statistics.median(real), min(real), max(real)
    else:
        median = low = high = math.nan
    return Point(section=section, architecture=architecture, metric=metric, median=median,
                 low=low, high=high, samples=values, saturated=saturated, **where)


def select(points: Sequence[Point], **where: Any) -> list[Point]:
    """The points whose fields equal every ``where`` value, in their original order."""
    names = {field.name for field in fields(Point)}
    unknown = set(where) - names
    if unknown:
        raise ValueError(f"points have no field {sorted(unknown)[0]!r}")
    return [point for point in points
            if all(getattr(point, name) == value for name, value in where.items())]


def architectures_of(points: Sequence[Point]) -> list[str]:
    """The architectures of ``points``, in order of first appearance."""
    return list(dict.fromkeys(point.architecture for point in points))
