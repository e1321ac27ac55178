"""`zenserve bench` driven through its library API (``zenserve.load.run``) by a benchmark script."""

from __future__ import annotations

import multiprocessing


def bench_context() -> multiprocessing.context.ForkServerContext:
    """Load processes started from a preloaded fork server: milliseconds, not an interpreter."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["zenserve.load.worker"])
    return context
