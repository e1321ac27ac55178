"""Keep the server's signals for the main thread, whoever starts threads.

The kernel hands a process-directed signal to any thread that does not block
it. Python runs the handler in the main thread anyway, but a main thread
blocked in recv() is only interrupted if the signal was delivered to it; so
every thread of ours blocks these signals and leaves them to the main thread.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

SERVER_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGHUP})


def block_server_signals() -> None:
    """In a thread of our own: leave the server's signals to the main thread."""
    signal.pthread_sigmask(signal.SIG_BLOCK, SERVER_SIGNALS)


@contextlib.contextmanager
def threads_leave_signals_to_main() -> Iterator[None]:
    """Threads started inside this block (and theirs) inherit a mask blocking the signals."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, SERVER_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
