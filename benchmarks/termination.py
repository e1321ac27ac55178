"""A benchmark stopped with SIGTERM cleans up as one stopped with Ctrl-C does.

Benchmarks start servers in their own sessions (so that stopping one takes its
workers too); Python's default SIGTERM ends the script without unwinding, and
those servers would be left running, skewing every later measurement on the
machine. Turning the first SIGTERM into ``SystemExit`` runs every ``finally``
and context manager on the way out; later ones are ignored so that the clean-up
itself is not cut short.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

# How long a benchmark script gets to stop its servers after being asked.
CHILD_STOP_SECONDS = 30.0


def exit_on_sigterm() -> None:
    """From now on, SIGTERM raises SystemExit in the main thread (once)."""
    signal.signal(signal.SIGTERM, _exit)


def _exit(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(128 + signum)


@contextmanager
def sigterm_deferred() -> Iterator[None]:
    """Hold SIGTERM back while a child is started and recorded (delivered when this ends).

    A SIGTERM landing inside ``subprocess.Popen`` (it waits for the exec) would
    raise there, after the fork: the child would run on with nobody to stop it.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def stop_child(child: subprocess.Popen[bytes]) -> None:
    """Ask a benchmark script to stop (it cleans up on SIGTERM); kill it if it will not."""
    if child.poll() is not None:
        return
    child.terminate()
    try:
        child.wait(CHILD_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
