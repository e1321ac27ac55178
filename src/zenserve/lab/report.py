"""report.html: one self-contained page (figures as data URIs, styles inline, no scripts).

Each section says how it was measured (from the plan), shows its figures,
reads them in plain language (``zenserve.lab.readings``) and keeps its
numbers in a table that opens on request.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from html import escape

from zenserve.lab import misbehave
from zenserve.lab.plan import BASELINE, MIXED, Plan
from zenserve.lab.points import Point, select
from zenserve.lab.results import Results

STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; color: #222; background: #fafafa; margin: 0; }
main { max-width: 960px; margin: 0 auto; padding: 1.5em; background: #fff; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #ddd; padding-bottom: 0.2em; }
.method { color: #555; font-size: 0.92em; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #666; font-size: 0.85em; }
.reading li { margin: 0.3em 0; }
.note { background: #fff7e0; border-left: 4px solid #e8a400; padding: 0.6em 1em; }
table { border-collapse: collapse; font-size: 0.85em; }
td, th { border: 1px solid #ddd; padding: 0.2em 0.5em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
details { margin: 0.8em 0; } summary { cursor: pointer; color: #1f5fa8; }
"""

DESCRIBED = {
    "half-question-leave": f"half a question, then close, {1 / misbehave.PACE:g} times a second",
    "stalled-half-question": f"{misbehave.STALLED_CONNECTIONS} connections send half a question "
                             f"and wait",
    "reset": f"a whole question, then a reset, {1 / misbehave.PACE:g} times a second",
    MIXED: "all three at once",
}

MACHINE_LABELS = {"nproc": "cores (nproc)", "cpu_model": "CPU", "memory_gib": "memory, GiB",
                  "kernel": "kernel", "python": "Python", "date": "date",
                  "load_average_at_start": "load average at the start", "zenserve": "zenserve"}

SECTIONS = (
    ("throughput", "1. Throughput vs concurrency", ("throughput.png",), ("throughput",)),
    ("latency", "2. Response time", ("latency_fixed_rate.png", "latency_ladder.png"),
     ("latency",)),
    ("concurrency", "3. Concurrency", ("concurrency.png",), ("concurrency",)),
    ("availability", "4. Availability and reliability", ("availability.png", "worker_kill.png"),
     ("availability", "worker_kill")),
    ("scalability", "5. Scalability", ("scalability.png",), ("scalability",)),
)


def methods(plan: Plan, fixed_rate: float | None) -> dict[str, str]:
    """How each section was measured, in a sentence or two, from the plan."""
    timing, available, scaled = plan.timing, plan.availability_timing, plan.scalability_timing
    each = (f"Each point is the median of {timing.repetitions} runs of {timing.duration:g} s "
            f"after a {timing.warmup:g} s warmup; error bars span the lowest to the highest "
            f"run.")
    connections = ", ".join(str(count) for count in plan.connections)
    rate = f"{fixed_rate:,.0f} req/s" if fixed_rate else "a fixed rate"
    kinds = "; ".join(f"{condition}: {DESCRIBED[condition]}" for condition in plan.conditions
                      if condition != BASELINE)
    cases = ", ".join(f"{kind} {workers}" for kind, workers in plan.scalability_cases)
    return {
        "throughput": f"Closed loop over persistent connections ({connections}): each "
                      f"connection asks again as soon as its answer arrives. {each}",
        "latency": f"Open loop, a new connection per request, spread over "
                   f"{plan.latency_slots} connections; latency counts from each request's "
                   f"intended send time (coordinated omission corrected). Each architecture's "
                   f"peak is measured first; the ladder's rates are fractions of the highest "
                   f"peak and the fixed rate ({rate}) is half the lowest. {each}",
        "concurrency": f"Idle connections (connected, silent) are held open; then "
                       f"{plan.probes} probe clients ask one question each, at once, with a "
                       f"{plan.probe_timeout * 1000:.0f} ms timeout; {plan.probe_rounds} "
                       f"round(s) per point.",
        "availability": f"Normal clients ask at {rate} (open loop, a new connection each) "
                        f"for {available.duration:g} s ({available.repetitions} runs per "
                        f"point) beside misbehaving clients ({kinds}). "
                        f"The success ratio is correct answers over the requests scheduled. "
                        f"Then each server runs with --workers 2 and one worker is SIGKILLed "
                        f"{plan.kill_after:g} s into a {plan.kill_timing.duration:g} s run.",
        "scalability": f"Each request costs {plan.cost} of block (a blocking wait), io (a "
                       f"wait event loops await) or cpu (busy work holding the GIL); closed "
                       f"loop, {plan.scalability_connections} connections, a new connection "
                       f"per request; cases (kind, --workers): {cases}. Each point is the "
                       f"median of "
                       f"{scaled.repetitions} runs of {scaled.duration:g} s after a "
                       f"{scaled.warmup:g} s warmup.",
    }


def _image(name: str, title: str, png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{escape(title)}">'
            f"<figcaption>{escape(title)} ({escape(name)})</figcaption></figure>")


def _number(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.0f}"


def _table(points: Sequence[Point]) -> str:
    head = ("architecture", "setting", "x", "metric", "median", "min", "max", "runs",
            "generator saturated")
    rows = []
    for point in points:
        row = point.to_row()
        setting = " ".join(part for part in (
            f"--workers {point.workers}" if point.workers else "",
            point.cost_kind, point.condition) if part)
        x = f"{point.x_name} {point.x:,.0f}" if point.x is not None else ""
        cells = [escape(point.architecture), escape(setting), escape(x), escape(point.metric)]
        numbers = [_number(row["median"]), _number(row["low"]), _number(row["high"]),
                   str(point.runs)]
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells)
                    + "".join(f'<td class="num">{cell}</td>' for cell in numbers)
                    + f"<td>{'yes' if point.saturated else ''}</td></tr>")
    header = "".join(f"<th>{escape(cell)}</th>" for cell in head)
    return f"<table><tr>{header}</tr>{''.join(rows)}</table>"


def _list(items: Sequence[str], css: str) -> str:
    return f'<ul class="{css}">' + "".join(f"<li>{escape(item)}</li>" for item in items) + "</ul>"


def render(results: Results, plan: Plan, images: dict[str, bytes],
           fixed_rate: float | None) -> str:
    """The whole report as one HTML string."""
    explained = methods(plan, fixed_rate)
    machine = "".join(f"<tr><th>{escape(MACHINE_LABELS.get(key, key))}</th>"
                      f"<td>{escape(str(value))}</td></tr>"
                      for key, value in results.machine.items())
    parts = [
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<title>zenserve compare: report</title>", f"<style>{STYLE}</style></head><body><main>",
        "<h1>zenserve compare</h1>",
        f"<p>The same zen service, served by {len(plan.all_architectures)} architectures "
        f"({escape(', '.join(plan.all_architectures))}), one at a time on loopback, through "
        f"the same experiments. Plan <b>{escape(plan.name)}</b>, "
        f"{results.elapsed_s:,.0f} s in all.</p>",
        f"<h2>The machine</h2><table>{machine}</table>",
    ]
    if results.warnings:
        parts.append('<div class="note"><b>Warnings</b>' + _list(results.warnings, "") + "</div>")
    if results.saturation:
        parts.append('<div class="note"><details><summary>Runs where the load generator may '
                     "have limited itself: a full core, or requests sent late on its own "
                     f"schedule ({len(results.saturation)})</summary>"
                     + _list(results.saturation, "") + "</details></div>")
    for key, title, figure_names, point_sections in SECTIONS:
        parts.append(f'<section id="{key}"><h2>{escape(title)}</h2>'
                     f'<p class="method">{escape(explained[key])}</p>')
        for name in figure_names:
            if name in images:
                parts.append(_image(name, results.figures.get(name, name), images[name]))
        parts.append("<h3>Reading</h3>"
                     + _list(results.readings.get(key) or ["Nothing was measured."], "reading"))
        section_points = [point for section in point_sections
                          for point in select(results.points, section=section)]
        parts.append(f"<details><summary>The numbers ({len(section_points)} points)</summary>"
                     f"{_table(section_points)}</details></section>")
    parts.append("<p class=\"method\">All points are also in results.json and results.csv "
                 "next to this file.</p></main></body></html>")
    return "\n".join(parts)
