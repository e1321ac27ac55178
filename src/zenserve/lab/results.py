"""Everything a comparison measured, and how it is written: results.json and results.csv.

Both files hold the same points, row for row (results.csv is the points
alone; results.json adds the machine, the plan, the readings and the notes).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zenserve.lab.points import COLUMNS, Point

SCHEMA = "zenserve.compare/1"


@dataclass
class Results:
    """A finished comparison: the points, where and how they were measured, what they say."""

    plan: dict[str, Any]
    machine: dict[str, Any]
    points: list[Point]
    elapsed_s: float = 0.0
    section_seconds: dict[str, float] = field(default_factory=dict)
    readings: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    saturation: list[str] = field(default_factory=list)
    figures: dict[str, str] = field(default_factory=dict)  # file name -> title

    def to_json(self) -> dict[str, Any]:
        """The whole comparison as plain data (schema ``zenserve.compare/1``)."""
        return {
            "schema": SCHEMA,
            "machine": self.machine,
            "plan": self.plan,
            "elapsed_s": round(self.elapsed_s, 1),
            "section_seconds": {name: round(seconds, 1)
                                for name, seconds in self.section_seconds.items()},
            "readings": self.readings,
            "warnings": self.warnings,
            "saturation": self.saturation,
            "figures": self.figures,
            "columns": list(COLUMNS),
            "points": [point.to_row() for point in self.points],
        }

    def write_json(self, path: Path) -> None:
        """Write ``to_json()`` to ``path``."""
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")

    def write_csv(self, path: Path) -> None:
        """Write the points to ``path``, one row each, columns as in ``COLUMNS``."""
        write_points_csv(self.points, path)


def csv_cell(value: Any) -> str:
    """How a row value is spelt in results.csv (samples space-separated, None empty)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return " ".join(csv_cell(item) for item in value)
    return str(value)


def write_points_csv(points: Sequence[Point], path: Path) -> None:
    """The points as CSV with a header row."""
    with path.open("w", newline="", encoding="utf-8") as output:
        writer = csv.writer(output)
        writer.writerow(COLUMNS)
        for point in points:
            row = point.to_row()
            writer.writerow([csv_cell(row[name]) for name in COLUMNS])
