"""The table `zenserve compare` prints last: a row per architecture, a finding per column."""

from __future__ import annotations

from rich import box
from rich.table import Table

from zenserve.lab import analysis
from zenserve.lab.plan import BASELINE
from zenserve.lab.points import select
from zenserve.lab.results import Results

MISSING = "–"


def _clients_at_once(capacity: analysis.Capacity) -> str:
    if capacity.none_served_from is None:
        return f"≥ {capacity.largest + 1:,.0f}"
    if capacity.all_served_until is None:
        return "0"
    if capacity.none_served_from == capacity.all_served_until + 1:
        return f"{capacity.none_served_from:,.0f}"
    return f"{capacity.all_served_until + 1:,.0f}–{capacity.none_served_from:,.0f}"


def summary_table(results: Results, architectures: tuple[str, ...],
                  measured_seconds: float) -> Table:
    """Peak throughput, knee, p99 at the fixed rate, clients at once, success, worker kill."""
    points = results.points
    cells: dict[str, dict[str, str]] = {name: {} for name in architectures}
    for shape in analysis.throughput_shapes(points):
        cells[shape.architecture]["peak"] = f"{shape.peak.median:,.0f} @{shape.peak.x or 0:g}"
    for knee in analysis.knees(points, measured_seconds):
        last = knee.last_sustained
        above = "≥ " if knee.first_broken is None else ""
        cells[knee.architecture]["knee"] = f"{above}{last.rate:,.0f}" if last else "< lowest"
    fixed = analysis.fixed_rate(points)
    for point in select(points, section="latency", metric="latency_p99_ms", x=fixed):
        cells[point.architecture]["p99"] = f"{point.median:.2f}" if point.measured else MISSING
    for capacity in analysis.capacities(points):
        cells[capacity.architecture]["at once"] = _clients_at_once(capacity)
    worst: dict[str, float] = {}
    for point in select(points, section="availability", metric="success_ratio"):
        if point.condition != BASELINE and point.measured:
            worst[point.architecture] = min(point.median, worst.get(point.architecture, 1.0))
    for name, ratio in worst.items():
        cells[name]["success"] = f"{100 * ratio:.1f}%"
    for point in select(points, section="worker_kill", metric="requests_lost"):
        recovery = select(points, section="worker_kill", metric="recovery_ms",
                          architecture=point.architecture)
        ms = f"{recovery[0].median:,.0f}ms" if recovery and recovery[0].measured else MISSING
        cells[point.architecture]["kill"] = f"{point.median:,.0f} lost {ms}"
    columns = {"peak": "peak\nreq/s", "knee": "knee\nreq/s", "p99": "p99\nms",
               "at once": "at\nonce", "success": "success", "kill": "worker\nkill"}
    rate = f"{fixed:,.0f} req/s" if fixed else "the fixed rate"
    table = Table(title="zenserve compare: summary (details in the report)", title_justify="left",
                  box=box.SIMPLE_HEAD, padding=(0, 1), collapse_padding=True, pad_edge=False,
                  show_edge=False, caption_justify="left",
                  caption=f"peak @connections; knee: the highest rate sustained; p99 at {rate}; "
                          f"at once: clients served at once; success: worst share of normal "
                          f"requests answered beside misbehaving clients; worker kill: requests "
                          f"lost and time to a replacement")
    table.add_column("architecture", no_wrap=True)
    for heading in columns.values():
        table.add_column(heading, justify="right", no_wrap=True)
    for name in architectures:
        table.add_row(name, *(cells[name].get(key, MISSING) for key in columns))
    return table
