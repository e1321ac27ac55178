"""`zenserve compare`: every architecture through the same experiments, as a report with plots.

    from pathlib import Path
    from zenserve.lab import compare, quick_plan
    results, report_path = compare(quick_plan(), Path("zenserve-report"))

Sections (one module each under ``zenserve.lab.experiments``): throughput vs
concurrency, response time (fixed rate and rate ladder), concurrency (idle
connections vs probes), availability (misbehaving clients, a killed worker),
scalability (cost kind x architecture x workers). Every point is the median
of several short runs; ``zenserve.lab.readings`` reads the figures in plain
language from the measured points.
"""

from zenserve.lab.compare import compare, measure, total_steps, write
from zenserve.lab.plan import PLANS, Plan, full_plan, quick_plan, tiny_plan, with_architectures
from zenserve.lab.points import Point
from zenserve.lab.results import Results

__all__ = [
    "PLANS",
    "Plan",
    "Point",
    "Results",
    "compare",
    "full_plan",
    "measure",
    "quick_plan",
    "tiny_plan",
    "total_steps",
    "with_architectures",
    "write",
]
