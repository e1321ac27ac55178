"""The architectures benchmark's table: rates, ratios to the book and to C, missed targets."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from race import Point

# Issue 3: every architecture at least as fast as its book listing (every connection count).
BOOK_TARGET = 1.0
# Issue 7, target 2: every architecture at least 1.2x its book listing at 10 connections.
BOOK_TARGET_AT_10 = 1.2
# Issue 7, target 1: the fastest setup at least 0.9x the C reference at 10 and 100 connections.
C_TARGET = 0.9
C_TARGET_COUNTS = (10, 100)
C_LABEL = "C reference"
ZENSERVE_LABEL = "zenserve"  # the one-process setup, raced like-for-like against the book


@dataclass(frozen=True, slots=True)
class GroupResult:
    """One architecture's race: its rows in order, and every sample of every row."""

    architecture: str
    book_label: str | None  # None when the architecture has no book counterpart
    labels: tuple[str, ...]  # book, zenserve, zenserve --workers 2 (those that exist)
    c_labels: tuple[str, ...]  # the C yardsticks raced in this group
    points: dict[tuple[str, int], Point]

    def median(self, label: str | None, count: int) -> float | None:
        return None if label is None else self.points[label, count].median


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def format_rate(point: Point) -> str:
    median = point.median
    if median is None:
        return "n/a (timeout)" if any("timed out" in f for f in point.failures) else "n/a (failed)"
    succeeded, tried = len(point.rates), len(point.results)
    return f"{median:,.0f}" + ("" if succeeded == tried else f" ({succeeded}/{tried} runs)")


def format_ratios(values: Sequence[float | None]) -> str:
    return " / ".join("—" if value is None else f"{value:.2f}" for value in values)


def missed_book_targets(group: GroupResult, counts: Sequence[int]) -> list[str]:
    """Issue 3 and issue 7 (target 2) misses of the one-process zenserve row."""
    missed = []
    for count in counts:
        book = group.median(group.book_label, count)
        if book is None:
            continue  # the book's listing could not be measured here: nothing to compare
        mine = group.median(ZENSERVE_LABEL, count)
        value = ratio(mine, book)
        wanted = BOOK_TARGET_AT_10 if count == 10 else BOOK_TARGET
        if value is None:
            missed.append(f"no rate at {count}, the book had one")
        elif value < wanted:
            missed.append(f"{value:.2f}× book < {wanted}× at {count}")
    return missed


def table_rows(groups: Sequence[GroupResult], counts: Sequence[int]) -> list[list[str]]:
    """Markdown cells: pooled C rows first, then every architecture's rows."""
    rows = []
    for c_label in groups[0].c_labels if groups else ():
        pooled = [_pooled(groups, c_label, count) for count in counts]
        rows.append(["(yardstick)", c_label, *pooled, "", "", ""])
    for group in groups:
        c_medians = [group.median(C_LABEL, count) for count in counts]
        book_medians = [group.median(group.book_label, count) for count in counts]
        for label in group.labels:
            rates = [format_rate(group.points[label, count]) for count in counts]
            medians = [group.median(label, count) for count in counts]
            to_c = [ratio(m, c) for m, c in zip(medians, c_medians, strict=True)]
            to_book = "" if label == group.book_label or group.book_label is None else (
                format_ratios([ratio(m, b) for m, b in zip(medians, book_medians, strict=True)]))
            flags = ""
            if label == ZENSERVE_LABEL:
                flags = "; ".join(missed_book_targets(group, counts))
            rows.append([group.architecture, label, *rates, to_book, format_ratios(to_c), flags])
    return rows


def _pooled(groups: Sequence[GroupResult], label: str, count: int) -> str:
    rates = [rate for group in groups for rate in group.points[label, count].rates]
    return f"{statistics.median(rates):,.0f}" if rates else "n/a"


def markdown_table(groups: Sequence[GroupResult], counts: Sequence[int]) -> str:
    """The whole table as GitHub markdown."""
    header = ["architecture", "server", *(f"{count} conn" + ("s" if count > 1 else "")
                                          for count in counts),
              f"× book ({'/'.join(map(str, counts))})", f"× C ({'/'.join(map(str, counts))})",
              "missed targets (one process vs book)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(groups, counts)]
    return "\n".join(lines)


def fastest_summary(groups: Sequence[GroupResult]) -> list[str]:
    """Issue 7 target 1: the best zenserve setup against the C reference of its own race."""
    lines = []
    for count in C_TARGET_COUNTS:
        best: tuple[float, str] | None = None
        for group in groups:
            for label in group.labels:
                if label == group.book_label or (label, count) not in group.points:
                    continue
                value = ratio(group.median(label, count), group.median(C_LABEL, count))
                if value is not None and (best is None or value > best[0]):
                    best = (value, f"{group.architecture} / {label}")
        if best is None:
            lines.append(f"- fastest at {count} connections: not measured")
            continue
        verdict = "met" if best[0] >= C_TARGET else "MISSED"
        lines.append(f"- fastest at {count} connections: {best[1]} at {best[0]:.2f}× "
                     f"the C reference (target ≥ {C_TARGET}×: {verdict})")
    return lines


def failure_notes(groups: Sequence[GroupResult], counts: Sequence[int]) -> list[str]:
    """One line per contender and connection count that had a failed run, with the reason."""
    notes = []
    for group in groups:
        for label in (*group.c_labels, *group.labels):
            for count in counts:
                reasons = sorted(set(group.points[label, count].failures))
                if reasons:
                    notes.append(f"- {group.architecture} / {label} at {count}: "
                                 + "; ".join(reasons))
    return notes
