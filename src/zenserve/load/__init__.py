"""The load generator behind `zenserve bench`, usable as a library.

    from zenserve.load import BenchOptions, run
    result = run(BenchOptions(port=1060, connections=10, duration=5))
    print(result.throughput_rps, result.latency.p99)
    json_document = result.to_json()

``run`` starts worker processes (``BenchOptions.processes``, by default half
the cores), each a uvloop (or asyncio) protocol-level client; it prints
nothing. Pass ``progress=`` to be told how the run goes about 4 times a second.
"""

from zenserve.load.coordinator import Progress, ProgressCallback, ServerUnreachable, run
from zenserve.load.options import (
    BenchOptions,
    OptionError,
    default_processes,
    questions_from_table,
)
from zenserve.load.outcomes import ERROR_KINDS
from zenserve.load.recorder import LatencySummary
from zenserve.load.result import SCHEMA, BenchResult, TimelineRow

__all__ = [
    "ERROR_KINDS",
    "SCHEMA",
    "BenchOptions",
    "BenchResult",
    "LatencySummary",
    "OptionError",
    "Progress",
    "ProgressCallback",
    "ServerUnreachable",
    "TimelineRow",
    "default_processes",
    "questions_from_table",
    "run",
]
