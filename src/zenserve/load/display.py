"""How `zenserve bench` shows a run: live progress, then the summary and the timeline."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, TaskID, TextColumn, TimeRemainingColumn
from rich.progress import Progress as ProgressBar
from rich.table import Table

from zenserve.load.connection import LATE_LIMIT
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


def title_line(result: BenchResult) -> str:
    """What ran: address, loop, connections, processes, times."""
    options = result.options
    mode = (f"open loop at {options.rate:,.0f} req/s" if options.rate is not None
            else "closed loop")
    if options.connection_per_request:
        mode += ", a connection per request"
    return (f"{options.host}:{options.port}  {mode}, {options.connections} connections, "
            f"{_processes(len(result.worker_cpu_percent))} on {result.event_loop}, "
            f"{result.duration_s:g}s after {options.warmup:g}s warmup")


def latency_table(result: BenchResult) -> Table:
    """Latency (and, in open loop, service time) percentiles in milliseconds."""
    table = Table()
    table.add_column("")
    for heading in ("min", "p50", "p90", "p99", "p99.9", "max"):
        table.add_column(heading, justify="right")
    table.add_row("latency ms", *_latency_cells(result.latency))
    if result.service_time is not None:
        table.add_row("service ms", *_latency_cells(result.service_time))
    return table


def count_lines(result: BenchResult) -> list[str]:
    """Requests, req/s, client CPU; errors by kind; in open loop, the rate achieved."""
    errors = ", ".join(f"{kind.replace('_', ' ')} {result.errors[kind]:,}"
                       for kind in ERROR_KINDS)
    return [f"requests {result.requests:,}   req/s {result.throughput_rps:,.1f}   "
            f"client CPU {result.client_cpu_percent:.0f}%   unfinished {result.unfinished:,}",
            f"errors {result.errors_total:,}: {errors}", *_schedule_lines(result)]


def _schedule_lines(result: BenchResult) -> list[str]:
    """Open loop: the achieved rate, and the sends the generator itself made late."""
    if result.rate_line is None:
        return []
    return [f"{result.rate_line}; {result.late_sends:,} sent over {LATE_LIMIT * 1000:g} ms "
            f"behind schedule by the generator"]


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
    """The summary, the timeline; whether the server kept up; a warning if the generator did not."""
    # Long lines are not wrapped, so that logs keep one fact per line.
    console.print(title_line(result), soft_wrap=True, highlight=False)
    console.print(latency_table(result))
    for line in count_lines(result):
        console.print(line, soft_wrap=True, highlight=False)
    if timeline:
        console.print(timeline_table(result))
    if result.server_kept_up is False:
        # A finding about the server, not a warning about the tool.
        console.print(f"the server could not keep up: {result.rate_line}", style="bold",
                      highlight=False, soft_wrap=True)
    warn_if_saturated(result, console)


def warn_if_saturated(result: BenchResult, console: Console) -> None:
    """One warning line when the generator rather than the server may have been the limit."""
    if result.saturated:
        reasons = list(result.saturation_reasons)
        if result.server_kept_up is None and result.rate_line is not None:
            reasons.append(result.rate_line)  # a shortfall nobody can pin on the server
        console.print("warning: the load generator may have been the bottleneck: "
                      + "; ".join(reasons), style="bold yellow",
                      highlight=False, soft_wrap=True)


def _processes(count: int) -> str:
    return f"{count} process" + ("es" if count != 1 else "")
