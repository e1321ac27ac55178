"""The architectures benchmark's table: rates, ratios to the book and to C, missed targets.

Ratios to the book are paired: each round drives the book and zenserve within
seconds of each other, so the ratio of that round's two rates cancels the
machine's slower waves, and the table shows the median of those per-round
ratios. A second copy of the book's listing (the A/A copy) is raced the same
way: its ratio to the first copy is what two identical servers differ by in
this run, the yardstick for calling a small shortfall a tie.
"""

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
    labels: tuple[str, ...]  # book, its A/A copy, zenserve, zenserve --workers 2 (those that exist)
    c_labels: tuple[str, ...]  # the C yardsticks raced in this group
    points: dict[tuple[str, int], Point]
    twin_label: str | None = None  # the book's A/A copy, when one was raced

    def median(self, label: str | None, count: int) -> float | None:
        return None if label is None else self.points[label, count].median

    def to_book(self, label: str, count: int) -> float | None:
        """The median of the per-round ratios of ``label`` to the book (None if none paired).

        Runs of one round are paired by position: a race appends one result per
        round and stops driving a point only after it timed out.
        """
        if self.book_label is None:
            return None
        pairs = zip(self.points[label, count].results,
                    self.points[self.book_label, count].results, strict=False)
        ratios = [mine.rate / book.rate for mine, book in pairs if mine.rate and book.rate]
        return statistics.median(ratios) if ratios else None


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


def a_a_spread(groups: Sequence[GroupResult], counts: Sequence[int]) -> dict[int, float]:
    """How far from 1.0 the book's A/A copy got at each count, the widest over every group.

    Two identical servers raced side by side differ by this much in this run:
    a shortfall to the book within it is a tie, not a verdict.
    """
    spread = {}
    for count in counts:
        deviations = [abs(1.0 - value) for group in groups if group.twin_label is not None
                      for value in [group.to_book(group.twin_label, count)] if value is not None]
        if deviations:
            spread[count] = max(deviations)
    return spread


def missed_book_targets(group: GroupResult, counts: Sequence[int],
                        spread: dict[int, float] | None = None) -> list[str]:
    """Issue 3 and issue 7 (target 2) misses of the one-process zenserve row.

    ``spread``: the A/A spread per count (``a_a_spread``); a shortfall below
    1.0× within it is reported as a tie, beyond it as a miss.
    """
    missed = []
    for count in counts:
        if group.median(group.book_label, count) is None:
            continue  # the book's listing could not be measured here: nothing to compare
        value = group.to_book(ZENSERVE_LABEL, count)
        noise = (spread or {}).get(count)
        if value is None:
            missed.append(f"no rate at {count}, the book had one")
        elif value < BOOK_TARGET and noise is not None and BOOK_TARGET - value <= noise:
            missed.append(f"{value:.2f}× book at {count}: a tie (A/A ±{noise:.2f})")
        elif value < BOOK_TARGET:
            missed.append(f"{value:.2f}× book < {BOOK_TARGET}× at {count}")
        elif count == 10 and value < BOOK_TARGET_AT_10:
            missed.append(f"{value:.2f}× book < {BOOK_TARGET_AT_10}× at 10 (issue 7)")
    return missed


def table_rows(groups: Sequence[GroupResult], counts: Sequence[int]) -> list[list[str]]:
    """Markdown cells: pooled C rows first, then every architecture's rows."""
    rows = []
    spread = a_a_spread(groups, counts)
    for c_label in groups[0].c_labels if groups else ():
        pooled = [_pooled(groups, c_label, count) for count in counts]
        rows.append(["(yardstick)", c_label, *pooled, "", "", ""])
    for group in groups:
        c_medians = [group.median(C_LABEL, count) for count in counts]
        for label in group.labels:
            rates = [format_rate(group.points[label, count]) for count in counts]
            medians = [group.median(label, count) for count in counts]
            to_c = [ratio(m, c) for m, c in zip(medians, c_medians, strict=True)]
            to_book = "" if label == group.book_label or group.book_label is None else (
                format_ratios([group.to_book(label, count) for count in counts]))
            flags = ""
            if label == ZENSERVE_LABEL:
                flags = "; ".join(missed_book_targets(group, counts, spread))
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
              "short of the book (one process; issue 3, and 1.2× at 10 for issue 7)"]
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


def book_summary(groups: Sequence[GroupResult], counts: Sequence[int]) -> list[str]:
    """Issue 3 and issue 7 (target 2) verdicts over every architecture with a book counterpart."""
    spread = a_a_spread(groups, counts)
    lines = []
    if spread:
        lines.append("- A/A spread (the book's copy against the book, widest over all groups): "
                     + ", ".join(f"±{spread[count]:.2f} at {count}" for count in counts
                                 if count in spread))
    met, tied, missed = [], [], []
    for group in groups:
        if group.book_label is None:
            continue
        shortfalls = [flag for flag in missed_book_targets(group, counts, spread)
                      if "(issue 7)" not in flag]
        if not shortfalls:
            met.append(group.architecture)
        elif all("a tie" in flag for flag in shortfalls):
            tied.append(f"{group.architecture} ({'; '.join(shortfalls)})")
        else:
            missed.append(f"{group.architecture} ({'; '.join(shortfalls)})")
    lines.append(f"- issue 3, at least the book's rate at every count: "
                 f"≥ 1.0× for {', '.join(met) or 'none'}"
                 + (f"; level within the A/A spread for {', '.join(tied)}" if tied else "")
                 + (f"; MISSED by {', '.join(missed)}" if missed else ""))
    at_10 = [(group.to_book(ZENSERVE_LABEL, 10), group.architecture) for group in groups
             if group.book_label is not None and 10 in counts]
    reached = [f"{name} ({value:.2f}×)" for value, name in at_10
               if value is not None and value >= BOOK_TARGET_AT_10]
    short = [f"{name} ({value:.2f}×)" for value, name in at_10
             if value is not None and value < BOOK_TARGET_AT_10]
    if at_10:
        lines.append(f"- issue 7 target 2, ≥ {BOOK_TARGET_AT_10}× the book at 10 connections: "
                     f"met by {', '.join(reached) or 'none'}"
                     + (f"; short: {', '.join(short)}" if short else ""))
    return lines
