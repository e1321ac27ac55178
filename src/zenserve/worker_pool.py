"""A fixed number of forked worker processes, each replaced when it dies.

The pool only forks, reaps and refills slots; deciding when to stop is the
supervisor's job (``zenserve.workers``). A forked child never returns into the
parent's code: it runs ``main(slot)`` and leaves with ``os._exit``.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NoReturn

log = logging.getLogger("zenserve.workers")

# Signals whose handlers (or wake-up fd) belong to the supervisor; a child resets them.
SUPERVISOR_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGHUP})
# A worker that dies younger than this is crash-looping: refill its slot with a
# growing delay (0.1 s, 0.2 s, ... up to 5 s) instead of forking as fast as it dies.
MIN_HEALTHY_SECONDS = 1.0
FIRST_BACKOFF_SECONDS = 0.1
MAX_BACKOFF_SECONDS = 5.0
# <linux/prctl.h>
PR_SET_PDEATHSIG = 1

WorkerMain = Callable[[int], int]  # runs in the child: slot index -> exit status


@dataclass
class Slot:
    """One place in the pool: the worker in it, or when it may be refilled."""

    index: int
    pid: int = 0  # 0: empty
    started: float = 0.0
    refill_at: float = 0.0
    quick_deaths: int = 0


@dataclass(frozen=True, slots=True)
class Exit:
    """A reaped worker: its slot, pid and exit status (negative: killed by that signal)."""

    slot: int
    pid: int
    status: int

    def describe(self) -> str:
        if self.status < 0:
            return f"killed by {signal.Signals(-self.status).name}"
        return f"exited with status {self.status}"


class WorkerPool:
    """``size`` slots, each holding one child running ``main(slot)``.

    Every child first closes ``parent_only_fds``, what only the parent may hold
    (its signal pipe, its metrics port): add to it before the next fork.
    Creating the pool forks nothing.
    """

    def __init__(self, size: int, main: WorkerMain) -> None:
        self.size = size
        self.slots = [Slot(index) for index in range(size)]
        self.restarts = 0
        self.parent_only_fds: list[int] = []
        self._main = main
        self._parent_pid = os.getpid()

    @property
    def alive(self) -> int:
        return sum(1 for slot in self.slots if slot.pid)

    def pids(self) -> list[int]:
        return [slot.pid for slot in self.slots if slot.pid]

    def fill(self, now: float) -> None:
        """Fork a worker into every empty slot whose refill time has come."""
        for slot in self.slots:
            if not slot.pid and slot.refill_at <= now:
                self._fork(slot, now)

    def next_refill(self) -> float | None:
        """When the earliest empty slot may be refilled, or None if all are full."""
        return min((slot.refill_at for slot in self.slots if not slot.pid), default=None)

    def reap(self, now: float) -> list[Exit]:
        """Collect every worker that has exited, and schedule the refill of its slot.

        Waits on the pool's own pids only, so other children of this process
        (a load balancer, a test's subprocess) keep their exit statuses.
        """
        exits = []
        for slot in self.slots:
            if not slot.pid:
                continue
            try:
                pid, wait_status = os.waitpid(slot.pid, os.WNOHANG)
            except ChildProcessError:  # reaped by someone else: the status is lost
                pid, wait_status = slot.pid, 0
            if pid:
                exits.append(Exit(slot.index, pid, os.waitstatus_to_exitcode(wait_status)))
                self._vacate(slot, now)
        return exits

    def signal_all(self, signum: int) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def kill_all(self) -> list[Exit]:
        """SIGKILL every worker still running and wait for each."""
        self.signal_all(signal.SIGKILL)
        exits = []
        for slot in self.slots:
            if slot.pid:
                with contextlib.suppress(ChildProcessError):
                    _, wait_status = os.waitpid(slot.pid, 0)
                    exits.append(Exit(slot.index, slot.pid,
                                      os.waitstatus_to_exitcode(wait_status)))
                slot.pid = 0
        return exits

    def _vacate(self, slot: Slot, now: float) -> None:
        lived = now - slot.started
        slot.quick_deaths = slot.quick_deaths + 1 if lived < MIN_HEALTHY_SECONDS else 0
        delay = 0.0
        if slot.quick_deaths:
            delay = min(FIRST_BACKOFF_SECONDS * 2 ** (slot.quick_deaths - 1),
                        MAX_BACKOFF_SECONDS)
        slot.pid = 0
        slot.refill_at = now + delay

    def _fork(self, slot: Slot, now: float) -> None:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # else the child would inherit (and could repeat) buffered output
        # Blocked across fork, so no signal reaches a child while it still has
        # the supervisor's handlers; the child resets them, then unblocks.
        previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, SUPERVISOR_SIGNALS)
        try:
            pid = os.fork()
            if pid == 0:
                self._run_child(slot.index, previous_mask)
        except OSError as error:
            log.error("cannot fork a worker: %s", error.strerror)
            slot.refill_at = now + MAX_BACKOFF_SECONDS
            return
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
        if slot.started:
            self.restarts += 1
        slot.pid, slot.started = pid, now
        log.info("Started worker %d (pid %d)", slot.index, pid)

    def _run_child(self, index: int, signal_mask: Iterable[int]) -> NoReturn:
        status = 1
        try:
            signal.set_wakeup_fd(-1)
            for signum in SUPERVISOR_SIGNALS:
                signal.signal(signum, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, signal_mask)
            die_with_parent(self._parent_pid)
            for fd in self.parent_only_fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            status = self._main(index)
        except BaseException:
            log.exception("worker %d failed", index)
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(status)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), which ``--workers auto`` fills."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def die_with_parent(parent_pid: int, signum: int = signal.SIGTERM) -> None:
    """Have the kernel send ``signum`` to this process when its parent dies, even by SIGKILL.

    SIGTERM rather than SIGKILL: an orphaned worker still finishes the requests
    it has read (graceful shutdown) before it goes.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    except (AttributeError, OSError) as error:
        log.warning("workers cannot be tied to their parent here (%s)", error)
        return
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os.kill(os.getpid(), signum)

