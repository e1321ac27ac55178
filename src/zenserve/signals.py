"""Keep the server's signals for the main thread, whoever starts threads.

The kernel hands a process-directed signal to any thread that does not block
it. Python runs the handler in the main thread anyway, but a main thread
blocked in recv() is only interrupted if the signal was delivered to it; so
every thread of ours is born blocking these signals (its creator blocks them
while starting it: a thread that blocked them itself would take them until it
first ran) and leaves them to the main thread.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

SERVER_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGHUP})


def start_leaving_signals_to_main(thread: threading.Thread) -> None:
    """Start ``thread`` with the server's signals blocked from its first instruction."""
    with threads_leave_signals_to_main():
        thread.start()


@contextlib.contextmanager
def threads_leave_signals_to_main() -> Iterator[None]:
    """Threads started inside this block (and theirs) inherit a mask blocking the signals."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, SERVER_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
