"""The machine a comparison ran on, as the report shows it."""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

import psutil

from zenserve import __version__

CPUINFO = Path("/proc/cpuinfo")


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what platform knows."""
    try:
        for line in CPUINFO.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware"):
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def usable_cores() -> int:
    """Cores this process may run on (what nproc prints)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def describe() -> dict[str, str | int | float]:
    """nproc, CPU model, memory, kernel, Python, date, load average, zenserve version."""
    load_1, load_5, _ = os.getloadavg()
    return {
        "nproc": usable_cores(),
        "cpu_model": cpu_model(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "load_average_at_start": f"{load_1:.2f} (1 min), {load_5:.2f} (5 min)",
        "zenserve": __version__,
    }
