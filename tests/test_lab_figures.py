"""The report's figures read plainly: numbers on log axes, legends off the bars."""

from __future__ import annotations

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg

from zenserve.lab import figures
from zenserve.lab.points import Point

ARCHITECTURES = ("single", "threaded", "asyncio-callbacks")


def availability_points() -> list[Point]:
    """Success ratios near 1 (bars to the top) and p99s between 0.4 and 4 ms, as on loopback."""
    points = []
    for index, architecture in enumerate(ARCHITECTURES):
        for condition in ("none", "mixed"):
            p99 = 0.4 + index * 1.5
            points += [
                Point("availability", architecture, "success_ratio", 1.0, 0.99, 1.0,
                      (0.99, 1.0, 1.0), condition=condition),
                Point("availability", architecture, "latency_p99_ms", p99, p99 * 0.8,
                      p99 * 1.2, (p99 * 0.8, p99, p99 * 1.2), condition=condition),
            ]
    return points


def tick_labels(axis: Axes) -> list[str]:
    labels = axis.get_yticklabels() + axis.get_yticklabels(minor=True)
    return [label.get_text() for label in labels if label.get_text()]


def test_log_axes_label_milliseconds_as_plain_numbers() -> None:
    figure = figures.availability(availability_points())
    FigureCanvasAgg(figure).draw()
    latency_axis = figure.axes[1]
    assert latency_axis.get_yscale() == "log"
    labels = tick_labels(latency_axis)
    # matplotlib's default for an axis within one decade or two: 4×10⁰, 6×10⁻¹.
    assert not [label for label in labels if "times" in label or "10^" in label], labels
    assert "1" in labels and all(float(label) > 0 for label in labels)


def test_the_availability_legend_does_not_cover_the_bars() -> None:
    figure = figures.availability(availability_points())
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    ratio_axis = figure.axes[0]
    legend = ratio_axis.get_legend()
    assert legend is not None
    legend_box = legend.get_window_extent(canvas.get_renderer())
    plot_box = ratio_axis.get_window_extent(canvas.get_renderer())
    assert legend_box.y1 <= plot_box.y0  # below the panel, where no bar reaches
    lower_box = figure.axes[1].get_window_extent(canvas.get_renderer())
    assert legend_box.y0 > lower_box.y1  # and above the panel below
