"""What a server's process tree holds: memory, descriptors, threads and processes.

Hardening tests and `zenserve soak` compare a footprint taken before hostile
load with one taken after it; anything that does not come back is a leak.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

# How often settle() looks again while waiting for counts to come back.
_SETTLE_INTERVAL = 0.05


@dataclass(frozen=True, slots=True)
class Footprint:
    """Totals over a process and all its descendants (workers, forked children)."""

    rss_bytes: int  # resident memory; pages shared after fork() count once per process
    fds: int
    threads: int
    processes: int
    zombies: int  # children that exited but were not reaped yet

    def exceeds(self, baseline: Footprint) -> list[str]:
        """Descriptor, thread and process counts above ``baseline`` (empty: no leak)."""
        return [
            f"{name}: {getattr(baseline, name)} -> {getattr(self, name)}"
            for name in ("fds", "threads", "processes", "zombies")
            if getattr(self, name) > getattr(baseline, name)
        ]

    def describe(self) -> str:
        return (f"RSS {self.rss_bytes / 2**20:.1f} MiB, {self.fds} fds, "
                f"{self.threads} threads, {self.processes} processes"
                + (f" ({self.zombies} zombies)" if self.zombies else ""))


def process_tree(pid: int) -> list[psutil.Process]:
    """The process ``pid`` and every descendant alive (or zombie) now."""
    root = psutil.Process(pid)
    try:
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return [root]


def footprint(pid: int) -> Footprint:
    """Count what the process tree rooted at ``pid`` holds right now."""
    rss = fds = threads = processes = zombies = 0
    for process in process_tree(pid):
        # A child may exit between listing and reading; it then holds nothing.
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            if process.status() == psutil.STATUS_ZOMBIE:
                zombies += 1
                continue
            with process.oneshot():
                rss += process.memory_info().rss
                fds += process.num_fds()
                threads += process.num_threads()
            processes += 1
    return Footprint(rss, fds, threads, processes, zombies)


def proportional_memory(pid: int) -> int:
    """Proportional set size of the tree: shared pages split among their sharers.

    Unlike summed RSS this does not count a forked child's inherited pages
    again, so it is the fair measure of what a forking server's tree costs.
    """
    total = 0
    for process in process_tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied,
                                 psutil.ZombieProcess):
            total += process.memory_full_info().pss
    return total


def settle(pid: int, done: Callable[[Footprint], bool], timeout: float) -> Footprint:
    """Poll the footprint until ``done(footprint)`` or ``timeout`` seconds; return the last."""
    deadline = time.monotonic() + timeout
    current = footprint(pid)
    while not done(current) and time.monotonic() < deadline:
        time.sleep(_SETTLE_INTERVAL)
        current = footprint(pid)
    return current
