"""How `zenserve bench` shows a run: live progress, then the summary and the timeline."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, TaskID, TextColumn, TimeRemainingColumn
from rich.progress import Progress as ProgressBar
from rich.table import Table

from zenserve.load.coordinator import Progress
from zenserve.load.outcomes import ERROR_KINDS
from zenserve.load.recorder import LatencySummary
from zenserve.load.result import BenchResult


class ProgressDisplay:
    """A rich progress bar with the current req/s on a terminal; a plain line a second otherwise."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar: ProgressBar | None = None
        self.task = TaskID(0)
        self.last_second = -1

    def __enter__(self) -> ProgressDisplay:
        if self.console.is_terminal:
            self.bar = ProgressBar(
                TextColumn("{task.description:<9}"), BarColumn(),
                TextColumn("{task.fields[rate]:>9} req/s  {task.fields[errors]} errors"),
                TimeRemainingColumn(), console=self.console, transient=True,
                refresh_per_second=4)  # the coordinator shares the cores with the load
            self.bar.__enter__()
            self.task = self.bar.add_task("starting", total=1.0, rate="-", errors=0)
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self.bar is not None:
            self.bar.__exit__(kind, value, traceback)

    def __call__(self, progress: Progress) -> None:
        """Show one progress snapshot (the coordinator calls this about 4 times a second)."""
        rate = f"{progress.current_rps:,.0f}"
        if self.bar is not None:
            self.bar.update(self.task, description=progress.phase, completed=progress.elapsed_s,
                            total=progress.total_s, rate=rate, errors=progress.errors)
            return
        second = int(progress.elapsed_s)
        if second != self.last_second:
            self.last_second = second
            self.console.print(f"{progress.elapsed_s:6.1f}s  {progress.phase:<9} {rate:>9} req/s"
                               f"  {progress.errors} errors", highlight=False)


def _latency_cells(summary: LatencySummary) -> list[str]:
    values = (summary.min, summary.p50, summary.p90, summary.p99, summary.p999, summary.max)
    return [f"{value:.3f}" for value in values]


def summary_table(result: BenchResult) -> Table:
    """Requests, req/s, errors by kind, latency percentiles, client CPU."""
    options = result.options
    mode = (f"open loop at {options.rate:,.0f} req/s" if options.rate is not None
            else "closed loop")
    if options.connection_per_request:
        mode += ", a connection per request"
    title = (f"{options.host}:{options.port}  {mode}, {options.connections} connections, "
             f"{_processes(len(result.worker_cpu_percent))} on {result.event_loop}, "
             f"{result.duration_s:g}s after {options.warmup:g}s warmup")
    table = Table()
    table.add_column("")
    for heading in ("min", "p50", "p90", "p99", "p99.9", "max"):
        table.add_column(heading, justify="right")
    table.add_row("latency ms", *_latency_cells(result.latency))
    if result.service_time is not None:
        table.add_row("service ms", *_latency_cells(result.service_time))
    counts = Table.grid(padding=(0, 2))
    counts.add_row("requests", f"{result.requests:,}", "req/s", f"{result.throughput_rps:,.1f}")
    errors = ", ".join(f"{kind.replace('_', ' ')} {result.errors[kind]:,}"
                       for kind in ERROR_KINDS)
    counts.add_row("errors", f"{result.errors_total:,}", "by kind", errors)
    counts.add_row("client CPU", f"{result.client_cpu_percent:.0f}%", "unfinished",
                   f"{result.unfinished:,}")
    outer = Table.grid()
    outer.add_row(title)
    outer.add_row(table)
    outer.add_row(counts)
    return outer


def timeline_table(result: BenchResult) -> Table:
    """One row per measured second."""
    table = Table(title="timeline", title_justify="left")
    for heading in ("second", "req/s", "errors", "p50 ms", "p99 ms", "max ms"):
        table.add_column(heading, justify="right")
    for row in result.timeline:
        table.add_row(str(row.second), f"{row.throughput_rps:,.0f}", f"{row.errors:,}",
                      f"{row.latency.p50:.3f}", f"{row.latency.p99:.3f}",
                      f"{row.latency.max:.3f}")
    return table


def print_result(result: BenchResult, console: Console, timeline: bool = True) -> None:
    """The summary, the timeline, and a warning when the generator was the bottleneck."""
    console.print(summary_table(result))
    if timeline:
        console.print(timeline_table(result))
    warn_if_saturated(result, console)


def warn_if_saturated(result: BenchResult, console: Console) -> None:
    """One warning line when the generator rather than the server may have been the limit."""
    if result.saturated:
        console.print("warning: the load generator may have been the bottleneck: "
                      + "; ".join(result.saturation_reasons), style="bold yellow",
                      highlight=False)


def _processes(count: int) -> str:
    return f"{count} process" + ("es" if count != 1 else "")
