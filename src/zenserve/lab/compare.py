"""Run every experiment of a plan; write results.json, results.csv, the PNGs and report.html."""

from __future__ import annotations

import time
from pathlib import Path
from types import ModuleType

from zenserve.errors import ZenserveError
from zenserve.lab import analysis, machine, readings
from zenserve.lab.experiments import (
    availability,
    concurrency,
    latency,
    scalability,
    throughput,
    worker_kill,
)
from zenserve.lab.plan import Plan
from zenserve.lab.points import Point
from zenserve.lab.results import Results
from zenserve.lab.runner import Lab, Reporter, SilentReporter

REPORT = "report.html"
RESULTS_JSON = "results.json"
RESULTS_CSV = "results.csv"


def total_steps(plan: Plan) -> int:
    """Steps (load runs and probe rounds) the whole plan makes, for a progress bar."""
    return (throughput.steps(plan) + latency.steps(plan) + concurrency.steps(plan)
            + availability.steps(plan) + worker_kill.steps(plan) + scalability.steps(plan))


def measure(plan: Plan, reporter: Reporter | None = None) -> Results:
    """Run every section of ``plan``, one architecture at a time; return what was measured."""
    lab = Lab(reporter or SilentReporter())
    results = Results(plan=plan.to_json(), machine=machine.describe(), points=[])
    started = time.monotonic()

    def section(name: str, points: list[Point]) -> None:
        results.points.extend(points)
        results.section_seconds[name] = time.monotonic() - mark[0]
        mark[0] = time.monotonic()

    mark = [started]
    section("throughput", throughput.run(lab, plan))
    section("latency", latency.run(lab, plan))
    rate = analysis.fixed_rate(results.points) or 0.0
    section("concurrency", concurrency.run(lab, plan))
    section("availability", availability.run(lab, plan, rate))
    section("worker_kill", worker_kill.run(lab, plan, rate))
    section("scalability", scalability.run(lab, plan))
    results.elapsed_s = time.monotonic() - started
    results.warnings = lab.warnings
    results.saturation = lab.saturation
    results.readings = readings.all_readings(results.points, plan)
    return results


def _report_modules() -> tuple[ModuleType, ModuleType]:
    # matplotlib is an optional extra: imported only when a report is written.
    try:
        from zenserve.lab import figures, report
    except ImportError as error:
        raise ZenserveError(f"the report needs {error.name}: pip install 'zenserve[lab]'") from None
    return figures, report


def prepare(out: Path) -> None:
    """Check, before anything is measured, that the report can be written into ``out``."""
    _report_modules()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ZenserveError(f"cannot create {out}: {error.strerror or error}") from None


def write(results: Results, plan: Plan, out: Path) -> Path:
    """Write every output file into ``out`` (created if needed); return report.html's path."""
    figures, report = _report_modules()
    prepare(out)
    images = {}
    for name, (title, figure) in figures.build_all(results.points, plan.timing.duration,
                                                   plan.cost).items():
        images[name] = figures.save(figure, out / name)
        results.figures[name] = title
    results.write_json(out / RESULTS_JSON)
    results.write_csv(out / RESULTS_CSV)
    page = report.render(results, plan, images, analysis.fixed_rate(results.points))
    path = out / REPORT
    path.write_text(page, encoding="utf-8")
    return path


def compare(plan: Plan, out: Path, reporter: Reporter | None = None) -> tuple[Results, Path]:
    """Measure ``plan`` and write the report into ``out``; return the results and its path."""
    prepare(out)
    results = measure(plan, reporter)
    return results, write(results, plan, out)
