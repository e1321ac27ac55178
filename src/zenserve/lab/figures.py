"""The report's figures (matplotlib, no display needed): one PNG per figure.

One function per figure of the report's sections, built from the points of
that section; how they draw (canvas, colours, curves, bars, log axes) is
``plotting``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from zenserve.lab import analysis
from zenserve.lab.plotting import (
    HEIGHT,
    HOLLOW_NOTE,
    PALETTE,
    color,
    draw_bars,
    draw_curve,
    family_panels,
    log_floor,
    log_y_axis,
    new_figure,
    nudge,
    shades,
)
from zenserve.lab.points import Point, architectures_of, select


def throughput(points: Sequence[Point]) -> Figure:
    """Section 1: answers per second against connections, a curve per architecture."""
    section = select(points, section="throughput", metric="throughput_rps")
    names = architectures_of(section)
    figure, panels = family_panels(names, f"Throughput vs concurrency (median; bars: "
                                          f"min–max; {HOLLOW_NOTE})")
    xs = sorted({point.x for point in section if point.x is not None})
    for axis, group in panels:
        for index, architecture in enumerate(group):
            draw_curve(axis, analysis.curve(section, architecture=architecture), architecture,
                       spread=nudge(index, len(group)))
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
    figure, panels = family_panels(names, "Throughput–latency: the knee (ringed: the "
                                          "highest rate sustained)")
    knees = {knee.architecture: knee for knee in analysis.knees(points, measured_seconds)}
    fixed = analysis.fixed_rate(points)
    rates = sorted({point.x for point in section if point.x is not None})
    for axis, group in panels:
        for index, architecture in enumerate(group):
            spread = nudge(index, len(group))
            draw_curve(axis, analysis.curve(section, architecture=architecture), architecture,
                       spread=spread)
            knee = knees.get(architecture)
            if knee is not None and knee.last_sustained is not None:
                axis.plot([knee.last_sustained.rate * spread], [knee.last_sustained.p99],
                          marker="o", markersize=14, color=color(architecture),
                          fillstyle="none")
        if fixed is not None:
            axis.axvline(fixed, color="grey", linestyle=":", linewidth=1)
            axis.annotate("fixed rate", (fixed, 1), xycoords=("data", "axes fraction"),
                          xytext=(3, -12), textcoords="offset points", fontsize=8,
                          color="grey")
        axis.set_xscale("log")
        log_y_axis(axis)
        axis.set_xticks(rates, [f"{rate:,.0f}" for rate in rates], fontsize=8, rotation=45,
                        ha="right")
        axis.minorticks_off()
        axis.set_xlabel("offered rate, req/s (open loop)")
        axis.grid(alpha=0.3, which="both")
        axis.legend(fontsize=8)
    panels[0][0].set_ylabel("p99 latency, ms (from the intended send time)")
    return figure


def latency_at_fixed_rate(points: Sequence[Point]) -> Figure:
    """Section 2: latency percentiles of every architecture at the fixed rate."""
    figure, (axis,) = new_figure()
    fixed = analysis.fixed_rate(points)
    chosen = select(points, section="latency", x=fixed) if fixed is not None else []
    names = architectures_of(chosen)
    metrics = {"p50": "latency_p50_ms", "p90": "latency_p90_ms", "p99": "latency_p99_ms",
               "p99.9": "latency_p999_ms", "max": "latency_max_ms"}
    value = {(point.architecture, label): point for point in chosen
             for label, metric in metrics.items() if point.metric == metric}
    draw_bars(axis, names, list(metrics), value, shades(len(metrics)))
    log_y_axis(axis)
    log_floor(axis, list(value.values()))
    axis.set_ylabel("latency, ms (log scale)")
    rate = f"{fixed:,.0f} req/s" if fixed is not None else "no rate"
    axis.set_title(f"Latency percentiles at {rate}, open loop (error bars: min–max of runs)",
                   fontsize=10)
    axis.grid(alpha=0.3, axis="y", which="both")
    axis.legend(fontsize=8)
    return figure


def concurrency(points: Sequence[Point]) -> Figure:
    """Section 3: share of probes answered against idle connections held."""
    figure, (axis,) = new_figure()
    section = select(points, section="concurrency", metric="served_fraction")
    names = architectures_of(section)
    for index, architecture in enumerate(names):
        # Lines are nudged apart so that equal curves do not hide one another.
        offset = 0.015 * (index - (len(names) - 1) / 2)
        draw_curve(axis, analysis.curve(section, architecture=architecture), architecture, offset)
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
    figure, (left, right) = new_figure(2, 1, height=2 * HEIGHT)
    figure.subplots_adjust(hspace=0.4)  # room for the legend below the upper panel, no more
    section = select(points, section="availability")
    names = architectures_of(section)
    conditions = list(dict.fromkeys(point.condition for point in section))
    for axis, metric in ((left, "success_ratio"), (right, "latency_p99_ms")):
        value = {(point.architecture, point.condition): point
                 for point in select(section, metric=metric)}
        draw_bars(axis, names, conditions, value, shades(len(conditions)))
        axis.grid(alpha=0.3, axis="y", which="both")
    left.set_ylim(0, 1.05)
    left.set_ylabel("share of normal requests answered")
    left.set_title("Normal clients' success ratio", fontsize=10)
    log_y_axis(right)
    log_floor(right, select(section, metric="latency_p99_ms"))
    right.set_ylabel("p99 latency of normal clients, ms")
    right.set_title("Normal clients' p99 (missing: no answers)", fontsize=10)
    # Below the panel: inside, it would cover the bars (they reach 1.0).
    left.legend(fontsize=8, title="misbehaving clients", title_fontsize=8, loc="upper center",
                bbox_to_anchor=(0.5, -0.08), ncol=max(1, len(conditions)))
    return figure


def worker_kill(points: Sequence[Point]) -> Figure:
    """Section 4: requests lost and time to a replacement when a worker is killed."""
    figure, (left, right) = new_figure(1, 2, height=4.0)
    section = select(points, section="worker_kill")
    names = architectures_of(section)
    for axis, metric, label in ((left, "requests_lost", "normal requests lost"),
                                (right, "recovery_ms", "ms from SIGKILL to a new worker")):
        value = {(point.architecture, metric): point for point in select(section, metric=metric)}
        draw_bars(axis, names, [metric], value, [PALETTE[0] if metric == "requests_lost"
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
    figure, axes = (new_figure(len(kinds), 1, height=HEIGHT * len(kinds) * 0.6) if stacked
                    else new_figure(1, len(kinds)))
    workers = sorted({point.workers for point in section})
    for axis, kind in zip(axes, kinds, strict=True):
        value = {(point.architecture, f"--workers {point.workers}"): point
                 for point in select(section, cost_kind=kind)}
        draw_bars(axis, names, [f"--workers {count}" for count in workers], value,
                  shades(len(workers)))
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
