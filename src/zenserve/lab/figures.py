"""The report's figures (matplotlib, no display needed): one PNG per figure.

Every point is drawn at its median with its spread (lowest to highest run)
as an error bar or a band; points where the load generator used a full core
are drawn hollow. Figures are built with ``matplotlib.figure.Figure`` (the
Agg canvas), never pyplot, so nothing global changes and no display is used.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter

from zenserve.lab import analysis
from zenserve.lab.points import Point, architectures_of, select
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


def _new(rows: int = 1, columns: int = 1, height: float = HEIGHT,
         sharey: bool = False) -> tuple[Figure, list[Axes]]:
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


def _log_y(axis: Axes) -> None:
    """A log y axis labelled in plain numbers."""
    axis.set_yscale("log")
    axis.yaxis.set_major_formatter(_PlainLogFormatter(labelOnlyBase=False))
    axis.yaxis.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False,
                                                      minor_thresholds=(2, 0.5)))


def _errors(points: Sequence[Point]) -> list[list[float]]:
    return [[max(0.0, point.median - point.low) for point in points],
            [max(0.0, point.high - point.median) for point in points]]


def _curve(axis: Axes, line: Sequence[Point], architecture: str, offset: float = 0.0,
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


def _nudge(index: int, count: int) -> float:
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


def _panels(names: list[str], title: str) -> tuple[Figure, list[tuple[Axes, list[str]]]]:
    groups = _families(names)
    figure, axes = _new(1, len(groups), sharey=True)
    figure.suptitle(title, fontsize=10)
    if len(groups) > 1:
        for axis, label in zip(axes, FAMILY_TITLES, strict=True):
            axis.set_title(label, fontsize=9)
    return figure, list(zip(axes, groups, strict=True))


def throughput(points: Sequence[Point]) -> Figure:
    """Section 1: answers per second against connections, a curve per architecture."""
    section = select(points, section="throughput", metric="throughput_rps")
    names = architectures_of(section)
    figure, panels = _panels(names, f"Throughput vs concurrency (median; bars: min–max; "
                                    f"{HOLLOW_NOTE})")
    xs = sorted({point.x for point in section if point.x is not None})
    for axis, group in panels:
        for index, architecture in enumerate(group):
            _curve(axis, analysis.curve(section, architecture=architecture), architecture,
                   spread=_nudge(index, len(group)))
        axis.set_xscale("log", base=2)
        axis.set_xticks(xs, [f"{x:g}" for x in xs])
        axis.set_xlabel("connections (closed loop)")
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    panels[0][0].set_ylabel("correct answers per second")
    return figure


def latency_ladder(points: Sequence[Point], measured_seconds: float) -> Figure:
    """Section 2: p99 latency against the offered rate; the knee ringed."""
    section = select(points, section="latency", metric="latency_p99_ms")
    names = architectures_of(section)
    figure, panels = _panels(names, "Throughput–latency: the knee (ringed: the highest rate "
                                    "sustained)")
    knees = {knee.architecture: knee for knee in analysis.knees(points, measured_seconds)}
    fixed = analysis.fixed_rate(points)
    rates = sorted({point.x for point in section if point.x is not None})
    for axis, group in panels:
        for index, architecture in enumerate(group):
            nudge = _nudge(index, len(group))
            _curve(axis, analysis.curve(section, architecture=architecture), architecture,
                   spread=nudge)
            knee = knees.get(architecture)
            if knee is not None and knee.last_sustained is not None:
                axis.plot([knee.last_sustained.rate * nudge], [knee.last_sustained.p99],
                          marker="o", markersize=14, color=color(architecture),
                          fillstyle="none")
        if fixed is not None:
            axis.axvline(fixed, color="grey", linestyle=":", linewidth=1)
            axis.annotate("fixed rate", (fixed, 1), xycoords=("data", "axes fraction"),
                          xytext=(3, -12), textcoords="offset points", fontsize=8,
                          color="grey")
        axis.set_xscale("log")
        _log_y(axis)
        axis.set_xticks(rates, [f"{rate:,.0f}" for rate in rates], fontsize=8, rotation=45,
                        ha="right")
        axis.minorticks_off()
        axis.set_xlabel("offered rate, req/s (open loop)")
        axis.grid(alpha=0.3, which="both")
        axis.legend(fontsize=8)
    panels[0][0].set_ylabel("p99 latency, ms (from the intended send time)")
    return figure


def _bars(axis: Axes, groups: Sequence[str], series: Sequence[str],
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


def _log_floor(axis: Axes, points: Sequence[Point]) -> None:
    """On a log axis, start a little below the smallest value so every bar shows."""
    lows = [point.low for point in points if point.measured and point.low > 0]
    if lows:
        axis.set_ylim(bottom=min(lows) / 2)


def _shades(count: int) -> list[str]:
    return [PALETTE[index % len(PALETTE)] for index in range(count)]


def latency_at_fixed_rate(points: Sequence[Point]) -> Figure:
    """Section 2: latency percentiles of every architecture at the fixed rate."""
    figure, (axis,) = _new()
    fixed = analysis.fixed_rate(points)
    chosen = select(points, section="latency", x=fixed) if fixed is not None else []
    names = architectures_of(chosen)
    metrics = {"p50": "latency_p50_ms", "p90": "latency_p90_ms", "p99": "latency_p99_ms",
               "p99.9": "latency_p999_ms", "max": "latency_max_ms"}
    value = {(point.architecture, label): point for point in chosen
             for label, metric in metrics.items() if point.metric == metric}
    _bars(axis, names, list(metrics), value, _shades(len(metrics)))
    _log_y(axis)
    _log_floor(axis, list(value.values()))
    axis.set_ylabel("latency, ms (log scale)")
    rate = f"{fixed:,.0f} req/s" if fixed is not None else "no rate"
    axis.set_title(f"Latency percentiles at {rate}, open loop (error bars: min–max of runs)",
                   fontsize=10)
    axis.grid(alpha=0.3, axis="y", which="both")
    axis.legend(fontsize=8)
    return figure


def concurrency(points: Sequence[Point]) -> Figure:
    """Section 3: share of probes answered against idle connections held."""
    figure, (axis,) = _new()
    section = select(points, section="concurrency", metric="served_fraction")
    names = architectures_of(section)
    for index, architecture in enumerate(names):
        # Lines are nudged apart so that equal curves do not hide one another.
        offset = 0.015 * (index - (len(names) - 1) / 2)
        _curve(axis, analysis.curve(section, architecture=architecture), architecture, offset)
    xs = sorted({point.x for point in section if point.x is not None})
    axis.set_xscale("symlog", base=2, linthresh=1)
    axis.set_xticks(xs, [f"{x:g}" for x in xs])
    axis.set_ylim(-0.08, 1.08)
    axis.set_xlabel("idle connections held open (connected, silent)")
    axis.set_ylabel("share of probe clients answered")
    axis.set_title("Concurrency: how many clients are served at once", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return figure


def availability(points: Sequence[Point]) -> Figure:
    """Section 4: success ratio and p99 of normal clients under each condition."""
    figure, (left, right) = _new(2, 1, height=2 * HEIGHT)
    figure.subplots_adjust(hspace=0.4)  # room for the legend below the upper panel, no more
    section = select(points, section="availability")
    names = architectures_of(section)
    conditions = list(dict.fromkeys(point.condition for point in section))
    for axis, metric in ((left, "success_ratio"), (right, "latency_p99_ms")):
        value = {(point.architecture, point.condition): point
                 for point in select(section, metric=metric)}
        _bars(axis, names, conditions, value, _shades(len(conditions)))
        axis.grid(alpha=0.3, axis="y", which="both")
    left.set_ylim(0, 1.05)
    left.set_ylabel("share of normal requests answered")
    left.set_title("Normal clients' success ratio", fontsize=10)
    _log_y(right)
    _log_floor(right, select(section, metric="latency_p99_ms"))
    right.set_ylabel("p99 latency of normal clients, ms")
    right.set_title("Normal clients' p99 (missing: no answers)", fontsize=10)
    # Below the panel: inside, it would cover the bars (they reach 1.0).
    left.legend(fontsize=8, title="misbehaving clients", title_fontsize=8, loc="upper center",
                bbox_to_anchor=(0.5, -0.08), ncol=max(1, len(conditions)))
    return figure


def worker_kill(points: Sequence[Point]) -> Figure:
    """Section 4: requests lost and time to a replacement when a worker is killed."""
    figure, (left, right) = _new(1, 2, height=4.0)
    section = select(points, section="worker_kill")
    names = architectures_of(section)
    for axis, metric, label in ((left, "requests_lost", "normal requests lost"),
                                (right, "recovery_ms", "ms from SIGKILL to a new worker")):
        value = {(point.architecture, metric): point for point in select(section, metric=metric)}
        _bars(axis, names, [metric], value, [PALETTE[0] if metric == "requests_lost"
                                             else PALETTE[2]])
        axis.set_ylabel(label)
        axis.set_ylim(bottom=0, top=max(1.0, axis.get_ylim()[1]))
        axis.grid(alpha=0.3, axis="y")
    left.set_title("--workers 2, one SIGKILLed mid-run", fontsize=10)
    right.set_title("time until the supervisor's replacement runs", fontsize=10)
    return figure


def scalability(points: Sequence[Point], cost: str) -> Figure:
    """Section 5: throughput per cost kind, architecture and worker count."""
    section = select(points, section="scalability", metric="throughput_rps")
    kinds = list(dict.fromkeys(point.cost_kind for point in section)) or ["-"]
    names = architectures_of(section)
    # Side by side for a few architectures; one above the other for more.
    stacked = len(names) > 3
    figure, axes = (_new(len(kinds), 1, height=HEIGHT * len(kinds) * 0.6) if stacked
                    else _new(1, len(kinds)))
    workers = sorted({point.workers for point in section})
    for axis, kind in zip(axes, kinds, strict=True):
        value = {(point.architecture, f"--workers {point.workers}"): point
                 for point in select(section, cost_kind=kind)}
        _bars(axis, names, [f"--workers {count}" for count in workers], value,
              _shades(len(workers)))
        axis.set_title(f"{cost} of {kind} per request", fontsize=10)
        axis.grid(alpha=0.3, axis="y")
        axis.set_ylabel("answers/s" if stacked else "")
    axes[0].set_ylabel("correct answers per second" if not stacked else "answers/s")
    axes[0].legend(fontsize=8)
    return figure


def build_all(points: Sequence[Point], measured_seconds: float,
              cost: str) -> dict[str, tuple[str, Figure]]:
    """Every figure, by file name: (title, figure)."""
    return {
        "throughput.png": ("Throughput vs concurrency", throughput(points)),
        "latency_ladder.png": ("Throughput–latency (rate ladder)",
                               latency_ladder(points, measured_seconds)),
        "latency_fixed_rate.png": ("Latency percentiles at the fixed rate",
                                   latency_at_fixed_rate(points)),
        "concurrency.png": ("Clients served at once", concurrency(points)),
        "availability.png": ("Normal clients beside misbehaving ones", availability(points)),
        "worker_kill.png": ("A worker killed mid-run", worker_kill(points)),
        "scalability.png": ("Cost kind × architecture × workers", scalability(points, cost)),
    }


def save(figure: Figure, path: Path) -> bytes:
    """Write ``figure`` as PNG to ``path``; return the PNG bytes (for the HTML report)."""
    figure.savefig(path, format="png")
    return path.read_bytes()
