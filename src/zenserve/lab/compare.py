"""Run every experiment of a plan; write results.json, results.csv, the PNGs and report.html."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
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
from zenserve.lab.runner import Lab, Reporter, SilentReporter, serve_arguments

REPORT = "report.html"
RESULTS_JSON = "results.json"
RESULTS_CSV = "results.csv"


# Used only when no architecture's peak could be measured at all.
FALLBACK_RATE = 100.0


def _first_pass(plan: Plan) -> tuple[str, ...]:
    wanted = {*plan.throughput_architectures, *plan.latency_architectures,
              *plan.concurrency_architectures}
    return tuple(name for name in plan.all_architectures if name in wanted)


def _second_pass(plan: Plan) -> tuple[str, ...]:
    wanted = {*plan.latency_architectures, *plan.availability_architectures}
    return tuple(name for name in plan.all_architectures if name in wanted)


def _first_pass_steps(plan: Plan, architecture: str) -> int:
    return ((throughput.steps(plan) if architecture in plan.throughput_architectures else 0)
            + (architecture in plan.latency_architectures)
            + (concurrency.steps(plan) if architecture in plan.concurrency_architectures else 0))


def _second_pass_steps(plan: Plan, architecture: str) -> int:
    return ((latency.steps(plan) if architecture in plan.latency_architectures else 0)
            + (availability.steps(plan)
               if architecture in plan.availability_architectures else 0))


def total_steps(plan: Plan) -> int:
    """Steps (load runs and probe rounds) the whole plan makes, for a progress bar."""
    return (sum(_first_pass_steps(plan, name) for name in _first_pass(plan))
            + sum(_second_pass_steps(plan, name) for name in _second_pass(plan))
            + worker_kill.steps(plan) + scalability.steps(plan))


class _Clock:
    """Adds up the time spent on each section (sections share server sessions)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, section: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds[section] = self.seconds.get(section, 0.0) + time.monotonic() - started


def _first(lab: Lab, plan: Plan, clock: _Clock) -> list[Point]:
    """Throughput, the peak rate and concurrency, in one session per architecture."""
    points: list[Point] = []
    names = _first_pass(plan)
    lab.reporter.section("Throughput, peak rates, concurrency",
                         sum(_first_pass_steps(plan, name) for name in names))
    for name in names:
        with lab.server(name, *serve_arguments(), steps=_first_pass_steps(plan, name)) as server:
            if server is None:
                continue
            if name in plan.throughput_architectures:
                with clock("throughput"):
                    points += throughput.measure(lab, plan, name, server.port)
            if name in plan.latency_architectures:
                with clock("latency"):
                    points.append(latency.calibrate(lab, plan, name, server.port))
            if name in plan.concurrency_architectures:
                with clock("concurrency"):
                    points += concurrency.measure(lab, plan, name, server.port)
    return points


def _second(lab: Lab, plan: Plan, clock: _Clock, rungs: list[float], fixed: float,
            rate: float) -> list[Point]:
    """The rate ladder and the misbehaving clients, in one session per architecture."""
    points: list[Point] = []
    names = _second_pass(plan)
    lab.reporter.section("Response time, availability",
                         sum(_second_pass_steps(plan, name) for name in names))
    for name in names:
        with lab.server(name, *serve_arguments(), steps=_second_pass_steps(plan, name)) as server:
            if server is None:
                continue
            if name in plan.latency_architectures:
                with clock("latency"):
                    points += latency.ladder(lab, plan, name, server.port, rungs, fixed)
            if name in plan.availability_architectures:
                with clock("availability"):
                    points += availability.measure(lab, plan, name, server.port, rate)
    return points


def measure(plan: Plan, reporter: Reporter | None = None) -> Results:
    """Run every section of ``plan``, one architecture at a time; return what was measured.

    Each server is started once for the experiments that share its options:
    first throughput, the peak rate and concurrency; then, once the rates are
    chosen from every peak, the rate ladder and the misbehaving clients; then
    the killed worker (--workers 2) and the cost knob, with their own servers.
    """
    lab = Lab(reporter or SilentReporter())
    results = Results(plan=plan.to_json(), machine=machine.describe(), points=[])
    clock = _Clock()
    started = time.monotonic()
    points = results.points
    points += _first(lab, plan, clock)
    rungs, fixed = latency.choose_rates(latency.peaks_of(points), plan.rate_fractions)
    if not rungs:
        lab.warn(f"no architecture answered while its peak was measured: no rate ladder, and "
                 f"normal clients ask at {FALLBACK_RATE:g} req/s")
    rate = fixed or FALLBACK_RATE
    points += _second(lab, plan, clock, rungs, fixed, rate)
    lab.reporter.section("A worker killed", worker_kill.steps(plan))
    with clock("worker_kill"):
        points += worker_kill.run(lab, plan, rate)
    lab.reporter.section("Scalability", scalability.steps(plan))
    with clock("scalability"):
        points += scalability.run(lab, plan)
    results.elapsed_s = time.monotonic() - started
    results.section_seconds = clock.seconds
    results.warnings = lab.warnings
    results.saturation = lab.saturation
    results.readings = readings.all_readings(points, plan)
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
    if out.exists() and not out.is_dir():
        raise ZenserveError(f"{out} is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        # A directory can exist and still refuse files (read-only, another
        # owner, /proc): find out now, not after the whole run was measured.
        probe = out / f".zenserve-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ZenserveError(f"cannot write into {out}: {error.strerror or error}") from None


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
