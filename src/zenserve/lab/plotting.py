"""How the report's figures draw: one canvas, colours, curves, bars and log axes.

``figures`` builds one figure per section of the report from these. Every
point is drawn at its median with its spread (lowest to highest run) as an
error bar; points where the load generator used a full core are drawn hollow.
Figures are ``matplotlib.figure.Figure`` (the Agg canvas), never pyplot, so
nothing global changes and no display is used.
"""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter

from zenserve.lab.points import Point
from zenserve.servers import ARCHITECTURES

WIDTH, HEIGHT, DPI = 9.0, 5.0, 100
TOP_INCHES, BOTTOM_INCHES = 0.5, 0.95
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
           "#17becf", "#bcbd22", "#7f7f7f", "#393b79")
HOLLOW_NOTE = "hollow: the load generator used a full core"
# More curves than this in one panel hide one another: blocking architectures
# and event loops then get a panel each.
MAX_CURVES = 5
FAMILY_TITLES = ("one client, threads, processes", "event loops")
# Past this many groups of bars, their labels are slanted so they do not collide.
CROWDED = 4


def color(architecture: str) -> str:
    """The same colour for an architecture in every figure."""
    names = list(ARCHITECTURES)
    index = names.index(architecture) if architecture in names else len(names)
    return PALETTE[index % len(PALETTE)]


def new_figure(rows: int = 1, columns: int = 1, height: float = HEIGHT,
               sharey: bool = False) -> tuple[Figure, list[Axes]]:
    """A blank figure of ``rows`` × ``columns`` panels, and its axes in reading order."""
    figure = Figure(figsize=(WIDTH, height), dpi=DPI)
    # Fixed margins: a layout engine would lay every figure out twice, which
    # took longer than drawing it.
    # Margins in inches (titles above, slanted labels below), whatever the height.
    figure.subplots_adjust(left=0.1, right=0.98, top=1 - TOP_INCHES / height,
                           bottom=BOTTOM_INCHES / height, wspace=0.28, hspace=0.6)
    axes = figure.subplots(rows, columns, squeeze=False, sharey=sharey)
    return figure, [axis for row in axes for axis in row]


class _PlainLogFormatter(LogFormatter):
    """Log-axis labels as plain numbers (0.4, 2, 100): milliseconds read as milliseconds.

    matplotlib's default writes 4×10⁰ and 6×10⁻¹; which ticks get a label is
    still LogFormatter's choice (every decade, and a few between when the axis
    spans little).
    """

    def __call__(self, x: float, pos: int | None = None) -> str:
        return f"{x:g}" if super().__call__(x, pos) else ""


def log_y_axis(axis: Axes) -> None:
    """A log y axis labelled in plain numbers."""
    axis.set_yscale("log")
    axis.yaxis.set_major_formatter(_PlainLogFormatter(labelOnlyBase=False))
    axis.yaxis.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False,
                                                      minor_thresholds=(2, 0.5)))


def _errors(points: Sequence[Point]) -> list[list[float]]:
    return [[max(0.0, point.median - point.low) for point in points],
            [max(0.0, point.high - point.median) for point in points]]


def draw_curve(axis: Axes, line: Sequence[Point], architecture: str, offset: float = 0.0,
               spread: float = 1.0) -> None:
    """Median line, min-max error bars, markers (hollow where the generator was saturated).

    ``offset`` (added to y) and ``spread`` (multiplying x) nudge curves apart
    so that equal ones do not hide one another; the values are not changed
    anywhere else.
    """
    line = [point for point in line if point.measured]
    if not line:
        return
    xs = [(point.x or 0.0) * spread for point in line]
    medians = [point.median + offset for point in line]
    shade = color(architecture)
    axis.errorbar(xs, medians, yerr=_errors(line), color=shade, label=architecture,
                  linewidth=1.6, elinewidth=1, capsize=2.5, alpha=0.9)
    for x, point, median in zip(xs, line, medians, strict=True):
        axis.plot([x], [median], marker="o", markersize=5, color=shade,
                  markerfacecolor="white" if point.saturated else shade)


def nudge(index: int, count: int) -> float:
    """A factor within about ±6% that spreads ``count`` curves apart on a log x axis."""
    return float(2 ** (0.04 * (index - (count - 1) / 2)))


def _families(names: list[str]) -> list[list[str]]:
    """One panel's worth of curves each: all of them, or blocking ones and event loops apart."""
    if len(names) <= MAX_CURVES:
        return [names]
    loops = [name for name in names
             if name in ARCHITECTURES and ARCHITECTURES[name].event_loop]
    others = [name for name in names if name not in loops]
    return [group for group in (others, loops) if group]


def family_panels(names: list[str], title: str) -> tuple[Figure, list[tuple[Axes, list[str]]]]:
    """A figure titled ``title`` with a panel per family of ``names``, and each panel's names."""
    groups = _families(names)
    figure, axes = new_figure(1, len(groups), sharey=True)
    figure.suptitle(title, fontsize=10)
    if len(groups) > 1:
        for axis, label in zip(axes, FAMILY_TITLES, strict=True):
            axis.set_title(label, fontsize=9)
    return figure, list(zip(axes, groups, strict=True))


def draw_bars(axis: Axes, groups: Sequence[str], series: Sequence[str],
              value: dict[tuple[str, str], Point], colors: Sequence[str]) -> None:
    """Grouped bars: one group per ``groups`` item, one bar per ``series`` item.

    A bar whose runs measured nothing says so in words, and a zero says "0",
    so that an empty place never reads as a missing measurement.
    """
    width = 0.8 / max(1, len(series))
    for index, (name, shade) in enumerate(zip(series, colors, strict=True)):
        placed = [(position - 0.4 + width * (index + 0.5), value[(group, name)])
                  for position, group in enumerate(groups) if (group, name) in value]
        measured = [(x, point) for x, point in placed if point.measured]
        if measured:
            bars = [point for _, point in measured]
            axis.bar([x for x, _ in measured], [point.median for point in bars], width,
                     yerr=_errors(bars), capsize=3, label=name, color=shade, alpha=0.85)
        for x, point in placed:
            if point.measured and point.saturated:
                axis.plot([x], [point.median], marker="o", color=shade, markerfacecolor="white")
            if not point.measured or point.median == 0:
                axis.annotate("no answers" if not point.measured else "0", (x, 0),
                              xycoords=("data", "axes fraction"), xytext=(0, 4),
                              textcoords="offset points", ha="center", fontsize=7,
                              rotation=90 if not point.measured else 0, color=shade)
    crowded = len(groups) > CROWDED
    axis.set_xticks(range(len(groups)), groups, fontsize=8, rotation=30 if crowded else 0,
                    ha="right" if crowded else "center")


def log_floor(axis: Axes, points: Sequence[Point]) -> None:
    """On a log axis, start a little below the smallest value so every bar shows."""
    lows = [point.low for point in points if point.measured and point.low > 0]
    if lows:
        axis.set_ylim(bottom=min(lows) / 2)


def shades(count: int) -> list[str]:
    """``count`` colours of the palette, for series that are not architectures."""
    return [PALETTE[index % len(PALETTE)] for index in range(count)]
